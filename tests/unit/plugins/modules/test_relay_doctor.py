# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.relay_doctor: its DOCUMENTATION is its argument spec; on a host (the commands faked, the log a
file) it reports the same in check mode as in a normal run, changes nothing and runs only read-only commands."""

from __future__ import annotations

import json
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_host
from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies as R
from ansible_collections.smarthost.relay.plugins.modules import relay_doctor
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import argument_spec_from_doc

NOW_OFFSET = 30
DENIED = " ".join(R.wrap(R.render("relay_denied", ip="198.51.100.7", domains="example.com"), token="x1"))


def test_argument_spec_is_the_documentation():
    """The DOCUMENTATION's options, and no_log on the password (validate-modules keeps no_log out of the docs)."""
    documented = argument_spec_from_doc(relay_doctor.DOCUMENTATION)
    documented["relay_auth_password"]["no_log"] = True
    assert relay_doctor.ARGUMENT_SPEC == documented


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A Postfix host: one message held by an allowlist refusal, its log in a classic file (no journal)."""
    now = time.time()
    log = tmp_path / "mail.log"
    log.write_text(
        "%d h postfix/qmgr[1]: ABCDE12345: from=<app@example.com>, size=1, nrcpt=1 (queue active)\n"
        "%d h postfix/smtp[2]: ABCDE12345: to=<a@example.net>, relay=relay.smarthost.test[10.89.0.2]:25, delay=1, "
        "delays=0/0/0/1, dsn=4.7.0, status=deferred (host relay.smarthost.test[10.89.0.2] said: %s (in reply to "
        "RCPT TO command))\n" % (now - 100, now - 99, DENIED))
    reason = "host relay said: %s (in reply to RCPT TO command)" % DENIED
    queue = json.dumps({"queue_name": "deferred", "queue_id": "ABCDE12345", "arrival_time": int(now - 100),
                        "sender": "app@example.com",
                        "recipients": [{"address": "a@example.net", "delay_reason": reason}]})
    commands = []

    def run_command(self, argv, **kwargs):  # pylint: disable=unused-argument
        commands.append(argv)
        return (0, queue + "\n", "") if argv[0].endswith("postqueue") and argv[1:] == ["-j"] else (1, "", "not here")

    monkeypatch.setattr("ansible.module_utils.basic.AnsibleModule.run_command", run_command)
    monkeypatch.setattr(doctor_host, "has_journal", lambda: False)
    monkeypatch.setattr(doctor_host, "detect_mta", lambda *a, **k: "postfix")
    # One clock for both runs: a second boundary between them changed oldest_age (CI, 2026-12-06).
    monkeypatch.setattr(relay_doctor.time, "time", lambda: now)
    return {"log": str(log), "commands": commands}


def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        relay_doctor.main()
    return json.loads(capsys.readouterr().out)


def test_report_and_check_mode_are_the_same(host, capsys):
    args = {"log_file": host["log"], "window": 3600}
    real = run_module(args, capsys)
    checked = run_module(dict(args, _ansible_check_mode=True), capsys)
    assert real["changed"] is False and checked["changed"] is False
    for key in ("verdict", "classes", "queue_size", "deferred", "bounced", "mta", "reasons"):
        assert real[key] == checked[key], key
    assert real["verdict"] == "blocked" and real["mta"] == "postfix" and real["log_source"] == host["log"]
    [row] = real["classes"]
    assert (row["class"], row["queued"], row["deferred"], row["samples"], row["stage"]) == (
        "allowlist", 1, 1, ["ABCDE12345"], "RCPT")
    assert row["fixes"][0] == {"variable": "relay_allowlist", "value": "198.51.100.7/32",
                               "why": "list the address the relay saw in the setting and in relay_allowlist"}
    assert 99 <= row["oldest_age"] <= 100 + NOW_OFFSET
    assert {(c[0].rsplit("/", 1)[-1],) + tuple(c[1:]) for c in host["commands"]} == {("postqueue", "-j")}


def test_a_failing_queue_command_fails_the_task(host, capsys, monkeypatch):
    monkeypatch.setattr("ansible.module_utils.basic.AnsibleModule.run_command",
                        lambda self, argv, **kw: (75, "", "postqueue: fatal: Queue report unavailable"))
    result = run_module({"log_file": host["log"]}, capsys)
    assert result["failed"] and "Queue report unavailable" in result["msg"]


def test_window_reads_only_recent_lines(host, capsys):
    result = run_module({"log_file": host["log"], "window": 10}, capsys)
    [row] = result["classes"]
    assert row["deferred"] == 0 and row["queued"] == 1


def test_qmail_without_qmail_qread_is_reported_not_failed(tmp_path, capsys, monkeypatch):
    """mta=qmail where qmail-qread is missing: the module runs no queue command (run_command would fail the task
    on a program that is not there), reads the log, and says the queue was not read."""
    now = time.time()
    log = tmp_path / "current"
    report = ("Remote host said: %s\n" % DENIED).replace("\n", "/").replace(" ", "_")
    log.write_text("%d q qmail: starting delivery 3: msg 77 to remote a@example.net\n"
                   "%d q qmail: delivery 3: deferral: %s\n" % (now - 100, now - 99, report))
    (tmp_path / "bin").mkdir()
    commands = []
    monkeypatch.setattr("ansible.module_utils.basic.AnsibleModule.run_command",
                        lambda self, argv, **kw: commands.append(argv) or (127, "", "not here"))
    monkeypatch.setattr(doctor_host, "has_journal", lambda: False)
    result = run_module({"mta": "qmail", "qmail_dir": str(tmp_path), "log_file": str(log), "window": 3600}, capsys)
    assert not result.get("failed") and result["mta"] == "qmail" and commands == []
    assert (result["queue_read"], result["queue_size"], result["queue_note"], result["queue_shown"]) == (
        False, None, "queue not read: qmail-qread missing", "not read")
    [row] = result["classes"]
    assert (row["class"], row["queued"], row["deferred"]) == ("allowlist", 0, 1)
    assert result["verdict"] == "degraded"
