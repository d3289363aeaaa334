# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor against real Sendmail (Debian 12) talking to the relay itself, the relay guard off ("auth": 587,
STARTTLS with the certificate verified, SMTP AUTH; the scenario has no host behind the guard): the stand-in induces
each cause in turn (doctor_cases.sendmail_direct: the same causes as for Postfix), and playbooks/doctor.yml names
the class and the fix, counts the messages and its probe stops at the cause's step with the same class.

Sendmail bounces every 5xx of its smart host at the first attempt, so the causes the relay answers with a 5xx
(induced first) leave nothing queued: the doctor must count their messages as bounced, none queued. The 4xx causes
hold the messages: each cause's messages join those still held from the causes before, which Sendmail retries
against the new one. Once the cause is gone and the queue drained the doctor reports healthy, and the probe reaches
RCPT TO without a message reaching the stand-in's record.

Messages are sent with ``-N never``: a bounce's notification would go to the sender through the relay (a message in
the stand-in's record, a second refusal in the counts). Runs before test_sendmail.py (file order) on the converge's
state and leaves it as it found it: no faults, an empty queue, nothing reconfigured. Every wait is on an event (the
queue's reasons, the log's bounces, the stand-in's record), never a fixed sleep.
"""

from __future__ import annotations

import time
import uuid

import pytest

import doctor_cases
import relay_record
from sendmail_doctor import SendmailDoctorHost
from relay_standin import records
from doctor_cases import row
from relay_record import arrived, wait_for

RELAY_CONTAINER = "srt-sendmail-relay"
USER = "mta@example.com"  # the AUTH user (molecule.yml), a sender in the customer's domain
TAG = uuid.uuid4().hex[:8]
AUTH = relay_record.group_hosts("auth")[0]
START = time.time()
PER_CAUSE = 2
WAIT = 90  # a queue run every 5 s, retries after 10 s (molecule.yml): far less in practice
PROBE_RECIPIENT = "probe-%s@example.net" % TAG
MTA = {"helo": AUTH.check_output("hostname -f"), "port": 587}  # Sendmail greets with $j
EGRESS = AUTH.interface("eth0").addresses[0]  # the address the relay sees (and counts new connections of)
PROBES = 2  # the doctor's probe connects once per run, and the allowlist cause runs the doctor twice
CASES = doctor_cases.sendmail_direct()
SENDMAIL = SendmailDoctorHost(AUTH, USER, TAG)
RESULTS = {"runs": [], "causes": {}}


send = SENDMAIL.send
log_events = SENDMAIL.log_events
log_lines = SENDMAIL.log_lines
qf_files = SENDMAIL.qf_files


def queue(since=START):
    """The queue as the doctor reads it: the qf files, each joined with its latest logged failure."""
    entries = [doctor_cases.doctor_parsers.sendmail_qf(name, text) for name, text in sorted(qf_files().items())]
    return doctor_cases.doctor_parsers.sendmail_queue_with_log(entries, log_events(since))


def reasons(entries):
    return sorted({"%s | %s" % (e.get("reply"), e.get("local")) for e in entries})


def held_for(klass, count):
    """Wait until ``count`` queued messages carry a reason of the doctor's class ``klass``; return the entries."""
    seen = {}

    def ready():
        entries = seen["entries"] = queue()
        found = [e for e in entries if doctor_cases.class_of(e, "sendmail") == klass]
        return found if len(found) >= count else None
    try:
        return wait_for(ready, timeout=WAIT, what="%d message(s) held for %s" % (count, klass))
    except AssertionError as exc:
        entries = seen.get("entries") or []
        raise AssertionError("%s; reasons in the queue: %s; their log: %s" % (
            exc, reasons(entries), log_lines(START, {e["queue_id"] for e in entries}))) from None


def bounced_for(klass, count, since):
    """Wait until ``count`` messages were bounced since ``since`` for a reply of the doctor's class ``klass`` and
    the queue is empty; return those log events."""
    seen = {}

    def ready():
        events = seen["events"] = [e for e in log_events(since) if e["relay"] and e["status"] != "sent"]
        found = {e["queue_id"]: e for e in events
                 if e["status"] == "bounced" and doctor_cases.class_of(e, "sendmail") == klass}
        return list(found.values()) if len(found) >= count and not qf_files() else None
    try:
        return wait_for(ready, timeout=WAIT, what="%d message(s) bounced for %s" % (count, klass))
    except AssertionError as exc:
        events = seen.get("events") or []
        raise AssertionError("%s; failures logged: %s; queue: %s; their log: %s" % (
            exc, reasons(events), reasons(queue()), log_lines(since, {e["queue_id"] for e in events}))) from None


def doctor(since, check=False, probe_sender=None):
    return SENDMAIL.doctor(since, RESULTS["runs"], PROBE_RECIPIENT, check=check, probe_sender=probe_sender)


flush = SENDMAIL.flush
base = doctor_cases.base_fixture(RELAY_CONTAINER, flush, lambda: not qf_files())


@pytest.fixture(scope="module")
def sent():
    """The messages of this module: {"held": [...], "bounced": [...]} (Message-IDs), in the order sent."""
    return {"held": [], "bounced": []}


@pytest.fixture(scope="module")
def accepted_before():
    return len(relay_record.transactions(relay_record.relay(), verdict="accepted"))


@pytest.mark.parametrize("case", CASES, ids=[case[0].name for case in CASES])
def test_doctor_names_each_cause(base, sent, accepted_before, case):
    cause, held, probe_klass = case
    started, since = time.monotonic(), time.time()
    times = {}
    doctor_cases.pace(relay_record.relay(), EGRESS, len(sent["held"]) + PER_CAUSE + PROBES, base)
    doctor_cases.write_config(RELAY_CONTAINER, doctor_cases.config_for(cause, base, MTA))
    ids = [send("%s-%d" % (cause.name, i), cause.sender) for i in range(PER_CAUSE)]
    sent["held" if held else "bounced"].extend(ids)
    flush()
    times["sent"] = round(time.monotonic() - started, 1)
    if held:
        entries = held_for(cause.klass, len(sent["held"]))
    else:
        entries = bounced_for(cause.klass, PER_CAUSE, since)
    times["held" if held else "bounced"] = round(time.monotonic() - started, 1)
    RESULTS["causes"][cause.name] = {"held": held, "times": times, "logged": log_lines(
        since, {e["queue_id"] for e in entries})}
    result, report = doctor(START, probe_sender=cause.sender)
    times["doctor"] = result.seconds
    output = result.stdout + result.stderr  # ansible-core 2.19 prints a failed task's error on stderr
    verdict = doctor_cases.expected_verdict(cause)
    found = row(report, cause.klass)
    RESULTS["causes"][cause.name].update(
        classes={r["class"]: [r["queued"], r["deferred"], r["bounced"], r["stage"]] for r in report["classes"]},
        verdict=report["verdict"], probe=[report["probe"]["stopped_at"], report["probe"]["diagnosis"]["class"]
                                          if report["probe"].get("diagnosis") else None])
    assert report["verdict"] == verdict and report["mta"] == "sendmail", report
    assert (result.returncode != 0) == (verdict == "blocked"), output[-3000:]
    if verdict == "blocked":
        assert "Blocked: %s" % AUTH.backend.name in output, output[-3000:]
    assert found, report
    if held:
        # every held message, this cause's and the ones before it that Sendmail retried, is held for this cause now
        assert found["queued"] == len(sent["held"]) == report["queue_size"] and found["bounced"] == 0, report
        assert {e["queue_id"] for e in queue()} >= set(found["samples"])
    else:
        # nothing held (the 5xx causes come first); each message bounced once, at its first attempt
        assert found["bounced"] == PER_CAUSE and found["queued"] == 0 == report["queue_size"], report
        assert set(found["samples"]) == {e["queue_id"] for e in entries}, found
    assert found["fixes"][0]["variable"] == cause.fix.replace("{mta}", "sendmail"), found["fixes"]
    doctor_cases.check_probe(report, cause, klass=probe_klass)
    # nothing reached the relay: neither the messages nor the probe
    assert len(relay_record.transactions(relay_record.relay(), verdict="accepted")) == accepted_before
    RESULTS["causes"][cause.name].update(queued=found["queued"], bounced=found["bounced"],
                                         seconds=round(time.monotonic() - started, 1))
    if cause.name == "allowlist":
        check_allowlist(report, found)


def check_allowlist(report, found):
    """The allowlist's fix names the address the relay saw (Sendmail keeps the reply's first line, which carries
    it); check mode without the probe gives the same class and count."""
    egress = AUTH.interface("eth0").addresses[0]
    assert found["fixes"][0] == {"variable": "relay_allowlist", "value": "%s/32" % egress,
                                 "why": "list the address the relay saw in the setting and in relay_allowlist"}
    assert found["console"].endswith("Only accept mail from the specified IP addresses")
    assert report["probe"]["relay"]["port"] == 587
    assert report["probe"]["sender"] == USER, report["probe"]
    result, checked = doctor(START, check=True)
    # without the probe nothing is held: the bounces make the host degraded, and the playbook exits 0
    assert result.returncode == 0 and checked["verdict"] == "degraded", checked
    assert row(checked, "allowlist")["bounced"] == PER_CAUSE and "probe" not in checked


def test_healthy_once_the_cause_is_gone_and_the_queue_drained(base, sent):
    assert len(sent["held"]) + len(sent["bounced"]) == PER_CAUSE * len(CASES)
    recovered = time.time()
    doctor_cases.pace(relay_record.relay(), EGRESS, len(sent["held"]) + PROBES, base)
    doctor_cases.write_config(RELAY_CONTAINER, doctor_cases.healthy(base))
    flush()
    relay = relay_record.relay()
    try:
        for message_id in sent["held"]:
            arrived(relay, message_id, timeout=120)
    except AssertionError as exc:
        raise AssertionError("%s; still queued: %s; the relay's last connections: %s" % (
            exc, reasons(queue()), records.connections(relay_record.read_record(relay))[-5:])) from None
    wait_for(lambda: not qf_files(), timeout=60, what="an empty queue")
    SENDMAIL.wait_for_logged_deliveries(recovered, len(sent["held"]))
    # the bounced messages are gone for good: none of them reached the relay
    assert not [m for m in sent["bounced"] if relay_record.transactions(relay, message_id=m, verdict="accepted")]
    accepted = len(relay_record.transactions(relay, verdict="accepted"))
    result, report = doctor(recovered)
    assert result.returncode == 0, result.stdout[-3000:]
    assert report["verdict"] == "healthy" and report["queue_size"] == 0 and report["reasons"] == [], report
    assert report["last_success"] and report["last_success"]["age"] < 120
    # the probe got as far as RCPT TO and sent no message: the relay recorded its transaction as abandoned
    assert report["probe"]["verdict"] == "ok" and report["probe"]["stopped_at"] is None, report["probe"]
    probed = relay_record.wait_for_transactions(relay, recipients=[PROBE_RECIPIENT], verdict="abandoned")
    assert probed and probed[-1]["tls"] and probed[-1]["auth_user"] == USER
    assert len(relay_record.transactions(relay, verdict="accepted")) == accepted
    RESULTS["seconds"] = round(time.time() - START, 1)


@pytest.fixture(scope="module", autouse=True)
def results():
    yield
    doctor_cases.write_results("sendmail-doctor", RESULTS)
