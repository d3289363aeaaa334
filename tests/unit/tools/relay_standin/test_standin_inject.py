# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tests' one SMTP injector (relay_standin.inject, run as the script the containers get) and the one reader
of a record elsewhere (records.RecordTail), against a stand-in on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from relay_standin import inject, records


def run_injector(*args):
    """The injector as the containers run it: its own file, by path, standard library only."""
    return subprocess.run([sys.executable, "-I", inject.__file__, *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def test_batch_submits_numbered_messages_in_one_session(relay_standin):
    out = run_injector("batch", "case.mta.run", "case.mta@example.com", "3", "--helo", "mta.example.com", "--port",
                       str(relay_standin.port_for(25)))
    assert out.split() == ["3", "0"]
    found = relay_standin.wait_for_connections(1)
    assert len(found) == 1 and found[0]["transactions"] == 3
    accepted = records.accepted(relay_standin.records())
    assert [r["message_id"] for r in accepted] == ["<case.mta.run.%d@example.com>" % i for i in range(3)]
    assert [r["recipients"] for r in accepted] == [["rcpt%d@example.net" % i] for i in range(3)]
    assert {r["sender"] for r in accepted} == {"case.mta@example.com"}


def test_batch_numbering_recipient_pool_and_domain(relay_standin):
    run_injector("batch", "bulk", "bench@example.com", "3", "--first", "1", "--recipient-prefix", "bulk",
                 "--recipient-pool", "2", "--id-domain", "bench.example.com", "--helo", "mta.example.com", "--port",
                 str(relay_standin.port_for(25)))
    accepted = records.accepted(relay_standin.wait_for(lambda r: len(records.accepted(r)) >= 3))
    assert [r["message_id"] for r in accepted] == ["<bulk.%d@bench.example.com>" % i for i in (1, 2, 3)]
    assert [r["recipients"][0] for r in accepted] == ["bulk1@example.net", "bulk0@example.net", "bulk1@example.net"]


def test_session_keeps_every_reply_and_stops_before_data_when_asked(relay_standin):
    request = {"target": "127.0.0.1", "port": relay_standin.port_for(25), "tls": "starttls", "helo": "probe.test",
               "transactions": [{"sender": "a@example.com", "recipient": "b@remote.test", "message_id": "<p1@x>"},
                                {"sender": "a@example.com", "recipient": "c@remote.test", "message_id": "<p2@x>",
                                 "data": False}]}
    out = json.loads(run_injector("session", json.dumps(request)))
    assert out["connect"] == "ok" and out["greeting"][0] == 220 and out["starttls"] is True
    first, second = out["transactions"]
    assert first["mail"][0] == 250 and first["rcpt"][0] == 250 and first["data"][0] == 250
    assert second["rcpt"][0] == 250 and second["data"] is None
    accepted = records.accepted(relay_standin.wait_for(records.accepted))
    assert [r["message_id"] for r in accepted] == ["<p1@x>"]


def test_session_reports_a_refused_connection():
    closed = {"target": "127.0.0.1", "port": 1, "tls": "none", "helo": "probe.test", "transactions": []}
    out = json.loads(run_injector("session", json.dumps(closed)))
    assert out["connect"].startswith("ConnectionRefusedError")


def test_record_tail_reads_only_complete_lines_once():
    data = bytearray(b'{"kind": "transaction", "n": 1}\n{"kind": "conn')
    tail = records.RecordTail(lambda offset: bytes(data[offset:]))
    assert tail.records() == [{"kind": "transaction", "n": 1}]
    data.extend(b'ection", "n": 2}\n')
    assert tail.records() == [{"kind": "transaction", "n": 1}, {"kind": "connection", "n": 2}]
    assert tail.offset == len(data)


def test_parse_and_load_agree(tmp_path):
    path = tmp_path / "record.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": 2}\n{"c"')
    assert records.load(path) == records.parse(path.read_bytes()) == [{"a": 1}, {"b": 2}]
    assert records.load(tmp_path / "missing.jsonl") == []


def test_installed_copy_submits_the_fault_matrix_messages_and_holds(relay_standin_factory, tmp_path):
    """The copy the MTA containers get (inject.source(), run by python3 outside the package) sends the fault
    matrix's messages byte for byte, and with --hold-at waits for the go file before that message."""
    standin = relay_standin_factory(allowlist=["127.0.0.1"], mail_dir=str(tmp_path / "mail"))
    installed = tmp_path / "smarthost-inject"
    installed.write_text(inject.source(), encoding="utf-8")
    go_file = tmp_path / "go"
    argv = [sys.executable, "-I", str(installed), "batch", "c.m.r", "c.m@example.com", "2", "--rate", "20",
            "--hold-at", "1", "--go-file", str(go_file), "--helo", "mta.example.com", "--port",
            str(standin.port_for(25))]
    flow = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = standin.wait_for(records.accepted)
        time.sleep(0.5)
        assert flow.poll() is None and len(records.accepted(standin.records())) == 1
        opened = time.time()
        go_file.touch()
        out, err = flow.communicate(timeout=30)
    finally:
        flow.kill()
        flow.communicate()
    assert flow.returncode == 0, err
    assert out.split() == ["2", "0"]
    accepted = records.accepted(standin.wait_for(lambda r: len(records.accepted(r)) >= 2))
    assert accepted[0] == records.accepted(first)[0] and accepted[1]["time"] >= opened
    for index, record in enumerate(accepted):
        stored = (tmp_path / "mail" / ("%s.%d.eml" % (record["connection"], record["seq"]))).read_bytes()
        assert stored == ("From: c.m@example.com\r\nTo: rcpt%d@example.net\r\nSubject: c.m.r %d\r\n"
                          "Message-ID: <c.m.r.%d@example.com>\r\n\r\nfault matrix\r\n" % (index, index, index)).encode()
    assert [r["recipients"] for r in accepted] == [["rcpt0@example.net"], ["rcpt1@example.net"]]


def test_in_container_runs_the_installed_copy_by_python3():
    assert inject.in_container("batch", "p", "s@example.com", 3, "--rate", 0.0) == [
        "python3", inject.PATH_IN_CONTAINER, "batch", "p", "s@example.com", "3", "--rate", "0.0"]
