# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fault matrix and the reload under load (issue 9), for Postfix and Sendmail at once.

Each case: the stand-in starts to misbehave (one config for both MTAs), each MTA gets a batch of 500 messages over
SMTP on localhost:25, the fault holds for a while, then the stand-in recovers, each MTA's queue is flushed with its
own command and drained, and the stand-in's record is counted per MTA: delivered once, duplicated, lost, bounced.
The tests run in file order. The table goes to the output and, as JSON, to the scenario's ephemeral directory and
.cache/logs/reliability.json.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import doctor_cases
import fault_matrix
import relay_record
from fault_matrix import Batch
from relay_record import podman, wait_for
from relay_standin import inject as smtp_injector
from relay_standin.records import RecordTail

SCENARIO = Path(__file__).resolve().parents[1]
RELAY = "srt-reliability-relay"
BATCH = 500
RELOAD_BATCH = 1000
# On a loaded machine a role run can outlast the whole flow; the injector then waits at this message until the
# role run has ended (GO_FILE appears), so that some messages always go after the change.
RELOAD_HOLD_AT = 800
GO_FILE = "/run/fault-matrix-go"
RUN = uuid.uuid4().hex[:6]
PASSWORDS = ("reliability-pf-pw-5e2a", "reliability-sm-pw-93c4")  # the stand-in's test users (molecule.yml)
GOOD_TLS = {"cert": "/etc/relay-standin/cert.pem", "key": "/etc/relay-standin/key.pem"}
IMPOSTOR_TLS = {"cert": "/etc/relay-standin/untrusted.pem", "key": "/etc/relay-standin/untrusted.key"}
# The relay's replies as Google sends them: wrapped over several lines, a session token and "- gsmtp" at the end.
# By catalogue key (plugins/module_utils/_relay/replies.py, wrapped by the stand-in), and one written out with the
# distinctive words split over two lines and not on the last one, a layout a rewrite must still recognise.
TRY_LATER = "421 4.7.0 Try again later, closing connection."
CUSTOMER_DAILY_SPLIT = ["550-5.7.1 Daily SMTP relay limit exceeded for",
                        "550-5.7.1 customer. The sending limits are explained in the relay's",
                        "550 5.7.1 article 166852; ask your administrator. a1b2c3d4e5.27 - gsmtp"]

# Each MTA: its container, what is still queued, how to flush, which log lines are its bounces.
MTAS = {
    "postfix": {"container": "srt-reliability-postfix",
                "queued": "find /var/spool/postfix/incoming /var/spool/postfix/active /var/spool/postfix/deferred "
                          "/var/spool/postfix/hold /var/spool/postfix/maildrop -type f | wc -l",
                "flush": ["postqueue", "-f"],
                "bounce": r"to=<rcpt[0-9]+@example\.net>.*status=bounced",
                "greeting_timeout": r"timed out while receiving the initial server greeting"},
    "sendmail": {"container": "srt-reliability-sendmail",
                 "queued": "find /var/spool/mqueue -name 'qf*' | wc -l",
                 "flush": ["sendmail", "-q"],
                 "bounce": r"to=<?rcpt[0-9]+@example\.net.*dsn=5",
                 # Through the relay guard: its 421 4.4.2 after its own 5-s wait for the relay's greeting.
                 "greeting_timeout": r"timeout waiting for input from \S+ during client greeting"
                                     r"|4\.4\.2 relay \S+ did not answer in time"},
}
RECORD_GRACE = 30  # seconds drain() waits for the record to show what the queues no longer hold
LOCAL_DSNS = "cat /var/mail/* /var/lib/sendmail/dead.letter 2>/dev/null | grep -c '^From ' || true"

CASES = [
    # name, stand-in changes while the fault holds, seconds the fault holds after the batches are queued
    ("unreachable", {"faults": [{"action": "unlisten"}]}, 0),
    ("421-connect", {"faults": [{"stage": "connect", "reply": TRY_LATER}]}, 6),
    ("421-after-data", {"faults": [{"stage": "end_of_data", "reply": TRY_LATER}]}, 6),
    ("450-peak", {"faults": [{"stage": "rcpt", "reply_key": "customer_peak"}]}, 6),
    ("550-user-daily", {"faults": [{"stage": "mail", "reply_key": "user_daily"}]}, 6),
    ("550-customer-daily", {"faults": [{"stage": "rcpt", "reply": CUSTOMER_DAILY_SPLIT}]}, 6),
    # A refusal of this server (not in the allowlist, or its HELO/sender not the customer's): deferred until fixed.
    ("550-relay-denied", {"faults": [{"stage": "mail", "reply_key": "relay_denied"}]}, 6),
    # Longer than both MTAs' greeting timeouts in the test bed (5 s, molecule.yml).
    ("stall", {"faults": [{"stage": "connect", "action": "stall", "seconds": 20}]}, 10),
    ("untrusted-cert", {"tls": IMPOSTOR_TLS}, 6),
]
RECOVERED = {"faults": [], "tls": GOOD_TLS}
# The relay doctor's class for the cases whose reply it explains, asked while the fault holds and mail is held:
# Postfix meets the relay's reply itself (its status filter defers it), Sendmail through the relay guard, which
# hands it the reply rewritten to 4xx. The doctor must name the relay's cause either way. In the customer's daily
# limit case the reply's distinctive words are split over its first two lines and Sendmail keeps only the first
# ("450-4.7.1 Daily SMTP relay limit exceeded for", which names no cause): the doctor joins each such deferral to
# the guard's logged rewrite of the whole reply (doctor_parsers.sendmail_guard_join; "unknown" before 2026-12-06).
DOCTOR_CLASSES = {"450-peak": "peak_limit", "550-user-daily": "user_daily_limit",
                  "550-customer-daily": "customer_daily_limit", "550-relay-denied": "allowlist"}
# Cases the relay's record cannot show an MTA meeting: nothing listens, the stall is given up before a line is
# recorded, the impostor is checked on its own.
UNRECORDED = ("unreachable", "stall", "untrusted-cert")
# Each case starts with a relay restart (the stand-in's restart_epoch): the relay guard keeps connections open
# between sessions, and a fault met only by new connections must be met by Sendmail's too.
EPOCHS = itertools.count(1)

ROWS = []
RESULTS = {"batch": BATCH, "cases": ROWS}
TAIL = RecordTail.in_container(RELAY)


def sh(mta, command):
    return podman("exec", MTAS[mta]["container"], "sh", "-c", command)


def client_ip(mta):
    out = json.loads(podman("inspect", MTAS[mta]["container"], "--format", "json"))
    return next(iter(out[0]["NetworkSettings"]["Networks"].values()))["IPAddress"]


IPS = {mta: client_ip(mta) for mta in MTAS}


def queued(mta):
    return int(sh(mta, MTAS[mta]["queued"]).strip())


def log_count(mta, since, what="bounce"):
    text = sh(mta, "journalctl -q -o cat --since @%d" % int(since))
    return len(re.findall(MTAS[mta][what], text))


def local_dsns(mta):
    return int(sh(mta, LOCAL_DSNS).strip() or 0)


def inject(batch, rate=0.0, hold_at=None):
    out = podman("exec", MTAS[batch.mta]["container"], *batch.inject_argv(rate, hold_at, GO_FILE)).split()
    assert int(out[0]) == batch.count
    return int(out[1])  # reconnects


def flush(mta):
    podman("exec", "-d", MTAS[mta]["container"], *MTAS[mta]["flush"])


def standin(**changes):
    return relay_record.standin(RELAY, **changes)


def run_role(extra=None, limit="mta"):
    """ansible-playbook converge.yml, as an admin re-runs the role; logged to the scenario's log."""
    return relay_record.run_playbook(SCENARIO / "converge.yml", "--diff", "--limit", limit, extra_vars=extra or {})


def recap(result, host):
    for line in result.stdout.splitlines():
        if line.startswith(host + " ") and "ok=" in line:
            return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}
    raise AssertionError("no recap for %s:\n%s" % (host, result.stdout[-3000:]))


def delivered(batch, records):
    """How many of the batch's messages the relay accepted (once or more)."""
    return len({r["message_id"] for r in records
                if r.get("kind") == "transaction" and batch.owns(r) and r["verdict"] == "accepted"})


def drain(batches=(), timeout=300):
    """Wait until both MTAs' queues are empty (delivered, or bounced), then until the record shows every message
    of ``batches`` accepted. The stand-in writes a transaction's line before its reply, so that is normally so at
    once; a message lost or bounced never shows: after RECORD_GRACE seconds the counts say which."""
    wait_for(lambda: all(queued(mta) == 0 for mta in MTAS), timeout=timeout, interval=2, what="empty queues")
    deadline = time.monotonic() + RECORD_GRACE
    while any(delivered(batch, TAIL.records()) < batch.count for batch in batches) and time.monotonic() < deadline:
        time.sleep(1)


def write_results():
    text = json.dumps(RESULTS, indent=2, sort_keys=True)
    for out in (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reliability.json",
                SCENARIO.parents[1] / ".cache" / "logs" / "reliability.json"):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


@pytest.fixture(scope="module", autouse=True)
def injector():
    for mta in MTAS:
        podman("exec", "-i", MTAS[mta]["container"], "sh", "-c", smtp_injector.INSTALL,
               stdin=smtp_injector.source())
    drain(timeout=120)  # the converge's test messages
    yield
    print("\n" + fault_matrix.format_table(ROWS))
    write_results()


def met_the_fault(batch, records, since):
    """A transaction of ``batch`` the relay did not accept (by Message-ID, or by the batch's own envelope sender: a
    refusal before DATA has no Message-ID), or a connection of its MTA that met a fault rule (recorded only when it
    closes: the relay guard keeps its connections open)."""
    return any(r.get("time", 0) >= since and (
        (r.get("kind") == "transaction" and (batch.owns(r) or r.get("sender") == batch.sender)
         and r["verdict"] != "accepted")
        or (r.get("kind") == "connection" and r.get("client_ip") == IPS[batch.mta] and r.get("faults")))
        for r in records)


def wait_for_fault(batches, since, timeout=180):
    """Until each MTA met the fault: on a loaded machine, or behind the relay guard's hold-off after the relay's
    restart, an MTA's first attempt can come later than any fixed wait."""
    wait_for(lambda: all(met_the_fault(batch, TAIL.records(), since) for batch in batches.values()),
             timeout=timeout, interval=1, what="each MTA meeting the fault")


def run_case(name, changes, hold, during=None):
    """One case for both MTAs at once; returns {mta: row} and the result of ``during`` (run while the fault holds)."""
    start = time.time()
    before = {mta: local_dsns(mta) for mta in MTAS}
    standin(restart_epoch=next(EPOCHS), **changes)
    batches = {mta: Batch(name, mta, BATCH, RUN) for mta in MTAS}
    with ThreadPoolExecutor(3) as pool:
        side = pool.submit(during) if during else None
        list(pool.map(inject, batches.values()))
        if name not in UNRECORDED:
            wait_for_fault(batches, start)
        time.sleep(hold)
        side = side.result() if side else None
    held = {mta: queued(mta) for mta in MTAS}
    if name in DOCTOR_CLASSES:
        ask_the_doctor(name, start)
    recovered = time.time()  # from here on the stand-in may answer normally
    standin(**RECOVERED)
    for mta in MTAS:
        flush(mta)
    drain(batches.values())
    records = TAIL.records()
    rows = {}
    for mta, batch in batches.items():
        row = fault_matrix.tally(batch, records, since=start, client_ip=IPS[mta])
        row.update(fault_matrix.settle(row, queued=queued(mta), bounced=log_count(mta, start),
                                       dsn_local=local_dsns(mta) - before[mta]))
        row.update(held=held[mta], seconds=round(time.time() - start), recovery_seconds=round(time.time() - recovered),
                   met_fault=met_the_fault(batch, records, start),
                   delivered_during_fault=sum(1 for r in records if r.get("kind") == "transaction"
                                              and batch.owns(r) and r["verdict"] == "accepted"
                                              and r["time"] < recovered))
        rows[mta] = row
        ROWS.append(row)
    print("\n" + fault_matrix.format_table(rows.values()))
    return rows, side, start, recovered


def ask_the_doctor(name, since):
    """playbooks/doctor.yml (check mode, no probe) over both MTAs while the fault holds: each names the case's
    class for the mail it holds, with the fix for its own MTA, and nothing it cannot explain."""
    klass = DOCTOR_CLASSES[name]
    hosts = {MTAS[mta]["container"]: mta for mta in MTAS}
    result, reports = doctor_cases.run_doctor_on(list(hosts), since, check=True)
    seen = RESULTS.setdefault("doctor", {})[name] = {"seconds": result.seconds}
    for host, mta in hosts.items():
        report = reports[host]
        found = doctor_cases.row(report, klass)
        seen[mta] = {"verdict": report["verdict"], "queue": report["queue_size"],
                     "classes": {r["class"]: [r["queued"], r["deferred"], r["guard"]] for r in report["classes"]}}
        assert report["mta"] == mta and found and found["queued"] > 0, (mta, report)
        assert not doctor_cases.row(report, "unknown"), (mta, report)
        # the rule engine's fixes for this MTA; the allowlist's with the address the relay saw: this container's
        assert found["fixes"] == doctor_cases.engine_doctor.fixes_for(klass, mta=mta, egress=IPS[mta]), (mta, found)
        assert report["verdict"] == ("degraded" if klass in doctor_cases.DEGRADED else "blocked"), (mta, report)
        if mta == "sendmail" and name.startswith("550"):
            # the guard logged each 5xx it rewrote (its journal, read by the doctor): counted apart from Sendmail's
            assert found["guard"] > 0, (mta, found)


def assert_clean(row):
    """Pass: every message delivered exactly once after the relay recovered, none before, none bounced."""
    assert row["lost"] == 0 and row["queued"] == 0, row
    assert row["delivered"] == row["once"] == BATCH and row["duplicated"] == 0, row
    assert row["bounced"] == row["dsn_at_relay"] == row["dsn_local"] == 0, row
    assert row["delivered_during_fault"] == 0, row


@pytest.mark.parametrize("name,changes,hold", CASES, ids=[case[0] for case in CASES])
def test_fault(name, changes, hold):
    during = None
    if name == "unreachable":
        # A mail admin expects the role to converge while the relay is down: nothing it manages changed, so it
        # neither restarts the MTA nor sends a test message, and the queued mail stays queued.
        during = run_role
    rows, side, start, recovered = run_case(name, changes, hold, during)
    if side is not None:
        assert side.returncode == 0, side.stdout[-3000:]
        for container in (MTAS[mta]["container"] for mta in MTAS):
            assert recap(side, container)["changed"] == 0, side.stdout[-3000:]
        RESULTS["unreachable_role_run"] = {"rc": side.returncode, "seconds": side.seconds}
    records = TAIL.records()
    # Nothing in the clear, and nothing to the impostor: every transaction of the MTAs used TLS, and none reached
    # MAIL FROM before the relay recovered (for the certificate case: while the impostor answered).
    mine = [r for r in records if r.get("kind") == "transaction" and r.get("client_ip") in IPS.values()
            and r.get("time", 0) >= start]
    assert mine and all(r["tls"] for r in mine)
    if name == "untrusted-cert":
        impostor = [r for r in records if r.get("kind") == "connection" and r.get("client_ip") in IPS.values()
                    and start <= r["time"] - r["duration"] < recovered]
        assert {c["client_ip"] for c in impostor} == set(IPS.values()), impostor
        assert all(c["transactions"] == 0 for c in impostor), impostor
        RESULTS["impostor_connections"] = len(impostor)
    # Sendmail bounces every 5xx of its smart host: it sends through the role's relay guard, which turns the two
    # daily-limit replies and the refusals into 4xx, matching the whole multi-line reply (Postfix: the role's
    # smtp_delivery_status_filter, on the reply's joined lines). Both MTAs: 0 bounced.
    for mta, row in rows.items():
        assert_clean(row)
        assert row["held"] > 0, row  # mail waited (a file count of the queue, taken as the fault ends)
        if name == "stall":
            # The stand-in records no line for a connection its client gave up during the stall: the MTA's log tells.
            row["greeting_timeouts"] = log_count(mta, start, "greeting_timeout")
            assert row["greeting_timeouts"] > 0, row
        elif name not in UNRECORDED:
            assert row["met_fault"], row


def under_way(batches, flows):
    """Each MTA has relayed at least one message of its batch. A flow that already ended (it holds at
    RELOAD_HOLD_AT until the roles ran) failed: its error is raised."""
    for flow in flows.values():
        if flow.done():
            flow.result()
    records = TAIL.records()
    return all(delivered(batch, records) for batch in batches.values())


def test_reload_under_load():
    """Re-run each role with a changed setting while 1,000 messages flow through its MTA: Postfix from 587 +
    STARTTLS + SMTP AUTH to 465 (implicit TLS) without AUTH (the relay allows AUTH on 587 only; the allowlist and
    the HELO name carry it), Sendmail (no 465 client) to another HELO name. 0 lost; the record shows where the old
    setting ends and the new one starts."""
    start = time.time()
    batches = {mta: Batch("reload", mta, RELOAD_BATCH, RUN) for mta in MTAS}
    subnet = relay_record.network_subnet("srt-reliability")
    # Without SMTP AUTH the relay needs the server's address in the allowlist (the stand-in allowlists the subnet).
    changes = {"postfix": {"relay_tls": "implicit", "relay_port": 465, "relay_auth": False, "relay_auth_username": "",
                           "relay_auth_password": "", "relay_allowlist": [subnet]},
               "sendmail": {"relay_helo_name": "mail.example.com"}}
    for mta in MTAS:
        podman("exec", MTAS[mta]["container"], "rm", "-f", GO_FILE)
    with ThreadPoolExecutor(4) as pool:
        flows = {mta: pool.submit(inject, batch, 25.0, RELOAD_HOLD_AT) for mta, batch in batches.items()}
        try:
            # The flow is under way when the roles start: each MTA has relayed a message of its batch.
            wait_for(lambda: under_way(batches, flows), timeout=180, interval=0.5, what="each MTA relaying its flow")
            runs = {mta: pool.submit(run_role, changes[mta], MTAS[mta]["container"]) for mta in MTAS}
            runs = {mta: run.result() for mta, run in runs.items()}
        finally:
            for mta in MTAS:
                podman("exec", MTAS[mta]["container"], "touch", GO_FILE)
        reconnects = {mta: flow.result() for mta, flow in flows.items()}
    for mta in MTAS:
        flush(mta)
    drain(batches.values())
    records = TAIL.records()
    checks = {"postfix": (lambda r: r["port"] == 587 and r["auth_user"] == "postfix@example.com",
                          lambda r: r["port"] == 465 and r["tls_mode"] == "implicit" and r["auth_user"] is None),
              "sendmail": (lambda r: r["helo"] == "mta-sendmail.corp.test", lambda r: r["helo"] == "mail.example.com")}
    report = {}
    for mta, batch in batches.items():
        run = runs[mta]
        assert run.returncode == 0, run.stdout[-3000:]
        row = fault_matrix.tally(batch, records, since=start, client_ip=IPS[mta])
        row.update(fault_matrix.settle(row, queued=queued(mta), bounced=log_count(mta, start)))
        row.update(seconds=round(time.time() - start), role_seconds=run.seconds, reconnects=reconnects[mta],
                   changed=recap(run, MTAS[mta]["container"])["changed"])
        switch = fault_matrix.switch_over(records, batch, *checks[mta])
        row["switch_over"] = switch
        ROWS.append(row)
        report[mta] = row
        print("\n%s: last old-setting transaction %s (%s), first new-setting transaction %s (%s); %d old, %d new, "
              "%d old after the first new" % (mta, switch["last_old"], switch["last_old_index"], switch["first_new"],
                                              switch["first_new_index"], switch["old"], switch["new"],
                                              switch["old_after_first_new"]))
        assert row["changed"] > 0, row
        assert row["lost"] == 0 and row["queued"] == 0 and row["bounced"] == 0, row
        assert row["delivered"] == RELOAD_BATCH, row
        # A duplicate can only be the message in flight at the reload: one copy under the old setting, among the
        # last ones sent with it, and one under the new (Sendmail's SIGHUP can end its queue runner after the relay's
        # 250, before the message leaves the queue: the new runner sends it again, when its turn comes). One runner,
        # so at most one such message per reload. Anything else is a bug.
        assert len(row["duplicate_ids"]) <= 1, row["duplicate_ids"]
        for message_id in row["duplicate_ids"]:
            copies = [r for r in records if r.get("kind") == "transaction" and r.get("message_id") == message_id
                      and r["verdict"] == "accepted"]
            assert len(copies) == 2 and checks[mta][0](copies[0]) and checks[mta][1](copies[1]), copies
            assert copies[0]["time"] >= switch["last_old_time"] - 1.0, (copies, switch)
        assert switch["old"] > 0 and switch["new"] > 0 and switch["neither"] == 0, switch
    RESULTS["reload"] = report


def test_no_secret_in_any_log():
    text = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.log").read_text(errors="replace")
    assert text
    for secret in PASSWORDS:
        assert secret not in text
