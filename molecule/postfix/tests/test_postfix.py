# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.postfix, proven from the relay stand-in's record.

The tests run in file order and build on each other: the converge left every MTA on 587 + STARTTLS + SMTP AUTH;
later tests re-run the role (ansible-playbook converge.yml -e ...) with the values another case needs. Debian 12
carries every case; Debian 11 and 13 the converge, idempotence, 587 and 465 cases.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources" / "tests"))
import relay_record  # noqa: E402  pylint: disable=wrong-import-position
from relay_record import arrived, sha, wait_for  # noqa: E402  pylint: disable=wrong-import-position

SCENARIO = Path(__file__).resolve().parents[1]
RELAY_CONTAINER = "srt-postfix-relay"
NETWORK = "srt-postfix"
USER = "app@example.com"
PASSWORD = "postfix-Relay-pw-7c1e"  # the stand-in's test user (molecule.yml, converge.yml)
# Unique per run, so that finding one in a log can only mean this run leaked it.
NEW_PASSWORD = "Check-mode-pw-" + uuid.uuid4().hex[:10]
WRONG_PASSWORD = "Wrong-pw-" + uuid.uuid4().hex[:10]
HELO = "mta.example.com"
TAG = uuid.uuid4().hex[:8]
OUTPUTS = []  # the output of every ansible-playbook run of this module
RESULTS = {}  # numbers for the close-out note, written to .cache/logs/postfix-verify.json

MTAS = relay_record.group_hosts("mta")
DEB12 = next(host for host in MTAS if host.backend.name.endswith("deb12"))


# --- helpers -------------------------------------------------------------------------------------------------

def standin(**changes):
    """Change the stand-in's config; return the new config."""
    return relay_record.standin(RELAY_CONTAINER, **changes)


def scenario_subnet():
    return relay_record.network_subnet(NETWORK)


def run_role(extra, limit=DEB12.backend.name, check=False, verbosity="-v"):
    """ansible-playbook converge.yml with extra vars, as a user would re-run the role."""
    result = relay_record.run_playbook(SCENARIO / "converge.yml", "--diff", "--limit", limit, verbosity,
                                       *(["--check"] if check else []), extra_vars=extra,
                                       env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"})
    OUTPUTS.append(result.stdout + result.stderr)
    slowest = result.stdout.split("TASKS RECAP", 1)[-1].splitlines()[3:8] if "TASKS RECAP" in result.stdout else []
    RESULTS.setdefault("role_runs", []).append({"vars": sorted(extra), "check": check, "rc": result.returncode,
                                                "seconds": result.seconds,
                                                "slowest_tasks": [" ".join(line.split()) for line in slowest]})
    return result


def text(result):
    """stdout and stderr of a run, white space collapsed (the yaml callback folds long messages)."""
    return " ".join((result.stdout + result.stderr).split())


def recap(result, host=DEB12.backend.name):
    """The PLAY RECAP counters of one host."""
    for line in result.stdout.splitlines():
        if line.startswith(host + " ") and "ok=" in line:
            return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}
    raise AssertionError("no recap for %s:\n%s" % (host, result.stdout[-3000:]))


def send(host, sender, recipients, message_id, subject="test"):
    """Submit one message with Postfix's sendmail inside the MTA container."""
    body = "From: <%s>\nTo: %s\nSubject: %s\nMessage-ID: %s\n\nsmarthost.relay postfix scenario\n" % (
        sender or "MAILER-DAEMON", ", ".join(recipients), subject, message_id)
    cmd = "printf %%s %s | /usr/sbin/sendmail -i -f %s -- %s" % (
        shlex.quote(body), shlex.quote(sender or "<>"), " ".join(shlex.quote(r) for r in recipients))
    result = host.run(cmd)
    assert result.rc == 0, result.stdout + result.stderr


def mid(label):
    return "<%s.%s.%s@example.com>" % (label, TAG, uuid.uuid4().hex[:8])


def queue(host):
    """postqueue -j: one dict per queued message."""
    return [json.loads(line) for line in host.check_output("postqueue -j").splitlines() if line.strip()]


def flush(host):
    host.check_output("postqueue -f")


def bounced_in_log(host, since):
    """Mail log lines since ``since`` of mail bounced because of the relay's answer (local bounces excluded)."""
    return host.run("journalctl --quiet --no-pager -o cat --since @%d SYSLOG_FACILITY=2 "
                    "| grep 'status=bounced' | grep 'relay=relay.smarthost.test' || true" % since).stdout.strip()


@pytest.fixture(scope="module")
def relay():
    return relay_record.relay()


@pytest.fixture(scope="module")
def subnet():
    return scenario_subnet()


def phase_25(subnet):
    """Port 25, opportunistic STARTTLS, IP allowlist, HELO in the customer's domain, no SMTP AUTH."""
    return {"relay_tls": "opportunistic", "relay_port": 25, "relay_auth": False, "relay_auth_username": "",
            "relay_auth_password": "", "relay_allowlist": [subnet], "relay_tls_ca_file": ""}


MAIN_FILES = ("/etc/postfix/main.cf", "/etc/postfix/master.cf")


# --- 587 + STARTTLS + AUTH (the converge), idempotence is molecule's own step --------------------------------

@pytest.mark.parametrize("host", MTAS, ids=lambda h: h.backend.name)
def test_converged_settings(host, relay):
    conf = host.check_output("postconf -h relayhost smtp_tls_security_level smtp_tls_wrappermode "
                             "smtp_sasl_auth_enable smtp_tls_CAfile smtp_helo_name inet_interfaces").splitlines()
    assert conf == ["[relay.smarthost.test]:587", "secure", "no", "yes",
                    "/usr/local/share/ca-certificates/smarthost-test-ca.crt", HELO, "loopback-only"]
    # The SASL key is the relayhost exactly; the map and its database are root-only.
    assert host.check_output("postmap -q '[relay.smarthost.test]:587' hash:/etc/postfix/smarthost_sasl_passwd") \
        == "%s:%s" % (USER, PASSWORD)
    for path in ("/etc/postfix/smarthost_sasl_passwd", "/etc/postfix/smarthost_sasl_passwd.db"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600), path
    assert host.check_output("postconf -M relay-null/unix tlsproxy/unix").count("\n") == 1
    assert host.check_output("postconf -h relay-null_destination_recipient_limit") == "1"
    # A backup of main.cf was kept, and the converge's own test delivery reached the relay.
    assert host.run("ls /etc/postfix/main.cf.*~").rc == 0
    client_ip = host.interface("eth0").addresses[0]
    tests = [r for r in relay_record.transactions(relay, client_ip=client_ip, verdict="accepted")
             if (r.get("message_id") or "").startswith("<smarthost-relay-test.")]
    assert tests and tests[0]["recipients"] == ["postfix-test@example.net"]


@pytest.mark.parametrize("host", MTAS, ids=lambda h: h.backend.name)
def test_587_starttls_auth_verified(host, relay):
    message_id = mid("587")
    send(host, USER, ["someone@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["port"] == 587 and record["tls"] is True and record["tls_mode"] == "starttls"
    assert record["auth_user"] == USER and record["helo"] == HELO
    assert record["sender"] == USER and record["recipients"] == ["someone@example.net"]


def test_wrong_value_fails_before_the_host_is_touched():
    before = sha(DEB12, *MAIN_FILES)
    result = run_role({"postfix_tls_loglevel": 9})
    assert result.returncode != 0
    assert "postfix_tls_loglevel" in text(result), text(result)[-2000:]
    assert sha(DEB12, *MAIN_FILES) == before


def test_check_mode_reports_changes_and_changes_nothing():
    files = MAIN_FILES + ("/etc/postfix/smarthost_sasl_passwd",)
    before = sha(DEB12, *files)
    result = run_role({"relay_auth_password": NEW_PASSWORD, "relay_helo_name": "mail2.example.com"},
                      check=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result)["changed"] >= 2
    assert "+smtp_helo_name = mail2.example.com" in result.stdout  # diff mode shows main.cf
    assert sha(DEB12, *files) == before
    assert NEW_PASSWORD not in result.stdout + result.stderr


# --- connection reuse --------------------------------------------------------------------------------------

def test_200_messages_reuse_a_handful_of_connections(relay):
    tag = "bulk-" + TAG
    script = ("for i in $(seq 1 200); do printf 'Subject: bulk %%s\\nMessage-ID: <%s.%%s@example.com>\\n\\nx\\n' "
              "$i $i | /usr/sbin/sendmail -i -f %s bulk$i@example.net; done" % (tag, USER))
    start = time.monotonic()
    DEB12.check_output(script)

    def all_arrived():
        found = [r for r in relay_record.transactions(relay, verdict="accepted")
                 if (r.get("message_id") or "").startswith("<%s." % tag)]
        return found if len(found) >= 200 else None

    found = wait_for(all_arrived, timeout=180, what="200 messages at the relay")
    connections = {r["connection"] for r in found}
    RESULTS["bulk"] = {"messages": len(found), "connections": len(connections),
                       "max_per_connection": max(r["seq"] for r in found),
                       "seconds": round(time.monotonic() - start, 1)}
    assert all(r["tls"] and r["auth_user"] == USER for r in found)
    assert len(connections) <= 25, RESULTS["bulk"]
    assert RESULTS["bulk"]["max_per_connection"] >= 5, RESULTS["bulk"]


# --- limit replies -----------------------------------------------------------------------------------------

def test_limit_replies_are_deferred_and_retried_never_bounced(relay):
    since = int(time.time()) - 1
    standin(faults=[
        {"stage": "rcpt", "reply": "550 5.4.5 Daily SMTP relay limit exceeded for user.", "times": 2},
        {"stage": "rcpt", "reply": "550 5.7.1 Daily SMTP relay limit exceeded for customer.", "times": 1},
    ])
    ids = [mid("limit-%d" % n) for n in range(3)]
    for message_id in ids:
        send(DEB12, USER, ["limited@example.net"], message_id)

    def deferred():
        reasons = [m["recipients"][0].get("delay_reason", "") for m in queue(DEB12)]
        return reasons if len([r for r in reasons if "limit exceeded" in r]) >= 3 else None

    reasons = wait_for(deferred, timeout=90, what="three deferred limit replies")
    assert any("4.4.5" in r for r in reasons) and any("4.7.1" in r for r in reasons), reasons
    assert not bounced_in_log(DEB12, since)
    standin(faults=[])
    flush(DEB12)
    for message_id in ids:
        arrived(relay, message_id)
    wait_for(lambda: not queue(DEB12), timeout=60, what="an empty queue")
    assert not bounced_in_log(DEB12, since)
    # No non-delivery report went out either.
    assert not [r for r in relay_record.transactions(relay, sender="") if r.get("time", 0) >= since]


# --- certificate verification ------------------------------------------------------------------------------

def test_untrusted_certificate_gets_no_mail(relay):
    good = standin()["tls"]
    standin(tls={"cert": "/etc/relay-standin/untrusted.pem", "key": "/etc/relay-standin/untrusted.key"})
    time.sleep(2)  # let any cached connection to the genuine relay expire
    message_id = mid("impostor")
    send(DEB12, USER, ["someone@example.net"], message_id)

    def refused():
        held = [m for m in queue(DEB12) if m["recipients"][0].get("delay_reason")]
        return held or None

    held = wait_for(refused, timeout=90, what="the message deferred by certificate verification")
    reason = held[0]["recipients"][0]["delay_reason"]
    assert "certificate" in reason.lower() or "tls" in reason.lower(), reason
    assert not relay_record.transactions(relay, message_id=message_id)
    standin(tls=good)
    flush(DEB12)
    arrived(relay, message_id)


# --- 465 implicit TLS on every MTA -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def implicit_tls(subnet):
    result = run_role({"relay_tls": "implicit", "relay_port": 465, "relay_auth": False, "relay_auth_username": "",
                       "relay_auth_password": "", "relay_allowlist": [subnet], "relay_tls_ca_file": ""},
                      limit="mta")
    assert result.returncode == 0, result.stdout[-4000:]
    return result


@pytest.mark.parametrize("host", MTAS, ids=lambda h: h.backend.name)
def test_465_implicit_tls(host, relay, implicit_tls):
    assert recap(implicit_tls, host.backend.name)["changed"] > 0
    conf = host.check_output("postconf -h relayhost smtp_tls_wrappermode smtp_tls_security_level "
                             "smtp_sasl_auth_enable").splitlines()
    assert conf == ["[relay.smarthost.test]:465", "yes", "secure", "no"]
    assert not host.file("/etc/postfix/smarthost_sasl_passwd").exists
    message_id = mid("465")
    send(host, USER, ["someone@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["port"] == 465 and record["tls_mode"] == "implicit" and record["auth_user"] is None
    assert record["helo"] == HELO


# --- 25, IP allowlist, HELO, foreign sender, bounces, null sender ------------------------------------------

def test_25_allowlist_helo_foreign_sender_and_bounce(relay, subnet):
    result = run_role(phase_25(subnet))
    assert result.returncode == 0, result.stdout[-4000:]
    message_id = mid("foreign")
    send(DEB12, "someone@foreign.test", ["friend@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["port"] == 25 and record["helo"] == HELO and record["auth_user"] is None
    assert record["sender"] == "someone@foreign.test" and record["sender_rewritten"] == "postmaster@example.com"
    # A real bounce: local delivery to an unknown user makes Postfix send a non-delivery report (null sender).
    since = time.time() - 1
    send(DEB12, "someone@foreign.test", ["nosuchuser@localhost"], mid("bounce-me"))

    def bounce():
        found = [r for r in relay_record.transactions(relay, sender="", verdict="accepted")
                 if r["recipients"] == ["someone@foreign.test"] and r.get("time", 0) >= since]
        return found or None

    [ndr] = wait_for(bounce, timeout=90, what="the bounce at the relay")
    assert ndr["port"] == 25 and ndr["helo"] == HELO


def test_null_sender_two_recipients_two_transactions(relay):
    message_id = mid("null")
    send(DEB12, "", ["one@example.net", "two@example.net"], message_id)
    found = arrived(relay, message_id, count=2)
    assert len(found) == 2
    assert all(r["sender"] == "" and len(r["recipients"]) == 1 for r in found)
    assert sorted(r["recipients"][0] for r in found) == ["one@example.net", "two@example.net"]
    assert not relay_record.transactions(relay, message_id=message_id, verdict="refused")


def test_wrong_helo_is_refused_and_mail_stays_queued(relay):
    since = int(time.time()) - 1
    DEB12.check_output("postconf -e smtp_helo_name=mta.wrong.test && postfix reload")
    ids = [mid("wrong-helo"), mid("wrong-helo-null")]
    send(DEB12, "someone@foreign.test", ["friend@example.net"], ids[0])
    send(DEB12, "", ["friend@example.net"], ids[1])
    refused = wait_for(lambda: relay_record.transactions(relay, helo="mta.wrong.test", verdict="refused")
                       if len(relay_record.transactions(relay, helo="mta.wrong.test", verdict="refused")) >= 2
                       else None, timeout=90, what="two refusals at the relay")
    assert {r["code"] for r in refused} == {550}
    held = wait_for(lambda: [m for m in queue(DEB12) if m["recipients"][0].get("delay_reason")]
                    if len([m for m in queue(DEB12) if m["recipients"][0].get("delay_reason")]) >= 2 else None,
                    timeout=60, what="both messages deferred")
    assert all("4.7.1" in m["recipients"][0]["delay_reason"] for m in held), held
    assert not bounced_in_log(DEB12, since)
    DEB12.check_output("postconf -e smtp_helo_name=%s && postfix reload" % HELO)
    flush(DEB12)
    for message_id in ids:
        arrived(relay, message_id)


# --- rollback ----------------------------------------------------------------------------------------------

def test_rollback_when_postfix_check_fails_keeps_config_and_queue(relay, subnet):
    standin(faults=[{"action": "unlisten", "ports": [25]}])
    message_id = mid("queued")
    send(DEB12, USER, ["waiting@example.net"], message_id)
    queued = wait_for(lambda: [m for m in queue(DEB12) if m["recipients"][0].get("delay_reason")] or None,
                      timeout=60, what="a message deferred while the relay is away")
    before = sha(DEB12, *MAIN_FILES)
    result = run_role(dict(phase_25(subnet), postfix_inet_interfaces="bogus.invalid"))
    assert result.returncode != 0
    assert "(rolled back)" in text(result) and "postfix check" in text(result), text(result)[-3000:]
    assert "bogus.invalid" in text(result)  # Postfix's own complaint, from the log
    assert sha(DEB12, *MAIN_FILES) == before
    assert DEB12.check_output("postconf -h inet_interfaces") == "loopback-only"
    assert DEB12.run("postfix status").rc == 0
    assert {m["queue_id"] for m in queue(DEB12)} >= {m["queue_id"] for m in queued}
    standin(faults=[])
    flush(DEB12)
    arrived(relay, message_id)


def test_rollback_when_the_relay_refuses_the_test_delivery(relay):
    before = sha(DEB12, *MAIN_FILES)
    result = run_role({"relay_auth_password": WRONG_PASSWORD}, verbosity="-vvv")  # converge.yml: 587 + AUTH
    assert result.returncode != 0
    out = text(result)
    assert "(rolled back)" in out and "test message" in out, out[-3000:]
    assert "535" in out or "authentication failed" in out.lower(), out[-3000:]
    assert WRONG_PASSWORD not in result.stdout + result.stderr
    assert sha(DEB12, *MAIN_FILES) == before
    assert not DEB12.file("/etc/postfix/smarthost_sasl_passwd").exists
    assert not DEB12.run("ls /etc/postfix/smarthost_sasl_passwd*").stdout.strip()
    # The previous configuration (25 + HELO) is live, and the test message did not stay behind.
    assert not queue(DEB12)
    message_id = mid("after-rollback")
    send(DEB12, USER, ["someone@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["port"] == 25 and record["auth_user"] is None


# --- secrets -----------------------------------------------------------------------------------------------

def role_runs_in_log(log):
    """The lines of the scenario's ansible log written by playbook runs of converge.yml (converge, idempotence,
    the runs above). Other writers of the log, such as testinfra's ansible-inventory dump of the stand-in's own
    test users, are not runs of the role and are left out."""
    by_pid, current = {}, None
    for line in log.splitlines():
        if " p=" in line and " n=ansible " in line:
            current = line.split(" p=", 1)[1].split()[0]
        by_pid.setdefault(current, []).append(line)
    return "\n".join("\n".join(lines) for lines in by_pid.values() if any("PLAY [Converge]" in l for l in lines))


def test_no_password_in_any_ansible_output():
    log = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.log"
    runs = role_runs_in_log(log.read_text(errors="replace") if log.exists() else "")
    assert runs.count("PLAY [Converge]") >= 2 + len(OUTPUTS), "converge, idempotence and this module's runs"
    everything = runs + "".join(OUTPUTS)
    for secret in (PASSWORD, NEW_PASSWORD, WRONG_PASSWORD):
        assert secret not in everything
    RESULTS["log_bytes_checked"] = len(everything)
    out = Path(os.environ.get("SMARTHOST_ROOT", SCENARIO.parents[1])) / ".cache" / "logs" / "postfix-verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=2))
