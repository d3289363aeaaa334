# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay guard reads the rule engine's retry rules exactly as the rule engine applies them: for every reply of
the catalogue, as Google lays it out (wrapped over several lines or on one, the phrase on any line or split over
two, with and without a session token) and for replies no rule is for, the guard's rewrite is
replies.apply_retry's; and through a guard session, the client gets those lines."""

from __future__ import annotations

import itertools
import socket
import threading

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies

RULE_SETS = {
    "limits": replies.retry_rules()["limits"],
    "limits+refusals": replies.retry_rules()["limits"] + replies.retry_rules()["refusals"],
    "refusals+limits": replies.retry_rules()["refusals"] + replies.retry_rules()["limits"],
}
TOKENS = [None, "x12-20020a05.37", "- gcdp 7a1f2 d2e1a72fcca58-2b0fc6a9f4f1.3"]
WIDTHS = sorted(set(range(18, 130, 5)) | {replies.WRAP_WIDTH})
VALUES = {"ip": "192.0.2.17", "domains": "example.com, example.org", "helo": "mx1.example.com"}
# Replies no rule is for, in Google's layouts and others.
OTHERS = [
    ["250 2.0.0 OK 1701234567 x12-20020a05.37 - gsmtp"],
    ["220 smtp-relay.gmail.com ESMTP x12-20020a05.37 - gsmtp"],
    ["550-5.1.1 The email account that you tried to reach does not exist. Please try",
     "550-5.1.1 double-checking the recipient's email address for typos or",
     "550 5.1.1 unnecessary spaces. x12-20020a05.37 - gsmtp"],
    ["552 5.3.4 Your message exceeded Google's message size limits. x12 - gsmtp"],
    # the limit's words under another enhanced status code, or none, or another code
    ["550 5.7.0 Daily SMTP relay limit exceeded for customer."],
    ["550 Daily SMTP relay limit exceeded for user."],
    ["554 5.4.5 Daily SMTP relay limit exceeded for user."],
    ["550-5.7.1 Daily SMTP relay limit", "550 5.7.2 exceeded for customer."],
    # a reply whose first line says the words, its last line another status
    ["550-5.4.5 Daily SMTP relay limit exceeded for user.", "550 5.1.1 no such user"],
    ["530 5.7.0 Must issue a STARTTLS command first. x12 - gsmtp".replace("STARTTLS", "START TLS")],
    ["421-4.7.0 Try again later, closing connection.", "421 4.7.0 x12-20020a05.37 - gsmtp"],
    ["550"],
    ["5"],
]


def _catalogue_replies():
    """(entry, lines) for every entry of the catalogue in every layout."""
    for entry, token, width, multiline in itertools.product(replies.CATALOGUE, TOKENS, WIDTHS, (True, False)):
        if not multiline and width != replies.WRAP_WIDTH:
            continue
        yield entry, replies.wrap(replies.render(entry.key, **VALUES), token=token, width=width, multiline=multiline)


def _variants(lines):
    """Further layouts seen in the field: lower case, white space doubled, the last line's status missing."""
    yield [line.lower() for line in lines]
    yield [line[:4] + line[4:].replace(" ", "  ") for line in lines]
    if len(lines) > 1:
        yield lines[:-1] + [lines[-1][:4] + lines[-1][10:]]


def _corpus():
    for entry, lines in _catalogue_replies():
        yield entry, lines
        for variant in _variants(lines):
            yield entry, variant
    for lines in OTHERS:
        yield None, lines


@pytest.mark.parametrize("rule_set", sorted(RULE_SETS))
def test_the_guard_rewrites_as_the_rule_engine(guard_module, rule_set):
    rules = RULE_SETS[rule_set]
    compiled = guard_module.compile_rewrites(rules)
    matched = set()
    split = set()
    count = 0
    for entry, lines in _corpus():
        count += 1
        assert guard_module.delivery_status(lines) == replies.delivery_status(lines), lines
        expected = replies.apply_retry(lines, rules)
        assert guard_module.rewrite_reply(lines, compiled) == expected, lines
        rule = replies.matching_rule(lines, rules)
        guard_rule = guard_module.matching_rule(lines, compiled)
        assert (guard_rule.cause if guard_rule else None) == (rule["cause"] if rule else None), lines
        if rule is not None:
            matched.add(rule["cause"])
            assert all(line[:3] == str(rule["retry_code"]) for line in expected)
            if entry is not None and not any(entry.phrase.lower() in line.lower() for line in lines):
                split.add(rule["cause"])
    assert count > 1000
    retried = {rule["cause"] for rule in rules}
    # every rule met a reply it is for, also with its phrase split over two lines
    assert matched == retried
    assert split == retried


@pytest.mark.parametrize("entry", [e for e in replies.CATALOGUE if e.retry], ids=lambda e: e.key)
def test_every_line_of_a_retried_reply_gets_the_4xx(guard_module, entry):
    compiled = guard_module.compile_rewrites(RULE_SETS["limits+refusals"])
    lines = replies.wrap(replies.render(entry.key, **VALUES), token="x12-20020a05.37", width=30)
    assert len(lines) > 1
    rewritten = guard_module.rewrite_reply(lines, compiled)
    retry_status = "4" + entry.status[1:]
    assert [line[:4] for line in rewritten] == ["%d-" % entry.retry_code] * (len(lines) - 1) + [
        "%d " % entry.retry_code]
    assert all(line[4:].startswith(retry_status + " ") for line in rewritten)
    assert [line[10:] for line in rewritten] == [line[10:] for line in lines]


def test_limit_rules_leave_refusals_alone(guard_module):
    compiled = guard_module.compile_rewrites(RULE_SETS["limits"])
    for key in ("relay_denied", "invalid_credentials", "sending_denied", "starttls_first", "auth_required"):
        lines = replies.wrap(replies.render(key, **VALUES), token="x12")
        assert guard_module.rewrite_reply(lines, compiled) == lines


class _ScriptedRelay:
    """A plain SMTP relay on loopback that answers the guard's commands from a script (for replies no stand-in
    fault can give: a reply to EHLO, say)."""

    def __init__(self, answers):
        self.answers = answers  # command verb -> reply lines
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _address = self.server.accept()
        with conn, conn.makefile("rb") as reader:
            conn.sendall(b"220 relay.smarthost.test ESMTP\r\n")
            while True:
                line = reader.readline()
                if not line:
                    return
                verb = line.split()[0].decode().upper() if line.split() else ""
                lines = self.answers.get(verb, ["250 2.0.0 OK"])
                conn.sendall(b"".join(reply.encode() + b"\r\n" for reply in lines))
                if verb == "QUIT":
                    return

    def close(self):
        self.server.close()


@pytest.mark.parametrize("key", [e.key for e in replies.CATALOGUE if e.retry])
def test_the_client_gets_the_rewritten_lines(start_guard, key):
    lines = replies.wrap(replies.render(key, **VALUES), token="x12-20020a05.37")
    relay = _ScriptedRelay({"EHLO": ["250-relay.smarthost.test", "250 PIPELINING"], "RCPT": lines})
    try:
        guard = start_guard(relay={"port": relay.port, "tls": "none"}, auth=None,
                            rewrites=RULE_SETS["limits+refusals"])
        with socket.create_connection(guard.server_address, timeout=10) as sock, sock.makefile("rb") as reader:
            def reply():
                got = []
                while not got or got[-1][3:4] == "-":
                    got.append(reader.readline().decode().rstrip("\r\n"))
                return got
            reply()
            for command in ("EHLO mta.example.com", "MAIL FROM:<alice@example.com>", "RCPT TO:<bob@remote.test>"):
                sock.sendall(command.encode() + b"\r\n")
                answer = reply()
            sock.sendall(b"QUIT\r\n")
            assert reply() == ["221 2.0.0 closing connection"]
    finally:
        relay.close()
    assert answer == replies.apply_retry(lines, RULE_SETS["limits+refusals"])
    assert answer[-1].startswith("450 4.")
