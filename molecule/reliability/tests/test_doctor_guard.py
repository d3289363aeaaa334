# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor against real Sendmail behind the relay guard (Debian 12; the guard speaks 587, STARTTLS with the
certificate verified and SMTP AUTH to the relay): the stand-in induces each cause of doctor_cases.CAUSES in turn,
and playbooks/doctor.yml names the relay's class and the fix, counts the held messages and its probe stops at the
cause's step with the same class.

The guard keeps every cause's mail queued: it turns the relay's refusals and daily limits into 4xx, answers the
MTA's EHLO with a 421 when it cannot set up a relay connection (unreachable, an impostor's certificate, a refused
AUTH) and hands the relay's own EHLO refusals on. So each cause's messages join those held from the causes before,
which Sendmail retries against the new one, and the doctor must read the cause from Sendmail's first line and the
guard's journal. Once the cause is gone and the queue drained the doctor reports healthy.

Runs before test_reliability.py (file order) and leaves the scenario as it found it: the stand-in's config as
prepare wrote it, an empty queue. Every wait is on an event (each queued message deferred in the log since the
cause began, the stand-in's record), never a fixed sleep.
"""

from __future__ import annotations

import time
import uuid

import pytest

import doctor_cases
import relay_record
from doctor_cases import row
from relay_record import arrived, wait_for
from sendmail_doctor import SendmailDoctorHost

RELAY_CONTAINER = "srt-reliability-relay"
HOST = relay_record.group_hosts("sendmail")[0]
TAG = uuid.uuid4().hex[:8]
SENDMAIL = SendmailDoctorHost(HOST, "sendmail@example.com", TAG, prefix="doctor-guard")  # the AUTH user
START = time.time()
PER_CAUSE = 2
WAIT = 90  # a queue run every 5 s, retries after 2 s (molecule.yml)
PROBE_RECIPIENT = "probe-%s@example.net" % TAG
MTA = {"helo": HOST.check_output("hostname -f"), "port": 587}  # the guard's EHLO name is Sendmail's
EGRESS = HOST.interface("eth0").addresses[0]
PROBES = 1
CAUSES = [doctor_cases.for_sendmail(cause) for cause in doctor_cases.CAUSES]
RESULTS = {"runs": [], "causes": {}}


def all_held_again(count, since):
    """``count`` messages queued, each deferred by a delivery attempt that ended after ``since`` (the moment the
    stand-in ran with the cause's config, its earlier connections closed)."""
    seen = {}

    def ready():
        ids = seen["queued"] = SENDMAIL.queued_ids()
        deferred = {e["queue_id"] for e in SENDMAIL.log_events(since) if e["status"] == "deferred"}
        return len(ids) >= count and ids <= deferred
    try:
        wait_for(ready, timeout=WAIT, what="%d message(s) deferred since the cause began" % count)
    except AssertionError as exc:
        raise AssertionError("%s; queued: %s; their log: %s" % (
            exc, sorted(seen.get("queued") or []), SENDMAIL.log_lines(since, seen.get("queued")))) from None


def doctor(since, probe_sender=None):
    return SENDMAIL.doctor(since, RESULTS["runs"], PROBE_RECIPIENT, probe_sender=probe_sender)


base = doctor_cases.base_fixture(RELAY_CONTAINER, SENDMAIL.flush, lambda: not SENDMAIL.queued_ids())


@pytest.fixture(scope="module")
def held():
    return []


@pytest.fixture(scope="module")
def accepted_before():
    return len(relay_record.transactions(relay_record.relay(), verdict="accepted"))


@pytest.mark.parametrize("cause", CAUSES, ids=[cause.name for cause in CAUSES])
def test_doctor_names_each_cause_behind_the_guard(base, held, accepted_before, cause):
    started = time.monotonic()
    doctor_cases.pace(relay_record.relay(), EGRESS, len(held) + PER_CAUSE + PROBES, base)
    doctor_cases.write_config(RELAY_CONTAINER, doctor_cases.config_for(cause, base, MTA))
    # after the stand-in runs with the cause: an attempt the queue runner made against the cause before cannot count
    since = time.time()
    held.extend(SENDMAIL.send("%s-%d" % (cause.name, i), cause.sender) for i in range(PER_CAUSE))
    SENDMAIL.flush()
    all_held_again(len(held), since)
    result, report = doctor(START, probe_sender=cause.sender)
    found = row(report, cause.klass)
    RESULTS["causes"][cause.name] = {
        "seconds": round(time.monotonic() - started, 1), "doctor_seconds": result.seconds,
        "verdict": report["verdict"],
        "classes": {r["class"]: [r["queued"], r["deferred"], r["bounced"], r["guard"], r["stage"]]
                    for r in report["classes"]}}
    verdict = doctor_cases.expected_verdict(cause)
    assert report["verdict"] == verdict and report["mta"] == "sendmail", report
    assert (result.returncode != 0) == (verdict == "blocked"), (result.stdout + result.stderr)[-3000:]
    # every held message, this cause's and the ones before it that Sendmail retried, is held for this cause now
    assert found and found["queued"] == len(held) == report["queue_size"] and found["bounced"] == 0, report
    assert not row(report, "unknown"), report
    assert found["fixes"] == doctor_cases.engine_doctor.fixes_for(cause.klass, mta="sendmail", egress=EGRESS), found
    assert found["fixes"][0]["variable"] == cause.fix, found["fixes"]
    doctor_cases.check_reply_text(found)
    doctor_cases.check_probe(report, cause)
    # nothing reached the relay: neither the held messages nor the probe
    assert len(relay_record.transactions(relay_record.relay(), verdict="accepted")) == accepted_before


def test_healthy_behind_the_guard_once_the_cause_is_gone(base, held):
    assert len(held) == PER_CAUSE * len(CAUSES)
    recovered = time.time()
    doctor_cases.pace(relay_record.relay(), EGRESS, len(held) + PROBES, base)
    doctor_cases.write_config(RELAY_CONTAINER, doctor_cases.healthy(base))
    SENDMAIL.flush()
    relay = relay_record.relay()
    for message_id in held:
        arrived(relay, message_id, timeout=120)
    wait_for(lambda: not SENDMAIL.queued_ids(), timeout=60, what="an empty queue")
    result, report = doctor(recovered)
    assert result.returncode == 0, result.stdout[-3000:]
    assert report["verdict"] == "healthy" and report["queue_size"] == 0 and report["reasons"] == [], report
    assert report["probe"]["verdict"] == "ok" and report["probe"]["stopped_at"] is None, report["probe"]
    RESULTS["seconds"] = round(time.time() - START, 1)


@pytest.fixture(scope="module", autouse=True)
def results():
    yield
    doctor_cases.write_results("reliability-doctor-guard", RESULTS)
