# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The seams between the guard's parts, without a relay: the relay's replies during the pass-through are read
through the relay connection's own LineReader (ReplyCollector), so what its set-up read ahead is the session's
first reply; and what the relay's reply to a passed-through command means for the connection's reuse
(RelayConnection.replied, forwarded)."""

from __future__ import annotations

import socket
import types

import pytest

WHERE = "relay.smarthost.test:587"


def collector(guard_module, sock=None):
    reader = guard_module.LineReader(sock)
    return reader, guard_module.ReplyCollector(reader, WHERE)


def test_replies_come_whole_however_the_bytes_are_cut(guard_module):
    wire = b"250-relay.smarthost.test\r\n250-PIPELINING\n250 SIZE 35882577\r\n354 Go ahead\r\n"
    reader, replies = collector(guard_module)
    got = []
    for index in range(len(wire)):
        reader.feed(wire[index:index + 1])
        got.extend(replies.replies())
    assert got == [["250-relay.smarthost.test", "250-PIPELINING", "250 SIZE 35882577"], ["354 Go ahead"]]
    assert not reader.buffer and not replies.lines


def test_what_the_set_up_read_ahead_is_the_sessions_first_reply(guard_module):
    ours, relay = socket.socketpair()
    with ours, relay:
        reader, replies = collector(guard_module, ours)
        relay.sendall(b"250 2.1.5 OK\r\n421 4.7.0 Try again later, closing connection.\r\n")
        assert reader.read_line(deadline=None) == b"250 2.1.5 OK"
        assert replies.replies() == [["421 4.7.0 Try again later, closing connection."]]


def test_a_line_that_is_no_reply_ends_the_session_without_quit(guard_module):
    reader, replies = collector(guard_module)
    reader.feed(b"250 OK\r\nHTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(guard_module.Refusal) as refused:
        replies.replies()
    assert refused.value.lines[0].startswith("421 4.4.2 relay %s sent a line that is not an SMTP reply" % WHERE)
    assert refused.value.quit_relay is False


def test_an_endless_line_becomes_a_reply_of_its_own(guard_module):
    reader, replies = collector(guard_module)
    reader.feed(b"554 " + b"x" * guard_module.MAX_LINE)
    assert replies.replies() == [["554 " + "x" * guard_module.MAX_LINE]]
    assert not reader.buffer


def relay_connection(guard_module):
    guard = types.SimpleNamespace(config={"relay": {}, "timeouts": {}, "auth": None}, where=WHERE)
    return guard_module.RelayConnection(guard, 1, "mx1.example.com")


@pytest.mark.parametrize("kind, lines, in_transaction", [
    ("mail", ["250 2.1.0 OK"], True),
    ("mail", ["550 5.7.1 Invalid credentials for relay"], False),
    ("other", ["250 2.1.5 OK"], False),
])
def test_mail_accepted_opens_a_transaction(guard_module, kind, lines, in_transaction):
    conn = relay_connection(guard_module)
    conn.replied(kind, lines, "mx1.example.com")
    assert conn.in_transaction is in_transaction
    assert not conn.broken


@pytest.mark.parametrize("kind", ["message", "rset"])
def test_the_message_or_rset_ends_the_transaction(guard_module, kind):
    conn = relay_connection(guard_module)
    conn.replied("mail", ["250 2.1.0 OK"], "mx1.example.com")
    conn.replied(kind, ["250 2.0.0 OK"], "mx1.example.com")
    assert not conn.in_transaction


def test_an_accepted_ehlo_gives_the_connection_to_the_new_name(guard_module):
    conn = relay_connection(guard_module)
    conn.replied("helo", ["250-relay.smarthost.test", "250 PIPELINING"], "MX2.example.com")
    assert conn.key == ("mx2.example.com", None)
    assert conn.ehlo.lines == ["250-relay.smarthost.test", "250 PIPELINING"]
    assert not conn.broken


@pytest.mark.parametrize("kind, lines", [
    ("ehlo", ["501 5.5.4 Invalid EHLO argument"]),
    ("other", ["421 4.7.0 Try again later, closing connection."]),
    ("message", ["421 4.4.2 closing"]),
])
def test_a_refused_ehlo_or_a_421_takes_it_out_of_reuse(guard_module, kind, lines):
    conn = relay_connection(guard_module)
    conn.replied(kind, lines, "mx2.example.com")
    assert conn.broken
    assert conn.key == ("mx1.example.com", None)


def test_only_mail_counts_towards_max_messages(guard_module):
    conn = relay_connection(guard_module)
    for kind in ("ehlo", "mail", "other", "data", "rset", "mail"):
        conn.forwarded(kind)
    assert conn.messages == 2


def test_quick_ack_sets_the_option_on_a_real_socket(guard_module):
    if guard_module.TCP_QUICKACK is None:
        pytest.skip("TCP_QUICKACK is Linux's")
    server = socket.create_server(("127.0.0.1", 0))
    with server, socket.create_connection(server.getsockname()):
        guard_side = server.accept()[0]
        with guard_side:
            guard_module._quick_ack(guard_side)  # pylint: disable=protected-access
            assert guard_side.getsockopt(socket.IPPROTO_TCP, guard_module.TCP_QUICKACK) == 1


class _RecordingSocket:
    """The client side of a session as ClientSession reads it: one recv, and the options set on it."""

    def __init__(self, data):
        self.data, self.options = data, []

    def recv(self, size):  # pylint: disable=unused-argument
        data, self.data = self.data, b""
        return data

    def setsockopt(self, level, option, value):
        self.options.append((level, option, value))


def test_every_read_from_the_client_is_acked_at_once(guard_module, monkeypatch):
    """Sendmail holds its final dot back until the message text is ACKed (Nagle's algorithm), and Linux delays
    that ACK while the guard has nothing to answer: each read from the client sets TCP_QUICKACK again (the flag
    does not stay set)."""
    if guard_module.TCP_QUICKACK is None:
        pytest.skip("TCP_QUICKACK is Linux's")
    session = guard_module.ClientSession.__new__(guard_module.ClientSession)
    session.client = _RecordingSocket(b"Subject: text before the dot\r\n")
    session.client_reader = guard_module.LineReader(session.client)
    session.awaiting_data_reply = False
    monkeypatch.setattr(session, "client_input", lambda: None, raising=False)
    session.client_readable()
    assert session.client.options == [(socket.IPPROTO_TCP, guard_module.TCP_QUICKACK, 1)]
    assert bytes(session.client_reader.buffer) == b"Subject: text before the dot\r\n"
