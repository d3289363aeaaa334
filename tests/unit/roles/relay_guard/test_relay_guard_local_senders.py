# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Local accounts' senders through the guard (``local_senders``): root's cron mail and a daemon's mail
(root@mx1.example.com, www-data@host.localdomain) reach the real relay stand-in, over loopback and TLS, as the
customer-domain sender (domain_addresses) or as the registered sender relay_local_sender (registered_users); the
stand-in refuses the same senders when the guard leaves them alone; the null sender and the customer's own
addresses are never rewritten. Then the configuration check (``--check``) and the matching rules."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys

import pytest

from relay_standin.testing import message

HOST_NAMES = ["mx1.example.com", "mx1", "localhost", "localhost.localdomain", ".localhost", "localdomain",
              ".localdomain"]
DOMAIN_MODE = {"domains": HOST_NAMES, "rewrite_to": "domain", "domain": "example.com"}
LOCAL_SENDER = "alerts@example.com"  # relay_local_sender: a registered user
ADDRESS_MODE = {"domains": HOST_NAMES, "rewrite_to": "address", "address": LOCAL_SENDER}
REGISTERED = {"alice@example.com": "alice-pw", LOCAL_SENDER: "alerts-pw"}
# The HELO name is in the customer's domain: what the relay asks of the null sender without SMTP AUTH.
HELO = "mail.example.com"


def _send(guard, sender, recipient="bob@remote.test", message_id="<local-senders@test>"):
    """One transaction through the guard as an MTA sends it; (code, text) of the first reply that is not 2xx, or
    of the end of the message."""
    client = smtplib.SMTP(*guard.server_address, local_hostname=HELO, timeout=10)
    try:
        client.ehlo(HELO)
        code, text = client.mail(sender)
        if code == 250:
            code, text = client.rcpt(recipient)
        if code == 250:
            code, text = client.data(message(message_id=message_id))
        return code, text.decode("utf-8", "replace")
    finally:
        try:
            client.quit()
        except smtplib.SMTPException:
            pass


def _records(standin, count):
    from relay_standin import records  # pylint: disable=import-outside-toplevel
    found = records.transactions(standin.wait_for(lambda r: len(records.transactions(r)) >= count))
    return {record["message_id"] or record["seq"]: record for record in found}


def _rewrites(log_lines):
    return [line.split("local sender rewritten ", 1)[1] for line in log_lines if "local sender rewritten " in line]


# ---- through the stand-in ------------------------------------------------------------------------

# sender as the MTA sends it -> as the relay must receive it
DOMAIN_CASES = {
    "root-cron": ("root@mx1.example.com", "root@example.com"),
    "daemon": ("www-data@host.localdomain", "www-data@example.com"),
    "upper-case-host": ("Root@MX1.Example.COM.", "Root@example.com"),
    "customer": ("alice@example.com", "alice@example.com"),
    "null": ("", ""),
}


def test_domain_addresses_local_senders_leave_in_the_customer_domain(relay_standin_factory, start_guard, guard_log):
    standin = relay_standin_factory(allowlist=["127.0.0.1"], allowed_senders="domain_addresses")
    guard = start_guard(standin, auth=None, local_senders=DOMAIN_MODE)
    for name, (sender, _wanted) in DOMAIN_CASES.items():
        assert _send(guard, sender, message_id="<%s@test>" % name)[0] == 250, name
    records = _records(standin, len(DOMAIN_CASES))
    for name, (_sender, wanted) in DOMAIN_CASES.items():
        record = records["<%s@test>" % name]
        assert (record["sender"], record["verdict"]) == (wanted, "accepted"), name
    # the null sender: the relay itself names it postmaster@<domain of the HELO>; the guard sent it as <>
    assert records["<null@test>"]["sender_rewritten"] == "postmaster@example.com"
    assert _rewrites(guard_log()) == ["(domain): root@mx1.example.com -> root@example.com",
                                      "(domain): www-data@host.localdomain -> www-data@example.com",
                                      "(domain): Root@MX1.Example.COM. -> Root@example.com"]


def test_domain_addresses_without_the_rewrite_the_relay_refuses_the_daemon(
        relay_standin_factory, start_guard, guard_log):
    standin = relay_standin_factory(allowlist=["127.0.0.1"], allowed_senders="domain_addresses")
    guard = start_guard(standin, auth=None)
    code, text = _send(guard, "www-data@host.localdomain")
    assert code == 550 and "5.7.1 Invalid credentials for relay" in text, (code, text)
    [record] = _records(standin, 1).values()
    assert (record["sender"], record["verdict"]) == ("www-data@host.localdomain", "refused")
    assert not _rewrites(guard_log())


REGISTERED_CASES = {
    "root-cron": ("root@mx1.example.com", LOCAL_SENDER, "accepted"),
    "daemon": ("www-data@host.localdomain", LOCAL_SENDER, "accepted"),
    "no-domain": ("root", LOCAL_SENDER, "accepted"),
    "registered": ("alice@example.com", "alice@example.com", "accepted"),
    # in the customer's domain but not registered: never rewritten, so the relay refuses it as it is
    "customer-unregistered": ("bob@example.com", "bob@example.com", "refused"),
    "null": ("", "", "accepted"),
}


def test_registered_users_local_senders_leave_as_relay_local_sender(relay_standin_factory, start_guard, guard_log):
    standin = relay_standin_factory(allowlist=["127.0.0.1"], allowed_senders="registered_users", users=REGISTERED)
    guard = start_guard(standin, auth=None, local_senders=ADDRESS_MODE)
    for name, (sender, _wanted, verdict) in REGISTERED_CASES.items():
        code, text = _send(guard, sender, message_id="<%s@test>" % name)
        assert (code == 250) == (verdict == "accepted"), (name, code, text)
    records = _records(standin, len(REGISTERED_CASES))
    for name, (_sender, wanted, verdict) in REGISTERED_CASES.items():
        record = records.get("<%s@test>" % name) or next(
            r for r in records.values() if r["sender"] == wanted and r["verdict"] == verdict)
        assert (record["sender"], record["verdict"]) == (wanted, verdict), name
    assert _rewrites(guard_log()) == ["(address): root@mx1.example.com -> alerts@example.com",
                                      "(address): www-data@host.localdomain -> alerts@example.com",
                                      "(address): root -> alerts@example.com"]


def test_registered_users_without_the_rewrite_the_relay_refuses_local_senders(relay_standin_factory, start_guard):
    standin = relay_standin_factory(allowlist=["127.0.0.1"], allowed_senders="registered_users", users=REGISTERED)
    guard = start_guard(standin, auth=None)
    for sender in ("root@mx1.example.com", "www-data@host.localdomain"):
        code, text = _send(guard, sender)
        assert code == 550 and "5.7.0 Mail Sending denied" in text, (sender, code, text)
    records = _records(standin, 2).values()
    assert sorted((r["sender"], r["verdict"]) for r in records) == [
        ("root@mx1.example.com", "refused"), ("www-data@host.localdomain", "refused")]


def test_rewrite_keeps_the_mail_parameters_and_pipelining(relay_standin_factory, start_guard):
    """MAIL's ESMTP parameters go on unchanged; pipelined commands around the rewritten MAIL keep their order."""
    standin = relay_standin_factory(allowlist=["127.0.0.1"])
    guard = start_guard(standin, auth=None, local_senders=DOMAIN_MODE)
    client = smtplib.SMTP(*guard.server_address, local_hostname=HELO, timeout=10)
    client.ehlo(HELO)
    assert client.has_extn("pipelining")
    data = message(message_id="<piped@test>")
    client.send(b"MAIL FROM:<root@mx1.example.com> SIZE=%d BODY=8BITMIME\r\nRCPT TO:<bob@remote.test>\r\nDATA\r\n"
                % len(data))
    assert [client.getreply()[0] for _reply in range(3)] == [250, 250, 354]
    client.send(data + b".\r\n")
    assert client.getreply()[0] == 250
    client.quit()
    [record] = _records(standin, 1).values()
    assert record["sender"] == "root@example.com"
    assert record["sender_params"] == ["SIZE=%d" % len(data), "BODY=8BITMIME"]


# ---- the configuration --------------------------------------------------------------------------

def test_config_normalized(guard_module, make_guard_config):
    local = guard_module.validate_config(make_guard_config(local_senders={
        "domains": ["MX1.Example.com.", "mx1", ".LocalDomain", "mx1"], "rewrite_to": "address",
        "address": "Alerts@Example.COM"}))["local_senders"]
    assert local == {"domains": ["mx1.example.com", "mx1", ".localdomain"], "rewrite_to": "address", "domain": None,
                     "address": "Alerts@example.com"}
    # validating again gives the same (the guard validates what main() validated)
    assert guard_module._local_senders(local) == local  # pylint: disable=protected-access
    assert guard_module.validate_config(make_guard_config())["local_senders"] is None


BAD = {
    "not-a-mapping": (["mx1"], "local_senders", "must be a mapping"),
    "unknown-key": (dict(DOMAIN_MODE, masquerade=True), "local_senders.masquerade", "unknown key"),
    "no-domains": ({"rewrite_to": "domain", "domain": "example.com"}, "local_senders.domains", "missing"),
    "empty-domains": (dict(DOMAIN_MODE, domains=[]), "local_senders.domains", "non-empty list"),
    "domains-text": (dict(DOMAIN_MODE, domains="mx1.example.com"), "local_senders.domains", "non-empty list"),
    "bad-name": (dict(DOMAIN_MODE, domains=["mx1", "bad name"]), "local_senders.domains[1]", "host name"),
    "wildcard-only": (dict(DOMAIN_MODE, domains=["."]), "local_senders.domains[0]", "host name"),
    "rewrite-to": (dict(DOMAIN_MODE, rewrite_to="masquerade"), "local_senders.rewrite_to", 'must be "domain"'),
    "domain-missing": ({"domains": ["mx1"], "rewrite_to": "domain"}, "local_senders.domain", "customer's domain"),
    "domain-not-domain": (dict(DOMAIN_MODE, domain="localhost"), "local_senders.domain", "customer's domain"),
    "address-missing": ({"domains": ["mx1"], "rewrite_to": "address"}, "local_senders.address", "registered sender"),
    "address-in-domain-mode": (dict(DOMAIN_MODE, address=LOCAL_SENDER), "local_senders.address",
                               'only used with rewrite_to "address"'),
    "domain-in-address-mode": (dict(ADDRESS_MODE, domain="example.com"), "local_senders.domain",
                               'only used with rewrite_to "domain"'),
    "address-not-address": (dict(ADDRESS_MODE, address="alerts"), "local_senders.address", "user@domain"),
    "address-two": (dict(ADDRESS_MODE, address="a@example.com, b@example.com"), "local_senders.address",
                    "user@domain"),
    "target-local": (dict(DOMAIN_MODE, domains=["mx1", "example.com"]), "local_senders.domain",
                     "is one of local_senders.domains"),
    "target-below-wildcard": (dict(ADDRESS_MODE, domains=["mx1", ".com"]), "local_senders.address",
                              "is one of local_senders.domains"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_config_refused(guard_module, make_guard_config, case):
    value, key, words = BAD[case]
    config = make_guard_config(local_senders=value)
    with pytest.raises(guard_module.ConfigError) as refused:
        guard_module.validate_config(config)
    assert str(refused.value).startswith(key + ":") and words in str(refused.value), str(refused.value)


def test_check_command_line(guard_module, make_guard_config, tmp_path):
    """What the role's template validation runs: exit 0 for a good configuration, 2 and the key for a bad one."""
    path = tmp_path / "guard.json"
    config = make_guard_config(relay={"port": 587}, auth=None, local_senders=DOMAIN_MODE)
    path.write_text(json.dumps(config))
    check = [sys.executable, guard_module.__file__, "--check", "--config", str(path)]
    assert subprocess.run(check, capture_output=True, text=True, check=False).returncode == 0
    path.write_text(json.dumps(dict(config, local_senders=dict(DOMAIN_MODE, rewrite_to="domian"))))
    result = subprocess.run(check, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert 'local_senders.rewrite_to: must be "domain"' in result.stderr and "got 'domian'" in result.stderr


# ---- which senders are local ---------------------------------------------------------------------

SENDERS = {
    "root@mx1.example.com": "root@example.com",
    "root@MX1.example.com.": "root@example.com",
    "root@mx1": "root@example.com",
    "cron@localhost": "cron@example.com",
    "www-data@host.localdomain": "www-data@example.com",
    "www-data@a.b.localdomain": "www-data@example.com",
    "nobody@localdomain": "nobody@example.com",
    "root": "root@example.com",
    "@relay.example.net:root@mx1.example.com": "root@example.com",
    '"odd@user"@mx1.example.com': '"odd@user"@example.com',
    # left alone: the null sender, the customer's domain, other domains, other hosts of the customer's domain
    "": None,
    "alice@example.com": None,
    "root@mx2.example.com": None,
    "root@example.net": None,
    "root@localdomain.example.net": None,
    "root@mx1.example.com.evil.test": None,
    "@mx1.example.com": None,
}


@pytest.mark.parametrize("sender", sorted(SENDERS))
def test_which_senders_are_local(guard_module, make_guard_config, sender):
    local = guard_module.validate_config(make_guard_config(local_senders=DOMAIN_MODE))["local_senders"]
    assert guard_module.local_sender_rewrite(sender, local) == SENDERS[sender]
    if SENDERS[sender] is not None:
        assert guard_module.local_sender_rewrite(sender, dict(local, rewrite_to="address", address=LOCAL_SENDER)) \
            == LOCAL_SENDER


def test_mail_lines(start_guard, relay_standin):
    """The MAIL command as the relay gets it: only the path changes, and only for a local sender."""
    guard = start_guard(relay_standin, local_senders=DOMAIN_MODE)
    logged = []

    def line(data):
        return guard.local_sender_line(data, lambda text, *args: logged.append(text % args))

    assert line(b"MAIL FROM:<root@mx1> SIZE=10") == b"MAIL FROM:<root@example.com> SIZE=10"
    assert line(b"mail from: <root@localhost>") == b"MAIL FROM:<root@example.com>"
    assert line(b"MAIL FROM:root@localhost BODY=7BIT") == b"MAIL FROM:<root@example.com> BODY=7BIT"
    for same in (b"MAIL FROM:<>", b"MAIL FROM:<> SIZE=1", b"MAIL FROM:<alice@example.com>", b"MAIL TO:<root@mx1>",
                 b"MAIL FROM:<root@mx1"):
        assert line(same) is same
    assert logged == ["local sender rewritten (domain): root@mx1 -> root@example.com",
                      "local sender rewritten (domain): root@localhost -> root@example.com",
                      "local sender rewritten (domain): root@localhost -> root@example.com"]
