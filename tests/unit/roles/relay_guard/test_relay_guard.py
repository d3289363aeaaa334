# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay guard against the relay stand-in: TLS (STARTTLS, implicit, verified), SMTP AUTH, the
MTA's EHLO/HELO name, connection reuse within a session, reply rewrites, relay failures, no password in
logs or replies; its configuration checks; the process itself (SIGTERM, dropping root). The pool (relay
connections kept across sessions) is in test_relay_guard_pool.py, the retry rules in test_relay_guard_rules.py."""

from __future__ import annotations

import base64
import json
import os
import pwd
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time

import pytest

from relay_standin.pytest_plugin import DEFAULT_PASSWORD, DEFAULT_USER
from relay_standin.testing import free_port, ipv6_loopback_available, message

from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor, doctor_parsers
from ansible_collections.smarthost.relay.plugins.module_utils._relay.replies import retry_rules

LIMIT_USER = "550 5.4.5 Daily SMTP relay limit exceeded for user."
LIMIT_CUSTOMER = "550 5.7.1 Daily SMTP relay limit exceeded for customer."
RELAY_DENIED = ("550 5.7.1 Mail relay denied [127.0.0.1]. Invalid credentials for relay for one of the domains "
                "in: example.com (as obtained from HELO and MAIL FROM).")


# ---- helpers ------------------------------------------------------------------------------------

def _standin(factory, **extra):
    """A stand-in that knows alice and lets 127.0.0.1 relay."""
    return factory(users={DEFAULT_USER: DEFAULT_PASSWORD}, allowlist=["127.0.0.1"], **extra)


def _auth_only_standin(factory, **extra):
    """A stand-in that relays only for authenticated users (hence only over TLS)."""
    return factory(users={DEFAULT_USER: DEFAULT_PASSWORD}, auth_required=True, **extra)


def _connect(guard, helo="mta.example.com"):
    host, port = guard.server_address
    return smtplib.SMTP(host, port, local_hostname=helo, timeout=10)


def _transactions(standin, count=1):
    from relay_standin import records  # pylint: disable=import-outside-toplevel
    return records.transactions(standin.wait_for(lambda r: len(records.transactions(r)) >= count))


class RawClient:
    """A client that sees the guard's reply lines exactly as sent."""

    def __init__(self, guard):
        self.sock = socket.create_connection(guard.server_address, timeout=10)
        self.reader = self.sock.makefile("rb")

    def reply(self):
        lines = []
        while True:
            raw = self.reader.readline()
            assert raw.endswith(b"\r\n"), "reply line %r does not end in CRLF" % raw
            lines.append(raw[:-2].decode("utf-8"))
            if lines[-1][3:4] != "-":
                return lines

    def send(self, data):
        self.sock.sendall(data.encode("utf-8"))

    def command(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def close(self):
        self.reader.close()
        self.sock.close()


# ---- TLS, AUTH, names, connection reuse ---------------------------------------------------------

def test_starttls_and_auth_on_587(relay_standin_factory, start_guard, guard_log):
    standin = _auth_only_standin(relay_standin_factory)
    guard = start_guard(standin)
    client = _connect(guard)
    assert client.ehlo("mta.example.com")[0] == 250
    assert client.sendmail("alice@example.com", ["bob@remote.test", "carol@remote.test"],
                           message(message_id="<guard-1@example.com>")) == {}
    client.quit()
    [record] = _transactions(standin)
    assert (record["port"], record["listen_port"]) == (587, standin.port_for(587))
    assert (record["tls"], record["tls_mode"], record["auth_user"]) == (True, "starttls", DEFAULT_USER)
    assert (record["helo"], record["helo_verb"]) == ("mta.example.com", "EHLO")
    assert (record["sender"], record["recipients"]) == ("alice@example.com", ["bob@remote.test", "carol@remote.test"])
    assert (record["message_id"], record["verdict"]) == ("<guard-1@example.com>", "accepted")
    log = "\n".join(guard_log())
    assert "certificate verified for relay.smarthost.test" in log
    assert "AUTH PLAIN ok for alice@example.com" in log


def test_implicit_tls_on_465_without_auth(relay_standin_factory, start_guard, guard_log):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin, relay={"port": standin.port_for(465), "tls": "implicit"}, auth=None)
    client = _connect(guard)
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = _transactions(standin)
    assert (record["port"], record["tls"], record["tls_mode"], record["auth_user"]) == (465, True, "implicit", None)
    assert record["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert not [line for line in guard_log() if "AUTH" in line]


def test_three_messages_in_one_client_session_use_one_relay_connection(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    client = _connect(guard)
    for number in range(3):
        assert client.sendmail("alice@example.com", ["r%d@remote.test" % number], message()) == {}
    client.quit()
    trans = _transactions(standin, 3)
    # the client's QUIT ends its session, not the relay connection: that stays in the pool until the guard stops
    assert standin.connections() == []
    guard.shutdown()
    [connection] = standin.wait_for_connections(1)
    assert connection["transactions"] == 3 and connection["end"] == "quit"
    assert [t["seq"] for t in trans] == [1, 2, 3]
    assert {t["connection"] for t in trans} == {connection["connection"]}


def test_helo_client_like_qmail_remote(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    client = _connect(guard, helo="qmail.example.com")
    code, text = client.helo("qmail.example.com")
    assert code == 250 and text.startswith(b"relay.smarthost.test")
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = _transactions(standin)
    # the relay sees the client's name; upstream it is always EHLO (STARTTLS and AUTH need it)
    assert (record["helo"], record["helo_verb"], record["tls"], record["auth_user"]) == (
        "qmail.example.com", "EHLO", True, DEFAULT_USER)


@pytest.mark.parametrize("tls, port, hidden", [("required", 587, "AUTH"), ("none", 25, "STARTTLS")])
def test_ehlo_reply_hides_starttls_and_auth(relay_standin_factory, start_guard, tls, port, hidden):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin, relay={"port": standin.port_for(port), "tls": tls},
                        auth=None if tls == "none" else {})
    raw = RawClient(guard)
    assert raw.reply()[-1].startswith("220 ")
    lines = raw.command("EHLO mta.example.com")
    raw.command("QUIT")
    raw.close()
    assert lines[0].startswith("250-relay.smarthost.test")
    assert all(line.startswith("250-") for line in lines[:-1]) and lines[-1].startswith("250 ")
    keywords = [line[4:].split()[0].upper() for line in lines[1:]]
    assert "STARTTLS" not in keywords and not [k for k in keywords if k.startswith("AUTH")]
    assert {"PIPELINING", "SIZE", "8BITMIME"} <= set(keywords)
    # the relay did offer what the client must not see
    assert any(line.split()[0].upper().startswith(hidden) for line in _relay_ehlo(standin, port, tls))


def test_pipelined_commands_get_their_replies_in_order(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory, faults=[{"stage": "rcpt", "reply": LIMIT_CUSTOMER, "times": 1}])
    guard = start_guard(standin)
    raw = RawClient(guard)
    raw.reply()
    raw.command("EHLO mta.example.com")
    raw.send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<a@remote.test>\r\nRCPT TO:<b@remote.test>\r\nDATA\r\n")
    replies = [raw.reply() for _count in range(4)]
    assert [r[-1][:3] for r in replies] == ["250", "450", "250", "354"]
    assert replies[1] == ["450 4.7.1 Daily SMTP relay limit exceeded for customer."]
    raw.send(message().decode("ascii") + ".\r\n")
    assert raw.reply()[-1].startswith("250 ")
    assert raw.command("QUIT")[-1].startswith("221 ")
    raw.close()
    [record] = _transactions(standin)
    assert record["recipients"] == ["b@remote.test"]


# ---- rewrites -----------------------------------------------------------------------------------

@pytest.mark.parametrize("stage, reply, with_rules, expected", [
    ("mail", LIMIT_USER, True, "450 4.4.5 Daily SMTP relay limit exceeded for user."),
    ("rcpt", LIMIT_CUSTOMER, True, "450 4.7.1 Daily SMTP relay limit exceeded for customer."),
    ("rcpt", RELAY_DENIED, True, RELAY_DENIED),
    ("mail", LIMIT_USER, False, LIMIT_USER),
], ids=["limit-user", "limit-customer", "relay-denied-stays", "no-rules"])
def test_relay_replies_are_rewritten(relay_standin_factory, start_guard, guard_log, limit_rewrites,
                                     stage, reply, with_rules, expected):
    standin = _standin(relay_standin_factory, faults=[{"stage": stage, "reply": reply, "disconnect": False}])
    guard = start_guard(standin, rewrites=limit_rewrites if with_rules else [])
    client = _connect(guard)
    client.ehlo("mta.example.com")
    if stage == "mail":
        got = client.mail("alice@example.com")
    else:
        assert client.mail("alice@example.com")[0] == 250
        got = client.rcpt("bob@remote.test")
    client.quit()
    assert got == (int(expected[:3]), expected[4:].encode("ascii"))
    rewrites = [line for line in guard_log() if "rewrite (" in line and reply in line]
    assert len(rewrites) == (0 if expected == reply else 1)
    if rewrites:
        assert rewrites[0].endswith("-> %r" % expected)


def test_the_doctor_reads_a_split_reply_from_the_guards_log(relay_standin_factory, start_guard, guard_log,
                                                            limit_rewrites):
    """The relay doctor's reader of the guard's journal (doctor_parsers.guard_log) on this guard's own lines: a
    reply with the limit's words split over its first two lines, as the relay sent it and as the client got it, so
    that the first line, all Sendmail logs of it, joins to the whole reply (docs/doctor.md)."""
    split = ["550-5.7.1 Daily SMTP relay limit exceeded for",
             "550-5.7.1 customer. The relay's sending limits are explained in its help.",
             "550 5.7.1 Ask your administrator. x12-20020a05.37 - gsmtp"]
    standin = _standin(relay_standin_factory, faults=[{"stage": "rcpt", "reply": split, "disconnect": False}])
    raw = RawClient(start_guard(standin, rewrites=limit_rewrites))
    raw.reply()
    raw.command("EHLO mta.example.com")
    assert raw.command("MAIL FROM:<alice@example.com>")[-1].startswith("250 ")
    got = raw.command("RCPT TO:<bob@remote.test>")
    raw.command("QUIT")
    raw.close()
    at = time.time()
    journal = ["%.6f deb12 python3[77]: %s" % (at, line) for line in guard_log()]  # journalctl -o short-unix
    [event] = [e for e in doctor_parsers.guard_log(journal) if e.get("rewritten")]
    assert event["reply"] == split and event["rewritten"] == got and got[0].startswith("450-4.7.1 ")
    sendmail = ("%.6f deb12 sm-mta[4242]: 4A2B3C4D005678: to=<bob@remote.test>, delay=00:00:01, mailer=relay, "
                "pri=120412, relay=[127.0.0.1] [127.0.0.1], dsn=4.7.1, stat=Deferred: %s" % (at + 0.2, got[0]))
    [alone] = doctor_parsers.sendmail_log([sendmail])
    [joined] = doctor_parsers.sendmail_guard_join([alone], [event])
    assert doctor.diagnose(alone["reply"])["class"] == "unknown"
    assert doctor.diagnose(joined["reply"])["class"] == "customer_daily_limit"


def test_multiline_reply_gets_one_code(guard_module, limit_rewrites):
    rules = guard_module.compile_rewrites(limit_rewrites)
    google = ["550-5.7.1 Daily SMTP relay limit exceeded for customer. For more",
              "550-5.7.1 information on SMTP relay sending limits please visit",
              "550 5.7.1  https://support.google.com/a/answer/166852 - gsmtp"]
    assert guard_module.rewrite_reply(google, rules) == [
        "450-4.7.1 Daily SMTP relay limit exceeded for customer. For more",
        "450-4.7.1 information on SMTP relay sending limits please visit",
        "450 4.7.1  https://support.google.com/a/answer/166852 - gsmtp"]
    # the limit's words on the last line only, or split over two lines: the whole reply still matches
    split = ["550-5.7.1 Daily SMTP relay", "550-5.7.1 limit exceeded for customer.", "550 5.7.1 x12 - gsmtp"]
    assert [line[:9] for line in guard_module.rewrite_reply(split, rules)] == ["450-4.7.1", "450-4.7.1", "450 4.7.1"]
    assert guard_module.rewrite_reply(["550-5.1.1 a", "550 5.1.1 b"], rules) == ["550-5.1.1 a", "550 5.1.1 b"]


def test_client_ehlo_lines_renumbers_continuations(guard_module):
    relay = ["250-relay.example.test at your service", "250-SIZE 35882577", "250-AUTH=LOGIN", "250-PIPELINING",
             "250-AUTH LOGIN PLAIN", "250 STARTTLS"]
    assert guard_module.client_ehlo_lines(relay) == [
        "250-relay.example.test at your service", "250-SIZE 35882577", "250 PIPELINING"]


# ---- relay failures -----------------------------------------------------------------------------

@pytest.mark.parametrize("port", [587, 465])
def test_untrusted_certificate_gets_nothing_but_the_handshake(relay_standin_factory, start_guard, relay_pki,
                                                              guard_log, port):
    standin = _standin(relay_standin_factory)
    standin.reconfigure(tls={"cert": str(relay_pki / "untrusted.pem"), "key": str(relay_pki / "untrusted.key")})
    relay = {"port": standin.port_for(port), "tls": "required" if port == 587 else "implicit"}
    guard = start_guard(standin, relay=relay)
    # the guard greets; the relay connection comes at EHLO, and its failure is the answer to EHLO
    client = _connect(guard)
    code, text = client.ehlo("mta.example.com")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.mail("alice@example.com")
    assert code == 421 and text.startswith(b"4.7.0 ")
    assert b"certificate verification failed" in text and b"relay.smarthost.test" in text
    assert any("certificate verification failed" in line for line in guard_log())

    trusting = start_guard(standin, relay=dict(relay, verify=False))
    client = _connect(trusting)
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    trusting.shutdown()  # its pooled relay connection closes, and the stand-in writes its record
    assert any("certificate NOT verified" in line for line in guard_log())
    [record] = _transactions(standin)
    assert (record["tls"], record["auth_user"]) == (True, DEFAULT_USER)
    # the refused session left no transaction; on 587 it got as far as STARTTLS (implicit TLS
    # handshakes that fail leave no record at all)
    connections = standin.wait_for_connections(2 if port == 587 else 1)
    assert [c["transactions"] for c in connections] == ([0, 1] if port == 587 else [1])
    assert connections[0]["tls"] is (port == 465)
    if port == 587:
        # the impostor's session: EHLO and STARTTLS in clear, then the failed handshake; no AUTH tried
        assert connections[0]["auth_user"] is None and connections[0]["auth_failures"] == 0, connections[0]
    assert standin.transactions() == [record]


def test_relay_without_starttls_gets_no_mail_when_tls_is_required(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory, tls=False)
    guard = start_guard(standin)
    client = _connect(guard)
    code, text = client.ehlo("mta.example.com")
    assert (code, text) == (421, b"4.7.0 relay relay.smarthost.test:%d (127.0.0.1) does not offer STARTTLS"
                            % standin.port_for(587))
    [connection] = standin.wait_for_connections(1)
    assert connection["transactions"] == 0 and standin.transactions() == []


def test_no_credentials_over_plain_text(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin, relay={"port": standin.port_for(25), "tls": "none"})
    client = _connect(guard)
    code, text = client.ehlo("mta.example.com")
    assert code == 421 and text.startswith(b"4.7.0 refusing to send SMTP AUTH credentials")
    [connection] = standin.wait_for_connections(1)
    assert (connection["auth_failures"], connection["auth_user"], connection["transactions"]) == (0, None, 0)


def test_unreachable_relay_is_a_421_at_ehlo(start_guard):
    port = free_port()
    guard = start_guard(relay={"port": port})
    client = _connect(guard)
    code, text = client.ehlo("mta.example.com")
    assert code == 421
    assert text.startswith(b"4.4.1 relay relay.smarthost.test:%d (127.0.0.1) unreachable" % port)


@pytest.mark.parametrize("reply", ["421 4.7.0 Try again later, closing connection.", "554 5.7.0 Too many connections"])
def test_relay_greeting_refusal_reaches_the_client(relay_standin_factory, start_guard, reply):
    standin = _standin(relay_standin_factory, faults=[{"stage": "connect", "reply": reply}])
    guard = start_guard(standin)
    client = _connect(guard)
    assert client.ehlo("mta.example.com") == (int(reply[:3]), reply[4:].encode("ascii"))
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.mail("alice@example.com")


def test_wrong_password_is_a_421_and_no_password_shows(relay_standin_factory, start_guard, guard_log,
                                                       wrong_password):
    standin = _auth_only_standin(relay_standin_factory)
    guard = start_guard(standin, auth={"password": wrong_password})
    client = smtplib.SMTP(local_hostname="mta.example.com", timeout=10)
    seen = [client.connect(*guard.server_address)]
    seen.append(client.ehlo("mta.example.com"))
    assert seen[-1][0] == 421 and seen[-1][1].startswith(b"4.7.0 relay refused SMTP AUTH: 535 ")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.mail("alice@example.com")
    [connection] = standin.wait_for_connections(1)
    assert (connection["auth_failures"], connection["transactions"]) == (1, 0)
    log = guard_log()
    assert any("AUTH PLAIN failed for alice@example.com" in line for line in log)
    for password in (wrong_password, DEFAULT_PASSWORD):
        encoded = base64.b64encode(("\0%s\0%s" % (DEFAULT_USER, password)).encode()).decode()
        for secret in (password, encoded, base64.b64encode(password.encode()).decode()):
            assert not [line for line in log if secret in line]
            assert not [reply for reply in seen if secret.encode() in reply[1]]


def test_relay_closing_after_data_is_never_a_success(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory, faults=[{"stage": "end_of_data", "action": "close"}])
    guard = start_guard(standin)
    client = _connect(guard)
    client.ehlo("mta.example.com")
    with pytest.raises((smtplib.SMTPServerDisconnected, smtplib.SMTPDataError)) as failed:
        client.sendmail("alice@example.com", ["bob@remote.test"], message())
    if isinstance(failed.value, smtplib.SMTPDataError):
        assert 400 <= failed.value.smtp_code < 500
    client.close()
    assert [t["verdict"] for t in standin.transactions()] in ([], ["abandoned"])


def test_commands_before_ehlo(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    raw = RawClient(guard)
    raw.reply()
    assert raw.command("NOOP") == ["250 2.0.0 OK"]
    assert raw.command("RSET") == ["250 2.0.0 OK"]
    assert raw.command("MAIL FROM:<alice@example.com>") == ["503 5.5.1 Send EHLO or HELO first"]
    assert raw.command("QUIT") == ["221 2.0.0 Bye"]
    assert raw.reader.readline() == b""
    raw.close()
    guard.shutdown()
    # the relay connection comes at EHLO: a client that never said it never reached the relay
    time.sleep(0.2)
    assert standin.records() == []


def test_ipv6_listener(relay_standin_factory, start_guard):
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback")
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin, listen={"address": "::1", "port": 0})
    client = smtplib.SMTP("::1", guard.server_address[1], local_hostname="mta.example.com", timeout=10)
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()


# ---- configuration ------------------------------------------------------------------------------

def _good_config(tmp_path, relay_pki, limit_rewrites):
    return {
        "listen": {"address": "127.0.0.1", "port": 2526},
        "relay": {"host": "relay.example.test", "port": 587, "tls": "required", "verify": True,
                  "ca_file": str(relay_pki / "ca.pem")},
        "auth": {"username": "u@example.com", "password": "secret"},
        "rewrites": limit_rewrites,
        "timeouts": {"connect": 30, "reply": 300},
        "pool": {"max_connections": 4, "max_idle": 2, "idle_timeout": 50, "max_messages": 0, "max_age": 3600,
                 "wait": 120},
        "user": pwd.getpwuid(os.getuid()).pw_name,
    }


def _write(tmp_path, config):
    path = tmp_path / "guard.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


RULE = retry_rules()["limits"][0]
BAD_CONFIGS = [  # (where, value, the key the error must name)
    (("colour",), "blue", "colour"),
    (("relay", "colour"), "blue", "relay.colour"),
    (("relay", "tls"), "starttls", "relay.tls"),
    (("relay", "port"), 70000, "relay.port"),
    (("listen", "port"), -1, "listen.port"),
    (("listen", "address"), "localhost", "listen.address"),
    (("relay", "host"), "relay host", "relay.host"),
    (("relay", "verify"), "yes", "relay.verify"),
    (("relay", "ca_file"), "/nonexistent/ca.pem", "relay.ca_file"),
    (("auth",), {"username": "u@example.com"}, "auth.password"),
    (("timeouts", "connect"), 0, "timeouts.connect"),
    (("rewrites",), {"pattern": "^5"}, "rewrites"),
    (("rewrites",), ["^5"], "rewrites[0]"),
    (("rewrites",), [dict(RULE, pattern="^550(")], "rewrites[0].pattern"),
    (("rewrites",), [dict(RULE, pattern="^5\\d")], "rewrites[0].pattern"),
    (("rewrites",), [dict(RULE, pattern="^(?i)5")], "rewrites[0].pattern"),
    (("rewrites",), [dict(RULE, pattern="^5.*?x")], "rewrites[0].pattern"),
    (("rewrites",), [dict(RULE, pattern="^5[\\.]")], "rewrites[0].pattern"),
    (("rewrites",), [dict(RULE, pattern="")], "rewrites[0].pattern"),
    # the shape before the rule engine matched whole replies: refused, with a hint
    (("rewrites",), [{"pattern": "^550", "replacement": "450"}], "rewrites[0].status"),
    (("rewrites",), [dict(RULE, flags="i")], "rewrites[0].flags"),
    (("rewrites",), [dict(RULE, status="5.7")], "rewrites[0].status"),
    (("rewrites",), [dict(RULE, retry_status="5.7.1")], "rewrites[0].retry_status"),
    (("rewrites",), [dict(RULE, retry_code=550)], "rewrites[0].retry_code"),
    (("rewrites",), [dict(RULE, retry_code="450")], "rewrites[0].retry_code"),
    (("rewrites",), [dict(RULE, code=450)], "rewrites[0].code"),
    (("rewrites",), [dict(RULE, cause="")], "rewrites[0].cause"),
    (("rewrites",), [dict(RULE, replacement=4)], "rewrites[0].replacement"),
    (("pool",), [], "pool"),
    (("pool", "colour"), 1, "pool.colour"),
    (("pool", "max_connections"), 0, "pool.max_connections"),
    (("pool", "max_idle"), 5, "pool.max_idle"),
    (("pool", "max_idle"), -1, "pool.max_idle"),
    (("pool", "idle_timeout"), 0, "pool.idle_timeout"),
    (("pool", "idle_timeout"), 7200, "pool.idle_timeout"),
    (("pool", "max_messages"), 1.5, "pool.max_messages"),
    (("pool", "max_age"), "1h", "pool.max_age"),
    (("pool", "wait"), True, "pool.wait"),
    (("user",), "no-such-user-for-the-guard", "user"),
]


@pytest.mark.parametrize("where, value, key", BAD_CONFIGS, ids=[case[2] for case in BAD_CONFIGS])
def test_load_config_names_the_bad_key(guard_module, tmp_path, relay_pki, limit_rewrites, where, value, key):
    config = _good_config(tmp_path, relay_pki, limit_rewrites)
    target = config
    for name in where[:-1]:
        target = target[name]
    target[where[-1]] = value
    with pytest.raises(guard_module.ConfigError) as refused:
        guard_module.load_config(_write(tmp_path, config))
    assert str(refused.value).startswith(key + ":"), str(refused.value)


def test_load_config_fills_defaults_and_is_stable(guard_module, tmp_path, relay_pki):
    minimal = {"listen": {"address": "::1", "port": 2526}, "relay": {"host": "smtp-relay.gmail.com", "tls": "implicit"}}
    config = guard_module.load_config(_write(tmp_path, minimal))
    assert config["relay"] == {"host": "smtp-relay.gmail.com", "port": 465, "tls": "implicit", "verify": True,
                               "ca_file": None, "address": None}
    assert (config["auth"], config["rewrites"], config["user"]) == (None, [], None)
    assert config["timeouts"] == {"connect": 30, "reply": 300}
    assert config["pool"] == {"max_connections": 4, "max_idle": 4, "idle_timeout": 60, "max_messages": 0,
                              "max_age": 3600, "wait": 120}
    assert guard_module.validate_config(config) == config
    # pool keys given as null take their defaults (what a template writes for an unset variable)
    minimal["pool"] = {"max_idle": 1, "wait": None}
    pool = guard_module.load_config(_write(tmp_path, minimal))["pool"]
    assert (pool["max_idle"], pool["wait"], pool["max_connections"]) == (1, 120, 4)


def test_the_rule_engines_rules_pass_the_check(guard_module):
    """Every rule the relay role publishes (relay_settings.retry_replies) is a valid guard rule, POSIX ERE too."""
    rules = retry_rules()["limits"] + retry_rules()["refusals"]
    assert len(guard_module.compile_rewrites(rules)) == len(rules)
    assert all(guard_module.ere_problem(rule["pattern"]) is None for rule in rules)


def test_main_check(guard_module, tmp_path, relay_pki, limit_rewrites, capsys):
    config = _good_config(tmp_path, relay_pki, limit_rewrites)
    path = _write(tmp_path, config)
    assert guard_module.main(["--check", "--config", str(path)]) == 0
    assert capsys.readouterr() == ("", "")
    config["relay"]["tls"] = "sometimes"
    path = _write(tmp_path, config)
    assert guard_module.main(["--check", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and "relay.tls: must be one of" in err
    assert "secret" not in err
    path.write_text("{not json", encoding="utf-8")
    assert guard_module.main(["--check", "--config", str(path)]) == 2
    assert "config: not valid JSON" in capsys.readouterr().err
    config["relay"]["tls"] = "required"
    config["rewrites"] = [{"pattern": "^550 5\\.4\\.5 (.*)$", "replacement": "450 4.4.5 $1"}]
    assert guard_module.main(["--check", "--config", str(_write(tmp_path, config))]) == 2
    err = capsys.readouterr().err
    assert "rewrites[0].status: missing; a retry rule needs pattern, status, retry_code, retry_status" in err
    assert "relay_settings.retry_replies" in err


# ---- the process ------------------------------------------------------------------------------

def _read_line(stream, timeout=10.0):
    found = {}
    reader = threading.Thread(target=lambda: found.setdefault("line", stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return found.get("line", b"").decode("utf-8", "replace")


def test_process_serves_drops_root_and_stops_on_sigterm(guard_module, tmp_path, relay_pki, relay_standin_factory):
    standin = _auth_only_standin(relay_standin_factory)
    listen_port = free_port()
    config = {"listen": {"address": "127.0.0.1", "port": listen_port},
              "relay": {"host": "relay.smarthost.test", "address": "127.0.0.1", "port": standin.port_for(587),
                        "ca_file": str(relay_pki / "ca.pem")},
              "auth": {"username": DEFAULT_USER, "password": DEFAULT_PASSWORD},
              "user": "nobody" if os.geteuid() == 0 else None}
    path = _write(tmp_path, config)
    process = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, guard_module.__file__, "--config", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(tmp_path))
    try:
        lines = [_read_line(process.stderr)]
        if os.geteuid() == 0:
            assert lines[0].startswith("running as user nobody"), lines
            lines.append(_read_line(process.stderr))
            with open("/proc/%d/status" % process.pid, encoding="ascii") as handle:
                status = handle.read()
            uid, gid = pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid
            assert re.search(r"^Uid:\s+%d\s+%d\s+%d\s+%d$" % (uid, uid, uid, uid), status, re.M), status
            assert re.search(r"^Gid:\s+%d\s+%d\s+%d\s+%d$" % (gid, gid, gid, gid), status, re.M), status
            assert re.search(r"^Groups:\s*$", status, re.M), status
        assert lines[-1].startswith("listening on 127.0.0.1:%d" % listen_port), lines
        # a whole session (TLS, AUTH) after the drop: nothing it needs is out of reach
        client = smtplib.SMTP("127.0.0.1", listen_port, local_hostname="mta.example.com", timeout=10)
        assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
        client.quit()
        assert _transactions(standin)[0]["auth_user"] == DEFAULT_USER
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert process.wait(5) == 0
        assert time.monotonic() - started < 2
        log = process.stderr.read().decode("utf-8", "replace")
        assert "AUTH PLAIN ok for alice@example.com" in log and DEFAULT_PASSWORD not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        process.stderr.close()


def _relay_ehlo(standin, port, tls):
    """The relay's own EHLO reply lines (after STARTTLS when the guard would start TLS), without the codes."""
    with socket.create_connection(("127.0.0.1", standin.port_for(port)), timeout=5) as sock:
        reader = sock.makefile("rb")

        def reply():
            lines = []
            while True:
                line = reader.readline().decode().rstrip("\r\n")
                lines.append(line[4:])
                if line[3:4] != "-":
                    return lines
        reply()
        sock.sendall(b"EHLO probe.example.com\r\n")
        lines = reply()[1:]
        sock.sendall(b"QUIT\r\n")
        reply()
    if tls == "required":
        lines = lines + ["AUTH (after STARTTLS)"] if any(l.upper().startswith("STARTTLS") for l in lines) else lines
    return lines


class _RawRelay:
    """A plain-text SMTP server on loopback that answers with the scripted ``replies`` (one per command read),
    so a test can make "the relay" say what the stand-in never would."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _address = self.server.accept()
        with conn:
            conn.sendall(b"220 relay.smarthost.test ESMTP\r\n")
            reader = conn.makefile("rb")
            for reply in self.replies:
                if not reader.readline():
                    return
                conn.sendall(reply.encode() + b"\r\n")
            reader.readline()

    def close(self):
        self.server.close()


def test_a_relay_line_that_is_no_reply_ends_the_session_with_a_421(start_guard, guard_log):
    """Handed on, "garbage" after MAIL could read as a 5xx to qmail-remote (it computes a code from any three
    bytes) and bounce the message: the client gets a 421 instead, and the guard says why."""
    relay = _RawRelay(["250-relay.smarthost.test\r\n250 PIPELINING", "garbage from a broken relay"])
    try:
        guard = start_guard(relay={"port": relay.port, "tls": "none"}, auth=None)
        raw = RawClient(guard)
        assert raw.reply()[-1].startswith("220 ")
        assert raw.command("EHLO mta.example.com")[-1].startswith("250 ")
        answer = raw.command("MAIL FROM:<alice@example.com>")
        raw.close()
    finally:
        relay.close()
    assert answer == ["421 4.4.2 relay relay.smarthost.test:%d (127.0.0.1) sent a line that is not an SMTP reply: "
                      "'garbage from a broken relay'" % relay.port] or (
        len(answer) == 1 and answer[0].startswith("421 4.4.2 ")), answer
    assert any("not an SMTP reply" in line for line in guard_log())


@pytest.mark.parametrize("reply, seen", [
    ("550 5.7.0 Mail relay denied [192.0.2.1].", "450 4.7.0 Mail relay denied [192.0.2.1]."),
    ("530 5.5.1 Authentication Required.", "450 4.5.1 Authentication Required."),
    ("530 5.7.0 Must issue a STARTTLS command first.", "450 4.7.0 Must issue a STARTTLS command first."),
    ("550 5.1.1 The email account that you tried to reach does not exist.",
     "550 5.1.1 The email account that you tried to reach does not exist."),
])
def test_refusal_rules_through_the_guard(relay_standin_factory, start_guard, reply, seen):
    """The rule engine's refusal rules (relay_settings.retry_replies.refusals), as the MTA roles pass them with
    *_relay_refusals_retry, applied by the guard to what the relay said at RCPT."""
    standin = _standin(relay_standin_factory, faults=[{"stage": "rcpt", "reply": reply, "disconnect": False}])
    guard = start_guard(standin, rewrites=retry_rules()["limits"] + retry_rules()["refusals"])
    client = _connect(guard)
    client.ehlo("mta.example.com")
    code, text = client.docmd("MAIL FROM:<alice@example.com>")
    assert code == 250, text
    code, text = client.docmd("RCPT TO:<bob@remote.test>")
    client.quit()
    assert "%d %s" % (code, text.decode()) == seen
