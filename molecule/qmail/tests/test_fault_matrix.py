# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault matrix of qmail's path to the relay (issue 9): 500 messages per relay fault through the role's default,
the relay guard (smarthost.relay.relay_guard) on 127.0.0.1:24, which speaks STARTTLS to the relay.

qmail cannot run here, so qmail_remote_driver.py (copied into the "tls" host) plays qmail-remote's SMTP dialogue
against the catch-all route of control/smtproutes and qmail-send's rule (4xx or a dead connection: retry on
qmail-send's schedule; 5xx: bounce). Everything between the driver and the relay is real: the role's guard, TLS,
the stand-in. The counts come from the stand-in's record: delivered exactly once, lost, duplicated, bounced (see
docs/qmail.md). The scenario converges with the guard off (stunnel); the module fixture re-runs the role on the
"tls" host with the guard on and, at the end, off again. This file sorts before test_qmail.py on purpose: that one
ends by switching the host to implicit TLS.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources" / "tests"))
import fault_matrix  # noqa: E402  pylint: disable=wrong-import-position
import relay_record  # noqa: E402  pylint: disable=wrong-import-position

SCENARIO = Path(__file__).resolve().parents[1]
RELAY = "srt-qmail-relay"
QMAIL = "srt-qmail-tls"
DRIVER = "/root/qmail_remote_driver.py"
MESSAGES = 500
WINDOW = 4  # seconds each fault lasts, counted from when the stand-in loads it
TAG = uuid.uuid4().hex[:8]
PEAK = "450 4.2.1 Peak SMTP relay limit exceeded for customer."
USER_DAILY = "550 5.4.5 Daily SMTP relay limit exceeded for user."
CUSTOMER_DAILY = "550 5.7.1 Daily SMTP relay limit exceeded for customer."
TRY_LATER = "421 4.7.0 Try again later, closing connection."
STALL, STALL_TIMEOUT = 8, 5  # the relay stalls longer than the driver's (qmail-remote's) timeout
# qmail's default concurrencyremote (the role wrote 3 on this host, from its licences): the path, not the throttle,
# is under test, and 20 keeps 4,000 messages within the scenario's time budget.
CONCURRENCY = 20

# case -> stand-in faults (None: the untrusted certificate instead), driver options
CASES = {
    "unreachable": ([{"action": "unlisten", "ports": [587], "for_seconds": WINDOW}], []),
    "connect_421": ([{"stage": "connect", "reply": TRY_LATER, "for_seconds": WINDOW}], []),
    "data_421": ([{"stage": "end_of_data", "reply": TRY_LATER, "for_seconds": WINDOW}], []),
    "peak_450": ([{"stage": "rcpt", "reply": PEAK, "for_seconds": WINDOW}], []),
    "user_550": ([{"stage": "mail", "reply": USER_DAILY, "for_seconds": WINDOW}], []),
    "customer_550": ([{"stage": "rcpt", "reply": CUSTOMER_DAILY, "for_seconds": WINDOW}], []),
    "stall": ([{"stage": "end_of_data", "action": "stall", "seconds": STALL, "for_seconds": WINDOW}],
              ["--timeout", str(STALL_TIMEOUT)]),
    "untrusted": (None, []),
}
# The daily limits: the guard turns them into 4xx, so qmail-remote defers and qmail-send retries.
LIMITS = {"user_550": USER_DAILY, "customer_550": CUSTOMER_DAILY}
GUARD_PORT = 24
BACKUP_DIR = "/var/backups/smarthost-qmail"
GUARD_ON = {"qmail_limit_replies_retry": True, "qmail_relay_refusals_retry": True}
RESULTS = {}  # case -> counts, written to .cache/logs/qmail-faults.json (each driver's output beside it)
TAIL = fault_matrix.RecordTail(RELAY)
LOGS = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / ".cache" / "logs"


def read_config():
    return yaml.safe_load(relay_record.podman("exec", RELAY, "cat", relay_record.STANDIN_CONFIG))


def write_config(config):
    """Atomically, without waiting: the stand-in checks the file at every new connection."""
    relay_record.podman("exec", "-i", RELAY, "sh", "-c", "cat > {0}.new && mv {0}.new {0}".format(
        relay_record.STANDIN_CONFIG), stdin=yaml.safe_dump(config))
    return time.time()


def run_role(extra):
    result = relay_record.run_playbook(SCENARIO / "converge.yml", "--diff", "--limit", QMAIL, extra_vars=extra)
    assert result.returncode == 0, result.stdout[-3000:]
    return result


@pytest.fixture(scope="module")
def baseline():
    """The "tls" host on the relay guard, and the stand-in's config as prepare left it; both put back after the
    matrix, whatever happened."""
    relay_record.podman("cp", str(Path(__file__).with_name("qmail_remote_driver.py")), "%s:%s" % (QMAIL, DRIVER))
    backups_before = set(backup_runs())
    switched = run_role(GUARD_ON)
    RESULTS["switch_to_guard_seconds"] = switched.seconds
    routes = relay_record.podman("exec", QMAIL, "cat", "/var/qmail/control/smtproutes")
    assert ":127.0.0.1:%d" % GUARD_PORT in routes.splitlines(), routes
    assert relay_record.podman("exec", QMAIL, "systemctl", "is-active", "smarthost-relay-guard").strip() == "active"
    config = read_config()
    TAIL.records()  # what came before the matrix is skipped
    try:
        yield config
    finally:
        write_config(config)
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / "qmail-faults.json").write_text(json.dumps(RESULTS, indent=2, default=str))
        run_role({name: False for name in GUARD_ON})
        # The two switches backed up smtproutes: their copies go, so that test_qmail.py sees the converged host.
        for run in set(backup_runs()) - backups_before:
            relay_record.podman("exec", QMAIL, "rm", "-rf", "--", "%s/%s" % (BACKUP_DIR, run))


def backup_runs():
    return relay_record.podman("exec", QMAIL, "sh", "-c", "ls %s 2>/dev/null || true" % BACKUP_DIR).split()


def run_case(case, baseline):
    faults, options = CASES[case]
    batch = fault_matrix.Batch(case, "qmail", MESSAGES, TAG)
    before = len(TAIL.records())
    started = time.monotonic()
    # The driver queues its messages at start_at; the fault is written just before, so its window (counted from
    # when the stand-in loads it, within 0.5 s) covers the first seconds of delivery whatever the load.
    start_at = time.time() + 3
    driver = subprocess.Popen(["podman", "exec", QMAIL, "python3", DRIVER, "--prefix", batch.prefix,
                               "--count", str(MESSAGES), "--concurrency", str(CONCURRENCY), "--port", str(GUARD_PORT),
                               "--start-at", str(start_at)] + options,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(max(0.0, start_at - 1.0 - time.time()))
    if faults is None:
        switched = write_config(dict(baseline, tls={"cert": "/etc/relay-standin/untrusted.pem",
                                                    "key": "/etc/relay-standin/untrusted.key"}))
        time.sleep(max(0.0, start_at + WINDOW - time.time()))
        restored = time.time()  # connections opened from here on may get the relay's own certificate again
        write_config(baseline)
    else:
        switched, restored = write_config(dict(baseline, faults=faults)), None
    out, err = driver.communicate(timeout=420)
    assert driver.returncode == 0, err[-3000:]
    if faults is not None:
        write_config(baseline)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / ("qmail-faults-%s.json" % case)).write_text(out)
    result = json.loads(out)
    records = TAIL.records()[before:]
    counts = count(batch, result, records)
    counts.update(seconds=round(time.monotonic() - started, 1), driver_seconds=result["seconds"],
                  concurrency=result["concurrency"], timeout=result["timeout"])
    RESULTS[case] = counts
    return result, records, counts, (switched, restored)


def count(batch, result, records):
    """The shared tally of the stand-in's record (delivered, once, duplicated = extra copies, connections), closed
    with qmail's side from the driver: still queued, bounced (lost = neither delivered, bounced nor queued)."""
    row = fault_matrix.tally(batch, records, client_ip=qmail_address())
    finals = collections.Counter(msg["final"] for msg in result["messages"])
    row.update(fault_matrix.settle(row, queued=finals["queued"], bounced=finals["bounced"]))
    accepted = {r["message_id"] for r in records if r.get("kind") == "transaction" and r["verdict"] == "accepted"}
    senders = {msg["sender"] for msg in result["messages"]}
    row.update(
        driver_attempts=sum(len(msg["attempts"]) for msg in result["messages"]),
        retried=sum(len(msg["attempts"]) > 1 for msg in result["messages"]),
        bounced_yet_delivered=sum(msg["final"] == "bounced" and msg["id"] in accepted for msg in result["messages"]),
        foreign_transactions=sum(r.get("kind") == "transaction" and r["sender"] not in senders for r in records))
    return row


def qmail_address():
    return relay_record.podman("inspect", QMAIL, "--format",
                               "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}").strip()


def relay_replies(records):
    """sender -> the replies the relay gave at MAIL, RCPT, DATA or after the message."""
    replies = collections.defaultdict(list)
    for r in records:
        if r.get("kind") == "transaction" and r.get("reply"):
            replies[r["sender"]].append(r["reply"])
    return replies


def as_deferred(reply):
    """A daily-limit reply as the guard hands it on: 450 and the 4.x.x status, the relay's text."""
    return "450 4." + reply[len("550 5."):]


def as_relayed(reply):
    """The relay's reply behind one the driver saw."""
    for limit in LIMITS.values():
        if reply == as_deferred(limit):
            return limit
    return reply


def driver_replies(result):
    """(sender, reply) for every SMTP reply the driver got after HELO (not dead connections)."""
    return [(msg["sender"], a["reply"]) for msg in result["messages"] for a in msg["attempts"]
            if a["stage"] in ("mail", "rcpt", "data", "end_of_data") and a["reply"][:1].isdigit()]


@pytest.mark.parametrize("case", list(CASES))
def test_fault_case(case, baseline):
    result, records, counts, (switched, restored) = run_case(case, baseline)
    summary = json.dumps(counts)
    assert counts["foreign_transactions"] == 0, summary
    assert counts["retried"] + counts["bounced"] > 0, "the fault never fired: " + summary
    assert counts["lost"] == 0 and counts["queued"] == 0, summary
    assert counts["bounced_yet_delivered"] == 0, summary
    # nothing in the clear, nothing but the relay on 587 after STARTTLS, qmail-remote's HELO name kept (the guard
    # greets the relay with EHLO and that name)
    for r in records:
        if r.get("kind") == "transaction":
            assert (r["port"], r["tls"], r["tls_mode"], r["helo"], r["helo_verb"]) == (
                587, True, "starttls", result["helo"], "EHLO"), r
    # the guard passes the relay's replies through, the two daily limits as 450 4.x.x with the same text: each one
    # the driver saw is one the relay recorded
    relayed = relay_replies(records)
    seen = driver_replies(result)
    assert seen and all(as_relayed(reply) in relayed[sender] for sender, reply in seen)
    counts["replies_compared"] = len(seen)
    if case in LIMITS:
        deferred = [reply for _sender, reply in seen if reply == as_deferred(LIMITS[case])]
        refused = {r["sender"] for r in records if r.get("kind") == "transaction" and r["reply"] == LIMITS[case]}
        counts["deferred_limit_replies"] = len(deferred)
        assert refused and len(deferred) > 0 and counts["retried"] >= len(refused), summary
        assert counts["bounced"] == 0 and counts["duplicated"] == 0 and counts["once"] == MESSAGES, summary
    elif case == "stall":
        check_stall(result, records, counts)
    else:
        assert counts["bounced"] == 0 and counts["duplicated"] == 0, summary
        assert counts["once"] == MESSAGES, summary
    if case == "connect_421":
        greetings = [a["reply"] for m in result["messages"] for a in m["attempts"]
                     if a["stage"] == "greeting" and a["reply"][:1].isdigit()]
        # the guard hands the relay's 421 greeting on and closes: qmail-remote sees the real code
        assert greetings and set(greetings) == {TRY_LATER}
        # each 421 the stand-in sent reached the driver, unless that attempt died before any reply
        died = sum(not a["reply"][:1].isdigit() for m in result["messages"] for a in m["attempts"]
                   if a["stage"] in ("connect", "greeting"))
        assert len(greetings) <= counts["fault_hits"] <= len(greetings) + died, summary
    if case == "untrusted":
        check_untrusted(records, switched, restored, counts)


def check_stall(result, records, counts):
    """The relay stalled after the message, past the driver's timeout: qmail-remote gives up with "possible
    duplicate" and qmail-send retries. Whether a copy was kept depends on the relay (the stand-in drops a message
    whose client left during the stall); every duplicate must be one that qmail-remote flagged."""
    stalled = [r for r in records if r.get("kind") == "transaction"
               and any(f.get("action") == "stall" for f in r.get("faults") or ())]
    flagged = {m["id"] for m in result["messages"] if any(a["possible_duplicate"] for a in m["attempts"])}
    duplicated = {m["id"] for m in result["messages"] if copies(records, m["id"]) > 1}
    counts["stalled"] = len(stalled)
    counts["stalled_then_accepted"] = sum(r["verdict"] == "accepted" for r in stalled)
    counts["possible_duplicate_reports"] = len(flagged)
    assert stalled and {r["message_id"] for r in stalled} <= flagged and duplicated <= flagged, json.dumps(counts)
    assert counts["duplicated"] >= counts["stalled_then_accepted"] and counts["bounced"] == 0, json.dumps(counts)
    assert counts["once"] + len(duplicated) == MESSAGES == counts["delivered"], json.dumps(counts)


def copies(records, message_id):
    return sum(r.get("kind") == "transaction" and r["verdict"] == "accepted" and r["message_id"] == message_id
               for r in records)


def check_untrusted(records, switched, restored, counts):
    """While the impostor's certificate was presented, the guard sent nothing: connections opened in that window
    carry no transaction (and no plain-text one exists at all, checked above)."""
    opened = {r["connection"]: r["time"] - r["duration"] for r in records if r.get("kind") == "connection"}
    in_window = {c for c, t in opened.items() if switched + 0.2 < t < restored}
    carried = [r for r in records if r.get("kind") == "transaction" and r["connection"] in in_window]
    counts["impostor_connections"] = len(in_window)
    assert in_window and not carried, json.dumps(counts)
