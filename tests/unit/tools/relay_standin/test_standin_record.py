# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The record: one JSON line per transaction (accepted or not) and per
connection; connection reuse is countable; the CLI reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from relay_standin import cli, records
from relay_standin.testing import TOOLS_DIR, message

LOGIN = ("alice@example.com", "alice-pw")
TRANSACTION_FIELDS = {
    "kind", "ts", "time", "connection", "seq", "listener", "port", "listen_port", "client_ip", "tls", "tls_mode",
    "tls_version", "tls_cipher", "helo", "helo_verb", "auth_user", "sender", "sender_params", "sender_rewritten",
    "customer_domain", "limit_user", "recipients", "recipient_params", "refused_recipients", "size", "message_id",
    "verdict", "code", "reply", "reply_lines", "reply_key", "stage", "faults",
}
CONNECTION_FIELDS = {
    "kind", "ts", "time", "connection", "listener", "port", "listen_port", "client_ip", "tls", "tls_mode",
    "tls_version", "tls_cipher", "helo", "helo_verb", "auth_user", "opened", "duration", "transactions", "accepted",
    "auth_failures", "faults", "dos", "refusal", "end",
}


def _standin(factory, **extra):
    return factory(allowlist=["127.0.0.1"], users={"alice@example.com": "alice-pw"}, **extra)


def test_accepted_transaction_fields(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory)
    client = relay_client.connect(standin, port=587, helo="mta.example.com", login=LOGIN)
    client.sendmail("alice@example.com", ["bob@remote.test", "carol@remote.test"],
                    message(message_id="<m1@example.com>"))
    client.quit()
    [record] = standin.transactions()
    assert set(record) == TRANSACTION_FIELDS
    assert record["port"] == 587 and record["listen_port"] == standin.port_for(587)
    assert (record["tls"], record["auth_user"], record["helo"], record["client_ip"]) == (
        True, "alice@example.com", "mta.example.com", "127.0.0.1")
    assert record["tls_cipher"]
    assert (record["sender"], record["sender_rewritten"]) == ("alice@example.com", "alice@example.com")
    assert record["recipients"] == ["bob@remote.test", "carol@remote.test"]
    assert (record["size"], record["message_id"]) == (len(message(message_id="<m1@example.com>")), "<m1@example.com>")
    assert (record["verdict"], record["code"], record["seq"]) == ("accepted", 250, 1)
    assert record["reply"].startswith("250 2.0.0 OK ")
    assert (record["reply_lines"], record["reply_key"]) == ([record["reply"]], None)
    assert "alice-pw" not in json.dumps(standin.records())
    [conn] = standin.wait_for_connections(1)
    assert set(conn) == CONNECTION_FIELDS
    assert (conn["dos"], conn["refusal"], conn["end"]) == (None, None, "quit")


def test_refused_transaction_is_recorded(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, allowed_senders="registered_users")
    client = relay_client.connect(standin)
    client.mail("stranger@example.com")
    client.quit()
    [record] = standin.transactions()
    assert (record["verdict"], record["code"], record["stage"], record["recipients"]) == ("refused", 550, "mail", [])
    # the logical reply: code and status once, no token; the wire lines beside it
    assert record["reply"].startswith("550 5.7.0 Mail Sending denied. ")
    assert "gsmtp" not in record["reply"] and record["reply_key"] == "sending_denied"
    lines = record["reply_lines"]
    assert len(lines) > 1 and all(line.startswith("550-5.7.0 ") for line in lines[:-1])
    assert lines[-1].startswith("550 5.7.0 ") and lines[-1].endswith(" - gsmtp")


def test_limit_reply_is_recorded_as_one_logical_line(relay_standin_factory, relay_client):
    """Readers that check ``reply.startswith("550 5.7.1")`` keep working with the multi-line reply."""
    standin = _standin(relay_standin_factory, licenses=1, limits={"peak_window_seconds": 0.001})
    standin.seed_usage(customer_recipients=130)
    client = relay_client.connect(standin)
    client.mail("alice@example.com")
    assert client.rcpt("bob@remote.test")[0] == 550
    client.rset()
    client.quit()
    [record] = standin.transactions()
    assert record["reply"].startswith("550 5.7.1 Daily SMTP relay limit exceeded for customer. ")
    assert (record["verdict"], record["code"], record["stage"], record["reply_key"]) == (
        "refused", 550, "rcpt", "customer_daily")
    [refused] = record["refused_recipients"]
    assert (refused["address"], refused["code"], refused["reply"], refused["reply_key"]) == (
        "bob@remote.test", 550, record["reply"], "customer_daily")
    assert refused["reply_lines"] == record["reply_lines"] and len(refused["reply_lines"]) > 1


def test_connection_reuse_is_countable(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory)
    client = relay_client.connect(standin)
    for number in range(3):
        assert client.sendmail("alice@example.com", ["r%d@remote.test" % number], message()) == {}
    client.quit()
    client = relay_client.connect(standin, port=25)
    client.sendmail("alice@example.com", ["x@remote.test"], message())
    client.quit()
    standin.wait_for_connections(2)
    trans = standin.transactions()
    assert [t["seq"] for t in trans] == [1, 2, 3, 1]
    assert len({t["connection"] for t in trans}) == 2
    summary = records.summarize(standin.records())
    assert summary["connections"] == 2
    assert summary["max_accepted_per_connection"] == 3
    assert summary["verdicts"] == {"accepted": 4}
    assert summary["ports"] == {"25": 1, "587": 3}


def test_connection_without_transaction_has_a_line(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory)
    relay_client.connect(standin).quit()
    [conn] = standin.wait_for_connections(1)
    assert (conn["kind"], conn["transactions"], conn["end"], conn["tls"]) == ("connection", 0, "quit", True)
    assert records.summarize(standin.records())["connections_without_transactions"] == 1


def test_reset_transaction_is_abandoned(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory)
    client = relay_client.connect(standin)
    client.mail("alice@example.com")
    client.rcpt("bob@remote.test")
    client.rset()
    client.quit()
    [record] = standin.transactions()
    assert (record["verdict"], record["code"], record["recipients"]) == ("abandoned", None, ["bob@remote.test"])


def test_messages_stored_in_mail_dir(relay_standin_factory, relay_client, tmp_path):
    standin = _standin(relay_standin_factory, mail_dir=str(tmp_path / "mail"))
    client = relay_client.connect(standin)
    client.sendmail("alice@example.com", ["bob@remote.test"], message(subject="stored"))
    client.quit()
    [stored] = list((tmp_path / "mail").glob("*.eml"))
    assert b"Subject: stored" in stored.read_bytes()


def test_transaction_line_is_written_before_the_reply(relay_standin_factory, relay_client):
    """A client that has the relay's reply finds the transaction in the record without waiting (the scenarios read
    the record as soon as an MTA's queue is empty)."""
    standin = _standin(relay_standin_factory)
    client = relay_client.connect(standin, port=25)
    client.sendmail("alice@example.com", ["bob@remote.test"], message(message_id="<before-reply@example.com>"))
    [record] = standin.transactions()
    assert (record["message_id"], record["verdict"]) == ("<before-reply@example.com>", "accepted")
    client.quit()


def test_load_ignores_a_partial_last_line(tmp_path):
    path = tmp_path / "record.jsonl"
    path.write_text('{"kind": "transaction", "verdict": "accepted"}\n{"kind": "trans')
    assert records.load(path) == [{"kind": "transaction", "verdict": "accepted"}]
    assert records.load(tmp_path / "missing.jsonl") == []


def test_writer_appends_whole_lines(tmp_path):
    writer = records.RecordWriter(tmp_path / "sub" / "record.jsonl")
    for number in range(100):
        writer.write({"kind": "transaction", "n": number, "pad": "x" * 5000})
    writer.close()
    loaded = records.load(tmp_path / "sub" / "record.jsonl")
    assert [r["n"] for r in loaded] == list(range(100))


def _cli(capsys, *args):
    """Run the CLI in this process; (exit code, stdout)."""
    code = cli.main(list(args))
    return code, capsys.readouterr().out


def test_records_cli(relay_standin_factory, relay_client, capsys):
    standin = _standin(relay_standin_factory, allowed_senders="registered_users")
    client = relay_client.connect(standin)
    client.sendmail("alice@example.com", ["bob@remote.test"], message())
    client.mail("stranger@example.com")
    client.quit()
    standin.wait_for_connections(1)
    path = str(standin.record_path)

    code, shown = _cli(capsys, "records", path)
    lines = shown.splitlines()
    assert code == 0 and len(lines) == 2 and " accepted " in lines[0] and " refused " in lines[1]

    as_json = _cli(capsys, "records", path, "--json", "--verdict", "refused")[1]
    assert [json.loads(line)["sender"] for line in as_json.splitlines()] == ["stranger@example.com"]

    summary = json.loads(_cli(capsys, "records", path, "--summary", "--json")[1])
    assert summary["verdicts"] == {"accepted": 1, "refused": 1}
    assert summary["connections"] == 1

    assert "transactions: 2" in _cli(capsys, "records", path, "--summary")[1]
    assert len(_cli(capsys, "records", path, "--all")[1].splitlines()) == 3

    # and once through the real entry point
    env = dict(os.environ, PYTHONPATH=str(TOOLS_DIR))
    result = subprocess.run([sys.executable, "-m", "relay_standin", "records", path, "--summary", "--json"],
                            capture_output=True, text=True, env=env, check=False, timeout=60)
    assert result.returncode == 0 and json.loads(result.stdout)["transactions"] == 2
