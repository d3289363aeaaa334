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

import shlex
import time
import uuid

import pytest

import doctor_cases
import relay_record
from doctor_cases import row
from relay_record import arrived, wait_for

RELAY_CONTAINER = "srt-reliability-relay"
HOST = relay_record.group_hosts("sendmail")[0]
USER = "sendmail@example.com"  # the AUTH user (molecule.yml)
TAG = uuid.uuid4().hex[:8]
START = time.time()
PER_CAUSE = 2
WAIT = 90  # a queue run every 5 s, retries after 2 s (molecule.yml)
PROBE_RECIPIENT = "probe-%s@example.net" % TAG
MTA = {"helo": HOST.check_output("hostname -f"), "port": 587}  # the guard's EHLO name is Sendmail's
EGRESS = HOST.interface("eth0").addresses[0]
PROBES = 1
QUEUE = "/var/spool/mqueue"
# Sendmail has no main.cf: its per-transaction recipient limit is the relay mailer's, set in sendmail.mc
CAUSES = [cause._replace(fix="sendmail_mc_extra") if cause.fix == "{mta}_main_cf" else cause
          for cause in doctor_cases.CAUSES]
RESULTS = {"runs": [], "causes": {}}


def send(label, sender=None):
    message_id = "<doctor-guard-%s.%s.%s@example.com>" % (label, TAG, uuid.uuid4().hex[:6])
    recipient = "%s-%s@example.net" % (label, TAG)
    body = "From: <%s>\nTo: <%s>\nSubject: doctor %s\nMessage-ID: %s\n\ndoctor\n" % (
        sender or USER, recipient, label, message_id)
    HOST.check_output("printf %%s %s | /usr/sbin/sendmail -i -N never -f %s -- %s" % (
        shlex.quote(body), shlex.quote(sender or USER), shlex.quote(recipient)))
    return message_id


def queued_ids():
    out = HOST.check_output("find %s -name 'qf*' -printf '%%f\\n'" % QUEUE)
    return {name[2:] for name in out.split()}


def deferred_since(since):
    lines = HOST.check_output("journalctl --quiet --no-pager -o short-unix --since @%d SYSLOG_FACILITY=2" % since)
    return {e["queue_id"] for e in doctor_cases.doctor_parsers.sendmail_log(lines.splitlines())
            if e["status"] == "deferred"}


def all_held_again(count, since):
    """``count`` messages queued, each deferred by a delivery attempt since ``since`` (the cause's)."""
    seen = {}

    def ready():
        ids = seen["queued"] = queued_ids()
        return len(ids) >= count and ids <= deferred_since(since)
    try:
        wait_for(ready, timeout=WAIT, what="%d message(s) deferred since the cause began" % count)
    except AssertionError as exc:
        raise AssertionError("%s; queued: %s" % (exc, sorted(seen.get("queued") or []))) from None


def doctor(since, probe_sender=None):
    return doctor_cases.run_doctor_probing(HOST.backend.name, since, RESULTS["runs"], PROBE_RECIPIENT,
                                           probe_sender=probe_sender)


def flush():
    relay_record.sendmail_queue_run(HOST)


base = doctor_cases.base_fixture(RELAY_CONTAINER, flush, lambda: not queued_ids())


@pytest.fixture(scope="module")
def held():
    return []


@pytest.fixture(scope="module")
def accepted_before():
    return len(relay_record.transactions(relay_record.relay(), verdict="accepted"))


@pytest.mark.parametrize("cause", CAUSES, ids=[cause.name for cause in CAUSES])
def test_doctor_names_each_cause_behind_the_guard(base, held, accepted_before, cause):
    started, since = time.monotonic(), time.time()
    doctor_cases.pace(relay_record.relay(), EGRESS, len(held) + PER_CAUSE + PROBES, base)
    doctor_cases.write_config(RELAY_CONTAINER, doctor_cases.config_for(cause, base, MTA))
    held.extend(send("%s-%d" % (cause.name, i), cause.sender) for i in range(PER_CAUSE))
    flush()
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
    flush()
    relay = relay_record.relay()
    for message_id in held:
        arrived(relay, message_id, timeout=120)
    wait_for(lambda: not queued_ids(), timeout=60, what="an empty queue")
    result, report = doctor(recovered)
    assert result.returncode == 0, result.stdout[-3000:]
    assert report["verdict"] == "healthy" and report["queue_size"] == 0 and report["reasons"] == [], report
    assert report["probe"]["verdict"] == "ok" and report["probe"]["stopped_at"] is None, report["probe"]
    RESULTS["seconds"] = round(time.time() - START, 1)


@pytest.fixture(scope="module", autouse=True)
def results():
    yield
    out = doctor_cases.ROOT / ".cache" / "logs" / "reliability-doctor-guard.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doctor_cases.json.dumps(RESULTS, indent=2))
