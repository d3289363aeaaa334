# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection: refuse connections (close, reset, not listening), any
4xx/5xx at each stage, stalls; limited by count, time window and port."""

from __future__ import annotations

import smtplib
import socket
import time

import pytest

from relay_standin.engine import replies
from relay_standin.testing import RawSession, message

TRY_AGAIN = b"4.7.0 Try again later, closing connection."


def _standin(factory, faults, **extra):
    return factory(allowlist=["127.0.0.1"], faults=faults, **extra)


def _connect_refused(standin, port=587):
    with socket.create_connection(("127.0.0.1", standin.port_for(port)), timeout=2):
        pass


def test_connect_421_then_normal_after_times(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "connect", "times": 1}])
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        relay_client.connect(standin)
    assert (refused.value.smtp_code, refused.value.smtp_error) == (421, TRY_AGAIN)
    client = relay_client.connect(standin)
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    conns = standin.wait_for_connections(2)
    assert conns[0]["transactions"] == 0 and conns[0]["faults"][0]["stage"] == "connect"


@pytest.mark.parametrize("reply", ["554 5.7.0 Too many connections", "421 4.3.0 Temporary System Problem."])
def test_connect_any_reply(relay_standin_factory, relay_client, reply):
    standin = _standin(relay_standin_factory, [{"stage": "connect", "reply": reply}])
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        relay_client.connect(standin)
    assert refused.value.smtp_code == int(reply[:3])


@pytest.mark.parametrize("action", ["close", "reset"])
def test_connect_close_or_reset(relay_standin_factory, relay_client, action):
    standin = _standin(relay_standin_factory, [{"stage": "connect", "action": action}])
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionResetError)):
        relay_client.connect(standin)
    [conn] = standin.wait_for_connections(1)
    assert conn["end"] == "fault"


def test_unlisten_takes_a_port_down_for_a_while(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [])
    port_587 = standin.port_for(587)
    standin.reconfigure(faults=[{"action": "unlisten", "ports": [587], "for_seconds": 1.5}])
    with pytest.raises(ConnectionRefusedError):
        _connect_refused(standin, 587)
    relay_client.connect(standin, port=465).quit()       # other ports stay up
    deadline = time.monotonic() + 5
    while True:
        try:
            _connect_refused(standin, 587)
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "587 did not come back"
            time.sleep(0.1)
    assert standin.port_for(587) == port_587


def test_port_set_to_null_is_not_listening(relay_standin_factory):
    standin = _standin(relay_standin_factory, [])
    port_25 = standin.port_for(25)
    standin.reconfigure(ports={"smtp": None, "smtps": 0, "submission": 0})
    with pytest.raises(ConnectionRefusedError):
        with socket.create_connection(("127.0.0.1", port_25), timeout=2):
            pass


def test_helo_421_closes(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "helo"}])
    client = relay_client.connect(standin, ehlo=False, starttls=False)
    assert client.docmd("EHLO", "mta.example.com") == (421, TRY_AGAIN)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.docmd("NOOP")


def test_mail_451_is_recorded_as_deferred(relay_standin_factory, relay_client):
    reply = "451 4.3.0 Mail server temporarily rejected message."
    standin = _standin(relay_standin_factory, [{"stage": "mail", "reply": reply, "times": 1}])
    client = relay_client.connect(standin)
    assert client.mail("alice@example.com") == (451, reply[4:].encode())
    assert client.mail("alice@example.com")[0] == 250
    client.quit()
    first = standin.transactions()[0]
    assert (first["verdict"], first["code"], first["stage"]) == ("deferred", 451, "mail")
    assert first["faults"] == [{"stage": "mail", "action": "reply", "reply": reply}]


def test_rcpt_550_once(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "rcpt", "reply": "550 5.1.1 No such user", "times": 1}])
    client = relay_client.connect(standin)
    client.mail("alice@example.com")
    assert client.rcpt("a@remote.test")[0] == 550
    assert client.rcpt("b@remote.test")[0] == 250
    assert client.data(message())[0] == 250
    client.quit()
    [record] = standin.transactions()
    assert record["recipients"] == ["b@remote.test"]


def test_data_command_refused_before_354(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "data", "reply": "554 5.6.0 Refused"}])
    client = relay_client.connect(standin)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("alice@example.com", ["bob@remote.test"], message())
    assert refused.value.smtp_code == 554
    client.quit()
    [record] = standin.transactions()
    assert (record["verdict"], record["stage"], record["code"]) == ("refused", "data", 554)


def test_end_of_data_temporary_failure(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "end_of_data", "reply": "451 4.3.0 Try later"}])
    client = relay_client.connect(standin)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("alice@example.com", ["bob@remote.test"], message())
    assert refused.value.smtp_code == 451
    client.quit()
    [record] = standin.transactions()
    assert (record["verdict"], record["stage"], record["size"]) == ("deferred", "end_of_data", len(message()))


def test_close_at_rcpt_drops_the_connection(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "rcpt", "action": "close"}])
    client = relay_client.connect(standin)
    client.mail("alice@example.com")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.rcpt("bob@remote.test")
    standin.wait_for_connections(1)
    [record] = standin.transactions()
    assert record["verdict"] == "abandoned"


def test_stall_delays_the_reply(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "end_of_data", "action": "stall", "seconds": 0.4}])
    client = relay_client.connect(standin)
    started = time.monotonic()
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    assert time.monotonic() - started >= 0.4
    client.quit()


def test_stall_beyond_the_client_timeout(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "mail", "action": "stall", "seconds": 1.0}])
    client = relay_client.connect(standin)
    client.sock.settimeout(0.2)
    with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
        client.mail("alice@example.com")
    client.close()


def test_fault_limited_to_a_port(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "connect", "ports": [587]}])
    with pytest.raises(smtplib.SMTPConnectError):
        relay_client.connect(standin, port=587)
    relay_client.connect(standin, port=465).quit()
    relay_client.connect(standin, port=25).quit()


def test_fault_time_window(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "connect", "after_seconds": 1.0, "for_seconds": 1.0}])
    armed = time.monotonic()  # just after the rule was loaded
    relay_client.connect(standin).quit()
    assert time.monotonic() - armed < 1.0, "too slow to test the window start"
    time.sleep(max(0.0, armed + 1.2 - time.monotonic()))
    with pytest.raises(smtplib.SMTPConnectError):
        relay_client.connect(standin)
    time.sleep(max(0.0, armed + 2.3 - time.monotonic()))
    relay_client.connect(standin).quit()


def test_fault_counters_survive_unrelated_reload(relay_standin_factory, relay_client):
    fault = {"stage": "connect", "times": 1}
    standin = _standin(relay_standin_factory, [fault])
    with pytest.raises(smtplib.SMTPConnectError):
        relay_client.connect(standin)
    standin.reconfigure(licenses=500)
    relay_client.connect(standin).quit()
    standin.reconfigure(faults=[fault, {"stage": "connect", "times": 1, "reply": "421 4.4.5 Server busy"}])
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        relay_client.connect(standin)
    assert refused.value.smtp_error == b"4.4.5 Server busy"


def test_starttls_and_auth_faults(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, [{"stage": "starttls", "reply": "454 4.7.0 TLS not available",
                                                "times": 1},
                                               {"stage": "auth", "reply": "454 4.7.0 Temporary auth failure",
                                                "times": 1}], users={"alice@example.com": "alice-pw"})
    client = relay_client.connect(standin, starttls=False)
    assert client.docmd("STARTTLS")[0] == 454
    client.starttls(context=relay_client.context())
    client.ehlo("mta.example.com")
    assert client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXB3")[0] == 454
    client.login("alice@example.com", "alice-pw")
    client.quit()


# --- multi-line fault replies -------------------------------------------------------------------------

GOOGLE_CUSTOMER_DAILY = [
    "550-5.7.1 Daily SMTP relay limit exceeded for customer. For more information on",
    "550-5.7.1 SMTP relay sending limits please contact your administrator or",
    "550 5.7.1 review this article. https://support.google.com/a/answer/166852 x12-20020a05.37 - gsmtp",
]


@pytest.mark.parametrize("reply", [GOOGLE_CUSTOMER_DAILY, "\n".join(GOOGLE_CUSTOMER_DAILY) + "\n"])
def test_multiline_reply_is_sent_as_given(relay_standin_factory, reply):
    standin = _standin(relay_standin_factory, [{"stage": "rcpt", "reply": reply, "times": 1}])
    with RawSession(standin, port=25) as session:
        session.command("EHLO mta.example.com")
        session.command("MAIL FROM:<alice@example.com>")
        assert session.command("RCPT TO:<bob@remote.test>") == GOOGLE_CUSTOMER_DAILY
        assert session.command("RCPT TO:<carol@remote.test>") == ["250 2.1.5 OK"]
        session.command("QUIT")
    standin.wait_for_connections(1)
    [record] = standin.transactions()
    [refused] = record["refused_recipients"]
    assert refused["reply_lines"] == GOOGLE_CUSTOMER_DAILY and refused["code"] == 550
    assert refused["reply"] == ("550 5.7.1 Daily SMTP relay limit exceeded for customer. For more information on "
                                "SMTP relay sending limits please contact your administrator or review this article. "
                                "https://support.google.com/a/answer/166852")
    assert record["faults"] == [{"stage": "rcpt", "action": "reply", "reply": refused["reply"]}]


def test_multiline_reply_at_connect_and_end_of_data(relay_standin_factory, relay_client):
    greeting = ["421-4.7.0 Try again later,", "421 4.7.0 closing connection. x1.2 - gsmtp"]
    standin = _standin(relay_standin_factory, [{"stage": "connect", "reply": greeting, "times": 1},
                                               {"stage": "end_of_data", "reply": ["451-4.3.0 Mail server", "451 4.3.0 "
                                                                                  "temporarily rejected message."],
                                                "times": 1}])
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        relay_client.connect(standin)
    assert refused.value.smtp_error == b"4.7.0 Try again later,\n4.7.0 closing connection. x1.2 - gsmtp"
    client = relay_client.connect(standin)
    with pytest.raises(smtplib.SMTPDataError) as deferred:
        client.sendmail("alice@example.com", ["bob@remote.test"], message())
    assert deferred.value.smtp_code == 451
    client.quit()
    [record] = standin.transactions()
    assert (record["verdict"], record["reply"]) == ("deferred", "451 4.3.0 Mail server temporarily rejected message.")
    assert record["reply_lines"] == ["451-4.3.0 Mail server", "451 4.3.0 temporarily rejected message."]


@pytest.mark.parametrize("layout", ["multiline", "single_line"])
def test_reply_key_is_rendered_and_laid_out_like_the_relays_own(relay_standin_factory, layout):
    standin = _standin(relay_standin_factory, [{"stage": "rcpt", "reply_key": "customer_daily", "times": 1},
                                               {"stage": "mail", "reply_key": "relay_denied", "times": 1}],
                       reply_layout=layout)
    with RawSession(standin, port=25) as session:
        session.command("EHLO mx1.example.com")
        denied = session.command("MAIL FROM:<alice@example.com>")
        session.command("MAIL FROM:<alice@example.com>")
        limit = session.command("RCPT TO:<bob@remote.test>")
        session.command("QUIT")
    assert replies.classify(denied).key == "relay_denied"
    assert "[127.0.0.1]" in denied[0] and "example.com, mx1.example.com" in " ".join(denied)
    assert replies.classify(limit).key == "customer_daily"
    assert len(limit) == (1 if layout == "single_line" else len(replies.wrap(replies.render("customer_daily"))))
    assert limit[-1].endswith(" - gsmtp")
    standin.wait_for_connections(1)
    first, second = standin.transactions()
    assert (first["reply_key"], first["code"], first["stage"]) == ("relay_denied", 550, "mail")
    assert first["faults"][0]["reply_key"] == "relay_denied"
    assert first["faults"][0]["reply"] == first["reply"]
    refused = second["refused_recipients"][0]
    assert (refused["reply_key"], refused["reply_lines"]) == ("customer_daily", limit)
    assert refused["reply"] == replies.render("customer_daily")


def test_reply_key_421_disconnects(relay_standin_factory):
    standin = _standin(relay_standin_factory, [{"stage": "mail", "reply_key": "dos_helo"}])
    with RawSession(standin, port=25) as session:
        session.command("EHLO mta.example.com")
        assert replies.classify(session.command("MAIL FROM:<alice@example.com>")).key == "dos_helo"
        assert session.closed_by_peer()


def test_a_new_restart_epoch_closes_open_connections_only(relay_standin_factory, relay_client):
    """A client that keeps connections open (the relay guard's pool) meets a relay restart: the connections it
    had are closed, new ones are served."""
    standin = _standin(relay_standin_factory, [])
    old = relay_client.connect(standin, port=587)
    assert old.noop()[0] == 250
    standin.reconfigure(restart_epoch=1)
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        old.noop()
    new = relay_client.connect(standin, port=587)
    assert new.noop()[0] == 250
    standin.reconfigure(restart_epoch=1, faults=[])  # same epoch: nothing is closed
    assert new.noop()[0] == 250
    new.quit()
    closed = standin.wait_for(lambda records: any(r.get("end") == "relay restart" for r in records))
    assert sum(1 for r in closed if r.get("end") == "relay restart") == 1
