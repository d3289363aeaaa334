# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No open relay: the outsider (srt-security-out only) cannot relay to an outside domain through either MTA, on
any port the MTA listens on, with or without TLS, with an outside, a forged local or the null sender, without
SMTP AUTH; the same mail from an allowed host (the other MTA, on srt-security) is accepted and reaches the relay.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from relay_standin import inject

from conftest import (MTAS, NETWORK, OUTSIDE_NETWORK, OUTSIDER, RELAY, address, host, podman,  # noqa: I100
                      relay_record)

TAG = uuid.uuid4().hex[:8]
# 24: where Sendmail's relay guard (roles/relay_guard) listens, on 127.0.0.1 only: it sends with this server's
# relay identity (SMTP AUTH, allowlisted address), so reaching it from outside would be an open relay.
PORTS = {25: ("none", "starttls"), 587: ("none", "starttls"), 465: ("implicit",), 24: ("none",)}
SENDERS = {
    "outside": "spammer@elsewhere.test",
    "forged-customer": "ceo@example.com",
    "forged-local": "root@{host}",
    "null": "",
}
HOSTNAMES = {"postfix": "mta-postfix.corp.test", "sendmail": "mta-sendmail.corp.test"}
OTHER = {"postfix": "sendmail", "sendmail": "postfix"}


def probe(container, request):
    """One session from ``container`` by the tests' SMTP injector (its text run by the container's python3)."""
    return json.loads(podman("exec", container, "python3", "-c", inject.source(), "session", json.dumps(request)))


def outsider_requests(mta):
    target = address(MTAS[mta], OUTSIDE_NETWORK)
    for port, modes in PORTS.items():
        for mode in modes:
            transactions = [{"sender": sender.format(host=HOSTNAMES[mta]),
                             "recipient": "open-relay-%s-%s-%s-%d-%s@outside.test" % (TAG, mta, label, port, mode),
                             "message_id": "<open-relay.%s.%s@outsider.test>" % (TAG, uuid.uuid4().hex[:8])}
                            for label, sender in SENDERS.items()]
            yield (mta, port, mode), {"target": target, "port": port, "tls": mode, "helo": "outsider.test",
                                      "transactions": transactions}


def allowed_request(mta):
    """From the other MTA's container (on srt-security, in this MTA's allowed networks)."""
    return {"target": address(MTAS[mta], NETWORK), "port": 25, "tls": "none", "helo": HOSTNAMES[OTHER[mta]],
            "transactions": [{"sender": "app@example.com", "recipient": "allowed-%s-%s@outside.test" % (TAG, mta),
                              "message_id": "<allowed.%s.%s@example.com>" % (TAG, mta)}]}


@pytest.fixture(scope="module")
def attempts(results):
    """Every probe at once: the outsider's against both MTAs, then the allowed ones."""
    jobs = {key: (OUTSIDER, request) for mta in MTAS for key, request in outsider_requests(mta)}
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {key: pool.submit(probe, container, request) for key, (container, request) in jobs.items()}
        outcome = {key: (jobs[key][1], future.result()) for key, future in futures.items()}
        allowed = {mta: pool.submit(probe, MTAS[OTHER[mta]], allowed_request(mta)) for mta in MTAS}
        outcome.update({(mta, "allowed"): (allowed_request(mta), future.result()) for mta, future in allowed.items()})
    probes = {key: out for key, (_request, out) in outcome.items() if key[1] != "allowed"}
    refusals = [(key[0], (t["rcpt"] or t["mail"])[0]) for key, out in probes.items() for t in out["transactions"]]
    results["open_relay"] = {
        "sessions": len(probes),
        "not_listening": sorted({"%s:%d" % key[:2] for key, out in probes.items() if out["connect"] != "ok"}),
        "transactions": len(refusals),
        "reply_codes": sorted({"%s %d" % refusal for refusal in refusals}),
    }
    return outcome


@pytest.mark.parametrize("mta", MTAS)
def test_outsider_is_in_no_allowed_network(mta):
    outsider = ipaddress.ip_address(address(OUTSIDER, OUTSIDE_NETWORK))
    allowed = ipaddress.ip_network(relay_record.network_subnet(NETWORK))
    assert outsider not in allowed
    assert NETWORK not in json.loads(podman("inspect", OUTSIDER, "--format", "json"))[0]["NetworkSettings"]["Networks"]
    if mta == "postfix":
        networks = host(MTAS[mta]).check_output("postconf -h mynetworks").replace(",", " ").split()
        assert str(allowed) in networks
        assert not [n for n in networks if outsider in ipaddress.ip_network(n.strip("[]").replace("]/", "/"))]
    else:
        # Class R (RELAY_DOMAIN, and the relay-domains file it reads): address prefixes allowed to relay.
        relay_class = host(MTAS[mta]).check_output(
            "sed -n 's/^C{R}//p; s/^CR//p' /etc/mail/sendmail.cf; cat /etc/mail/relay-domains 2>/dev/null || true"
        ).split()
        prefix = str(allowed.network_address).rsplit(".", 1)[0]
        assert prefix in relay_class and allowed.prefixlen == 24
        assert not [c for c in relay_class if str(outsider).startswith(c + ".")]


@pytest.mark.parametrize("mta", MTAS)
def test_outsider_reaches_port_25(attempts, mta):
    """The refusals below are SMTP replies, not a closed port."""
    _request, out = attempts[(mta, 25, "none")]
    assert out["connect"] == "ok" and len(out["transactions"]) == len(SENDERS)


def test_outsider_cannot_reach_the_relay_guard(attempts):
    _request, out = attempts[("sendmail", 24, "none")]
    assert "refused" in out["connect"].lower(), out
    assert host(MTAS["sendmail"]).socket("tcp://127.0.0.1:24").is_listening


@pytest.mark.parametrize("port", PORTS)
@pytest.mark.parametrize("mta", MTAS)
def test_outsider_cannot_relay(attempts, mta, port):
    for mode in PORTS[port]:
        request, out = attempts[(mta, port, mode)]
        if out["connect"] != "ok":
            assert "refused" in out["connect"].lower(), out  # not listening on this port: nothing to relay through
            continue
        if mode == "starttls" and not out["starttls"]:
            continue
        for item, result in zip(request["transactions"], out["transactions"]):
            refused_at = result["rcpt"] or result["mail"]
            assert result["data"] is None, (item, result)
            assert 500 <= refused_at[0] < 600, (item, result)
            if result["rcpt"]:
                assert "relay" in result["rcpt"][1].lower(), (item, result)


@pytest.mark.parametrize("mta", MTAS)
def test_allowed_host_relays(attempts, mta):
    request, out = attempts[(mta, "allowed")]
    [result] = out["transactions"]
    assert [result["mail"][0], result["rcpt"][0], result["data"][0]] == [250, 250, 250], result
    relay = host(RELAY)
    found = relay_record.wait_for_transactions(relay, count=1, timeout=120, verdict="accepted",
                                               message_id=request["transactions"][0]["message_id"])
    assert found and found[0]["client_ip"] == address(MTAS[mta], NETWORK), found
    assert found[0]["recipients"] == [request["transactions"][0]["recipient"]]


def test_nothing_from_the_outsider_reached_the_relay_or_a_queue(attempts, results):
    # A sentinel from the allowed host, sent after every outsider attempt ended, must reach the relay through each
    # MTA: anything those MTAs accepted from the outsider before it would have been relayed (or queued) by then.
    for mta in MTAS:
        request = allowed_request(mta)
        sentinel = "<sentinel.%s.%s@example.com>" % (TAG, mta)
        request["transactions"] = [dict(request["transactions"][0], message_id=sentinel,
                                        recipient="sentinel-%s-%s@outside.test" % (TAG, mta))]
        probe(MTAS[OTHER[mta]], request)
        assert relay_record.wait_for_transactions(host(RELAY), count=1, timeout=120, verdict="accepted",
                                                  message_id=sentinel), mta
    records = relay_record.read_record(host(RELAY))
    leaked = [r for r in records if r.get("kind") == "transaction"
              and any("open-relay-%s" % TAG in rcpt for rcpt in r.get("recipients") or [])]
    assert not leaked
    queued = {mta: host(name).run("mailq 2>/dev/null | grep -c 'open-relay-%s' || true" % TAG).stdout.strip()
              for mta, name in MTAS.items()}
    assert queued == {"postfix": "0", "sendmail": "0"}
    results["open_relay"]["relay_transactions_from_outsider"] = len(leaked)
