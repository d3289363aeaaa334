# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor on qmail's path (issue 16): run with mta=qmail on the "tls" host after the fault matrix.

This file sorts right after test_fault_matrix.py, whose module fixture switched the host to the relay guard, drove
the matrix's cases through it and switched it off again; the guard's journal (smarthost-relay-guard's unit) keeps
what it logged, the rewrite of each 5xx it turned into 450 line by line. qmail itself does not run here (no
qmail-qread, no qmail-send log): the doctor must say the queue was not read, without failing, and name the guard's
rewrites of the three 5xx cases by their classes. Nothing here sleeps: the matrix's sessions ended before its
fixture's teardown, and the test first waits for the guard's rewrites in the journal.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import doctor_cases
import relay_record

SCENARIO = Path(__file__).resolve().parents[1]
QMAIL = "srt-qmail-tls"
# the matrix's 5xx cases the guard rewrites to 450 (test_fault_matrix.DEFERRED_5XX) -> the class the doctor names
DOCTOR_CLASSES = {"user_550": "user_daily_limit", "customer_550": "customer_daily_limit", "relay_denied": "allowlist"}
WINDOW = 86400  # the container's life: the whole matrix
LOGS = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / ".cache" / "logs"


def guard_rewrites():
    """The rewrite lines in the guard's journal (empty when the fault matrix did not run)."""
    out = relay_record.podman("exec", QMAIL, "sh", "-c", "journalctl --quiet --no-pager -o cat "
                              "-u smarthost-relay-guard | grep -F '] rewrite (' || true")
    return out.splitlines()


def qmail_address():
    return relay_record.podman("inspect", QMAIL, "--format",
                               "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}").strip()


def run_doctor():
    out = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / ("doctor-qmail-%s.json" % uuid.uuid4().hex[:6])
    result = relay_record.run_playbook(SCENARIO / "doctor.yml",
                                       extra_vars={"doctor_window": WINDOW, "doctor_out": str(out)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    out.unlink()
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "qmail-doctor.json").write_text(json.dumps(dict(report, seconds=result.seconds), indent=2))
    return report


def test_doctor_reads_the_guards_rewrites_without_qmails_queue():
    relay_record.wait_for(guard_rewrites, timeout=30,
                          what="the guard's rewrites in its journal (did test_fault_matrix.py run before this file?)")
    report = run_doctor()
    assert report["mta"] == "qmail" and report["changed"] is False and not report.get("failed"), report
    # no qmail-qread here: the queue is not read, and the report says so instead of failing
    assert (report["queue_read"], report["queue_size"], report["queue_note"]) == (
        False, None, "queue not read: qmail-qread missing"), report
    assert "queue not read: qmail-qread missing" in report["reasons"], report["reasons"]
    # nothing is counted as queued without the queue: never blocked, and never healthy with the queue unseen
    assert report["verdict"] == "degraded", report
    assert report["log_source"] == "journal", report
    rows = {row["class"]: row for row in report["classes"]}
    summary = {key: [row["queued"], row["deferred"], row["guard"]] for key, row in rows.items()}
    for case, klass in DOCTOR_CLASSES.items():
        row = rows.get(klass)
        # each case's 5xx as the guard logged it (the relay's original lines), counted apart as the guard's
        assert row is not None and row["guard"] > 0 and row["queued"] == 0, (case, klass, summary)
        # the rule engine's fixes for qmail; the allowlist's with the address the relay named: this container's
        assert row["fixes"] == doctor_cases.engine_doctor.fixes_for(klass, mta="qmail", egress=qmail_address()), (case, row)
