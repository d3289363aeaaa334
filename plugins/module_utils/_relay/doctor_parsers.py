# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Readers of the MTAs' queues and logs for the relay doctor, written from the formats the MTAs document.

Every reader is a pure function of text, so that each layout is tested without the MTA. They return

* queue entries: ``{"queue_id", "arrival", "sender", "recipients", "reply", "local", "stage"}`` where ``reply``
  is the relay's own words (a string, or a list of reply lines) and ``local`` the MTA's text around them;
* log events: ``{"time", "queue_id", "recipient", "sender", "status", "reply", "local", "stage", "relay"}``,
  status one of sent, deferred, bounced; ``relay`` False for deliveries that did not go to a relay (local mail).
  The relay guard's rewrites also carry ``rewritten`` (the lines it handed on); a Sendmail event joined to one
  (``sendmail_guard_join``) carries ``guard_join`` (``{"logged", "guard_time"}``: the line Sendmail logged, the
  rewrite's time).

Log lines may carry any of the prefixes ``log_prefix`` knows: ``journalctl -o short-unix``, RFC 3339 (rsyslog's
default on Debian 12 and later), the traditional syslog stamp (no year), multilog's TAI64N, or none
(``journalctl -o cat``).
"""

from __future__ import annotations

import ast
import bisect
import calendar
import json
import re
import time

from . import replies
from .doctor import stage_of

# ---- line prefixes -------------------------------------------------------------------------------

_UNIX = re.compile(r"^(\d{9,11}\.\d+|\d{9,11}) (.*)$")
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)? (.*)$")
_TRADITIONAL = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d) (.*)$")
_TAI64N = re.compile(r"^@([0-9a-f]{16})[0-9a-f]{8} (.*)$")
_TAI64_OFFSET = 4611686018427387914  # 2**62 + 10: TAI64 label of the Unix epoch
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def log_prefix(line, now=None):
    """``(epoch or None, rest)`` of one log line: its time stamp read and removed (the host name stays in
    ``rest`` for syslog formats)."""
    match = _UNIX.match(line)
    if match:
        return float(match.group(1)), match.group(2)
    match = _RFC3339.match(line)
    if match:
        stamp = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
        zone = match.group(3)
        if zone and zone != "Z":
            sign = -1 if zone[0] == "+" else 1
            digits = zone[1:].replace(":", "")
            stamp += sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        return stamp + float(match.group(2) or 0), match.group(4)
    match = _TAI64N.match(line)
    if match:
        return float(int(match.group(1), 16) - _TAI64_OFFSET), match.group(2)
    match = _TRADITIONAL.match(line)
    if match and match.group(1) in _MONTHS:
        now = time.time() if now is None else now
        year = time.localtime(now).tm_year
        text = "%d %02d %02d %s" % (year, _MONTHS[match.group(1)], int(match.group(2)), match.group(3))
        stamp = time.mktime(time.strptime(text, "%Y %m %d %H:%M:%S"))
        if stamp > now + 86400:  # December's lines read in January
            stamp = time.mktime(time.strptime(text.replace(str(year), str(year - 1), 1), "%Y %m %d %H:%M:%S"))
        return stamp, match.group(4)
    return None, line


def _with_times(lines, now=None):
    for line in lines:
        line = line.rstrip("\n")
        if line.strip():
            yield log_prefix(line, now)


# ---- Postfix --------------------------------------------------------------------------------------

_PF_DELIVERY = re.compile(r"\b([0-9A-Za-z]{5,}): to=<([^>]*)>,(.*?) status=(sent|deferred|bounced)(?: \((.*)\))?\s*$")
_PF_FROM = re.compile(r"\b([0-9A-Za-z]{5,}): from=<([^>]*)>, size=")
_PF_MESSAGE_ID = re.compile(r"(?:^|\s)([0-9A-Za-z]{5,}): message-id=(\S+)")
_PF_RELAY = re.compile(r"\brelay=([^,\s]+)")
_PF_SAID = re.compile(r"^(?:host \S+ said|SASL authentication failed; server \S+ said): (.*?)"
                      r"(?: \(in reply to (.*?) command\))?$")
_PF_REFUSED = re.compile(r"^host \S+ refused to talk to me: (.*)$")
# qmgr's reason for the messages it holds back while a destination is marked dead after a failed attempt: the
# failure that marked it follows the prefix
_PF_SUSPENDED = "delivery temporarily suspended: "
_LOCAL_RELAYS = ("local", "none", "virtual")


def _sasl_line_ends(reply):
    """Postfix keeps a SASL failure's reply with its line ends, and its logging prints each as "?": read them as
    the line ends they were ("…password?535-5.7.8 given…"), where the reply's own code follows."""
    code = reply[:3]
    if not code.isdigit():
        return reply
    return re.sub(r"\?(?=%s[- ])" % code, "\n", reply)


def postfix_reason(text):
    """``(reply, local, stage)`` of a Postfix delivery status text or ``delay_reason``: the relay's reply after
    ``said:`` (stage from ``in reply to … command``; AUTH for a SASL failure; CONNECT for a greeting refused),
    else the whole text as the MTA's own. qmgr's ``delivery temporarily suspended: `` before any of them is read
    through."""
    text = (text or "").strip()
    if text.startswith(_PF_SUSPENDED):
        reply, _local, stage = postfix_reason(text[len(_PF_SUSPENDED):])
        return reply, text, stage
    match = _PF_SAID.match(text)
    if match:
        stage = stage_of(match.group(2)) if match.group(2) else None
        reply = match.group(1)
        if text.startswith("SASL"):
            stage = "AUTH"
            reply = _sasl_line_ends(reply)
        return reply, text, stage
    match = _PF_REFUSED.match(text)
    if match:
        return match.group(1), text, "CONNECT"
    return None, text, stage_of(text) if text else None


def postfix_queue_id(lines, message_id):
    """The queue id cleanup logged for ``message_id`` (``QUEUEID: message-id=<…>``), or None."""
    for _stamp, rest in _with_times(lines):
        match = _PF_MESSAGE_ID.search(rest)
        if match and match.group(2) == message_id:
            return match.group(1)
    return None


def postfix_queue(text):
    """Queue entries from ``postqueue -j`` (Postfix 3.1+: one JSON object per line)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        item = json.loads(line)
        recipients = item.get("recipients") or []
        reason = next((r.get("delay_reason") for r in recipients if r.get("delay_reason")), "")
        reply, local, stage = postfix_reason(reason) if reason else (None, None, None)
        out.append({"queue_id": item.get("queue_id"), "arrival": item.get("arrival_time"),
                    "sender": item.get("sender"), "recipients": [r.get("address") for r in recipients],
                    "queue_name": item.get("queue_name"), "reply": reply, "local": local, "stage": stage})
    return out


def postfix_log(lines, now=None):
    """Delivery events from Postfix's log lines (smtp, lmtp, local, error, qmgr)."""
    senders, events = {}, []
    for stamp, rest in _with_times(lines, now):
        match = _PF_FROM.search(rest)
        if match:
            senders[match.group(1)] = match.group(2)
            continue
        match = _PF_DELIVERY.search(rest)
        if not match:
            continue
        queue_id, recipient, fields, status, text = match.groups()
        relay = _PF_RELAY.search(fields)
        relay = relay.group(1) if relay else "none"
        reply, local, stage = postfix_reason(text)
        to_relay = relay.split("[", 1)[0] not in _LOCAL_RELAYS and not relay.startswith("private/")
        if status != "sent" and relay == "none":
            to_relay = True  # the relay could not be reached at all
        events.append({"time": stamp, "queue_id": queue_id, "recipient": recipient,
                       "sender": senders.get(queue_id), "status": status, "reply": reply, "local": local,
                       "stage": stage, "relay": to_relay})
    return events


# ---- Sendmail -------------------------------------------------------------------------------------

_SM_DELIVERY = re.compile(r"\b([0-9A-Za-z]{8,}): to=(.*?), (?:.*?, )?dsn=([245]\.\d{1,3}\.\d{1,3}), (.*)$")
_SM_FROM = re.compile(r"\b([0-9A-Za-z]{8,}): from=<?([^>,]*)>?, size=")
_SM_MAILER = re.compile(r"\bmailer=([^,\s]+)")
_SM_RELAY = re.compile(r"\brelay=([^,\s]+)")
_SM_CONNECTED = re.compile(r"\brelay=[^,\s]+ \[[^\]]+\]")
# Sendmail's own answer to DATA (srvrsmtp.c): a message handed from the submission program (MSP) to this host's
# daemon, not a delivery to the relay, which answers with its own text.
_SM_LOCAL_HANDOFF = re.compile(r"^Sent \([0-9A-Za-z]{8,} Message accepted for delivery\)$")
_SM_LOCAL_MAILERS = ("local", "prog", "*file*", "*include*")
_SM_FIELD = re.compile(r"(?:^|, )(stat|reply)=(.*?)(?=, (?:stat|reply)=|$)")
_SM_DEFERRED = re.compile(r"^(?:Deferred|Service unavailable|Sent)(?: \(|: )?(.*?)\)?$")
_SM_FAILURE_REPLY = re.compile(r"^[45][0-9]{2}[ -]")
# The session's TLS, logged without a queue id by the process that delivers (tls.c tls_get_info at LogLevel 9 and
# up; deliver.c's rscheck of tls_server when it refuses the session, LogLevel 6 and up).
_SM_PID = re.compile(r"\[(\d+)\]: ")
_SM_STARTTLS = re.compile(r"^STARTTLS=client, relay=([^,\s]+), version=[^,]*, verify=([A-Z_]+)")
_SM_TLS_SERVER = re.compile(r"^ruleset=tls_server, arg1=([A-Z_]+), relay=([^,\s]+), ")


def sendmail_reason(stat, reply=None):
    """``(reply, local)`` of Sendmail's ``stat=`` (``Deferred: 450 4.2.1 …``) and ``reply=`` (8.16.1+) texts.

    Only a 4xx/5xx is the refusal: after a 421 at EHLO, 8.17.1's ``reply=`` can carry the relay's answer to the
    QUIT that followed (usersmtp.c keeps the last reply line read), while ``stat=`` quotes the 421 itself."""
    match = _SM_DEFERRED.match(stat or "")
    inner = match.group(1) if match else ""
    for candidate in (reply, inner):
        if candidate and _SM_FAILURE_REPLY.match(candidate):
            return candidate, stat
    return None, stat


def _sendmail_host(name):
    return (name or "").strip("[]").rstrip(".").lower()


def _sendmail_session_tls(rest, sessions):
    """Record a STARTTLS=client or tls_server line in ``sessions`` ((pid, relay) -> {"verify", "logged"});
    True when ``rest`` was one."""
    pid = _SM_PID.search(rest)
    if not pid:
        return False
    message = rest[pid.end():]
    match = _SM_STARTTLS.match(message)
    if match:
        relay, verify = match.groups()
    else:
        match = _SM_TLS_SERVER.match(message)
        if not match:
            return False
        verify, relay = match.groups()
    sessions[(pid.group(1), _sendmail_host(relay))] = {"verify": verify, "logged": message}
    return True


def _sendmail_process_relay(rest):
    """(pid, relay host) of a delivery line, or None: what joins it to its process's session and attempts."""
    pid, relay = _SM_PID.search(rest), _SM_RELAY.search(rest)
    return (pid.group(1), _sendmail_host(relay.group(1))) if pid and relay else None


def _sendmail_tls_of(rest, sessions):
    """The TLS of the session a delivery line was sent in: the latest STARTTLS=client (or tls_server) line of the
    same process for the same relay, or None."""
    return sessions.get(_sendmail_process_relay(rest))


def _sendmail_cached_reply(key, stat, attempts):
    """``(reply, stage)`` for a failure Sendmail did not try itself, or None.

    Once a connection to the relay failed, the same queue run defers each further message for that host from its
    host status (deliver.c's mci cache) without connecting: the line names the relay without an address
    (``relay=relay.smarthost.test.,``), carries no reply= and repeats the failure's stat= or only "Deferred". The
    refusal is the process's last real attempt on that relay (``key``: the line's process and relay)."""
    attempt = attempts.get(key)
    if attempt is None or stat not in ("Deferred", attempt["stat"]):
        return None
    return attempt["reply"], attempt["stage"]


def sendmail_log(lines, now=None):
    """Delivery events from Sendmail's log lines (``to=…, dsn=…, stat=…[, reply=…]``), each failure joined with
    the TLS its session logged (``tls``: ``{"verify", "logged"}``) and, when Sendmail deferred it from its host
    status without connecting, with the reply of the attempt that set that status."""
    senders, sessions, attempts, events = {}, {}, {}, []
    for stamp, rest in _with_times(lines, now):
        match = _SM_FROM.search(rest)
        if match:
            senders[match.group(1)] = match.group(2)
            continue
        if _sendmail_session_tls(rest, sessions):
            continue
        match = _SM_DELIVERY.search(rest)
        if not match:
            continue
        queue_id, recipients, dsn, tail = match.groups()
        fields = dict(_SM_FIELD.findall(tail))
        if "stat" not in fields:
            continue
        mailer = _SM_MAILER.search(rest)
        mailer = mailer.group(1) if mailer else ""
        reply, local = sendmail_reason(fields.get("stat"), fields.get("reply"))
        stage = stage_of(local) if reply is None else None
        status = {"2": "sent", "4": "deferred", "5": "bounced"}[dsn[0]]
        tls = _sendmail_tls_of(rest, sessions) if status != "sent" else None
        key, connected = _sendmail_process_relay(rest), _SM_CONNECTED.search(rest)
        cached = (_sendmail_cached_reply(key, local, attempts)
                  if status != "sent" and reply is None and not connected else None)
        if cached:
            reply, stage = cached
        elif connected and key:
            attempts[key] = None if status == "sent" else {"reply": reply, "stage": stage, "stat": local}
        for recipient in recipients.split(","):
            events.append({"time": stamp, "queue_id": queue_id, "recipient": recipient.strip().strip("<>"),
                           "sender": senders.get(queue_id), "status": status, "reply": reply, "local": local,
                           "stage": stage, "tls": tls,
                           "relay": mailer not in _SM_LOCAL_MAILERS and not _SM_LOCAL_HANDOFF.match(local or "")})
    return events


def sendmail_queue_with_log(queue, events):
    """The queue entries with what the log adds to each: Sendmail's queue keeps only its own status line (``M``,
    or mailq's), so the latest logged failure of the same queue id gives the relay's reply (8.16.1+ ``reply=``)
    where the queue has none, or where it keeps the first line the guard join completed in the log
    (``sendmail_guard_join``), and its session's TLS. Applying it again to joined events is safe."""
    latest = {}
    for event in events:
        if event["status"] != "sent" and event.get("queue_id"):
            latest[event["queue_id"]] = event
    out = []
    for entry in queue:
        event = latest.get(entry["queue_id"])
        if event is not None:
            entry = dict(entry, tls=event.get("tls"))
            if event.get("reply") is not None and (entry.get("reply") is None or _same_first_line(entry, event)):
                entry.update(reply=event["reply"], stage=event.get("stage"))
        out.append(entry)
    return out


def _same_first_line(entry, event):
    """True when the queue keeps the very line that ``event`` logged before the guard join completed it."""
    joined = event.get("guard_join")
    return bool(joined) and isinstance(entry.get("reply"), str) and (
        _first_line_key(entry["reply"]) == _first_line_key(joined["logged"]))


def sendmail_qf(name, text):
    """A queue entry from one ``qf`` file (``name``: its file name, ``qf<queue id>``): ``T`` creation time, ``S``
    sender, ``R`` recipients, ``M`` the status message of the last attempt."""
    entry = {"queue_id": name[2:] if name.startswith("qf") else name, "arrival": None, "sender": None,
             "recipients": [], "reply": None, "local": None, "stage": None}
    for line in text.splitlines():
        kind, value = line[:1], line[1:]
        if kind == "T" and value.isdigit():
            entry["arrival"] = int(value)
        elif kind == "S":
            entry["sender"] = value.strip("<>")
        elif kind == "R":
            entry["recipients"].append(value.split(":", 1)[-1].strip("<>"))
        elif kind == "M" and value:
            entry["reply"], entry["local"] = sendmail_reason(value)
            entry["stage"] = stage_of(value) if entry["reply"] is None else None
    return entry


_MAILQ_HEAD = re.compile(r"^([0-9A-Za-z]{8,})([*X-]?)\s+(\d+)\s+(\w{3} \w{3} +\d+ \d\d:\d\d)\s+<([^>]*)>")


def sendmail_mailq(text, now=None):
    """Queue entries from ``mailq`` (``sendmail -bp``): a head line (queue id, size, queue time, sender), the
    status of the last attempt in parentheses under it, then the recipients."""
    now = time.time() if now is None else now
    out, entry = [], None
    for line in text.splitlines():
        match = _MAILQ_HEAD.match(line)
        if match:
            arrival = _mailq_time(match.group(4), now)
            entry = {"queue_id": match.group(1), "arrival": arrival, "sender": match.group(5), "recipients": [],
                     "reply": None, "local": None, "stage": None}
            out.append(entry)
            continue
        stripped = line.strip()
        if entry is None or not stripped or stripped.startswith(("Total requests", "/", "-----", "MSP Queue")):
            continue
        if stripped.startswith("(") and stripped.endswith(")") and not entry["recipients"]:
            status = stripped[1:-1]
            entry["reply"], entry["local"] = sendmail_reason(status)
            entry["stage"] = stage_of(status) if entry["reply"] is None else None
        elif stripped.startswith("<") or "@" in stripped:
            entry["recipients"].append(stripped.strip("<>"))
    return out


def _mailq_time(text, now):
    parts = text.split()
    year = time.localtime(now).tm_year
    try:
        stamp = time.mktime(time.strptime("%d %s %s %s" % (year, parts[1], parts[2], parts[3]), "%Y %b %d %H:%M"))
    except ValueError:
        return None
    if stamp > now + 86400:
        stamp = time.mktime(time.strptime("%d %s %s %s" % (year - 1, parts[1], parts[2], parts[3]),
                                          "%Y %b %d %H:%M"))
    return stamp


# ---- qmail ----------------------------------------------------------------------------------------

_QM_INFO = re.compile(r"info msg (\d+): bytes \d+ from <([^>]*)>")
_QM_START = re.compile(r"starting delivery (\d+): msg (\d+) to (remote|local) (\S+)")
_QM_RESULT = re.compile(r"delivery (\d+): (success|failure|deferral): (.*?)\s*$")
_QM_END = re.compile(r"end msg (\d+)")
_QM_SAID = "Remote host said: "


def qmail_decode(report):
    """qmail-send's log form of a qmail-remote report back to its lines: ``/`` ends a line, ``_`` stands for a
    blank (and for any byte qmail-send would not log; an ``_`` in the original text cannot be told apart)."""
    return [line.replace("_", " ").strip() for line in report.split("/") if line.strip("_ ")]


def qmail_reason(report):
    """``(reply, local, stage)`` of a decoded qmail-remote report: the lines from ``Remote host said:`` on are the
    relay's reply; the line before says at which step (sender rejected, name rejected, recipient …)."""
    lines = qmail_decode(report)
    for index, line in enumerate(lines):
        if line.startswith(_QM_SAID):
            reply = [line[len(_QM_SAID):]] + lines[index + 1:]
            local = " ".join(lines[:index]) or None
            stage = stage_of(local) if local else None
            return reply, " ".join(lines), stage or ("RCPT" if not local else None)
    text = " ".join(lines)
    return None, text, stage_of(text)


def qmail_log(lines, now=None):
    """Delivery events from qmail-send's log, deliveries joined to their messages by delivery number."""
    senders, deliveries, events = {}, {}, []
    for stamp, rest in _with_times(lines, now):
        match = _QM_INFO.search(rest)
        if match:
            senders[match.group(1)] = match.group(2)
            continue
        match = _QM_START.search(rest)
        if match:
            deliveries[match.group(1)] = (match.group(2), match.group(3), match.group(4))
            continue
        match = _QM_RESULT.search(rest)
        if match and match.group(1) in deliveries:
            msg, channel, recipient = deliveries.pop(match.group(1))
            status = {"success": "sent", "failure": "bounced", "deferral": "deferred"}[match.group(2)]
            reply, local, stage = qmail_reason(match.group(3))
            events.append({"time": stamp, "queue_id": msg, "recipient": recipient, "sender": senders.get(msg),
                           "status": status, "reply": reply if status != "sent" else None, "local": local,
                           "stage": stage, "relay": channel == "remote"})
    return events


_QREAD_HEAD = re.compile(r"^(\d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d) GMT\s+#(\d+)\s+\d+\s+<([^>]*)>")
_QREAD_RCPT = re.compile(r"^\s+(done\s+)?(remote|local)\s+(\S+)")


def qmail_messages_from(lines, sender):
    """Numbers of the messages qmail-send logged (``info msg N: … from <sender>``) as coming from ``sender``."""
    found = []
    for _stamp, rest in _with_times(lines):
        match = _QM_INFO.search(rest)
        if match and match.group(2).lower() == sender.lower():
            found.append(match.group(1))
    return found


def qmail_ended(lines, msg):
    """True once qmail-send logged ``end msg`` for message number ``msg``."""
    return any(match and match.group(1) == msg for match in (_QM_END.search(rest) for _s, rest in _with_times(lines)))


def qmail_queue(text, events=()):
    """Queue entries from ``qmail-qread`` (messages with recipients still to deliver), joined with ``events``
    (``qmail_queue_with_log``) when given."""
    out, entry = [], None
    for line in text.splitlines():
        match = _QREAD_HEAD.match(line)
        if match:
            arrival = calendar.timegm(time.strptime(match.group(1), "%d %b %Y %H:%M:%S"))
            entry = {"queue_id": match.group(2), "arrival": arrival, "sender": match.group(3), "recipients": [],
                     "reply": None, "local": None, "stage": None}
            out.append(entry)
            continue
        match = _QREAD_RCPT.match(line)
        if match and entry is not None and not match.group(1):
            entry["recipients"].append(match.group(3))
    return qmail_queue_with_log([e for e in out if e["recipients"]], events)


def qmail_queue_with_log(queue, events):
    """The queue entries, each given the reason of its latest logged deferral (``events`` from ``qmail_log``):
    qmail keeps no reasons in its queue."""
    latest = {}
    for event in events:
        if event["status"] == "deferred":
            latest[event["queue_id"]] = event
    out = []
    for entry in queue:
        reason = latest.get(entry["queue_id"])
        if reason:
            entry = dict(entry, reply=reason["reply"], local=reason["local"], stage=reason["stage"])
        out.append(entry)
    return out


# ---- the relay guard -----------------------------------------------------------------------------

_GUARD_SESSION = re.compile(r"\[(\d+)\] (.*)$")
_QUOTED = r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_GUARD_REWRITE = re.compile(r"^rewrite \(([^)]*)\): %s -> %s" % (_QUOTED, _QUOTED))
_GUARD_REPLY = re.compile(r"^(?:relay \S+ (answered (EHLO|MAIL FROM|RCPT TO|DATA) with|greeted with)|"
                          r"AUTH \S+ failed for \S+:) ([2-5][0-9]{2}\b.*)$")
_GUARD_LOCAL = re.compile(r"^relay \S+ (unreachable: .*|certificate .*|TLS handshake failed.*|does not offer "
                          r"STARTTLS.*|refused STARTTLS.*)$")


def guard_log(lines, now=None):
    """Refusals the relay guard logged (``journalctl -u smarthost-relay-guard``): a reply it rewrote (its
    original lines; ``rewritten``: the lines it handed on), a reply at connect, EHLO or AUTH, and its own failures
    to reach or trust the relay. Events carry no queue id; ``source`` is "guard"."""
    events, pending = [], {}

    def flush(session):
        stamp, lines_, rewritten = pending.pop(session)
        events.append({"time": stamp, "queue_id": None, "recipient": None, "sender": None, "status": "deferred",
                       "reply": lines_, "rewritten": rewritten, "local": None, "stage": None, "relay": True,
                       "source": "guard"})

    for stamp, rest in _with_times(lines, now):
        match = _GUARD_SESSION.search(rest)
        if not match:
            continue
        session, message = match.groups()
        rewrite = _GUARD_REWRITE.match(message)
        if rewrite:
            line, new = ast.literal_eval(rewrite.group(2)), ast.literal_eval(rewrite.group(3))
            reply = pending.setdefault(session, (stamp, [], []))
            reply[1].append(line)
            reply[2].append(new)
            if line[3:4] != "-":
                flush(session)
            continue
        if session in pending:
            flush(session)
        match = _GUARD_REPLY.match(message)
        if match:
            stage = "AUTH" if message.startswith("AUTH") else (stage_of(match.group(2)) if match.group(2)
                                                               else "CONNECT")
            events.append({"time": stamp, "queue_id": None, "recipient": None, "sender": None, "status": "deferred",
                           "reply": match.group(3), "local": message, "stage": stage, "relay": True,
                           "source": "guard"})
            continue
        match = _GUARD_LOCAL.match(message)
        if match:
            events.append({"time": stamp, "queue_id": None, "recipient": None, "sender": None, "status": "deferred",
                           "reply": None, "local": message, "stage": stage_of(message), "relay": True,
                           "source": "guard"})
    for session in list(pending):
        flush(session)
    return events


# ---- Sendmail behind the relay guard ------------------------------------------------------------
#
# Sendmail keeps only the first line of a reply (usersmtp.c reply(): the continuation lines go to a junk buffer).
# Where the relay splits its distinctive words over the first two lines ("550-5.7.1 Daily SMTP relay limit exceeded
# for" / "550-5.7.1 customer. …"), the guard rewrites every line to 450-4.7.1 and Sendmail logs a line that names
# no cause. The guard logs every line of each reply it rewrites, so such a deferral takes the whole reply from the
# guard's rewrite of it. The join, and why:
# * The key is the reply and the time, not a session: the guard numbers its client sessions and logs the client's
#   port at connect, but Sendmail logs its process and queue ids, never its own port, and the guard sees neither.
#   What both log is the line: the guard's rewritten first line (what it handed Sendmail) must equal the line
#   Sendmail logged in reply= or stat= (code, enhanced code and words, normalised: reply= writes the code without
#   its "-"); and the rewrite must come at most GUARD_JOIN_WINDOW seconds before Sendmail's line (the guard logs
#   a rewrite before it hands the reply on, Sendmail logs the deferral once it read the reply, later on a busy
#   host) or GUARD_JOIN_SKEW after it (a classic log file's stamps are whole seconds, the guard's journal's not).
# * Only rewrites of more than one line (a one-line reply reaches Sendmail whole), and only a Sendmail line the
#   catalogue does not name: a first line that names its cause (the user's daily limit, "Mail relay denied")
#   keeps its class as before.
# * Never the nearest in time: Sendmail runs queue runners in parallel, each in its own guard session, so the
#   nearest rewrite may be another message's. Every rewrite that fits must carry the same reply, compared
#   normalised (line codes and the session token removed: Google's token differs in every reply); two different
#   replies behind the same first line in the window leave the line unjoined (``unknown``, as before).
# The guard listens on loopback for this host's MTA only, so a rewrite with that first line is a reply this
# Sendmail got. What the join cannot see is a reply the guard handed on unchanged (it logs none) with the very same
# first line, that is a relay reply already 4xx with a limit's words: the relay sends none such.
GUARD_JOIN_WINDOW = 10.0
GUARD_JOIN_SKEW = 1.0


def _first_line_key(line):
    return _reply_key([line])


def _reply_key(lines):
    code, status, text = replies.normalise(lines)
    return code, status, text.lower()


def sendmail_guard_join(events, guard):
    """Sendmail's log ``events`` with each deferral whose reply is the unnamed first line of a reply the relay
    guard rewrote (``guard``: ``guard_log``'s events) given the whole rewritten reply and ``guard_join``; the rest
    as they were. Without guard rewrites (Sendmail sending to the relay itself) nothing changes."""
    by_first = {}
    for rewrite in sorted((g for g in guard if g.get("time") is not None and len(g.get("rewritten") or ()) > 1),
                          key=lambda g: g["time"]):
        times, found = by_first.setdefault(_first_line_key(rewrite["rewritten"][0]), ([], []))
        times.append(rewrite["time"])
        found.append(rewrite)
    if not by_first:
        return events
    out = []
    for event in events:
        logged, rewrite = _guard_rewrite_of(event, by_first)
        if rewrite is not None:
            event = dict(event, reply=list(rewrite["rewritten"]),
                         guard_join={"logged": logged, "guard_time": rewrite["time"]})
        out.append(event)
    return out


def _guard_rewrite_of(event, by_first):
    """``(the line Sendmail logged, the guard's rewrite whose first line it is)``, or ``(None, None)``: the event
    names its cause already, no rewrite fits, or the fitting ones carry different replies. Sendmail's line is its
    ``reply=`` (8.16.1+) or the reply quoted in ``stat=``; either is tried."""
    reply, stamp = event.get("reply"), event.get("time")
    if event["status"] == "sent" or stamp is None or not isinstance(reply, str) or replies.identify(reply):
        return None, None
    quoted = _SM_DEFERRED.match(event.get("local") or "")
    fitting = {}
    for line in (reply, quoted.group(1) if quoted else None):
        if not line or not _SM_FAILURE_REPLY.match(line):
            continue
        times, found = by_first.get(_first_line_key(line), ((), ()))
        for rewrite in found[bisect.bisect_left(times, stamp - GUARD_JOIN_WINDOW):
                             bisect.bisect_right(times, stamp + GUARD_JOIN_SKEW)]:
            fitting.setdefault(_reply_key(rewrite["rewritten"]), []).append((line, rewrite))
    if len(fitting) != 1:
        return None, None
    return max(next(iter(fitting.values())), key=lambda item: item[1]["time"])
