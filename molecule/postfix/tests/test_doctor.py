# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor against real Postfix (Debian 12): the stand-in induces each cause in turn (doctor_cases.CAUSES:
the allowlist, a HELO name refused, an unregistered sender, wrong credentials, TLS required, an impostor's
certificate, the user's and the customer's daily limits, the peak limit, too many recipients, DoS at HELO, the relay
down); for each, playbooks/doctor.yml names the class and the fix, counts every held message (each cause's
messages join those still held from the causes before, which Postfix retries against the new one), and its probe
stops at the cause's step with the same class. Once the cause is gone and the queue drained it reports healthy, and
the probe reaches RCPT TO without a message reaching the stand-in's record.

Runs before test_postfix.py (file order) on the converge's state (587 + STARTTLS + SMTP AUTH) and leaves it as it
found it: no faults, an empty queue, nothing reconfigured. Every wait is on an event (the queue's reasons, the
stand-in's record), never a fixed sleep.
"""

from __future__ import annotations

import json
import shlex
import time
import uuid
from pathlib import Path

import pytest
import yaml

import doctor_cases
import relay_record
from relay_standin import records
from doctor_cases import CAUSES, row
from relay_record import arrived, wait_for

ROOT = Path(__file__).resolve().parents[3]
RELAY_CONTAINER = "srt-postfix-relay"
USER = "app@example.com"
TAG = uuid.uuid4().hex[:8]
DEB12 = next(h for h in relay_record.group_hosts("mta") if h.backend.name.endswith("deb12"))
START = time.time()
PER_CAUSE = 2
PROBE_RECIPIENT = "probe-%s@example.net" % TAG
CONVERGE_VARS = yaml.safe_load((Path(__file__).resolve().parents[1] / "converge.yml").read_text())[0]["vars"]
MTA = {"helo": CONVERGE_VARS["relay_helo_name"], "port": 587}
RESULTS = {"runs": [], "causes": {}}
EGRESS = DEB12.interface("eth0").addresses[0]  # the address the relay sees (and counts new connections of)
PROBES = 2  # the doctor's probe connects once per run, and the allowlist cause runs the doctor twice


def send(label, sender=None):
    message_id = "<doctor-%s.%s.%s@example.com>" % (label, TAG, uuid.uuid4().hex[:6])
    recipient = "%s-%s@example.net" % (label, TAG)
    body = "From: <%s>\nTo: <%s>\nSubject: doctor %s\nMessage-ID: %s\n\ndoctor\n" % (
        sender or USER, recipient, label, message_id)
    DEB12.check_output("printf %%s %s | /usr/sbin/sendmail -i -f %s -- %s" % (
        shlex.quote(body), shlex.quote(sender or USER), shlex.quote(recipient)))
    return message_id


def postqueue():
    return DEB12.check_output("postqueue -j")


def queue():
    return [json.loads(line) for line in postqueue().splitlines() if line.strip()]


def held_for(klass, count):
    """Wait until ``count`` queued messages carry a reason of the doctor's class ``klass`` (read with the doctor's
    own Postfix reader); return the queue entries."""
    seen = {}

    def ready():
        entries = doctor_cases.doctor_parsers.postfix_queue(postqueue())
        seen["reasons"] = sorted({(e["reply"] and str(e["reply"])) or e["local"] or "-" for e in entries})
        found = [e for e in entries if doctor_cases.class_of(e, "postfix") == klass]
        return found if len(found) >= count else None
    try:
        return wait_for(ready, timeout=120, what="%d message(s) held for %s" % (count, klass))
    except AssertionError as exc:
        raise AssertionError("%s; reasons in the queue: %s" % (exc, seen.get("reasons"))) from None


def doctor(since, check=False, probe_sender=None):
    """playbooks/doctor.yml on Debian 12 with the probe (relay_* from converge.yml, to PROBE_RECIPIENT)."""
    return doctor_cases.run_doctor_probing(DEB12.backend.name, since, RESULTS["runs"], PROBE_RECIPIENT,
                                           CONVERGE_VARS, check=check, probe_sender=probe_sender)


def flush():
    DEB12.check_output("postqueue -f")


base = doctor_cases.base_fixture(RELAY_CONTAINER, flush, lambda: not queue())


@pytest.fixture(scope="module")
def held():
    """The messages of this module, in the order they were sent."""
    return []


@pytest.fixture(scope="module")
def accepted_before():
    return len(relay_record.transactions(relay_record.relay(), verdict="accepted"))


@pytest.mark.parametrize("cause", CAUSES, ids=[cause.name for cause in CAUSES])
def test_doctor_names_each_cause(base, held, accepted_before, cause):
    started = time.monotonic()
    times = {}
    doctor_cases.pace(relay_record.relay(), EGRESS, len(held) + PER_CAUSE + PROBES, base)
    doctor_cases.write_config(RELAY_CONTAINER, doctor_cases.config_for(cause, base, MTA))
    held.extend(send("%s-%d" % (cause.name, i), cause.sender) for i in range(PER_CAUSE))
    flush()
    times["sent"] = round(time.monotonic() - started, 1)
    held_for(cause.klass, len(held))
    times["held"] = round(time.monotonic() - started, 1)
    result, report = doctor(START, probe_sender=cause.sender)
    times["doctor"] = result.seconds
    output = result.stdout + result.stderr  # ansible-core 2.19 prints a failed task's error on stderr
    verdict = doctor_cases.expected_verdict(cause)
    assert report["verdict"] == verdict and report["mta"] == "postfix", report
    assert (result.returncode != 0) == (verdict == "blocked"), output[-3000:]
    if verdict == "blocked":
        assert "Blocked: %s" % DEB12.backend.name in output, output[-3000:]
    found = row(report, cause.klass)
    # every held message, this cause's and the ones before it that Postfix retried, is held for this cause now
    assert found and found["queued"] == len(held) == report["queue_size"] and found["bounced"] == 0, report
    assert found["fixes"][0]["variable"] == cause.fix.replace("{mta}", "postfix"), found["fixes"]
    assert {m["queue_id"] for m in queue()} >= set(found["samples"])
    doctor_cases.check_reply_text(found)
    doctor_cases.check_probe(report, cause)
    # nothing reached the relay: neither the held messages nor the probe
    assert len(relay_record.transactions(relay_record.relay(), verdict="accepted")) == accepted_before
    RESULTS["causes"][cause.name] = {"queued": found["queued"], "deferred": found["deferred"],
                                     "stage": found["stage"], "seconds": round(time.monotonic() - started, 1),
                                     "times": times}
    if cause.name == "allowlist":
        check_allowlist(report, found, len(held))


def check_allowlist(report, found, count):
    """The allowlist's fix names the address the relay saw; check mode gives the same answer."""
    assert found["fixes"][0] == {"variable": "relay_allowlist", "value": "%s/32" % EGRESS,
                                 "why": "list the address the relay saw in the setting and in relay_allowlist"}
    assert found["console"].endswith("Only accept mail from the specified IP addresses")
    assert found["stage"] == "MAIL"
    assert report["probe"]["relay"]["port"] == 587
    assert report["probe"]["sender"] == CONVERGE_VARS["relay_auth_username"], report["probe"]
    _result, checked = doctor(START, check=True)
    assert checked["verdict"] == "blocked" and row(checked, "allowlist")["queued"] == count


def test_healthy_once_the_cause_is_gone_and_the_queue_drained(base, held):
    assert len(held) == PER_CAUSE * len(CAUSES)
    recovered = time.time()
    doctor_cases.pace(relay_record.relay(), EGRESS, len(held) + PROBES, base)
    doctor_cases.write_config(RELAY_CONTAINER, doctor_cases.healthy(base))
    flush()
    relay = relay_record.relay()
    try:
        for message_id in held:
            arrived(relay, message_id, timeout=120)
    except AssertionError as exc:
        raise AssertionError("%s; still queued: %s; the relay's last connections: %s" % (
            exc, [(m["queue_id"], [r.get("delay_reason") for r in m["recipients"]]) for m in queue()],
            records.connections(relay_record.read_record(relay))[-5:])) from None
    wait_for(lambda: not queue(), timeout=60, what="an empty queue")
    doctor_cases.wait_for_logged_deliveries(DEB12, recovered, doctor_cases.doctor_parsers.postfix_log, len(held))
    accepted = len(relay_record.transactions(relay, verdict="accepted"))
    result, report = doctor(recovered)
    assert result.returncode == 0, result.stdout[-3000:]
    assert report["verdict"] == "healthy" and report["queue_size"] == 0 and report["reasons"] == [], report
    assert report["last_success"] and report["last_success"]["age"] < 120
    # the probe got as far as RCPT TO and sent no message: the relay recorded its transaction as abandoned
    assert report["probe"]["verdict"] == "ok" and report["probe"]["stopped_at"] is None, report["probe"]
    probed = relay_record.wait_for_transactions(relay, recipients=[PROBE_RECIPIENT], verdict="abandoned")
    assert probed and probed[-1]["tls"] and probed[-1]["auth_user"] == CONVERGE_VARS["relay_auth_username"]
    assert len(relay_record.transactions(relay, verdict="accepted")) == accepted
    RESULTS["seconds"] = round(time.time() - START, 1)


@pytest.fixture(scope="module", autouse=True)
def results():
    yield
    write_results()


def write_results():
    out = ROOT / ".cache" / "logs" / "postfix-doctor.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=2))
