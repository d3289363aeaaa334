# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay guard's pool against the relay stand-in: relay connections kept after a client session and used by
later ones (qmail-remote opens one session per message), counted in the stand-in's record; the pool's bounds and
settings; relay connections that die while idle (replaced unseen) or inside a transaction (the client gets a 4xx,
its retry delivers once); a 421 takes a connection out; the relay's multi-line limit replies reach the client as
450 on every line; a stand-in with denial-of-service limits refuses none of the guard's sessions."""

from __future__ import annotations

import collections
import smtplib
import socket
import threading
import time

import pytest

from relay_standin.protocol import abort_transport
from relay_standin.pytest_plugin import DEFAULT_PASSWORD, DEFAULT_USER
from relay_standin.testing import message

from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies

HELO = "mta.example.com"
TRY_LATER = "421 4.7.0 Try again later, closing connection."
# Google's customer daily limit as the stricter stand-in sends it: wrapped, the code on every line, a token.
CUSTOMER_LIMIT_LINES = [
    "550-5.7.1 Daily SMTP relay limit exceeded for",
    "550-5.7.1 customer. For more information on SMTP relay sending limits please",
    "550 5.7.1 contact your administrator or review this article. x12-20020a05.37 - gsmtp",
]


def _standin(factory, **extra):
    """A stand-in that knows alice and lets 127.0.0.1 relay."""
    return factory(users={DEFAULT_USER: DEFAULT_PASSWORD}, allowlist=["127.0.0.1"], **extra)


def _connection_ids(standin):
    """Every relay connection the stand-in saw: those with transactions and those in a connection line."""
    return {record["connection"] for record in standin.records() if record.get("connection")}


def _accepted(standin):
    """Message-ID -> how many times the stand-in accepted it."""
    return collections.Counter(t["message_id"] for t in standin.transactions() if t["verdict"] == "accepted")


def _wait_accepted(standin, count, timeout=10.0):
    standin.wait_for(lambda records: sum(1 for r in records if r.get("kind") == "transaction"
                                         and r.get("verdict") == "accepted") >= count, timeout)
    return _accepted(standin)


class Client:
    """A client session that sees the guard's reply lines exactly as sent."""

    def __init__(self, guard, timeout=10):
        self.sock = socket.create_connection(guard.server_address, timeout=timeout)
        self.reader = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self):
        lines = []
        while True:
            raw = self.reader.readline()
            if not raw:
                return lines or None
            assert raw.endswith(b"\r\n"), "reply line %r does not end in CRLF" % raw
            lines.append(raw[:-2].decode("utf-8"))
            if lines[-1][3:4] != "-":
                return lines

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode("utf-8"))

    def command(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def close(self):
        self.reader.close()
        self.sock.close()


def _send(guard, number, helo=HELO, style="qmail", pause=0.0):
    """One session with one message (Message-ID <n@example.com>). ``qmail``: HELO, and QUIT without waiting for
    its answer, as qmail-remote does; ``sendmail``: EHLO, and QUIT answered; ``pause``: seconds before DATA (a
    session that lasts, as over a real network). The first reply that is not 2xx/3xx (or None when the guard
    closed without one), or "ok"."""
    client = Client(guard)
    try:
        if style == "qmail":
            steps = [("HELO " + helo, "250")]
        else:
            steps = [("EHLO " + helo, "250")]
        steps += [("MAIL FROM:<alice@example.com>", "250"), ("RCPT TO:<r%d@remote.test>" % number, "250"),
                  ("DATA", "354")]
        for line, expected in steps:
            if line == "DATA" and pause:
                time.sleep(pause)
            answer = client.command(line)
            if answer is None or answer[-1][:3] != expected:
                return answer
        body = message(message_id="<%d@example.com>" % number, recipient="r%d@remote.test" % number)
        client.send(body + b".\r\n")
        answer = client.reply()
        if answer is None or not answer[-1].startswith("250"):
            return answer
        client.send("QUIT\r\n")
        if style == "sendmail":
            assert client.reply() == ["221 2.0.0 closing connection"]
        return "ok"
    finally:
        client.close()


def _settle(guard, idle=1, timeout=5.0):
    """Wait until the pool holds ``idle`` idle connections and none in use: the sessions before have given theirs
    back (a client that closed without waiting does not wait for that)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = guard.pool.snapshot()
        if counts["idle"] >= idle and counts["open"] == counts["idle"]:
            return
        assert time.monotonic() < deadline, counts
        time.sleep(0.01)


def _abort_relay_connections(standin):
    """Reset every connection the stand-in holds (TCP RST), as a relay that drops them would."""
    async def abort():
        for connection in list(standin.server._connections):  # pylint: disable=protected-access
            if connection.transport is not None:
                abort_transport(connection.transport)
    standin.call(abort())


# ---- reuse ----------------------------------------------------------------------------------------

def test_a_thousand_one_message_sessions_reach_the_relay_over_one_connection(relay_standin_factory, start_guard):
    """qmail-remote's way (one session per message) and Sendmail's (EHLO, QUIT answered), alternating: 1,000
    sessions, one relay connection, every message accepted once. The stand-in's default denial-of-service limit
    (more than 60 new connections a minute: 421 at HELO) refuses none."""
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    started = time.monotonic()
    outcomes = [_send(guard, number, style="qmail" if number % 2 else "sendmail") for number in range(1000)]
    elapsed = time.monotonic() - started
    assert outcomes == ["ok"] * 1000
    accepted = _wait_accepted(standin, 1000)
    guard.shutdown()
    standin.wait_for_connections(1)
    assert accepted == collections.Counter({"<%d@example.com>" % n: 1 for n in range(1000)})
    connections = _connection_ids(standin)
    print("1000 sequential sessions: %d relay connection(s), %.1f s" % (len(connections), elapsed))
    assert len(connections) <= 5  # measured: 1
    assert all(c["end"] == "quit" for c in standin.connections())
    assert not [c for c in standin.connections() if c.get("refusal")]
    counts = guard.pool.snapshot()
    assert counts["opened"] == len(connections) and counts["opened"] + counts["reused"] == 1000


def _clients_at_once(guard, clients, sessions, **options):
    """``clients`` threads, ``sessions`` one-message sessions each; the outcomes counted."""
    outcomes = collections.Counter()
    barrier = threading.Barrier(clients)

    def client(first):
        barrier.wait()
        for number in range(first, first + sessions):
            outcomes[_send(guard, number, **options)] += 1

    threads = [threading.Thread(target=client, args=(n * 1000,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


@pytest.mark.parametrize("pause", [0.0, 0.15], ids=["short-sessions", "lasting-sessions"])
def test_sessions_at_once_share_a_bounded_pool(relay_standin_factory, start_guard, pause):
    """Six clients at once, a pool of at most 3 connections: every message once, over at most 3 relay connections
    (short sessions hand their connection on before the pool opens another; lasting ones fill the pool, and the
    sessions beyond wait for a connection); no client waited in vain."""
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin, pool={"max_connections": 3, "max_idle": 3})
    sessions = 40 if not pause else 10
    outcomes = _clients_at_once(guard, 6, sessions, pause=pause)
    assert outcomes == {"ok": 6 * sessions}
    accepted = _wait_accepted(standin, 6 * sessions)
    guard.shutdown()
    assert sorted(accepted.values()) == [1] * (6 * sessions)
    connections = _connection_ids(standin)
    print("%d sessions from 6 clients at once (pause %s s): %d relay connection(s)"
          % (6 * sessions, pause, len(connections)))
    assert len(connections) <= 3
    if pause:
        assert len(connections) == 3


def test_a_client_waits_for_a_busy_pool_then_gets_a_421(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin, pool={"max_connections": 1, "max_idle": 1, "wait": 0.5})
    holder = Client(guard)
    assert holder.command("EHLO " + HELO)[-1].startswith("250 ")
    waiting = Client(guard)
    started = time.monotonic()
    answer = waiting.command("EHLO " + HELO)
    assert time.monotonic() - started >= 0.4
    assert answer == ["421 4.4.5 all 1 relay connections are busy; try again later"]
    waiting.close()
    # the holder's connection goes back, and serves the next session
    assert holder.command("QUIT") == ["221 2.0.0 closing connection"]
    holder.close()
    assert _send(guard, 1) == "ok"
    _wait_accepted(standin, 1)
    assert len(_connection_ids(standin)) == 1


def test_a_session_idle_between_transactions_lends_its_connection(relay_standin_factory, start_guard, guard_log):
    """Sendmail keeps a session open a while after its messages: that session does not hold a connection of a full
    pool longer than an idle connection would be kept; its next command gets one again."""
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin, pool={"max_connections": 1, "max_idle": 1, "idle_timeout": 1, "wait": 5})
    keeper = smtplib.SMTP(*guard.server_address, local_hostname=HELO, timeout=10)
    assert keeper.sendmail("alice@example.com", ["a@remote.test"], message(message_id="<a@example.com>")) == {}
    assert _send(guard, 1) == "ok"   # waits until the keeper's session has been idle for 1 s
    assert keeper.sendmail("alice@example.com", ["b@remote.test"], message(message_id="<b@example.com>")) == {}
    keeper.quit()
    assert _wait_accepted(standin, 3) == {"<a@example.com>": 1, "<1@example.com>": 1, "<b@example.com>": 1}
    assert len(_connection_ids(standin)) == 1
    assert any("relay#1 back to the pool: this session idle for 1 s" in line for line in guard_log())


def test_connections_are_kept_per_ehlo_name(relay_standin_factory, start_guard):
    """The relay knows a session by its EHLO name (and AUTH user): each name gets connections of its own."""
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    names = ["mta.example.com", "mx2.example.com"]
    for number in range(10):
        assert _send(guard, number, helo=names[number % 2], style="sendmail") == "ok"
    _wait_accepted(standin, 10)
    by_connection = collections.defaultdict(set)
    for record in standin.transactions():
        assert record["helo"] == names[int(record["message_id"][1:-13]) % 2]
        by_connection[record["connection"]].add(record["helo"])
    assert sorted(map(sorted, by_connection.values())) == [["mta.example.com"], ["mx2.example.com"]]


def test_max_idle_zero_turns_reuse_off(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin, pool={"max_idle": 0})
    for number in range(3):
        assert _send(guard, number) == "ok"
    connections = standin.wait_for_connections(3)
    assert [c["end"] for c in connections] == ["quit"] * 3 and len(_connection_ids(standin)) == 3


def test_max_messages_and_idle_timeout(relay_standin_factory, start_guard, guard_log):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin, pool={"max_messages": 3, "idle_timeout": 1})
    for number in range(7):
        assert _send(guard, number, style="sendmail") == "ok"
    # 3 + 3 transactions: two connections closed; the third, idle, closed by the pool after 1 s
    connections = standin.wait_for_connections(3, timeout=5)
    assert [c["transactions"] for c in connections] == [3, 3, 1]
    assert all(c["end"] == "quit" for c in connections)
    log = "\n".join(guard_log())
    assert "relay#1 closed: 3 transactions" in log and "relay#2 closed: 3 transactions" in log
    assert "relay#3 closed: idle for" in log


# ---- a relay connection that dies -------------------------------------------------------------------

@pytest.mark.parametrize("how", ["idle timeout", "reset"])
def test_a_connection_that_died_while_idle_is_replaced_unseen(relay_standin_factory, start_guard, guard_log, how):
    standin = _standin(relay_standin_factory, idle_timeout_seconds=0.5 if how == "idle timeout" else 30)
    guard = start_guard(standin)
    assert _send(guard, 1) == "ok"
    _wait_accepted(standin, 1)
    if how == "reset":
        _abort_relay_connections(standin)
        standin.wait_for_connections(1)  # the stand-in wrote the dead connection's line
    else:
        time.sleep(1)  # the stand-in's TLS close waits for the guard's answer: no record line before that
    assert _send(guard, 2, style="sendmail") == "ok"
    accepted = _wait_accepted(standin, 2)
    assert accepted == {"<1@example.com>": 1, "<2@example.com>": 1}
    assert len(_connection_ids(standin)) == 2
    # found by the pool's look at its idle connections (once a second), by the check before reuse, or — when the
    # reset reaches the guard's socket only after that check — on the session's first command, which the guard
    # then sends over a new connection; in every case the client saw nothing (asserted above)
    assert [line for line in guard_log() if "relay#1 closed: closed by the relay while idle" in line
            or "relay#1 not reused: closed by the relay while idle" in line
            or "relay#1 closed by the relay between transactions" in line]


def test_the_relay_closing_between_transactions_of_one_session_is_unseen(
        relay_standin_factory, start_guard, guard_log):
    """Sendmail keeps its session open between messages; the relay's idle timeout ends the relay connection, and
    the next command of the session goes over a new one."""
    standin = _standin(relay_standin_factory, idle_timeout_seconds=0.5)
    guard = start_guard(standin)
    client = smtplib.SMTP(*guard.server_address, local_hostname=HELO, timeout=10)
    assert client.sendmail("alice@example.com", ["a@remote.test"], message(message_id="<a@example.com>")) == {}
    standin.wait_for_connections(1)
    assert client.sendmail("alice@example.com", ["b@remote.test"], message(message_id="<b@example.com>")) == {}
    client.quit()
    assert _wait_accepted(standin, 2) == {"<a@example.com>": 1, "<b@example.com>": 1}
    first, second = [t["connection"] for t in standin.transactions()]
    assert first != second
    assert any("relay#1 closed by the relay between transactions" in line for line in guard_log())


@pytest.mark.parametrize("stage, action", [("mail", "reset"), ("rcpt", "close"), ("data", "reset"),
                                           ("end_of_data", "close"), ("end_of_data", "reset")])
def test_a_connection_dying_inside_a_transaction_is_a_4xx_and_the_retry_delivers_once(
        relay_standin_factory, start_guard, stage, action):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    assert _send(guard, 1) == "ok"          # the connection is in the pool now
    _wait_accepted(standin, 1)
    _settle(guard)
    standin.reconfigure(faults=[{"stage": stage, "action": action, "times": 1}])
    answer = _send(guard, 2)
    assert answer is not None and answer[-1].startswith("421 4.4.2 "), answer
    assert _send(guard, 2) == "ok"          # the MTA's retry
    accepted = _wait_accepted(standin, 2)
    assert accepted == {"<1@example.com>": 1, "<2@example.com>": 1}
    failed = [t for t in standin.transactions() if t["verdict"] != "accepted"]
    assert [t["verdict"] for t in failed] in ([], ["abandoned"])
    assert len(_connection_ids(standin)) == 2


def _opened_at(connection_record):
    return connection_record["time"] - connection_record["duration"]


def test_a_421_takes_the_connection_out_of_the_pool(relay_standin_factory, start_guard, guard_module, monkeypatch):
    """The relay says 421 but keeps the connection open (disconnect false): the guard uses it no more, and opens
    the next one only after its hold-off (a 421 is the relay's "try again later")."""
    monkeypatch.setattr(guard_module, "HOLD_OFF", 1.0)
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    assert _send(guard, 1) == "ok"
    _wait_accepted(standin, 1)
    _settle(guard)
    standin.reconfigure(faults=[{"stage": "mail", "reply": "421 4.7.0 Try again later, closing connection.",
                                 "disconnect": False, "times": 1}])
    assert _send(guard, 2) == ["421 4.7.0 Try again later, closing connection."]
    assert _send(guard, 2) == "ok"
    _wait_accepted(standin, 2)
    first, retried = [t for t in standin.transactions() if t["verdict"] == "accepted"]
    assert first["connection"] != retried["connection"]
    [closed] = standin.wait_for_connections(1)
    assert closed["connection"] == first["connection"]
    guard.shutdown()
    opened = {r["connection"]: _opened_at(r) for r in standin.wait_for_connections(2)}
    refused_at = max(t["time"] for t in standin.transactions() if t["connection"] == first["connection"])
    assert opened[retried["connection"]] - refused_at >= 1.0 - 0.05


def test_a_client_that_leaves_inside_a_transaction_leaves_a_clean_connection(relay_standin_factory, start_guard):
    """QUIT (or a plain close) after MAIL and RCPT: the guard says RSET and keeps the connection."""
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    for quit_first in (True, False):
        client = Client(guard)
        client.command("EHLO " + HELO)
        assert client.command("MAIL FROM:<alice@example.com>")[-1].startswith("250")
        assert client.command("RCPT TO:<x@remote.test>")[-1].startswith("250")
        if quit_first:
            assert client.command("QUIT") == ["221 2.0.0 closing connection"]
        client.close()
        _settle(guard)
    assert _send(guard, 1) == "ok"
    _wait_accepted(standin, 1)
    verdicts = [(t["verdict"], t["connection"]) for t in standin.transactions()]
    assert [v for v, _c in verdicts] == ["abandoned", "abandoned", "accepted"]
    assert len({c for _v, c in verdicts}) == 1


def test_a_client_that_leaves_inside_a_message_never_completes_it(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    client = Client(guard)
    client.command("EHLO " + HELO)
    client.command("MAIL FROM:<alice@example.com>")
    client.command("RCPT TO:<x@remote.test>")
    assert client.command("DATA")[-1].startswith("354")
    client.send(b"Subject: half\r\n\r\nhalf a message\r\n.")
    client.close()
    [dropped] = standin.wait_for_connections(1)
    assert dropped["accepted"] == 0
    assert _send(guard, 1) == "ok"
    assert _wait_accepted(standin, 1) == {"<1@example.com>": 1}
    assert len(_connection_ids(standin)) == 2


# ---- replies ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault, stage", [
    ({"reply": CUSTOMER_LIMIT_LINES}, "rcpt"),
    ({"reply_key": "customer_daily"}, "rcpt"),
    ({"reply_key": "user_daily"}, "mail"),
], ids=["google-wrapped", "stand-in-customer", "stand-in-user"])
def test_multiline_limit_replies_reach_the_client_as_450_on_every_line(
        relay_standin_factory, start_guard, fault, stage):
    standin = _standin(relay_standin_factory, faults=[dict(fault, stage=stage, times=1)])
    guard = start_guard(standin)
    client = Client(guard)
    client.command("EHLO " + HELO)
    answer = client.command("MAIL FROM:<alice@example.com>")
    if stage == "rcpt":
        assert answer[-1].startswith("250")
        answer = client.command("RCPT TO:<bob@remote.test>")
    client.command("QUIT")
    client.close()
    _settle(guard)
    assert len(answer) > 1 and [line[:4] for line in answer] == ["450-"] * (len(answer) - 1) + ["450 "], answer
    status = "4.7.1" if stage == "rcpt" else "4.4.5"
    assert all(line[4:].startswith(status) for line in answer), answer
    assert answer[-1].endswith(" - gsmtp")
    # the limit reply is an ordinary reply: the connection is reused for the next message
    assert _send(guard, 1) == "ok"
    _wait_accepted(standin, 1)
    assert len(_connection_ids(standin)) == 1


def test_pipelined_commands_and_the_guards_own_replies_keep_their_order(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    client = Client(guard)
    client.command("EHLO " + HELO)
    client.send("RSET\r\nNOOP\r\nSTARTTLS\r\nAUTH PLAIN AGFsaWNlAHB3\r\n\r\nQUIT\r\n")
    answers = [client.reply() for _count in range(6)]
    client.close()
    assert [a[-1][:3] for a in answers] == ["250", "250", "502", "502", "500", "221"], answers
    assert answers[-1] == ["221 2.0.0 closing connection"]
    guard.shutdown()
    [connection] = standin.wait_for_connections(1)
    assert (connection["auth_user"], connection["auth_failures"]) == (DEFAULT_USER, 0)


def test_bdat_ends_the_session(relay_standin_factory, start_guard):
    standin = _standin(relay_standin_factory)
    guard = start_guard(standin)
    client = Client(guard)
    keywords = [line[4:].split()[0].upper() for line in client.command("EHLO " + HELO)[1:]]
    assert "CHUNKING" not in keywords and "BINARYMIME" not in keywords
    client.command("MAIL FROM:<alice@example.com>")
    client.command("RCPT TO:<x@remote.test>")
    assert client.command("BDAT 5 LAST") == ["421 4.5.0 BDAT is not offered here (no CHUNKING); closing"]
    client.close()
    _settle(guard)
    assert _send(guard, 1) == "ok"   # the connection was left clean (RSET) and is reused
    _wait_accepted(standin, 1)
    assert len(_connection_ids(standin)) == 1


# ---- denial of service -------------------------------------------------------------------------------

def test_a_dos_limited_relay_refuses_none_of_the_guards_sessions(relay_standin_factory, start_guard):
    """At most 4 new connections a minute, as the stand-in's DoS rule; 4 clients at once, 300 sessions: none
    refused (and, without reuse, the fifth session of a burst would be)."""
    standin = _standin(relay_standin_factory, dos={"max_new_connections": 4, "window_seconds": 60})
    guard = start_guard(standin)
    outcomes = _clients_at_once(guard, 4, 15, pause=0.2)
    assert outcomes == {"ok": 60}
    _wait_accepted(standin, 60)
    guard.shutdown()
    assert standin.wait_for_connections(1)
    assert not [r for r in standin.connections() if r.get("refusal")]
    connections = _connection_ids(standin)
    print("60 sessions from 4 clients at once, DoS-limited stand-in: %d relay connection(s), 0 refused"
          % len(connections))
    assert len(connections) <= 4

    # the same stand-in (its window still holds those) and a guard without reuse: a new connection per session, so
    # one of the next 5 is refused at HELO (sending stops there: the guard then holds off new connections)
    plain = start_guard(standin, pool={"max_idle": 0})
    answers = []
    for number in range(5):
        answers.append(_send(plain, 5000 + number))
        if answers[-1] != "ok":
            break
    refused = [a for a in answers if a != "ok"]
    assert refused and all(replies.classify(answer).key == "dos_helo" for answer in refused), answers


def test_a_refused_new_connection_makes_sessions_wait_for_one_in_use(relay_standin_factory, start_guard,
                                                                     guard_log):
    """The relay takes 2 new connections a minute, the guard would open up to 4: the refused sessions wait
    for the connections in use (no new ones for a while) instead of passing the 421 on."""
    standin = _standin(relay_standin_factory, dos={"max_new_connections": 2, "window_seconds": 60})
    guard = start_guard(standin)
    outcomes = _clients_at_once(guard, 4, 8, pause=0.2)
    assert outcomes == {"ok": 32}
    accepted = _wait_accepted(standin, 32)
    assert sorted(accepted.values()) == [1] * 32
    assert len({t["connection"] for t in standin.transactions()}) == 2
    refused = [r for r in standin.wait_for_connections(1) if r.get("refusal")]
    assert refused and all(r["dos"] == "burst" for r in refused)
    assert len(refused) == 1  # then no new connection for a while: the sessions waited
    assert any("waiting for one of the 2 open relay connection(s)" in line for line in guard_log())


def test_a_refused_connection_with_none_open_holds_off_new_ones(relay_standin_factory, start_guard, guard_module,
                                                                monkeypatch):
    """The relay refuses the only new connection ("421 4.7.0 Try again later", as to a burst): that session's
    client gets the relay's refusal, and the next session, with no relay connection open, waits for the end of the
    hold-off before it opens one (reconnecting at once, session after session, kept the DoS window full)."""
    monkeypatch.setattr(guard_module, "HOLD_OFF", 1.5)
    standin = _standin(relay_standin_factory, faults=[{"stage": "connect", "reply": TRY_LATER, "times": 1}])
    guard = start_guard(standin)
    refused = _send(guard, 1)
    assert refused is not None and replies.normalise(refused)[:2] == (421, "4.7.0"), refused
    assert _send(guard, 2) == "ok"
    _wait_accepted(standin, 1)
    guard.shutdown()
    first, second = sorted(_opened_at(r) for r in standin.wait_for_connections(2))
    assert second - first >= 1.5 - 0.05
    assert guard.pool.snapshot()["refused"] == 1
