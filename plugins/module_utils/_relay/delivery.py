# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The post-change test delivery on the managed host (module ``relay_test_delivery``): one message submitted with
the MTA's own tool, followed to the relay's answer, and on failure explained with the doctor's catalogue.

* Postfix: ``sendmail -i``, then the mail log (journal or classic file, ``doctor_host.Follower``) by Message-ID to
  the queue id and to the recipient's ``status=``; a message that did not go is removed with ``postsuper -d``
  (only it), so it is not retried after a rollback.
* Sendmail: ``sendmail -Am -odi -v`` with the sendmail.cf on disk, in a private queue directory removed afterwards
  (the daemon, its queue and its configuration are never involved); the verbose transcript is read, never what
  the client sent (the AUTH exchange).
* qmail: ``qmail-inject``, the message's number from its file under ``queue/mess`` (or qmail-send's ``info msg``
  line), then qmail-send's log to the remote delivery's end. qmail has no tool to delete a message safely while
  qmail-send runs, so a test message it deferred stays queued and is retried.

Status: ``sent``, ``unconfirmed`` (qmail without a readable log: the message left the queue), ``deferred``,
``bounced``, ``timeout`` or ``not submitted``. The log readers are the doctor's (``doctor_parsers``).
``run(argv, data=None, timeout=None, merge=False) -> (rc, out, err)``, rc None when ``timeout`` passed.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from email.utils import formatdate

from . import doctor, doctor_host, doctor_parsers as P

DELIVERED = ("sent", "unconfirmed")
SUBJECT = "Subject: smarthost.relay %s test delivery from %s"
POLL = 0.5
RETRY_EVERY = 5.0  # seconds between requests to retry a test message whose attempt said nothing


def run_command(argv, data=None, timeout=None, merge=False):
    """``subprocess.run`` in the C locale; ``merge`` joins stderr to stdout in the order written (the MTAs'
    transcripts and complaints), else stderr is apart (journalctl's hints stay out of the log lines)."""
    try:
        result = subprocess.run(argv, input=data, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                                universal_newlines=True, timeout=timeout, check=False,
                                env=dict(os.environ, LC_ALL="C"))
    except subprocess.TimeoutExpired:
        return None, "", ""
    except OSError as exc:
        return 127, str(exc), ""
    return result.returncode, result.stdout, result.stderr or ""


def message_id(domain):
    return "<smarthost-relay-test.%s@%s>" % (uuid.uuid4().hex, domain or "localhost")


NAMES = {"postfix": "Postfix", "sendmail": "Sendmail", "qmail": "qmail"}


def message(mta, sender, recipient, mid, host=None):
    """The test message; qmail-inject takes UNIX line ends, the sendmail programs CRLF."""
    host, name = host or socket.getfqdn(), NAMES[mta]
    lines = ["From: <%s>" % sender, "To: <%s>" % recipient, SUBJECT % (name, host),
             "Date: %s" % formatdate(localtime=True), "Message-ID: %s" % mid, "Auto-Submitted: auto-generated", ""]
    if mta == "sendmail":
        lines.append("This message tests the relay configuration that smarthost.relay.sendmail has just written.")
    else:
        lines += ["%s on %s was configured to relay through the smarthost;" % (name, host),
                  "this message tests that the relay accepts its mail."]
    return ("\n" if mta == "qmail" else "\r\n").join(lines + [""])


def _report(mid, sender, recipient, **fields):
    out = {"message_id": mid, "sender": sender, "recipient": recipient, "queue_id": None, "detail": "",
           "removed": False, "log_source": None}
    out.update(fields)
    return out


# ---- Postfix ----------------------------------------------------------------------------------------

def postfix_outcome(lines, mid, recipient, after=0):
    """``(queue id, delivery event or None)`` of the test message in Postfix's log lines: its first delivery
    attempt, or the one after the first ``after``."""
    queue_id = P.postfix_queue_id(lines, mid)
    if queue_id is None:
        return None, None
    events = [e for e in P.postfix_log(lines) if e["queue_id"] == queue_id and e["recipient"] == recipient]
    return queue_id, events[after] if len(events) > after else None


# A deferral that says nothing about the new configuration: the relay did not answer in time, or answered 421 (try
# again later, e.g. the relay's connection-burst limit). Such an attempt is retried within the timeout.
_NO_VERDICT_LOCAL = re.compile(r"timed out while|connection timed out", re.IGNORECASE)


def says_nothing(event):
    """Whether a deferred attempt tells nothing about the configuration (``_NO_VERDICT_LOCAL``, a 421)."""
    if event["status"] != "deferred":
        return False
    if event["reply"]:
        return event["reply"].startswith("421")
    return bool(_NO_VERDICT_LOCAL.search(event["local"] or ""))


def postfix_follow(params, run, log, mid, clock, sleep):
    """``(queue id, event or None)``: the test message followed in the log until an attempt gives a verdict or the
    timeout passes; an attempt that ``says_nothing`` is retried at once (``postqueue -i``, Postfix's own retry
    would wait ``minimal_backoff_time``), and is the event returned when the time ran out."""
    postqueue = os.path.join(os.path.dirname(params["postsuper"]), "postqueue")
    deadline = clock() + params["timeout"]
    queue_id, event, attempts, nudged = None, None, 0, None
    while clock() < deadline:
        queue_id, latest = postfix_outcome(log.lines(), mid, recipient=params["recipient"], after=attempts)
        if latest is not None:
            event = latest
            if not says_nothing(event):
                break
            attempts += 1
        if attempts and (nudged is None or clock() - nudged >= RETRY_EVERY):
            # at most every RETRY_EVERY seconds (a 421 may be the relay's answer to a burst of connections), and
            # again while no new attempt shows: a request before the message is in the deferred queue does nothing
            run([postqueue, "-i", queue_id])
            nudged = clock()
        sleep(POLL)
    return queue_id, event


def postfix(params, run=run_command, clock=time.time, sleep=time.sleep):
    sender, recipient = params["sender"], params["recipient"]
    mid = message_id(sender.rpartition("@")[2])
    log = doctor_host.Follower(run, params["log_file"])
    rc, out, _err = run([params["sendmail"], "-i", "-f", sender, "--", recipient],
                        data=message("postfix", sender, recipient, mid), merge=True)
    if rc != 0:
        return _report(mid, sender, recipient, status="not submitted", detail=out.strip(), log_source=log.source)
    queue_id, event = postfix_follow(params, run, log, mid, clock, sleep)
    report = _report(mid, sender, recipient, queue_id=queue_id, log_source=log.source)
    if event is None:
        report.update(status="timeout", detail="no delivery status in the mail log within the timeout")
    else:
        report.update(status=event["status"], detail=event["local"] or "", event=event)
    if report["status"] != "sent" and queue_id is not None:
        # Only the test message: it must not be retried with a configuration that is rolled back.
        report["removed"] = run([params["postsuper"], "-d", queue_id])[0] == 0
    return report


# ---- Sendmail ---------------------------------------------------------------------------------------

_SM_NUMBERED = re.compile(r"^([2-5][0-9]{2})([ -])")


def visible(line):
    """Transcript lines that may be shown: never what the client sent (">>> ", the AUTH exchange)."""
    return not line.startswith(">>>") and "AUTH" not in line.upper().split(" ", 1)[0]


def sendmail_status(lines, recipient):
    """``(status, status line)`` from Sendmail's verbose transcript: the recipient's last ``<rcpt>... text``."""
    pattern = re.compile(r"^<?%s>?\.\.\. (.*)$" % re.escape(recipient), re.IGNORECASE)
    status_lines = [m.group(1) for m in (pattern.match(line) for line in lines) if m]
    final = [s for s in status_lines if not s.startswith("Connecting to")]
    if not final:
        return "deferred", status_lines[-1] if status_lines else "no delivery status from sendmail"
    last = final[-1]
    if last.startswith("Sent"):
        return "sent", last
    if "Deferred" in last:
        return "deferred", last
    return "bounced", last


def sendmail_refusal(lines):
    """``(reply lines, stage)``: the relay's last 4xx/5xx reply in the transcript (its continuation lines joined)
    and the command it answered, read from the verb only (the AUTH line's argument is the secret)."""
    reply, stage, command = [], None, None
    for line in lines:
        if line.startswith(">>> "):
            verb = line[4:].split(" ", 1)[0].split(":", 1)[0].upper()
            command = {"MAIL": "MAIL FROM", "RCPT": "RCPT TO"}.get(verb, verb)
            continue
        match = _SM_NUMBERED.match(line)
        if not match:
            continue
        if reply and reply[-1][3:4] == "-" and reply[-1][:3] == match.group(1):
            reply.append(line)
        elif match.group(1)[0] in "45":
            reply, stage = [line], doctor.stage_of(command) if command else "CONNECT"
    return reply, stage


def sendmail_event(lines, status_line):
    """The failure as the doctor reads it: the relay's refusal from the transcript when the status line
    (``Deferred: 450 …``) quotes none or the same code, else the status line's."""
    reply, local = P.sendmail_reason(status_line)
    refusal, stage = sendmail_refusal(lines)
    if refusal and (reply is None or refusal[-1][:3] == reply[:3]):
        reply = refusal  # every line of it: the status line quotes the last one only
    else:
        stage = None
    return {"reply": reply, "local": local, "stage": stage or (doctor.stage_of(local) if reply is None else None)}


def sendmail(params, run=run_command, clock=time.time, sleep=time.sleep):  # pylint: disable=unused-argument
    sender, recipient = params["sender"], params["recipient"]
    mid = message_id(socket.getfqdn())
    queue = tempfile.mkdtemp(prefix="smarthost-relay-test.", dir=params["queue_parent"])
    os.chmod(queue, 0o700)
    limit = max(params["timeout"], 5)
    argv = [params["sendmail"], "-Am", "-odi", "-v", "-N", "never", "-oep", "-OQueueDirectory=%s" % queue,
            "-OTimeout.connect=%ds" % limit, "-OTimeout.iconnect=%ds" % limit, "-OTimeout.initial=%ds" % limit,
            "-f", sender, recipient]
    report = _report(mid, sender, recipient)
    try:
        rc, out, _err = run(argv, data=message("sendmail", sender, recipient, mid), timeout=limit + 30, merge=True)
        if rc is None:
            report.update(status="timeout", detail="no answer from the relay within %d seconds" % (limit + 30))
        else:
            lines = out.splitlines()
            report["status"], report["detail"] = sendmail_status(lines, recipient)
            report["transcript"] = [line for line in lines if visible(line)][-12:]
            if report["status"] != "sent":
                report["event"] = sendmail_event(lines, report["detail"])
    finally:
        shutil.rmtree(queue, ignore_errors=True)
    # The private queue is gone, and the test message with it: nothing is retried later.
    report["removed"] = report["status"] != "sent"
    return report


# ---- qmail ------------------------------------------------------------------------------------------

def qmail_queued(qmail_dir, mid):
    """The number of the message file under ``queue/mess`` that holds ``mid``, or None."""
    needle = mid.encode()
    for path in glob.glob(os.path.join(qmail_dir, "queue", "mess", "*", "*")):
        try:
            with open(path, "rb") as handle:
                if needle in handle.read(65536):
                    return os.path.basename(path)
        except OSError:
            continue
    return None


def qmail_outcome(lines, msg, recipient):
    """``(event or None, ended)`` of the remote delivery of message ``msg`` to ``recipient``: the first that
    succeeded or failed for good, else the latest deferral (qmail retries); ``ended`` once ``end msg`` was
    logged."""
    found = None
    for event in P.qmail_log(lines):
        if event["queue_id"] != msg or not event["relay"] or event["recipient"].lower() != recipient.lower():
            continue
        if found is None or found["status"] == "deferred":
            found = event
    return found, P.qmail_ended(lines, msg)


def qmail(params, run=run_command, clock=time.time, sleep=time.sleep):
    sender, recipient, qmail_dir = params["sender"], params["recipient"], params["qmail_dir"]
    mid = message_id(sender.rpartition("@")[2])
    log = doctor_host.Follower(run, params["log_file"], candidates=(), use_journal=False)
    rc, out, _err = run([os.path.join(qmail_dir, "bin", "qmail-inject"), "-f" + sender, "-a", recipient],
                        data=message("qmail", sender, recipient, mid), merge=True)
    report = _report(mid, sender, recipient, log_source=log.source)
    if rc != 0:
        return dict(report, status="not submitted", detail="qmail-inject exited %s: %s" % (rc, out.strip()))
    msg = qmail_queued(qmail_dir, mid)
    deadline = clock() + params["timeout"]
    event, ended, status = None, False, None
    while clock() < deadline:
        lines = log.lines()
        if msg is None:
            msg = (P.qmail_messages_from(lines, sender) or [None])[-1]
        if msg is not None:
            event, ended = qmail_outcome(lines, msg, recipient)
            if event is not None and event["status"] != "deferred":
                status = event["status"]
                break
            if log.source is None and not glob.glob(os.path.join(qmail_dir, "queue", "mess", "*", msg)):
                status = "unconfirmed"
                break
        sleep(POLL)
    report.update(queue_id=msg, ended=ended)
    if status == "unconfirmed":
        return dict(report, status=status, detail="no readable qmail-send log; the message left the queue")
    if event is None:
        return dict(report, status="timeout", detail="no delivery result within %d s" % params["timeout"])
    detail = event["local"] or ""
    if event["status"] == "deferred":
        detail = "still queued after %d s; last attempt: %s" % (params["timeout"], detail)
    return dict(report, status=event["status"], detail=detail, event=event)


DELIVER = {"postfix": postfix, "sendmail": sendmail, "qmail": qmail}


# ---- the outcome, explained ---------------------------------------------------------------------------

def deliver(mta, params, run=run_command, clock=time.time, sleep=time.sleep):
    """The test delivery's report: what the MTA said, whether the test message was removed, and for a failure the
    relay doctor's ``diagnosis`` of the reply (class, stage, the fix naming the variable)."""
    report = DELIVER[mta](params, run=run, clock=clock, sleep=sleep)
    event = report.pop("event", None)
    report["delivered"] = report["status"] in DELIVERED
    if not report["delivered"] and event is not None:
        report["diagnosis"] = doctor.diagnose(event["reply"], event["local"], event["stage"],
                                              sender=params["sender"], mta=mta)
    report["msg"] = summary(mta, report)
    return report


def _fix(fix):
    value, why = fix["value"], fix["why"]
    return "%s%s%s" % (fix["variable"], "" if value is None else " = %s" % value, " (%s)" % why if why else "")


def explanation(diagnosis):
    """One sentence of the doctor's: the class, where it stopped, the cause and the fixes."""
    stage = " at %s" % diagnosis["stage"] if diagnosis.get("stage") else ""
    reply = diagnosis.get("reply") or {}
    words = " ".join(str(reply[key]) for key in ("code", "status", "text") if reply.get(key))
    said = ', the relay said "%s"' % words if words else ""
    fixes = "; or ".join(_fix(fix) for fix in diagnosis["fixes"])
    return "relay doctor: %s (%s)%s%s: %s; fix: %s" % (
        diagnosis["class"], diagnosis["title"], stage, said, diagnosis["cause"], fixes)


def summary(mta, report):
    """The task's message: what happened to the test message, and why when the relay did not take it."""
    where = "queue id %s" % report["queue_id"] if report.get("queue_id") else report["message_id"]
    if report["delivered"]:
        return "the relay accepted the test message to %s (%s): %s" % (report["recipient"], where, report["detail"])
    text = "the relay did not accept the test message to %s (%s, %s): %s" % (
        report["recipient"], where, report["status"], report["detail"])
    numbered = [line for line in report.get("transcript", ()) if _SM_NUMBERED.match(line)][-3:]
    if numbered:
        text += " (the relay's last replies: %s)" % " / ".join(numbered)
    if report["removed"]:
        text += "; the test message was removed from %s's queue" % mta
    if report.get("diagnosis"):
        text += ". " + explanation(report["diagnosis"])
    return text
