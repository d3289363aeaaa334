# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The qmail fault matrix's driver (molecule/qmail/tests/qmail_remote_driver.py) against qmail-remote's and
qmail-send's documented behaviour, so that its "0 bounced" means what qmail would do.

qmail-remote(8), RESULTS, and qmail 1.03's qmail-remote.c: a greeting other than 220 or a HELO reply other than
250 is a temporary failure (Z); 5xx to MAIL, DATA or after the message is permanent (D), 4xx temporary (Z); to
RCPT, 5xx rejects the recipient permanently (h), 4xx temporarily (s) — for a one-recipient delivery, D and Z;
a connection lost after the message leaves a possible duplicate. The code of a multi-line reply is its first
line's (smtpcode()). qmail-remote speaks HELO (never EHLO), one RCPT per delivery here, no ESMTP parameters, and
QUIT at the end. qmail-send's remote retries: birth + (sqrt(age) + 20)^2 seconds, i.e. 400, 1600, 3600 s.
A scripted SMTP server on loopback answers each command as a test says.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

DRIVER_PATH = Path(__file__).resolve().parents[3] / "molecule" / "qmail" / "tests" / "qmail_remote_driver.py"
_SPEC = importlib.util.spec_from_file_location("qmail_remote_driver", DRIVER_PATH)
driver = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(driver)

DEFAULT_REPLIES = {"greeting": ["220 relay.test ESMTP"], "HELO": ["250 relay.test"], "MAIL": ["250 2.1.0 OK"],
                   "RCPT": ["250 2.1.5 OK"], "DATA": ["354 Go ahead"], "dot": ["250 2.0.0 OK accepted"],
                   "QUIT": ["221 2.0.0 bye"]}
CLOSE = None  # as a reply: the server closes the connection instead


class ScriptedRelay:
    """Accepts connections on loopback; answers each command with the script's reply for its verb (or closes);
    records every command line it received, per connection."""

    def __init__(self, replies):
        self.replies = dict(DEFAULT_REPLIES, **replies)
        self.sessions = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _peer = self.listener.accept()
            except OSError:
                return
            with conn:
                self._session(conn, conn.makefile("rb"))

    def _answer(self, conn, key):
        lines = self.replies[key]
        if lines is CLOSE:
            return False
        conn.sendall("".join(line + "\r\n" for line in lines).encode())
        return True

    def _session(self, conn, reader):
        commands = []
        self.sessions.append(commands)
        if not self._answer(conn, "greeting"):
            return
        for raw in iter(reader.readline, b""):
            line = raw.decode().rstrip("\r\n")
            commands.append(line)
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb == "DATA":
                if not self._answer(conn, "DATA") or self.replies["DATA"][-1][:1] != "3":
                    continue
                commands.extend(_read_message(reader))
                verb = "dot"
            if not self._answer(conn, verb if verb in self.replies else "MAIL") or verb == "QUIT":
                return

    def wait_for_end(self, session=0, timeout=10.0):
        """The commands of a session once the client's QUIT arrived (qmail-remote does not wait for its answer, so
        it may return before this server read it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.sessions) > session and self.sessions[session][-1:] == ["QUIT"]:
                return self.sessions[session]
            time.sleep(0.01)
        raise AssertionError("no QUIT in %r" % self.sessions)

    def close(self):
        self.listener.close()


def _read_message(reader):
    body = []
    for raw in iter(reader.readline, b""):
        if raw == b".\r\n":
            return ["<%d lines>" % len(body), "."]
        body.append(raw)
    return body


@pytest.fixture
def relay():
    made = []

    def make(**replies):
        made.append(ScriptedRelay(replies))
        return made[-1]
    yield make
    for each in made:
        each.close()


def _args(port, **overrides):
    values = dict(host="127.0.0.1", port=port, connect_timeout=5.0, timeout=5.0, helo="qmail.example.com",
                  concurrency=1, time_scale=400.0, deadline=10.0, start_on_go=False, prefix="t", count=1)
    values.update(overrides)
    return argparse.Namespace(**values)


MESSAGE = {"id": "<t.0@example.com>", "sender": "t.0@example.com", "recipient": "rcpt0@example.net"}


@pytest.mark.parametrize("stage,reply,outcome", [
    ("greeting", ["421 4.7.0 Try again later, closing connection."], "Z"),
    ("greeting", ["554 5.7.0 go away"], "Z"),
    ("HELO", ["501 5.5.4 HELO/EHLO argument is invalid"], "Z"),
    ("MAIL", ["550 5.7.0 Mail relay denied"], "D"),
    ("MAIL", ["451 4.3.0 try later"], "Z"),
    ("RCPT", ["550 5.1.1 no such user"], "D"),
    ("RCPT", ["450 4.2.1 peak"], "Z"),
    ("DATA", ["554 5.5.1 no valid recipients"], "D"),
    ("DATA", ["451 4.3.0 later"], "Z"),
    ("dot", ["550 5.7.1 Daily SMTP relay limit exceeded for customer."], "D"),
    ("dot", ["421 4.7.0 Try again later, closing connection."], "Z"),
    ("dot", ["250 2.0.0 OK"], "K"),
], ids=lambda value: value if isinstance(value, str) else value[0][:3])
def test_each_reply_is_the_outcome_qmail_remote_reports(relay, stage, reply, outcome):
    server = relay(**{stage: reply})
    result = driver.attempt(MESSAGE, _args(server.port))
    assert (result["outcome"], result["lines"]) == (outcome, reply)
    assert result["possible_duplicate"] is False


def test_a_multiline_reply_takes_the_first_lines_code(relay):
    wrapped = ["550-5.4.5 Daily user sending limit exceeded. For more", "550 5.4.5 information ... - gsmtp"]
    mixed = ["550-5.7.1 a first line", "450 4.7.1 a last line with another code"]
    assert driver.attempt(MESSAGE, _args(relay(MAIL=wrapped).port))["outcome"] == "D"
    result = driver.attempt(MESSAGE, _args(relay(MAIL=mixed).port))
    assert (result["outcome"], result["mixed_codes"], result["lines"]) == ("D", True, mixed)
    rewritten = ["450-4.4.5 Daily user sending limit exceeded. For more", "450 4.4.5 information ... - gsmtp"]
    assert driver.attempt(MESSAGE, _args(relay(MAIL=rewritten).port))["outcome"] == "Z"


def test_a_connection_lost_after_the_message_is_a_possible_duplicate(relay):
    result = driver.attempt(MESSAGE, _args(relay(dot=CLOSE).port))
    assert (result["outcome"], result["stage"], result["possible_duplicate"]) == ("Z", "end_of_data", True)
    before = driver.attempt(MESSAGE, _args(relay(RCPT=CLOSE).port))
    assert (before["outcome"], before["possible_duplicate"]) == ("Z", False)


def test_no_listener_is_temporary():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = driver.attempt(MESSAGE, _args(port))
    assert (result["outcome"], result["stage"]) == ("Z", "connect")


def test_the_session_is_qmail_remotes(relay):
    server = relay()
    assert driver.attempt(MESSAGE, _args(server.port))["outcome"] == "K"
    commands = server.wait_for_end()
    assert commands[0] == "HELO qmail.example.com"
    assert commands[1:3] == ["MAIL FROM:<t.0@example.com>", "RCPT TO:<rcpt0@example.net>"]
    assert commands[3:] == ["DATA", "<7 lines>", ".", "QUIT"]
    assert not [c for c in commands if c.upper().startswith("EHLO")]


def test_qmail_sends_remote_retries_at_400_1600_3600_seconds():
    assert [driver.next_retry(0.0, age, 1.0) for age in (0.0, 400.0, 1600.0)] == [400.0, 1600.0, 3600.0]
    # on the compressed clock (400 queue seconds per real second), the same schedule in real seconds
    assert driver.next_retry(0.0, 1.0, 400.0) == pytest.approx(4.0)


def test_temporary_failures_stay_queued_and_permanent_ones_bounce(relay):
    deferring = relay(RCPT=["450 4.2.1 peak"])
    deferred = driver.run(_args(deferring.port, deadline=1.5))
    [msg] = deferred["messages"]
    assert msg["final"] == "queued" and len(msg["attempts"]) >= 2  # retried on qmail-send's schedule
    assert {a["outcome"] for a in msg["attempts"]} == {"Z"}
    refusing = relay(MAIL=["550 5.7.0 Mail relay denied"])
    [bounced] = driver.run(_args(refusing.port, deadline=1.5))["messages"]
    assert (bounced["final"], len(bounced["attempts"])) == ("bounced", 1)
    accepting = relay()
    [delivered] = driver.run(_args(accepting.port))["messages"]
    assert (delivered["final"], len(delivered["attempts"])) == ("delivered", 1)


def test_start_on_go_says_ready_and_waits_for_the_go_line(relay, monkeypatch, capsys):
    accepting = relay()
    reader, writer = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(reader, "r"))
    said = {}

    def go():
        time.sleep(0.5)  # the caller arms the relay's fault meanwhile; the driver must not have begun
        said["go"] = time.time()
        os.write(writer, b"go\n")
    threading.Thread(target=go, daemon=True).start()
    result = driver.run(_args(accepting.port, start_on_go=True))
    assert capsys.readouterr().err == "ready\n"
    assert result["started"] >= said["go"] and accepting.sessions
    assert result["messages"][0]["final"] == "delivered"
