# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor against real Postfix (Debian 12): the stand-in refuses mail in turn for the allowlist, the
customer's daily limit and by being away; playbooks/doctor.yml names the class and the fix and counts the queue
each time, and reports healthy once the cause is gone and the queue drained.

Runs before test_postfix.py (file order) on the converge's state (587 + STARTTLS + SMTP AUTH) and leaves it as it
found it: no faults, an empty queue, nothing reconfigured. Every wait is on an event (the queue's reasons, the
stand-in's record), never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources" / "tests"))
import relay_record  # noqa: E402  pylint: disable=wrong-import-position
from relay_record import arrived, wait_for  # noqa: E402  pylint: disable=wrong-import-position

ROOT = Path(__file__).resolve().parents[3]
DOCTOR = ROOT / "playbooks" / "doctor.yml"
RELAY_CONTAINER = "srt-postfix-relay"
USER = "app@example.com"
TAG = uuid.uuid4().hex[:8]
DEB12 = next(h for h in relay_record.group_hosts("mta") if h.backend.name.endswith("deb12"))
START = time.time()
PROBE_RECIPIENT = "probe-%s@example.net" % TAG
CONVERGE_VARS = yaml.safe_load((Path(__file__).resolve().parents[1] / "converge.yml").read_text())[0]["vars"]
RESULTS = {"runs": []}


def standin(**changes):
    return relay_record.standin(RELAY_CONTAINER, **changes)


def send(label):
    message_id = "<doctor-%s.%s.%s@example.com>" % (label, TAG, uuid.uuid4().hex[:6])
    body = "From: <%s>\nTo: <%s-%s@example.net>\nSubject: doctor %s\nMessage-ID: %s\n\ndoctor\n" % (
        USER, label, TAG, label, message_id)
    DEB12.check_output("printf %%s %s | /usr/sbin/sendmail -i -f %s -- %s" % (
        shlex.quote(body), USER, shlex.quote("%s-%s@example.net" % (label, TAG))))
    return message_id


def queue():
    return [json.loads(line) for line in DEB12.check_output("postqueue -j").splitlines() if line.strip()]


def held_for(words, count):
    """Wait until ``count`` queued messages carry a delay reason with ``words``; return the queue."""
    def ready():
        found = [m for m in queue() if words.lower() in (m["recipients"][0].get("delay_reason") or "").lower()]
        return found if len(found) >= count else None
    return wait_for(ready, timeout=120, what="%d message(s) held for %r" % (count, words))


def doctor(since, check=False, tmp=None, probe=False):
    """Run playbooks/doctor.yml on Debian 12 for the window since ``since`` (with ``probe``: and the probe, to
    PROBE_RECIPIENT); (exit status, the host's report)."""
    out_dir = Path(tmp or os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / ("doctor-%s" % uuid.uuid4().hex[:6])
    # the probe connects with the relay_* settings, which this scenario gives in converge.yml's play vars
    probing = dict(CONVERGE_VARS, doctor_probe=True, doctor_probe_recipient=PROBE_RECIPIENT) if probe else {}
    result = relay_record.run_playbook(DOCTOR, *(["--check"] if check else []), extra_vars=dict({
        "doctor_hosts": DEB12.backend.name, "doctor_become": False, "doctor_window": int(time.time() - since) + 5,
        "doctor_report_dir": str(out_dir)}, **probing))
    RESULTS["runs"].append({"check": check, "probe": probe, "rc": result.returncode, "seconds": result.seconds})
    assert (out_dir / "doctor.json").exists(), result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads((out_dir / "doctor.json").read_text())
    assert (out_dir / "doctor.md").read_text().startswith("# Relay doctor")
    return result, report["hosts"][DEB12.backend.name]


def row(report, key):
    return next((r for r in report["classes"] if r["class"] == key), None)


def flush():
    DEB12.check_output("postqueue -f")


@pytest.fixture(scope="module")
def held():
    """The messages of this module, sent as the first case starts; faults off and the queue drained after."""
    ids = []
    yield ids
    standin(faults=[])
    flush()
    relay = relay_record.relay()
    for message_id in ids:
        arrived(relay, message_id, timeout=120)
    wait_for(lambda: not queue(), timeout=60, what="an empty queue")


def test_allowlist_refusal(held):
    standin(faults=[{"stage": "rcpt", "reply_key": "relay_denied"}])
    held.extend(send("allowlist-%d" % i) for i in range(2))
    held_for("Mail relay denied", 2)
    result, report = doctor(START)
    output = result.stdout + result.stderr  # ansible-core 2.19 prints a failed task's error on stderr
    assert result.returncode != 0 and "Blocked: %s" % DEB12.backend.name in output, output[-3000:]
    assert report["verdict"] == "blocked" and report["mta"] == "postfix"
    found = row(report, "allowlist")
    assert found and found["queued"] == 2 and found["deferred"] >= 2 and found["stage"] == "RCPT", report
    egress = DEB12.interface("eth0").addresses[0]
    assert found["fixes"][0] == {"variable": "relay_allowlist", "value": "%s/32" % egress,
                                 "why": "list the address the relay saw in the setting and in relay_allowlist"}
    assert found["console"].endswith("Only accept mail from the specified IP addresses")
    assert {m["queue_id"] for m in queue()} >= set(found["samples"])
    # check mode: the same read-only run, the same answer
    _result, checked = doctor(START, check=True)
    assert checked["verdict"] == "blocked" and row(checked, "allowlist")["queued"] == 2
    RESULTS["allowlist"] = {"queued": found["queued"], "deferred": found["deferred"]}
    # the probe, through the playbook and the role's entry point, meets the same refusal at RCPT
    _result, probed = doctor(START, probe=True)
    probe = probed["probe"]
    assert (probe["verdict"], probe["stopped_at"], probe["diagnosis"]["class"]) == (
        "blocked", "RCPT", "allowlist"), probe
    assert probe["relay"]["port"] == 587 and probe["sender"] == CONVERGE_VARS["relay_auth_username"], probe


def test_customer_daily_limit(held):
    standin(faults=[{"stage": "rcpt", "reply_key": "customer_daily"}])
    held.append(send("daily"))
    flush()
    held_for("Daily SMTP relay limit exceeded for customer", 3)
    _result, report = doctor(START)
    found = row(report, "customer_daily_limit")
    assert report["verdict"] == "blocked" and found and found["queued"] == 3, report
    assert found["reply"]["code"] == 550 and found["reply"]["status"] == "5.7.1"
    assert "relay_licenses" in [f["variable"] for f in found["fixes"]]
    assert row(report, "allowlist")["queued"] == 0 and row(report, "allowlist")["deferred"] >= 2
    assert report["bounced"] == 0
    RESULTS["customer_daily"] = {"queued": found["queued"], "deferred": found["deferred"]}


def test_relay_down(held):
    standin(faults=[{"action": "unlisten", "ports": [587]}])
    flush()
    held_for("refused", 3)
    _result, report = doctor(START)
    found = row(report, "unreachable")
    assert report["verdict"] == "blocked" and found and found["queued"] == 3, report
    assert [f["variable"] for f in found["fixes"]] == ["relay_host", "relay_port"]
    assert found["oldest_age"] >= int(time.time() - START) - 300
    RESULTS["relay_down"] = {"queued": found["queued"]}


def test_healthy_once_the_cause_is_gone_and_the_queue_drained(held):
    recovered = time.time()
    standin(faults=[])
    flush()
    relay = relay_record.relay()
    for message_id in held:
        arrived(relay, message_id, timeout=120)
    wait_for(lambda: not queue(), timeout=60, what="an empty queue")
    accepted = len(relay_record.transactions(relay, verdict="accepted"))
    result, report = doctor(recovered, probe=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert report["verdict"] == "healthy" and report["queue_size"] == 0 and report["reasons"] == [], report
    assert report["last_success"] and report["last_success"]["age"] < 120
    # the probe got as far as RCPT TO and sent no message: the relay recorded its transaction as abandoned
    assert report["probe"]["verdict"] == "ok" and report["probe"]["stopped_at"] is None, report["probe"]
    probed = relay_record.wait_for_transactions(relay, recipients=[PROBE_RECIPIENT], verdict="abandoned")
    assert len(probed) == 1 and probed[0]["tls"] and probed[0]["auth_user"] == CONVERGE_VARS["relay_auth_username"]
    assert len(relay_record.transactions(relay, verdict="accepted")) == accepted
    RESULTS["seconds"] = round(time.time() - START, 1)
    out = ROOT / ".cache" / "logs" / "postfix-doctor.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=2))
