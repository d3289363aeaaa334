# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Replies on the wire: every refusal and limit reply comes from the reply catalogue, wrapped over several lines
with continuation codes and a trailing ``<token> - gsmtp`` as Google sends them (one line with
``reply_layout: single_line``); the record keeps the logical one-line reply and the wire lines."""

from __future__ import annotations

import re

import pytest

from relay_standin.engine import replies
from relay_standin.testing import RawSession, message

USERS = {"alice@example.com": "alice-pw"}
AUTH_PLAIN = "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXB3"          # alice@example.com / alice-pw
AUTH_PLAIN_WRONG = "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHdyb25n"        # alice@example.com / wrong
TOKEN_LINE = re.compile(r"^[0-9]{3} [0-9]\.[0-9]{1,3}\.[0-9]{1,3} .*\S [0-9a-f]{13}-[0-9a-f]{12}\.[0-9]+ - gsmtp$")


def assert_google_layout(lines, key):
    """``lines`` are the catalogue reply ``key`` laid out over several lines as Google lays them out."""
    entry = replies.BY_KEY[key]
    logical = "%d %s %s" % replies.normalise(lines)
    assert lines == replies.wrap(logical, token=lines[-1].split(" ")[-3])
    assert len(lines) > 1 or len(logical) <= replies.WRAP_WIDTH + 10, lines
    for line in lines[:-1]:
        assert line.startswith("%d-%s " % (entry.code, entry.status)), lines
    assert lines[-1].startswith("%d %s " % (entry.code, entry.status)), lines
    assert TOKEN_LINE.match(lines[-1]), lines
    assert replies.classify(lines).key == key
    assert all(len(line) <= 512 for line in lines)


def _tls(session, relay_client, helo="mta.example.com"):
    session.command("EHLO %s" % helo)
    assert session.starttls(relay_client.context())[0].startswith("220")
    return session.command("EHLO %s" % helo)


def _standin(factory, **config):
    config.setdefault("allowlist", ["127.0.0.1"])
    config.setdefault("users", USERS)
    return factory(**config)


# Each case: stand-in config, the commands after EHLO (plain, or after STARTTLS with tls=True), the reply key
# the last command gets.
CASES = {
    "relay_denied": ({"allowlist": ["192.0.2.0/24"]}, True, ["MAIL FROM:<alice@example.com>"]),
    "relay_denied_with_auth": ({"allowlist": ["192.0.2.0/24"]}, True, [AUTH_PLAIN, "MAIL FROM:<alice@example.com>"]),
    "invalid_credentials": ({}, True, ["MAIL FROM:<someone@foreign.test>"]),
    "sending_denied": ({"allowed_senders": "registered_users"}, True, ["MAIL FROM:<bob@example.com>"]),
    "starttls_first": ({"require_tls": True}, False, ["MAIL FROM:<alice@example.com>"]),
    "starttls_first_auth": ({}, False, [AUTH_PLAIN]),
    "auth_required": ({"auth_required": True}, True, ["MAIL FROM:<alice@example.com>"]),
    "bad_credentials": ({}, True, [AUTH_PLAIN_WRONG]),
    "null_sender_recipients": ({}, True, ["MAIL FROM:<>", "RCPT TO:<a@remote.test>", "RCPT TO:<b@remote.test>"]),
    "too_many_recipients": ({"limits": {"max_recipients_per_transaction": 1}}, True,
                            ["MAIL FROM:<alice@example.com>", "RCPT TO:<a@remote.test>", "RCPT TO:<b@remote.test>"]),
    "customer_peak": ({"licenses": 1}, True, ["MAIL FROM:<alice@example.com>"]
                      + ["RCPT TO:<r%d@remote.test>" % n for n in range(10)]),
    "customer_daily": ({"licenses": 1, "limits": {"peak_window_seconds": 0.001}, "seed": {"customer_recipients": 130}},
                       True, ["MAIL FROM:<alice@example.com>", "RCPT TO:<r@remote.test>"]),
    "user_daily": ({"seed": {"user": "alice@example.com", "messages": 10000}}, True, ["MAIL FROM:<alice@example.com>"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("layout", ["multiline", "single_line"])
def test_every_refusal_comes_from_the_catalogue_in_googles_layout(
        relay_standin_factory, relay_client, case, layout):
    config, tls, commands = CASES[case]
    config = dict(config)
    seed = config.pop("seed", None)
    key = case.replace("_with_auth", "").replace("_auth", "")
    standin = _standin(relay_standin_factory, reply_layout=layout, **config)
    if seed:
        standin.seed_usage(**seed)
    with RawSession(standin, port=587) as session:
        if tls:
            _tls(session, relay_client, helo="mta.example.com")
        else:
            session.command("EHLO mta.example.com")
        for command in commands:
            lines = session.command(command)
        if layout == "multiline":
            assert_google_layout(lines, key)
        else:
            assert len(lines) == 1 and TOKEN_LINE.match(lines[0]), lines
            assert replies.classify(lines).key == key
        session.command("QUIT")
    if commands[-1].startswith("AUTH"):
        return  # no transaction
    standin.wait_for_connections(1)
    record = standin.transactions()[-1]
    if commands[-1].startswith("RCPT"):
        record = record["refused_recipients"][-1]
    assert record["reply_lines"] == lines
    assert record["reply_key"] == key
    # the logical reply: the wire lines read back (code and status once, no token)
    assert record["reply"] == "%d %s %s" % replies.normalise(lines)
    assert record["reply"].startswith("%d %s %s" % (replies.BY_KEY[key].code, replies.BY_KEY[key].status,
                                                    replies.BY_KEY[key].phrase))
    assert "gsmtp" not in record["reply"] and "\n" not in record["reply"]


def test_relay_denied_text_names_the_address_and_the_domains(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, allowlist=["192.0.2.0/24"])
    with RawSession(standin, port=587) as session:
        _tls(session, relay_client, helo="mx1.example.org")
        lines = session.command("MAIL FROM:<app@example.com>")
    assert replies.normalise(lines)[2].startswith(
        "Mail relay denied [127.0.0.1]. Invalid credentials for relay for one of the domains in: example.com, "
        "mx1.example.org (as obtained from HELO and MAIL FROM).")


def test_tokens_differ_per_reply_and_per_connection(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, allowed_senders="registered_users")
    tokens = []
    for dummy in range(2):
        with RawSession(standin, port=587) as session:
            _tls(session, relay_client)
            for sender in ("bob@example.com", "carol@example.com"):
                tokens.append(session.command("MAIL FROM:<%s>" % sender)[-1].split()[-3])
    assert len(set(tokens)) == 4


def test_postfix_reads_the_last_lines_code(relay_standin_factory, relay_client):
    """A client that takes the last line's code (Postfix) and one that takes the first (smtplib) agree."""
    standin = _standin(relay_standin_factory, licenses=1, limits={"peak_window_seconds": 0.001})
    standin.seed_usage(customer_recipients=130)
    client = relay_client.connect(standin)
    client.mail("alice@example.com")
    code, text = client.rcpt("bob@remote.test")
    client.quit()
    [record] = standin.transactions()
    lines = record["reply_lines"]
    assert code == int(lines[0][:3]) == int(lines[-1][:3]) == 550
    assert text.decode().split("\n") == [line[4:] for line in lines]


@pytest.mark.parametrize("limit, accepted", [(None, 100), (5, 5), ("off", 150)])
def test_recipients_per_transaction(relay_standin_factory, relay_client, limit, accepted):
    """Google: a 100-recipient limit per SMTP transaction (452 4.5.3 for the 101st); configurable, null: none."""
    limits = {} if limit is None else {"max_recipients_per_transaction": None if limit == "off" else limit}
    standin = _standin(relay_standin_factory, limits=limits)
    client = relay_client.connect(standin)
    client.mail("alice@example.com")
    codes = [client.rcpt("r%d@remote.test" % n) for n in range(150)]
    assert [c for c, dummy in codes[:accepted]] == [250] * accepted
    assert all(code == 452 for code, dummy in codes[accepted:])
    assert client.data(message())[0] == 250
    client.quit()
    [record] = standin.transactions()
    assert len(record["recipients"]) == accepted
    if accepted < 150:
        assert record["refused_recipients"][0]["reply"].startswith("452 4.5.3 Your message has too many recipients")
        assert record["refused_recipients"][0]["reply_key"] == "too_many_recipients"


def test_positive_replies_stay_single_line(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory)
    with RawSession(standin, port=587) as session:
        assert session.greeting[0].startswith("220 ") and len(session.greeting) == 1
        _tls(session, relay_client)
        assert session.command("MAIL FROM:<alice@example.com>") == ["250 2.1.0 OK"]
        assert session.command("RCPT TO:<bob@remote.test>") == ["250 2.1.5 OK"]
        assert session.command("DATA")[0].startswith("354")
        session.sock.sendall(message() + b".\r\n")
        [accepted] = session.reply()
        assert re.match(r"^250 2\.0\.0 OK \S+ - gsmtp$", accepted)
        session.command("QUIT")
