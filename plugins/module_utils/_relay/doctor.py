# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor's diagnoses: what a relay reply (or an MTA's own failure text) means for this host, and the fix.

A reply is first named by the reply catalogue (``replies.identify``: code + enhanced code + phrase, also after the
retry rules rewrote it to 4xx); the catalogue entry then maps to one *class* below, which carries

* ``cause``: the service document's rule behind it, in this project's words;
* ``console``: where the Admin console setting lives, as the service document gives the path;
* ``fixes``: the ``relay_*`` / ``<mta>_*`` variables to change, with the value this host needs when it is known
  (the egress address the relay saw, for the allowlist);
* ``severity``: ``blocked`` (mail cannot leave until someone changes something) or ``degraded`` (clears by itself
  or touches some mail only).

Texts an MTA writes itself (connection refused, DNS, certificate verification) never reach the catalogue and are
matched by ``LOCAL_PATTERNS``, with a ``note`` where the text leaves the step or the relay's reply out. Whatever
matches nothing is class ``unknown`` and is kept verbatim. A failure in a session whose TLS handshake did not verify
the relay's certificate (a reader's ``tls``, Sendmail's ``verify=FAIL``) is ``tls_failure``, whatever was answered.

``summarise`` turns parsed queue entries and log events (``doctor_parsers``) into the per-host report.
"""

from __future__ import annotations

import re
from collections import namedtuple

from . import replies

CONSOLE = "Admin console > Apps > Google Apps > Gmail > Advanced settings > SMTP relay service"

DoctorClass = namedtuple("DoctorClass", ["key", "title", "severity", "cause", "console", "fixes"])
DoctorClass.__doc__ = """One cause of stuck mail. ``fixes``: (variable, value or None, why) triples; a value
``"{egress}/32"`` is filled with the address the relay saw, ``"{mta}_..."`` with the MTA's name."""

_S = CONSOLE + " > "
CLASSES = (
    DoctorClass(
        "allowlist", "address not in the relay's allowlist", "blocked",
        "the relay takes mail only from the IP addresses listed in its setting (or from a session that logged in "
        "with SMTP AUTH), and the address this host connects from is not among them",
        _S + "Authentication > Only accept mail from the specified IP addresses",
        (("relay_allowlist", "{egress}/32", "list the address the relay saw in the setting and in relay_allowlist"),
         ("relay_auth", True, "or log in with SMTP AUTH as a registered user (TLS required)"))),
    DoctorClass(
        "sender_domain", "sender or HELO outside the customer's domains", "blocked",
        "with any-address senders, a sender outside the customer's domains is accepted only from a session that "
        "uses SMTP AUTH or names one of the customer's domains in HELO/EHLO",
        _S + "Allowed senders",
        (("relay_helo_name", "a host name in relay_domains", "present one of the customer's domains in HELO/EHLO"),
         ("relay_auth", True, "or identify the domain with SMTP AUTH"),
         ("relay_foreign_senders", True, "declare that this host sends for domains it does not own"))),
    DoctorClass(
        "null_sender", "null sender without an identity", "blocked",
        "mail with an empty envelope sender (bounces, vacation replies) needs SMTP AUTH or an own-domain HELO, and "
        "takes one recipient per transaction",
        _S + "Allowed senders",
        (("relay_helo_name", "a host name in relay_domains", "present one of the customer's domains in HELO/EHLO"),
         ("relay_auth", True, "or identify the domain with SMTP AUTH"),
         ("relay_null_sender", True, "send null-sender mail one recipient per transaction"))),
    DoctorClass(
        "unregistered_sender", "sender is not a registered user", "blocked",
        "the setting allows only registered users of the customer's domains as senders, and this sender is not "
        "one (or not an active one)",
        _S + "Allowed senders > Only registered Apps users in my domain",
        (("relay_local_sender", "a registered user's address", "send local accounts' mail as a registered user"),
         ("relay_allowed_senders", "domain_addresses", "or widen the setting (and this variable) to addresses "
                                                       "in the customer's domains"))),
    DoctorClass(
        "auth_required", "SMTP AUTH required", "blocked",
        "the setting requires SMTP authentication and this host did not log in",
        _S + "Authentication > Require SMTP Authentication",
        (("relay_auth", True, "log in with SMTP AUTH"),
         ("relay_auth_username", "a registered user's address", None),
         ("relay_auth_password", None, "kept in a vault"))),
    DoctorClass(
        "bad_credentials", "SMTP AUTH credentials refused", "blocked",
        "the relay refused the user name and password given with SMTP AUTH (wrong, or too many failed attempts)",
        _S + "Authentication > Require SMTP Authentication",
        (("relay_auth_username", "a registered user's address", None),
         ("relay_auth_password", None, "the user's current password (or app password), kept in a vault"))),
    DoctorClass(
        "tls_required", "TLS required", "blocked",
        "the setting requires TLS encryption and this host sent mail (or tried AUTH) without STARTTLS; with "
        "required TLS the relay is reached on port 587",
        _S + "Encryption > Require TLS encryption",
        (("relay_tls", "required", None), ("relay_port", 587, None))),
    DoctorClass(
        "tls_failure", "TLS or certificate failure", "blocked",
        "the TLS handshake failed or the relay's certificate did not verify: a missing CA, a wrong relay host "
        "name, or a host that is not the relay at all (an impostor); this host sent nothing to it",
        None,
        (("relay_tls_ca_file", "the CA bundle that signs the relay's certificate", None),
         ("relay_host", "smtp-relay.gmail.com", "check that the name resolves to the relay and not an impostor"))),
    DoctorClass(
        "user_daily_limit", "daily limit per user", "blocked",
        "a registered user relays at most 10,000 messages and 10,000 unique recipients in 24 hours",
        None,
        (("relay_licenses", "the customer's licence count", "throttle below the limits"),
         ("{mta}_limit_replies_retry", True, "keep such mail queued until the day's window moves on"))),
    DoctorClass(
        "customer_daily_limit", "daily limit per customer", "blocked",
        "the customer relays about 130 recipients per user licence in 24 hours (100 before the first bill is "
        "paid), counted over all of its servers",
        None,
        (("relay_licenses", "the customer's licence count", "throttle below the limits"),
         ("relay_servers", "the number of servers sharing the limit", None),
         ("{mta}_limit_replies_retry", True, "keep such mail queued until the day's window moves on"))),
    DoctorClass(
        "peak_limit", "10-minute peak limit", "degraded",
        "the customer relays about 9 recipients per user licence in any 10 minutes (50 before the first bill is "
        "paid); the relay defers the rest",
        None,
        (("relay_licenses", "the customer's licence count", "throttle below the limits"),
         ("relay_servers", "the number of servers sharing the limit", None))),
    DoctorClass(
        "too_many_recipients", "too many recipients in one transaction", "degraded",
        "the relay takes a limited number of recipients per transaction (and one domain per transaction)",
        None,
        (("{mta}_main_cf", "a lower per-transaction recipient limit", None),)),
    DoctorClass(
        "dos_helo", "denial-of-service protection at HELO", "degraded",
        "the relay guards against floods: it closes connections that open in bursts or that greet with a generic "
        "name; mail should reuse connections and greet with the host's own name",
        None,
        (("relay_helo_name", "this host's name in the customer's domain", "never localhost or the relay's name"),
         ("postfix_connection_reuse", True, "send several messages per connection"))),
    DoctorClass(
        "helo_name", "HELO/EHLO name refused", "blocked",
        "the relay refuses an empty or malformed HELO/EHLO name",
        None,
        (("relay_helo_name", "this host's fully qualified name", None),)),
    DoctorClass(
        "unreachable", "relay unreachable or its name does not resolve", "blocked",
        "this host could not reach the relay (DNS, routing, a firewall on the port, or the relay down); the "
        "relay listens on 25, 465 and 587",
        None,
        (("relay_host", "smtp-relay.gmail.com", "check DNS for it from this host"),
         ("relay_port", "25, 465 or 587", "open the port outbound in the firewall"))),
    DoctorClass(
        "unknown", "not recognised", "degraded",
        "a reply or failure this catalogue does not know; kept verbatim", None, ()),
)
BY_CLASS = {entry.key: entry for entry in CLASSES}

# The reply catalogue's entries (replies.CATALOGUE) and the class each means.
REPLY_CLASS = {
    "relay_denied": "allowlist",
    "invalid_credentials": "sender_domain",
    "sending_denied": "unregistered_sender",
    "starttls_first": "tls_required",
    "tls_required_rcpt": "tls_required",
    "auth_required": "auth_required",
    "bad_credentials": "bad_credentials",
    "too_many_logins": "bad_credentials",
    "dos_helo": "dos_helo",
    "helo_empty": "helo_name",
    "helo_invalid": "helo_name",
    "user_daily": "user_daily_limit",
    "customer_daily": "customer_daily_limit",
    "customer_peak": "peak_limit",
    "too_many_recipients": "too_many_recipients",
    "multiple_domains": "too_many_recipients",
    "null_sender_recipients": "null_sender",
}

LocalText = namedtuple("LocalText", ["key", "pattern", "note"])
LocalText.__doc__ = """An MTA's (or the guard's) own failure text: the class it names, and ``note``, what the text
does not tell (said in the diagnosis), or None."""

# Sendmail's verdict on its TLS session with the relay (cf/m4/proto.m4, ruleset tls_connection via tls_server):
# 403 before 8.17.1, 454 since (503/554 with TLS_PERM_ERR), then the ruleset's words. Its "authentication" is the
# relay's certificate, never SMTP AUTH. Anchored to the start (Sendmail's stat=, reply= or queue status): the same
# words inside another MTA's text, such as a server's AUTH reply that Postfix quotes, are not this verdict.
_SENDMAIL_TLS_VERDICT = (r"^(?:Deferred: )?(?:403|454|503|554) [45]\.7\.0 (?:authentication (?:failed|required|"
                         r"failure)|not authenticated|no authentication requested|other side does not support "
                         r"STARTTLS|STARTTLS (?:disabled locally|failed|temporarily not possible)|DANE check failed|"
                         r"TLS handshake|encryption too weak|CN .* does not match|Cert (?:Subject|Issuer) .*"
                         r"(?:does not match|not acceptable))")
_SENDMAIL_TLS_NOTE = ("Sendmail's own verdict on the TLS session (its tls_server rules), not a reply of the relay: "
                      "\"authentication\" there means the relay's certificate, not SMTP AUTH")
# Sendmail when the relay closes the connection: the log's stat= (sm_errstring drops the step it appends) and the
# queue's status (usersmtp.c reply()) name neither the step nor the relay's last reply.
_SENDMAIL_LOST = r"^(?:Deferred: )?Connection reset by |\breply: read error from "
_SENDMAIL_LOST_NOTE = ("Sendmail logs neither the step nor the relay's last reply when the relay closes the "
                       "connection (from 8.16.1 the log's reply= keeps a refusal the relay sent first): a relay "
                       "that refuses the HELO name closes the connection this way too")

# The MTAs' (and the guard's) own failure texts, first match wins.
LOCAL_PATTERNS = tuple(LocalText(key, re.compile(pattern, re.IGNORECASE), note) for key, pattern, note in (
    ("tls_required", r"SMTP AUTH needs TLS", None),  # the relay doctor's probe, which keeps a password off plain text
    ("tls_failure", _SENDMAIL_TLS_VERDICT, _SENDMAIL_TLS_NOTE),
    ("tls_failure", r"certificate|verify=FAIL|TLS handshake|TLS is required, but|does not offer STARTTLS|"
                    r"refused STARTTLS|TLS.*(?:fail|error)|SSL", None),
    # Postfix falls back from a refused EHLO to HELO and logs neither reply: the relay that closed the session
    # after refusing the name (Google's 501 5.5.4 "…, closing connection") leaves only the lost connection. A flood
    # refusal (421 at EHLO) is logged as "refused to talk to me" instead.
    ("helo_name", r"while performing the (?:EHLO|HELO) handshake", None),
    ("unreachable", _SENDMAIL_LOST, _SENDMAIL_LOST_NOTE),
    ("unreachable", r"connection refused|connection timed out|timed out while|no route to host|network is "
                    r"unreachable|connection reset|lost connection|unreachable|wasn't able to establish an SMTP "
                    r"connection|couldn't find any host|host or domain name not found|name service error|host name "
                    r"lookup failure|name server|temporary failure in name resolution|no address associated", None),
    ("bad_credentials", r"SASL authentication failed|authinfo|refused SMTP AUTH|authentication failed", None),
))

# Sendmail's {verify} of a TLS session (its STARTTLS=client line) whose certificate did not verify.
UNVERIFIED = ("FAIL",)
# Classes of failures that come before TLS (connecting, greeting, HELO): an unverified session cannot explain them.
BEFORE_TLS = ("unreachable", "dos_helo", "helo_name")

_STAGES = (
    ("EHLO", r"EHLO|HELO|my name was rejected"),
    ("STARTTLS", r"STARTTLS"),
    ("AUTH", r"\bAUTH\b|SASL"),
    ("MAIL", r"MAIL FROM|sender was rejected"),
    ("RCPT", r"RCPT TO|does not like recipient"),
    ("DATA", r"\bDATA\b|after I sent the message"),
    # Sendmail's "Connection reset by <relay>" names no step (see _SENDMAIL_LOST)
    ("CONNECT", r"greeting|refused to talk to me|connect(?!ion reset by)"),
)
STAGE_PATTERNS = tuple((stage, re.compile(pattern, re.IGNORECASE)) for stage, pattern in _STAGES)
_IP_IN_REPLY = re.compile(r"\[([0-9A-Fa-f:.]+)\]")


def stage_of(text):
    """The SMTP stage (CONNECT, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA) an MTA names for a reply, or None."""
    if not text:
        return None
    for stage, pattern in STAGE_PATTERNS:
        if pattern.search(text):
            return stage
    return None


def classify_text(reply=None, local=None, sender=None):
    """``(class key, catalogue entry or None, note or None)`` of a relay ``reply`` (the relay's words, lines or one
    string) and the MTA's ``local`` text around it; ``sender`` ("" for the null sender) refines sender refusals."""
    entry = replies.identify(reply) if reply else None
    if entry is not None:
        key = REPLY_CLASS.get(entry.key, "unknown")
        if key == "sender_domain" and sender == "":
            key = "null_sender"
        return key, entry, None
    for text in (local, reply if isinstance(reply, str) else " ".join(reply or ())):
        if not text:
            continue
        for found in LOCAL_PATTERNS:
            if found.pattern.search(text):
                return found.key, None, found.note
    return "unknown", None, None


def unverified_session(key, tls):
    """The note for a failure in a session whose TLS handshake did not verify the relay's certificate (``tls``:
    the reader's ``{"verify", "logged"}``), or None. Whatever such a host answered after the handshake is not
    known to come from the relay, so the failure is the certificate's; failures before TLS are not."""
    if not tls or tls.get("verify") not in UNVERIFIED or key in BEFORE_TLS:
        return None
    return ("the relay's certificate did not verify in this session (%s): the host that answered after the TLS "
            "handshake is not known to be the relay, so its reply is kept as logged and the certificate named as "
            "the cause" % tls.get("logged", "verify=%s" % tls.get("verify")))


def egress_from(reply):
    """The address the relay says it saw (``Mail relay denied [198.51.100.7]``), or None."""
    if not reply:
        return None
    text = reply if isinstance(reply, str) else " ".join(reply)
    match = _IP_IN_REPLY.search(text)
    return match.group(1) if match else None


# Fixes that name Postfix's setting, and the MTA's own variable for it: Sendmail has no main.cf (its per-transaction
# recipient limit is the relay mailer's SMTP_MAILER_MAXRCPTS) and keeps connections open with its connection cache;
# qmail has no main.cf either and opens a connection per delivery, one recipient each (qmail-send), so its
# connections to the relay are the relay guard's pool, and a transaction with too many recipients is another
# client's of the guard.
MTA_FIXES = {
    "qmail": {
        "{mta}_main_cf": ("relay_guard_address", "127.0.0.1",
                          "qmail sends one recipient per transaction: the transaction came from another client of "
                          "the relay guard; keep the guard on loopback, for this host's qmail alone"),
        "postfix_connection_reuse": ("relay_guard_pool_max_connections", 4,
                                     "the relay guard keeps connections to the relay open and sends qmail's "
                                     "deliveries over them"),
    },
    "sendmail": {
        "{mta}_main_cf": ("sendmail_mc_extra", "define(`SMTP_MAILER_MAXRCPTS', `<a lower limit>')",
                          "the relay mailer's per-transaction recipient limit"),
        "postfix_connection_reuse": ("sendmail_connection_cache_size", 2,
                                     "keep connections to the relay open and send several messages on each"),
    },
}


def fixes_for(key, mta=None, egress=None):
    """The class's fixes as dicts (variable, value, why), with this host's values filled in where known."""
    out = []
    for fix in BY_CLASS[key].fixes:
        variable, value, why = MTA_FIXES.get(mta, {}).get(fix[0], fix)
        variable = variable.replace("{mta}", mta or "<mta>")
        if isinstance(value, str) and "{egress}" in value:
            value = value.replace("{egress}", egress) if egress else "this host's egress address/32"
        out.append({"variable": variable, "value": value, "why": why})
    return out


def diagnose(reply=None, local=None, stage=None, sender=None, mta=None, egress=None, tls=None):
    """One diagnosis: class, title, severity, cause, console, fixes, the reply normalised (code, status, text,
    catalogue key), the stage (given, or read from the local text) and, where the texts leave something out or
    ``tls`` (the session's certificate verification, as a reader joined it) overrides them, a ``note``."""
    key, entry, note = classify_text(reply, local, sender)
    session_note = unverified_session(key, tls)
    if session_note:
        key, note = "tls_failure", session_note
    cls = BY_CLASS[key]
    out = {"class": key, "title": cls.title, "severity": cls.severity, "cause": cls.cause, "console": cls.console,
           "stage": stage or stage_of(local), "catalogue": entry.key if entry else None}
    if note:
        out["note"] = note
    if reply:
        code, status, text = replies.normalise(reply)
        out["reply"] = {"code": code, "status": status, "text": text}
    if key == "unknown":
        out["verbatim"] = local or (reply if isinstance(reply, str) else " ".join(reply or ()))
    out["fixes"] = fixes_for(key, mta, egress or (egress_from(reply) if key == "allowlist" else None))
    return out


# ---- the per-host summary ------------------------------------------------------------------------

SAMPLES = 5


def _record_class(classes, diagnosis):
    key = diagnosis["class"]
    if key not in classes:
        classes[key] = dict(diagnosis, queued=0, deferred=0, bounced=0, guard=0, oldest_age=None, samples=[],
                            last_seen=None)
    return classes[key]


def summarise(queue, events, now, mta=None, egress=None):
    """The report of one host from its queue entries and log events (doctor_parsers' dicts).

    ``queue``: dicts with queue_id, arrival (epoch), sender, recipients, reply, local, stage (the reason the
    MTA keeps it). ``events``: dicts with time, queue_id, recipient, sender, status (sent, deferred, bounced),
    reply, local, stage, relay (True when the event concerns the relay), source ("guard" for the relay guard's
    own log: counted as ``guard``, not as deferred). Returns the report dict."""
    classes = {}
    for item in queue:
        if not (item.get("reply") or item.get("local")):
            continue
        diagnosis = diagnose(item.get("reply"), item.get("local"), item.get("stage"), item.get("sender"), mta, egress,
                             item.get("tls"))
        row = _record_class(classes, diagnosis)
        row["queued"] += 1
        age = max(0, int(now - item["arrival"])) if item.get("arrival") else None
        if age is not None and (row["oldest_age"] is None or age > row["oldest_age"]):
            row["oldest_age"] = age
        if len(row["samples"]) < SAMPLES:
            row["samples"].append(item["queue_id"])
    seen = {}
    last_success = None
    last_failure = None
    for event in sorted(events, key=lambda e: e.get("time") or 0):
        if event["status"] == "sent":
            if event.get("relay", True):
                last_success = event
            continue
        diagnosis = diagnose(event.get("reply"), event.get("local"), event.get("stage"), event.get("sender"),
                             mta, egress, event.get("tls"))
        row = _record_class(classes, diagnosis)
        row["last_seen"] = event.get("time")
        if event.get("source") == "guard":  # the MTA logs the same refusal again: counted apart
            row["guard"] += 1
            continue
        mark = (diagnosis["class"], event["status"], event.get("queue_id") or id(event))
        if mark not in seen:
            seen[mark] = True
            row[event["status"]] += 1
        if diagnosis["severity"] == "blocked" and event["status"] == "deferred":
            last_failure = event
        if event.get("queue_id") and len(row["samples"]) < SAMPLES and event["queue_id"] not in row["samples"]:
            row["samples"].append(event["queue_id"])
    verdict, reasons = _verdict(queue, classes, last_success, last_failure)
    return {
        "mta": mta,
        "queue_size": len(queue),
        "queue_shown": str(len(queue)),
        "queue_read": True,
        "queued_with_reason": sum(row["queued"] for row in classes.values()),
        "deferred": sum(row["deferred"] for row in classes.values()),
        "bounced": sum(row["bounced"] for row in classes.values()),
        "classes": sorted(classes.values(), key=lambda r: (r["severity"] != "blocked", -r["queued"], r["class"])),
        "last_success": _event_summary(last_success, now),
        "verdict": verdict,
        "reasons": reasons,
    }


def queue_not_read(report, why):
    """``report`` (``summarise`` of the log alone) for a host whose queue could not be read (``why``): the queue's
    counts unknown (None), a reason "queue not read: <why>", and never ``healthy``, since the queue may hold mail;
    the log's classes, deferrals and bounces as read."""
    note = "queue not read: %s" % why
    report.update(queue_size=None, queue_shown="not read", queued_with_reason=None, queue_read=False, queue_note=note)
    report["reasons"] = sorted(report["reasons"] + [note])
    if report["verdict"] == "healthy":
        report["verdict"] = "degraded"
    return report


def _event_summary(event, now):
    if event is None:
        return None
    return {"time": event.get("time"), "age": int(now - event["time"]) if event.get("time") else None,
            "queue_id": event.get("queue_id"), "recipient": event.get("recipient")}


def _verdict(queue, classes, last_success, last_failure):
    """healthy: nothing queued for a relay reason and nothing bounced; blocked: mail queued for a reason that
    does not clear by itself and no relay delivery since the latest such failure; degraded otherwise."""
    reasons = []
    blocked = [row for row in classes.values() if row["severity"] == "blocked" and row["queued"]]
    recent_success = last_success is not None and (
        last_failure is None or (last_success.get("time") or 0) >= (last_failure.get("time") or 0))
    if blocked and not recent_success:
        reasons = ["%d message(s) held: %s" % (row["queued"], row["title"]) for row in blocked]
        return "blocked", reasons
    for row in classes.values():
        if row["queued"]:
            reasons.append("%d message(s) queued: %s" % (row["queued"], row["title"]))
        if row["bounced"]:
            reasons.append("%d message(s) bounced: %s" % (row["bounced"], row["title"]))
    if reasons:
        return "degraded", sorted(reasons)
    del queue
    return "healthy", []
