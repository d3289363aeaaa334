# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor on the managed host: find the MTA, read its queue and its log since a moment, summarise.

Read-only: every command run here only reads (``postqueue -j``, ``mailq``, ``qmail-qread``, ``journalctl``), so
check mode runs the same code. ``run`` is ``AnsibleModule.run_command``-like: ``run(argv) -> (rc, out, err)``.
"""

from __future__ import annotations

import glob
import os
import shutil
import time

from . import doctor, doctor_parsers as P

MAIL_LOGS = ("/var/log/mail.log", "/var/log/maillog", "/var/log/mail")
QMAIL_LOGS = ("/var/log/qmail/current", "/var/log/qmail/qmail-send/current", "/var/log/qmail/send/current")
GUARD_UNIT = "smarthost-relay-guard"
TAIL_BYTES = 32 * 1024 * 1024


def detect_mta(qmail_dir="/var/qmail", which=shutil.which, exists=os.path.exists):
    """postfix, qmail or sendmail (Postfix and qmail ship a ``sendmail`` too: they are looked for first)."""
    if which("postqueue") or exists("/usr/sbin/postqueue"):
        return "postfix"
    if exists(os.path.join(qmail_dir, "bin", "qmail-send")):
        return "qmail"
    if exists("/etc/mail/sendmail.cf") or which("sendmail"):
        return "sendmail"
    return None


def has_journal():
    return bool(shutil.which("journalctl")) and os.path.isdir("/run/systemd/system")


def journal(run, since, *match):
    """Journal lines (``-o short-unix``) since ``since`` that match ``match``; [] when journalctl fails."""
    rc, out, _err = run(["journalctl", "--quiet", "--no-pager", "-o", "short-unix", "--since", "@%d" % int(since)]
                        + list(match))
    return out.splitlines() if rc == 0 else []


def file_lines(path, since, now):
    """The lines of a classic log file (its last TAIL_BYTES) stamped at or after ``since``, or unstamped."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        stamp, _rest = P.log_prefix(line, now)
        if stamp is None or stamp >= since:
            out.append(line)
    return out


def mail_log(run, since, now, log_file=None, candidates=MAIL_LOGS):
    """``(source, lines)``: ``log_file`` when given, else the journal's mail facility, else the first classic
    file that exists."""
    if log_file:
        return log_file, file_lines(log_file, since, now)
    if has_journal():
        return "journal", journal(run, since, "SYSLOG_FACILITY=2")
    for path in candidates:
        if os.path.exists(path):
            return path, file_lines(path, since, now)
    return None, []


class Follower(object):
    """The mail log's lines written since the follower was made, all of them at every call: the journal's mail
    facility when systemd runs (``use_journal``), else ``log_file`` or the first classic file that exists, read
    from its size at the start (from the top once it shrank: multilog rotated ``current``). The test delivery
    follows its message with it; ``source`` is "journal", the file, or None when there is nothing to read."""

    def __init__(self, run, log_file=None, candidates=MAIL_LOGS, use_journal=True, clock=time.time):
        self.run = run
        self.since = clock() - 1
        self.path, self.offset = None, 0
        if log_file:
            self.path = log_file if os.access(log_file, os.R_OK) else None
        elif use_journal and has_journal():
            self.source = "journal"
            return
        else:
            self.path = next((path for path in candidates if os.path.exists(path)), None)
        self.source = self.path
        if self.path:
            self.offset = os.path.getsize(self.path)

    def lines(self):
        if self.source == "journal":
            return journal(self.run, self.since, "SYSLOG_FACILITY=2")
        if not self.path:
            return []
        try:
            if os.path.getsize(self.path) < self.offset:
                self.offset = 0
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                return handle.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []


def postfix(run, since, now, log_file=None):
    rc, out, err = run(["postqueue", "-j"])
    if rc != 0:
        raise RuntimeError("postqueue -j failed: %s" % (err or out).strip())
    source, lines = mail_log(run, since, now, log_file)
    return P.postfix_queue(out), P.postfix_log(lines, now), source


def sendmail(run, since, now, log_file=None, queue_dir="/var/spool/mqueue"):
    files = sorted(glob.glob(os.path.join(queue_dir, "qf*")))
    queue = []
    readable = os.access(queue_dir, os.R_OK | os.X_OK)
    for path in files:
        try:
            with open(path, "r", errors="replace") as handle:
                queue.append(P.sendmail_qf(os.path.basename(path), handle.read()))
        except OSError:
            readable = False
            break
    if not readable:
        rc, out, err = run(["mailq"])
        if rc != 0:
            raise RuntimeError("mailq failed: %s" % (err or out).strip())
        queue = P.sendmail_mailq(out, now)
    source, lines = mail_log(run, since, now, log_file)
    return queue, P.sendmail_log(lines, now), source


def qmail(run, since, now, log_file=None, qmail_dir="/var/qmail"):
    """The queue is None (not read, ``UNREAD``) where ``qmail-qread`` is missing: the log and the guard's are read
    all the same (a host on the qmail role whose qmail is not installed, or not where ``qmail_dir`` says)."""
    if not log_file:
        log_file = next((p for p in QMAIL_LOGS if os.access(p, os.R_OK)), None)
    source, lines = mail_log(run, since, now, log_file)
    events = P.qmail_log(lines, now)
    qread = os.path.join(qmail_dir, "bin", "qmail-qread")
    if not os.access(qread, os.X_OK):
        return None, events, source
    rc, out, err = run([qread])
    if rc != 0:
        raise RuntimeError("qmail-qread failed: %s" % (err or out).strip())
    return P.qmail_queue(out), events, source


# Each reader returns the queue as the MTA keeps it (None: not read, for the reason in UNREAD) and the events of
# its log; ``examine`` joins them once.
READERS = {"postfix": postfix, "sendmail": sendmail, "qmail": qmail}
UNREAD = {"qmail": "qmail-qread missing"}
# What the log adds to each queue entry (Sendmail's and qmail's queues keep no relay reply, or its first line only);
# Postfix's queue keeps its reasons.
QUEUE_JOINS = {"sendmail": P.sendmail_queue_with_log, "qmail": P.qmail_queue_with_log}


def guard_events(run, since, now):
    if not has_journal():
        return []
    return P.guard_log(journal(run, since, "-u", GUARD_UNIT), now)


def joined_events(mta, events, guarded):
    """The MTA's log events; behind the guard, a Sendmail reply's first line (all Sendmail logs) takes the whole
    reply from the guard's rewrite of it (``doctor_parsers.sendmail_guard_join``)."""
    if mta == "sendmail" and guarded:
        return P.sendmail_guard_join(events, guarded)
    return events


def joined_queue(mta, queue, events):
    """The queue entries with what the MTA's log adds to each (``QUEUE_JOINS``); [] for a queue not read."""
    if queue is None:
        return []
    join = QUEUE_JOINS.get(mta)
    return join(queue, events) if join else queue


def examine(run, mta, since, now, log_file=None, egress=None, guard=True, **paths):
    """The doctor's report for this host (``doctor.summarise``) plus where it read from."""
    queue, events, source = READERS[mta](run, since, now, log_file, **paths)
    # read after the MTA's log, so that each Sendmail line read finds the guard's rewrite logged before it
    guarded = guard_events(run, since, now) if guard else []
    events = joined_events(mta, events, guarded)
    report = doctor.summarise(joined_queue(mta, queue, events), events + guarded, now, mta=mta, egress=egress)
    if queue is None:
        doctor.queue_not_read(report, UNREAD[mta])
    report["log_source"] = source
    report["since"] = int(since)
    return report
