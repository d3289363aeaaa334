# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor's readers (doctor_parsers.py), one layout at a time.

Every line below is written from the MTAs' documented formats (Postfix's ``status=… (host … said: … (in reply to …
command))`` and ``postqueue -j``; Sendmail's ``to=…, dsn=…, stat=…`` with and without 8.16.1's ``reply=``, its
``qf`` file and ``mailq``; qmail-send's ``starting delivery``/``delivery D:`` lines with ``_`` and ``/``; the relay
guard's own lines), never copied from a log. Where the Postfix and Sendmail versions differ is in how the line
reaches the log (syslog stamp, RFC 3339, the journal; long queue ids) and in Sendmail's ``reply=`` field.
"""

from __future__ import annotations

import calendar
import json
import time

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor as D
from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_parsers as P
from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies as R

NOW = calendar.timegm((2026, 11, 2, 12, 0, 0, 0, 0, 0))
TOKEN = "x12-20020a05.37"
DENIED = R.wrap(R.render("relay_denied", ip="198.51.100.7", domains="example.com"), token=TOKEN)
CUSTOMER = R.wrap(R.render("customer_daily"), token=TOKEN)
USER_DAILY = R.wrap(R.render("user_daily"), token=TOKEN)
RELAY = "relay.smarthost.test[10.89.0.2]:587"


def classes(events):
    return [D.diagnose(e["reply"], e["local"], e["stage"], e.get("sender"))["class"] for e in events]


# --- prefixes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, stamp", [
    ("1793620800.250000 host postfix/smtp[1]: x", NOW + 0.25),
    ("2026-11-02T12:00:00.250000+00:00 host postfix/smtp[1]: x", NOW + 0.25),
    ("2026-11-02T13:00:00+01:00 host postfix/smtp[1]: x", NOW),
    ("2026-11-02T12:00:00Z host x", NOW),
    ("@400000006ae87b4400000000 delivery 1: success: x", NOW - 6),
])
def test_prefixes(line, stamp):
    found, rest = P.log_prefix(line, NOW)
    assert found == pytest.approx(stamp) and rest.endswith("x")


def test_traditional_syslog_stamp_has_no_year():
    stamp, rest = P.log_prefix("Nov  2 11:59:00 host postfix/smtp[1]: x", NOW)
    assert time.localtime(stamp)[:6] == (2026, 11, 2, 11, 59, 0) and rest == "host postfix/smtp[1]: x"
    december, _rest = P.log_prefix("Dec 31 23:00:00 host x", calendar.timegm((2027, 1, 1, 12, 0, 0, 0, 0, 0)))
    assert time.localtime(december).tm_year == 2026
    assert P.log_prefix("no stamp at all", NOW) == (None, "no stamp at all")


# --- Postfix ----------------------------------------------------------------------------------------------

def postfix_lines(prefix, qid, said_lines=tuple(DENIED), stage="RCPT TO"):
    return [
        "%s postfix/qmgr[100]: %s: from=<app@example.com>, size=412, nrcpt=1 (queue active)" % (prefix, qid),
        "%s postfix/smtp[123]: %s: to=<a@example.net>, relay=%s, delay=0.52, delays=0.01/0.01/0.3/0.2, dsn=4.7.0, "
        "status=deferred (host %s said: %s (in reply to %s command))" % (prefix, qid, RELAY, RELAY.rsplit(":", 1)[0],
                                                                         " ".join(said_lines), stage),
        "%s postfix/smtp[124]: %sX: to=<b@example.net>, relay=none, delay=30, delays=0.01/0/30/0, dsn=4.4.1, "
        "status=deferred (connect to %s: Connection refused)" % (prefix, qid, RELAY),
        "%s postfix/smtp[125]: %sY: to=<c@example.net>, relay=%s, delay=1.1, delays=0.01/0.01/0.5/0.6, dsn=2.0.0, "
        "status=sent (250 2.0.0 OK  1793620800 %s - gsmtp)" % (prefix, qid, RELAY, TOKEN),
        "%s postfix/local[126]: %sZ: to=<root@localhost>, relay=local, delay=0.01, delays=0/0/0/0, dsn=2.0.0, "
        "status=sent (delivered to mailbox)" % (prefix, qid),
        "%s postfix/smtp[127]: %sW: to=<d@example.net>, relay=%s, delay=1, delays=0/0/0.5/0.5, dsn=4.7.8, "
        # Postfix logs the line ends of a SASL failure's reply as "?"
        "status=deferred (SASL authentication failed; server %s said: 535-5.7.8 Username and Password not accepted. "
        "For more information, go to?535 5.7.8 https://support.google.com/mail/?p=BadCredentials %s - gsmtp)"
        % (prefix, qid, RELAY, RELAY.rsplit(":", 1)[0], TOKEN),
        "%s postfix/smtp[128]: %sV: to=<e@example.net>, relay=%s, delay=1, delays=0/0/0.5/0.5, dsn=4.7.0, "
        "status=deferred (host %s refused to talk to me: 421 4.7.0 Try again later, closing connection. %s - gsmtp)"
        % (prefix, qid, RELAY, RELAY.rsplit(":", 1)[0], TOKEN),
    ]


POSTFIX_LAYOUTS = {
    # 3.5 (Debian 11): rsyslog's traditional stamp, short queue ids
    "3.5": ("Nov  2 11:59:00 deb11", "3F2A1C0E12"),
    # 3.7 (Debian 12): rsyslog's RFC 3339 stamp
    "3.7": ("2026-11-02T11:59:00.123456+00:00 deb12", "4B7C2D1F3A"),
    # 3.10 (Debian 13): the journal (-o short-unix), long queue ids (enable_long_queue_ids)
    "3.10": ("1793620740.123456 deb13", "4Q8Zs55GBvzB7Bq"),
}


@pytest.mark.parametrize("version", sorted(POSTFIX_LAYOUTS))
def test_postfix_log(version):
    prefix, qid = POSTFIX_LAYOUTS[version]
    events = P.postfix_log(postfix_lines(prefix, qid), NOW)
    assert [(e["queue_id"], e["status"], e["relay"]) for e in events] == [
        (qid, "deferred", True), (qid + "X", "deferred", True), (qid + "Y", "sent", True),
        (qid + "Z", "sent", False), (qid + "W", "deferred", True), (qid + "V", "deferred", True)]
    assert classes([e for e in events if e["status"] != "sent"]) == [
        "allowlist", "unreachable", "bad_credentials", "dos_helo"]
    assert [e["stage"] for e in events if e["status"] != "sent"] == ["RCPT", "CONNECT", "AUTH", "CONNECT"]
    assert events[0]["sender"] == "app@example.com"
    if version == "3.5":  # the syslog stamp is the host's local time
        assert time.localtime(events[0]["time"])[1:6] == (11, 2, 11, 59, 0)
    else:
        assert events[0]["time"] == pytest.approx(NOW - 60, abs=1)


@pytest.mark.parametrize("separator", ["?", " "], ids=["as-postfix-logs-it", "joined"])
def test_postfix_sasl_reply_line_ends(separator):
    """Postfix prints the line ends of a SASL failure's multi-line reply as "?" (the stand-in's wrapping, as a
    Debian 12 Postfix logged it); the reply read back has no "?535" left in its text, nor has one joined with
    blanks."""
    lines = R.wrap(R.render("bad_credentials"), token=TOKEN)
    reason = "SASL authentication failed; server relay.smarthost.test[10.89.0.2] said: " + separator.join(lines)
    reply, _local, stage = P.postfix_reason(reason)
    code, status, text = R.normalise(reply)
    assert (code, status, stage) == (535, "5.7.8", "AUTH")
    assert "?" not in text.replace("/?p=", "") and "535" not in text
    assert text == R.normalise(lines)[2]


def test_postfix_question_mark_in_a_reply_left_alone():
    """Only a SASL failure's reply has its line ends printed as "?": a "?" before digits elsewhere (a URL's query)
    stays as the relay sent it."""
    said = "550 5.7.1 See https://support.example.test/?550-1 for details"
    reply, _local, _stage = P.postfix_reason("host relay[10.89.0.2] said: %s (in reply to RCPT TO command)" % said)
    assert reply == said
    reply, _local, _stage = P.postfix_reason("SASL authentication failed; server relay said: 535 5.7.8 see "
                                             "https://x.test/?4350-1")
    assert reply.endswith("https://x.test/?4350-1")


@pytest.mark.parametrize("stage, expected", [("MAIL FROM", "MAIL"), ("RCPT TO", "RCPT"), ("end of DATA", "DATA"),
                                             ("EHLO", "EHLO"), ("STARTTLS", "STARTTLS")])
def test_postfix_stage(stage, expected):
    [event] = P.postfix_log(postfix_lines("1793620740.1 h", "ABCDE12345", CUSTOMER, stage)[1:2], NOW)
    assert event["stage"] == expected
    assert classes([event]) == ["customer_daily_limit"]


@pytest.mark.parametrize("failure, key, stage", [
    ("host %s refused to talk to me: 421 4.7.0 Try again later, closing connection. %s - gsmtp"
     % (RELAY.rsplit(":", 1)[0], TOKEN), "dos_helo", "CONNECT"),
    ("connect to %s: Connection refused" % RELAY, "unreachable", "CONNECT"),
    ("host %s said: %s (in reply to EHLO command)" % (RELAY.rsplit(":", 1)[0], " ".join(
        R.wrap(R.render("helo_invalid", helo="mta.example.com"), token=TOKEN))), "helo_name", "EHLO"),
])
def test_postfix_suspended_destination(failure, key, stage):
    """qmgr holds back the other messages for a destination it marked dead (a 421 greeting or EHLO, a refused
    connection) with "delivery temporarily suspended: " and the failure that marked it."""
    reason = "delivery temporarily suspended: " + failure
    reply, local, found = P.postfix_reason(reason)
    assert local == reason and found == stage
    assert D.diagnose(reply, local, found)["class"] == key


@pytest.mark.parametrize("command", ["EHLO", "HELO"])
def test_postfix_helo_refused_then_closed(command):
    """The relay refused the EHLO name and closed the connection (Google's 501 5.5.4 "…, closing connection"):
    Postfix tries HELO, finds the connection gone and logs only that, at the HELO stage."""
    line = ("1793620741.1 h postfix/smtp[2]: ABCDE12345: to=<a@example.net>, relay=%s, delay=0.02, "
            "delays=0.02/0/0/0, dsn=4.4.2, status=deferred (lost connection with %s while performing the %s "
            "handshake)" % (RELAY, RELAY.rsplit(":", 1)[0], command))
    [event] = P.postfix_log([line], NOW)
    assert event["stage"] == "EHLO" and classes([event]) == ["helo_name"]
    suspended = P.postfix_reason("delivery temporarily suspended: lost connection with %s while performing the %s "
                                 "handshake" % (RELAY.rsplit(":", 1)[0], command))
    assert D.diagnose(*suspended)["class"] == "helo_name"


def test_postfix_null_sender_from_qmgr():
    lines = ["1793620740.1 h postfix/qmgr[1]: ABCDE12345: from=<>, size=900, nrcpt=1 (queue active)",
             "1793620741.1 h postfix/smtp[2]: ABCDE12345: to=<a@example.net>, relay=%s, delay=1, delays=0/0/0/1, "
             "dsn=4.7.1, status=deferred (host relay said: %s (in reply to MAIL FROM command))"
             % (RELAY, " ".join(R.wrap(R.render("invalid_credentials"), token=TOKEN)))]
    [event] = P.postfix_log(lines, NOW)
    assert event["sender"] == "" and classes([event]) == ["null_sender"]


def postqueue(version):
    base = {"queue_name": "deferred", "queue_id": "3F2A1C0E12", "arrival_time": NOW - 600, "message_size": 412,
            "sender": "app@example.com",
            "recipients": [{"address": "a@example.net",
                            "delay_reason": "host %s said: %s (in reply to RCPT TO command)"
                                            % (RELAY.rsplit(":", 1)[0], " ".join(USER_DAILY))}]}
    if version != "3.4":
        base["forced_expire"] = False  # 3.5 and later
    active = {"queue_name": "active", "queue_id": "5C2A1C0E13", "arrival_time": NOW - 1, "message_size": 300,
              "sender": "", "recipients": [{"address": "b@example.net"}]}
    return "\n".join(json.dumps(item) for item in (base, active)) + "\n"


@pytest.mark.parametrize("version", ["3.4", "3.7", "3.10"])
def test_postqueue_json(version):
    first, second = P.postfix_queue(postqueue(version))
    assert (first["queue_id"], first["arrival"], first["stage"], first["recipients"]) == (
        "3F2A1C0E12", NOW - 600, "RCPT", ["a@example.net"])
    assert classes([first]) == ["user_daily_limit"]
    assert second["reply"] is None and second["local"] is None and second["sender"] == ""
    report = D.summarise([first, second], [], NOW, mta="postfix")
    assert report["queue_size"] == 2 and report["classes"][0]["oldest_age"] == 600


def test_postqueue_certificate_reason():
    text = json.dumps({"queue_name": "deferred", "queue_id": "AB12CD34EF", "arrival_time": NOW - 5,
                       "sender": "app@example.com", "recipients": [{"address": "a@example.net",
                                                                    "delay_reason": "Server certificate not verified"}]})
    [entry] = P.postfix_queue(text)
    assert entry["reply"] is None and classes([entry]) == ["tls_failure"]


# --- Sendmail ---------------------------------------------------------------------------------------------

def sendmail_line(prefix, reply_field, stat, dsn="4.7.1", qid="4A2B3C4D005678", mailer="relay", pid=4242,
                  relay="relay.smarthost.test.", address="10.89.0.2"):
    """A delivery line; ``address`` None for a failure taken from the host status (no connection made)."""
    fields = ["to=<a@example.net>", "ctladdr=<app@example.com> (1000/1000)", "delay=00:00:05", "xdelay=00:00:05",
              "mailer=%s" % mailer, "pri=120412", "relay=%s" % relay + (" [%s]" % address if address else ""),
              "dsn=%s" % dsn]
    if reply_field:
        fields.append("reply=%s" % reply_field)
    fields.append("stat=%s" % stat)
    return "%s sm-mta[%d]: %s: %s" % (prefix, pid, qid, ", ".join(fields))


CUSTOMER_ONE = "450 4.7.1 Daily SMTP relay limit exceeded for customer. The relay's limits, ask your administrator."


@pytest.mark.parametrize("version, prefix, reply_field", [
    # 8.15 (Debian 11): no reply=, the reply in stat=Deferred: …
    ("8.15", "Nov  2 11:59:00 deb11", None),
    # 8.17 (Debian 12): reply= (8.16.1 and later) before stat=
    ("8.17", "2026-11-02T11:59:00+00:00 deb12", CUSTOMER_ONE),
    # 8.18 (Debian 13): the journal
    ("8.18", "1793620740.5 deb13", CUSTOMER_ONE),
])
def test_sendmail_log(version, prefix, reply_field):
    lines = [
        "%s sm-mta[4240]: 4A2B3C4D005678: from=<app@example.com>, size=412, class=0, nrcpts=1, "
        "msgid=<m1@example.com>, proto=ESMTP, daemon=MTA-v4, relay=localhost [127.0.0.1]" % prefix,
        sendmail_line(prefix, reply_field, "Deferred: " + CUSTOMER_ONE),
        sendmail_line(prefix, None, "Deferred: Connection refused by relay.smarthost.test.", dsn="4.0.0",
                      qid="4A2B3C4D005679"),
        sendmail_line(prefix, "250 2.0.0 OK x12 - gsmtp" if reply_field else None,
                      "Sent (OK 1793620740 x12 - gsmtp)", dsn="2.0.0", qid="4A2B3C4D005680"),
        sendmail_line(prefix, "550 5.7.0 Mail Sending denied. x12 - gsmtp" if reply_field else None,
                      "Service unavailable", dsn="5.7.0", qid="4A2B3C4D005681"),
        sendmail_line(prefix, None, "Sent", dsn="2.0.0", qid="4A2B3C4D005682", mailer="local"),
    ]
    events = P.sendmail_log(lines, NOW)
    assert [(e["queue_id"][-2:], e["status"], e["relay"]) for e in events] == [
        ("78", "deferred", True), ("79", "deferred", True), ("80", "sent", True), ("81", "bounced", True),
        ("82", "sent", False)]
    assert events[0]["sender"] == "app@example.com"
    expected = ["customer_daily_limit", "unreachable",
                "unregistered_sender" if reply_field else "unknown"]
    assert classes([e for e in events if e["status"] != "sent"]) == expected


def test_sendmail_reply_after_stat_and_guard_rewrite():
    """The relay guard hands Sendmail a 4xx rewrite; reply= may also follow stat=."""
    rewritten = "450 4.4.5 Daily SMTP relay limit exceeded for user. x12 - gsmtp"
    line = "1793620740.5 h sm-mta[1]: 4A2B3C4D005678: to=<a@example.net>, delay=00:00:01, mailer=relay, " \
           "relay=[127.0.0.1] [127.0.0.1], dsn=4.4.5, stat=Deferred: %s, reply=%s" % (rewritten, rewritten)
    [event] = P.sendmail_log([line], NOW)
    assert event["reply"] == rewritten and classes([event]) == ["user_daily_limit"]


def test_sendmail_tls_verify_failure():
    line = sendmail_line("1793620740.5 h", None, "Deferred: 403 4.7.0 TLS handshake.", dsn="4.7.0")
    [event] = P.sendmail_log([line], NOW)
    assert classes([event]) == ["tls_failure"]


QF = """V8
T1793620200
K1793620740
N3
P120412
I8/1/123456
MDeferred: 450 4.7.1 Daily SMTP relay limit exceeded for customer.
Fb
$_localhost [127.0.0.1]
Sapp@example.com
rRFC822; a@example.net
RPFD:a@example.net
H?P?Return-Path: <g>
.
"""


def test_sendmail_qf():
    entry = P.sendmail_qf("qf4A2B3C4D005678", QF)
    assert (entry["queue_id"], entry["arrival"], entry["sender"], entry["recipients"]) == (
        "4A2B3C4D005678", 1793620200, "app@example.com", ["a@example.net"])
    assert classes([entry]) == ["customer_daily_limit"]


MAILQ = """\t\t/var/spool/mqueue (3 requests)
-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------
4A2B3C4D005678*     412 Mon Nov  2 11:50 <app@example.com>
                 (Deferred: 530 5.7.0 Must issue a STARTTLS command first. x12 - gsmtp)
\t\t\t\t\t <a@example.net>
4A2B3C4D005679      300 Mon Nov  2 11:55 <>
                 (Deferred: Connection refused by relay.smarthost.test.)
\t\t\t\t\t <b@example.net>
\t\t\t\t\t <c@example.net>
4A2B3C4D005680      300 Mon Nov  2 11:59 <app@example.com>
\t\t\t\t\t <d@example.net>
\t\tTotal requests: 3
"""


def test_sendmail_mailq():
    entries = P.sendmail_mailq(MAILQ, NOW)
    assert [e["queue_id"] for e in entries] == ["4A2B3C4D005678", "4A2B3C4D005679", "4A2B3C4D005680"]
    assert entries[1]["recipients"] == ["b@example.net", "c@example.net"] and entries[1]["sender"] == ""
    assert classes(entries[:2]) == ["tls_required", "unreachable"]
    assert entries[2]["reply"] is None and entries[2]["local"] is None
    assert time.localtime(entries[0]["arrival"])[1:5] == (11, 2, 11, 50)
    assert P.sendmail_mailq("/var/spool/mqueue is empty\n\t\tTotal requests: 0\n", NOW) == []


# --- Sendmail: the relay refuses the HELO name ---------------------------------------------------------------
#
# From Sendmail's usersmtp.c (8.15, 8.17.1.9, 8.18.0.2 alike): reply() keeps the first line of a reply (the rest is
# read into a junk buffer); a 4xx at EHLO defers with that line as the status (stat=Deferred: <line>, dsn=4.5.0,
# smtpinit's tempfail2) after a QUIT; a 5xx at EHLO makes it try HELO, and a relay that closed the connection
# after its refusal leaves a read error (stat=Deferred: Connection reset by <relay>, dsn=4.4.2; the queue's status
# "reply: read error from <relay>"). From 8.16.1 reply= logs the first line of the last 4xx/5xx reply; 8.17.1 may
# log there the answer to the QUIT instead (its tempfail2 keeps the last line read).

SENDMAIL_VERSIONS = [
    ("8.15", "Nov  2 11:59:00 deb11", False),
    ("8.17", "2026-11-02T11:59:00+00:00 deb12", True),
    ("8.18", "1793620740.5 deb13", True),
]
DOS_HELO = R.wrap(R.render("dos_helo"), token=TOKEN)
HELO_REFUSED = R.wrap(R.render("helo_invalid", helo="localhost"), token=TOKEN)
RESET = "Deferred: Connection reset by relay.smarthost.test."


def sendmail_reply_field(lines):
    """reply= (8.16.1+) of a reply read off the wire: the code, enhanced code and text of its first line."""
    first = lines[0]
    status, text = first[4:].split(" ", 1)
    return "%s %s %s" % (first[:3], status, text)


def test_the_stand_ins_helo_refusals_name_themselves_on_their_first_line():
    """What Sendmail keeps of them: the phrase must be on the first line."""
    assert len(HELO_REFUSED) > 1 and "HELO/EHLO argument" in HELO_REFUSED[0]
    assert "Try again later, closing connection" in DOS_HELO[0]


@pytest.mark.parametrize("version, prefix, with_reply", SENDMAIL_VERSIONS)
def test_sendmail_421_at_ehlo_and_the_relay_closes(version, prefix, with_reply):
    line = sendmail_line(prefix, sendmail_reply_field(DOS_HELO) if with_reply else None, "Deferred: " + DOS_HELO[0],
                         dsn="4.5.0")
    [event] = P.sendmail_log([line], NOW)
    assert event["status"] == "deferred" and classes([event]) == ["dos_helo"], version


@pytest.mark.parametrize("version, prefix, with_reply", SENDMAIL_VERSIONS)
def test_sendmail_421_at_ehlo_and_the_relay_keeps_the_connection(version, prefix, with_reply):
    """The QUIT that follows is answered: its 221 may stand in reply=, the 421 stays in stat=."""
    line = sendmail_line(prefix, "221 2.0.0 closing connection" if with_reply else None,
                         "Deferred: " + DOS_HELO[0], dsn="4.5.0")
    [event] = P.sendmail_log([line], NOW)
    assert event["reply"] == DOS_HELO[0] and classes([event]) == ["dos_helo"], version


@pytest.mark.parametrize("version, prefix, with_reply", SENDMAIL_VERSIONS)
def test_sendmail_helo_name_refused_and_the_relay_closes(version, prefix, with_reply):
    """501 at EHLO, HELO tried on a closed connection: only reply= (8.16.1+) keeps the refusal."""
    line = sendmail_line(prefix, sendmail_reply_field(HELO_REFUSED) if with_reply else None, RESET, dsn="4.4.2")
    [event] = P.sendmail_log([line], NOW)
    diagnosis = D.diagnose(event["reply"], event["local"], event["stage"])
    if with_reply:
        assert diagnosis["class"] == "helo_name" and diagnosis["catalogue"] == "helo_invalid", version
        return
    # 8.15 logs neither the step nor the reply: the lost connection, and the note says what it may hide
    assert diagnosis["class"] == "unreachable" and diagnosis["stage"] is None
    assert "HELO" in diagnosis["note"] and "reply" not in diagnosis


QF_READ_ERROR = QF.replace("MDeferred: 450 4.7.1 Daily SMTP relay limit exceeded for customer.",
                           "Mreply: read error from relay.smarthost.test.")
MAILQ_READ_ERROR = """\t\t/var/spool/mqueue (1 request)
-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------
4A2B3C4D005678      412 Mon Nov  2 11:50 <app@example.com>
                 (reply: read error from relay.smarthost.test.)
\t\t\t\t\t <a@example.net>
\t\tTotal requests: 1
"""


@pytest.mark.parametrize("version, prefix, with_reply", SENDMAIL_VERSIONS)
def test_sendmail_queue_read_error_takes_the_reply_from_the_log(version, prefix, with_reply):
    """The queue keeps "reply: read error from <relay>"; the log's reply= of the same queue id names the cause."""
    events = P.sendmail_log([sendmail_line(prefix, sendmail_reply_field(HELO_REFUSED) if with_reply else None,
                                           RESET, dsn="4.4.2")], NOW)
    for queue in ([P.sendmail_qf("qf4A2B3C4D005678", QF_READ_ERROR)], P.sendmail_mailq(MAILQ_READ_ERROR, NOW)):
        assert classes(queue) == ["unreachable"]
        [entry] = P.sendmail_queue_with_log(queue, events)
        assert entry["local"] == "reply: read error from relay.smarthost.test."
        assert classes([entry]) == (["helo_name"] if with_reply else ["unreachable"]), version
        report = D.summarise([entry], events, NOW, mta="sendmail")
        [row] = report["classes"]
        assert row["queued"] == 1 and row["deferred"] == 1
        assert report["verdict"] == "blocked"


# --- Sendmail: the rest of a queue run deferred from the host status -----------------------------------------
#
# After a failed connection to the relay, the same queue run defers each further message for it without
# connecting: relay= without an address, no reply=, and stat= repeating the failure's or a bare "Deferred" (seen in
# the sendmail scenario, Debian 12: the DoS 421 at EHLO and the 501 to the HELO name).

HOST_STATUS = [
    # (the attempt's reply lines, its stat=, the cached line's stat=, dsn, the class with reply=, without)
    (HELO_REFUSED, RESET, RESET, "4.4.2", "helo_name", "unreachable"),
    (DOS_HELO, "Deferred: " + DOS_HELO[0], "Deferred", "4.5.0", "dos_helo", "dos_helo"),
]


@pytest.mark.parametrize("version, prefix, with_reply", SENDMAIL_VERSIONS)
@pytest.mark.parametrize("reply_lines, stat, cached_stat, dsn, with_class, without_class", HOST_STATUS,
                         ids=["helo", "dos_helo"])
def test_sendmail_host_status_takes_the_reply_of_the_attempt(version, prefix, with_reply, reply_lines, stat,
                                                             cached_stat, dsn, with_class, without_class):
    expected = with_class if with_reply else without_class
    lines = [sendmail_line(prefix, sendmail_reply_field(reply_lines) if with_reply else None, stat, dsn=dsn,
                           qid="4A2B3C4D005601", pid=4439),
             sendmail_line(prefix, None, cached_stat, dsn=dsn, qid="4A2B3C4D005602", pid=4439, address=None)]
    events = P.sendmail_log(lines, NOW)
    assert classes(events) == [expected, expected], version
    qf = QF.replace("MDeferred: 450 4.7.1 Daily SMTP relay limit exceeded for customer.", "M" + cached_stat)
    [entry] = P.sendmail_queue_with_log([P.sendmail_qf("qf4A2B3C4D005602", qf)], events)
    assert classes([entry]) == [expected], version


def test_sendmail_host_status_joins_only_its_own_failed_attempt():
    prefix = "2026-11-02T11:59:00+00:00 deb12"
    refused = "Deferred: " + DOS_HELO[0]
    lines = [sendmail_line(prefix, sendmail_reply_field(DOS_HELO), refused, dsn="4.5.0", qid="4A2B3C4D005601",
                           pid=5001),
             # another queue run: its host status is its own
             sendmail_line(prefix, None, "Deferred", dsn="4.5.0", qid="4A2B3C4D005602", pid=5002, address=None),
             # the same run, another failure text: not the 421's
             sendmail_line(prefix, None, "Deferred: Connection refused by relay.smarthost.test.", dsn="4.4.1",
                           qid="4A2B3C4D005603", pid=5001, address=None),
             # the same run delivered since: the 421 no longer stands
             sendmail_line(prefix, "250 2.0.0 OK x12 - gsmtp", "Sent (OK x12 - gsmtp)", dsn="2.0.0",
                           qid="4A2B3C4D005604", pid=5001),
             sendmail_line(prefix, None, "Deferred", dsn="4.5.0", qid="4A2B3C4D005605", pid=5001, address=None)]
    events = [e for e in P.sendmail_log(lines, NOW) if e["status"] != "sent"]
    assert [e["reply"] is not None for e in events] == [True, False, False, False]
    assert classes(events)[:3] == ["dos_helo", "unknown", "unreachable"]


def test_sendmail_handoff_to_its_own_daemon_is_no_relay_delivery():
    """The sendmail command (the MSP) hands each message to the daemon at [127.0.0.1], which answers with
    Sendmail's own text: that is no delivery to the relay, whose answer is its own (through the guard too)."""
    prefix = "2026-11-02T11:59:00+00:00 deb12"
    handoff = sendmail_line(prefix, None, "Sent (4A2B3C4D005699 Message accepted for delivery)", dsn="2.0.0",
                            qid="4A2B3C4D005698", relay="[127.0.0.1]", address="127.0.0.1")
    guard = sendmail_line(prefix, "250 2.0.0 OK 1793620740 x12 - gsmtp", "Sent (OK 1793620740 x12 - gsmtp)",
                          dsn="2.0.0", qid="4A2B3C4D005699", relay="[127.0.0.1]", address="127.0.0.1")
    assert [e["relay"] for e in P.sendmail_log([handoff, guard], NOW)] == [False, True]
    deferred = sendmail_line(prefix, None, "Deferred: " + DOS_HELO[0], dsn="4.5.0", qid="4A2B3C4D005699")
    events = P.sendmail_log([handoff, deferred], NOW)
    assert D.summarise([], events, NOW, mta="sendmail")["last_success"] is None


# --- Sendmail: the relay's certificate does not verify (an impostor) ---------------------------------------
#
# tls.c logs the session's TLS without a queue id, by the process that then logs the delivery (LogLevel 9 and up):
# "STARTTLS=client, relay=<host>, version=…, verify=FAIL, cipher=…, bits=…/…". With a VERIFY requirement
# (TLS_Srv, the role's Local_tls_server) deliver.c's rscheck of tls_server refuses the session ("ruleset=tls_server,
# arg1=FAIL, relay=<host>, reject=…") and the delivery is deferred with the ruleset's words: cf/m4/proto.m4's
# "<code> 4.7.0 authentication failed", 403 before 8.17.1, 454 since. Without a requirement Sendmail goes on: an
# AUTH 5xx is dropped silently (usersmtp.c smtpauth, deliver.c continues without AUTH), a 4xx defers with
# "Temporary AUTH failure", and whatever the host answers next is logged as the relay's reply.

def starttls_line(prefix, pid, verify, relay="relay.smarthost.test."):
    return ("%s sm-mta[%d]: STARTTLS=client, relay=%s, version=TLSv1.3, verify=%s, cipher=TLS_AES_256_GCM_SHA384, "
            "bits=256/256" % (prefix, pid, relay, verify))


@pytest.mark.parametrize("version, prefix, with_reply", SENDMAIL_VERSIONS)
def test_sendmail_impostor_refused_by_the_verify_requirement(version, prefix, with_reply):
    verdict = "%s 4.7.0 authentication failed" % ("403" if version == "8.15" else "454")
    session = [starttls_line(prefix, 5150, "FAIL"),
               "%s sm-mta[5150]: ruleset=tls_server, arg1=FAIL, relay=relay.smarthost.test., reject=%s"
               % (prefix, verdict)]
    delivery = sendmail_line(prefix, verdict if with_reply else None, "Deferred: " + verdict, dsn="4.7.0", pid=5150)
    [joined] = P.sendmail_log(session + [delivery], NOW)
    [alone] = P.sendmail_log([delivery], NOW)
    assert joined["tls"]["verify"] == "FAIL" and alone["tls"] is None
    for event in (joined, alone):
        diagnosis = D.diagnose(event["reply"], event["local"], event["stage"], tls=event["tls"])
        assert diagnosis["class"] == "tls_failure", (version, event)
        assert diagnosis["fixes"][0]["variable"] == "relay_tls_ca_file"
    assert "tls_server" in D.diagnose(alone["reply"], alone["local"])["note"]


IMPOSTOR_AUTH = [
    # AUTH answered 4xx: deferred, "Temporary AUTH failure" (reply= keeps the 454 from 8.16.1)
    ("4.3.0", R.render("too_many_logins") + " x12 - gsmtp", "Deferred: Temporary AUTH failure", "bad_credentials"),
    # AUTH answered 535, Sendmail went on without it: the host refuses MAIL and the message bounces
    ("5.5.1", R.render("auth_required") + " x12 - gsmtp", "Service unavailable", "auth_required"),
]


@pytest.mark.parametrize("version, prefix, with_reply", SENDMAIL_VERSIONS)
@pytest.mark.parametrize("dsn, reply, stat, without_session", IMPOSTOR_AUTH)
def test_sendmail_impostor_without_a_verify_requirement(version, prefix, with_reply, dsn, reply, stat,
                                                        without_session):
    delivery = sendmail_line(prefix, reply if with_reply else None, stat, dsn=dsn, pid=5151)
    [event] = P.sendmail_log([starttls_line(prefix, 5151, "FAIL"), delivery], NOW)
    diagnosis = D.diagnose(event["reply"], event["local"], event["stage"], tls=event["tls"])
    assert diagnosis["class"] == "tls_failure", version
    assert "verify=FAIL" in diagnosis["note"]
    if with_reply:
        assert diagnosis["reply"]["code"] == int(reply[:3])
        [verified] = P.sendmail_log([starttls_line(prefix, 5151, "OK"), delivery], NOW)
        assert classes([verified]) == [without_session]


def test_sendmail_session_tls_joins_by_process_and_relay_only():
    prefix = "2026-11-02T11:59:00+00:00 deb12"
    refused = R.render("too_many_logins") + " x12 - gsmtp"
    lines = [starttls_line(prefix, 6001, "FAIL"),
             sendmail_line(prefix, refused, "Deferred: Temporary AUTH failure", dsn="4.3.0", pid=6002),
             sendmail_line(prefix, refused, "Deferred: Temporary AUTH failure", dsn="4.3.0", pid=6001,
                           relay="other.smarthost.test."),
             # the same process, a later connection that never reached TLS: not the certificate's fault
             sendmail_line(prefix, None, "Deferred: Connection refused by relay.smarthost.test.", dsn="4.0.0",
                           pid=6001),
             starttls_line(prefix, 6001, "OK"),
             sendmail_line(prefix, refused, "Deferred: Temporary AUTH failure", dsn="4.3.0", pid=6001)]
    events = P.sendmail_log(lines, NOW)
    assert [e["tls"] and e["tls"]["verify"] for e in events] == [None, None, "FAIL", "OK"]
    assert [D.diagnose(e["reply"], e["local"], e["stage"], tls=e["tls"])["class"] for e in events] == [
        "bad_credentials", "bad_credentials", "unreachable", "bad_credentials"]


def test_sendmail_queue_takes_the_session_tls_from_the_log():
    prefix = "1793620740.5 deb13"
    events = P.sendmail_log([starttls_line(prefix, 7001, "FAIL"),
                             sendmail_line(prefix, None, "Deferred: Temporary AUTH failure", dsn="4.3.0",
                                           pid=7001)], NOW)
    qf = QF.replace("MDeferred: 450 4.7.1 Daily SMTP relay limit exceeded for customer.",
                    "MDeferred: Temporary AUTH failure")
    [entry] = P.sendmail_queue_with_log([P.sendmail_qf("qf4A2B3C4D005678", qf)], events)
    report = D.summarise([entry], events, NOW, mta="sendmail")
    [row] = report["classes"]
    assert (row["class"], row["queued"], row["deferred"]) == ("tls_failure", 1, 1)
    assert "verify=FAIL" in row["note"] and report["verdict"] == "blocked"


# --- qmail ------------------------------------------------------------------------------------------------

def qmail_escape(text):
    """What qmail-send does to a report before it logs it: line ends to '/', blanks to '_'."""
    return text.replace("\n", "/").replace(" ", "_")


QMAIL_SENDER = qmail_escape("Connected to 10.89.0.2 but sender was rejected.\nRemote host said: "
                            + "\n".join(R.wrap(R.render("invalid_credentials", ip="198.51.100.7"), token=TOKEN))
                            + "\n")
QMAIL_RCPT = qmail_escape("Remote host said: " + "\n".join(DENIED) + "\n")


@pytest.mark.parametrize("stamp", ["@400000006ae87b0e00000000", "2026-11-02T11:59:00+00:00 deb12 qmail:"])
def test_qmail_log(stamp):
    lines = ["%s new msg 1234567" % stamp,
             "%s info msg 1234567: bytes 412 from <> qp 100 uid 0" % stamp,
             "%s starting delivery 12: msg 1234567 to remote a@example.net" % stamp,
             "%s status: local 0/10 remote 1/20" % stamp,
             "%s delivery 12: deferral: %s" % (stamp, QMAIL_SENDER),
             "%s starting delivery 13: msg 1234568 to remote b@example.net" % stamp,
             "%s delivery 13: deferral: %s" % (stamp, QMAIL_RCPT),
             "%s starting delivery 14: msg 1234569 to remote c@example.net" % stamp,
             "%s delivery 14: deferral: Sorry,_I_wasn't_able_to_establish_an_SMTP_connection._(#4.4.1)/" % stamp,
             "%s starting delivery 15: msg 1234570 to remote d@example.net" % stamp,
             "%s delivery 15: success: 10.89.0.2_accepted_message./Remote_host_said:_250_2.0.0_OK_x12_-_gsmtp/"
             % stamp,
             "%s starting delivery 16: msg 1234571 to local root@localhost" % stamp,
             "%s delivery 16: success: did_0+0+1/" % stamp]
    events = P.qmail_log(lines, NOW)
    assert [(e["queue_id"], e["status"], e["relay"]) for e in events] == [
        ("1234567", "deferred", True), ("1234568", "deferred", True), ("1234569", "deferred", True),
        ("1234570", "sent", True), ("1234571", "sent", False)]
    assert classes(events[:3]) == ["null_sender", "allowlist", "unreachable"]
    assert [e["stage"] for e in events[:3]] == ["MAIL", "RCPT", "CONNECT"]
    assert events[0]["reply"][0].startswith("550-5.7.1 Invalid credentials for relay [198.51.100.7].")
    assert D.diagnose(events[1]["reply"])["fixes"][0]["value"] == "198.51.100.7/32"


def test_qmail_decode():
    assert P.qmail_decode("Remote_host_said:_550-5.7.1_a/550_5.7.1_b/") == [
        "Remote host said: 550-5.7.1 a", "550 5.7.1 b"]


# qmail-qread ends each message's line with a blank after the sender
QREAD = "\n".join([
    "2 Nov 2026 11:50:00 GMT  #1234567  412  <> ",
    "\tremote\ta@example.net",
    "2 Nov 2026 11:55:00 GMT  #1234568  300  <app@example.com> ",
    "\tdone\tremote\tb@example.net",
    "\tremote\tc@example.net",
    "2 Nov 2026 11:56:00 GMT  #1234569  300  <app@example.com> ",
    "\tdone\tremote\td@example.net",
]) + "\n"


def test_qmail_queue_joined_with_the_log():
    events = [{"queue_id": "1234567", "status": "deferred", "reply": DENIED, "local": "x", "stage": "RCPT"}]
    entries = P.qmail_queue(QREAD, events)
    assert [(e["queue_id"], e["recipients"]) for e in entries] == [
        ("1234567", ["a@example.net"]), ("1234568", ["c@example.net"])]
    assert entries[0]["arrival"] == NOW - 600 and entries[0]["sender"] == ""
    assert classes(entries[:1]) == ["allowlist"] and entries[1]["reply"] is None


# --- the relay guard --------------------------------------------------------------------------------------

def test_guard_log():
    rewritten = R.apply_retry(CUSTOMER, R.retry_rules()["limits"])
    prefix = "1793620740.5 deb12 smarthost_relay_guard.py[77]:"
    lines = ["%s [3] connect from 127.0.0.1:40000" % prefix]
    lines += ["%s [3] rewrite (customer_daily): %r -> %r" % (prefix, old, new) for old, new in zip(CUSTOMER, rewritten)]
    lines += ["%s [3] close (done)" % prefix,
              "%s [4] relay relay.smarthost.test:587 unreachable: connection refused" % prefix,
              "%s [5] relay relay.smarthost.test:587 certificate verify failed: self-signed certificate" % prefix,
              "%s [6] AUTH PLAIN failed for app@example.com: 535 5.7.8 Username and Password not accepted." % prefix,
              "%s [7] relay relay.smarthost.test:587 answered EHLO with 421 4.7.0 Try again later, closing "
              "connection." % prefix,
              "%s listening on 127.0.0.1:24" % prefix]
    events = P.guard_log(lines, NOW)
    assert events[0]["reply"] == CUSTOMER and all(e["source"] == "guard" for e in events)
    assert events[0]["rewritten"] == rewritten and rewritten[0].startswith("450-4.7.1 ")
    assert classes(events) == ["customer_daily_limit", "unreachable", "tls_failure", "bad_credentials", "dos_helo"]
    assert [e["stage"] for e in events[3:]] == ["AUTH", "EHLO"]


# --- Sendmail behind the relay guard: a reply's first line joined to the guard's rewrite -------------------------
#
# The guard logs each line of a reply it rewrites ("[<session>] rewrite (<cause>): '<line>' -> '<new line>'", the
# lines as Python reprs) to its journal; Sendmail logs only the first line of the rewritten reply (stat=Deferred:
# <line>, 8.16.1+ also reply=<code> <status> <text>). Neither logs a key of the other's session. The replies are
# the catalogue's, laid out by replies.wrap and rewritten by replies.apply_retry (the guard's own rewrite, proven
# equal in tests/unit/roles/relay_guard/test_relay_guard_rules.py).

LIMITS = R.retry_rules()["limits"]
# the distinctive words split over the first two lines: "… exceeded for" / "customer. …"
SPLIT = R.wrap(R.render("customer_daily"), token=TOKEN, width=35)
SPLIT_REWRITTEN = R.apply_retry(SPLIT, LIMITS)
FIRST = SPLIT_REWRITTEN[0]
SENDMAIL_AT = "2026-11-02T11:59:00+00:00 deb12"  # the journal's stamps for both, where a test does not vary it


def guard_lines(at, session, original, rules=LIMITS):
    """The guard's journal lines (``journalctl -o short-unix``) of one session that got ``original`` from the
    relay and rewrote it, at epoch ``at``."""
    rewritten = R.apply_retry(original, rules)
    assert rewritten != list(original), "the guard rewrites only what a rule matches"
    prefix = "%.6f deb12 python3[77]:" % at
    rule = R.matching_rule(original, rules)["cause"]
    return (["%s [%d] connect from 127.0.0.1:%d" % (prefix, session, 40000 + session)]
            + ["%s [%d] rewrite (%s): %r -> %r" % (prefix, session, rule, old, new)
               for old, new in zip(original, rewritten)])


def deferred_first_line(prefix, line, with_reply=True, qid="4A2B3C4D005678", pid=4242):
    """Sendmail's deferral behind the guard (relay=[127.0.0.1]) of a reply whose first line was ``line``."""
    return sendmail_line(prefix, sendmail_reply_field([line]) if with_reply else None, "Deferred: " + line,
                         qid=qid, pid=pid, relay="[127.0.0.1]", address="127.0.0.1")


def stamp_of(prefix):
    return P.log_prefix(prefix + " x", NOW)[0]


def joined(sendmail, guard):
    return P.sendmail_guard_join(P.sendmail_log(sendmail, NOW), P.guard_log(guard, NOW))


def test_the_split_reply_is_what_sendmail_cannot_name():
    """The layout the join is for: the catalogue names the whole reply, rewritten or not, but not its first line."""
    assert FIRST == "450-4.7.1 Daily SMTP relay limit exceeded for" and "relay's" in SPLIT[1]
    assert R.identify(SPLIT).key == R.identify(SPLIT_REWRITTEN).key == "customer_daily"
    assert R.identify([FIRST]) is None


@pytest.mark.parametrize("version, prefix, with_reply", SENDMAIL_VERSIONS)
def test_sendmail_behind_the_guard_takes_the_whole_reply_of_the_rewrite(version, prefix, with_reply):
    at = stamp_of(prefix)  # 8.15's classic file: whole seconds, the guard's journal 0.6 s later is still before
    sendmail = [deferred_first_line(prefix, FIRST, with_reply)]
    guard = guard_lines(at + (0.6 if version == "8.15" else -0.4), 3, SPLIT)
    [alone] = P.sendmail_log(sendmail, NOW)
    assert classes([alone]) == ["unknown"], version
    [event] = joined(sendmail, guard)
    assert event["reply"] == SPLIT_REWRITTEN and classes([event]) == ["customer_daily_limit"], version
    assert event["guard_join"]["logged"] == alone["reply"] and event["status"] == "deferred"
    assert {k: v for k, v in event.items() if k not in ("reply", "guard_join")} == {
        k: v for k, v in alone.items() if k != "reply"}
    # the queue keeps the same first line (qf's M, mailq's status): it takes the whole reply too
    qf = QF.replace("MDeferred: 450 4.7.1 Daily SMTP relay limit exceeded for customer.", "MDeferred: " + FIRST)
    mailq = MAILQ_READ_ERROR.replace("(reply: read error from relay.smarthost.test.)", "(Deferred: %s)" % FIRST)
    for queue in ([P.sendmail_qf("qf4A2B3C4D005678", qf)], P.sendmail_mailq(mailq, NOW)):
        assert classes(queue) == ["unknown"]
        [entry] = P.sendmail_queue_with_log(queue, [event])
        assert entry["reply"] == SPLIT_REWRITTEN and classes([entry]) == ["customer_daily_limit"]
        report = D.summarise([entry], [event] + P.guard_log(guard, NOW), NOW, mta="sendmail")
        [row] = report["classes"]
        assert (row["class"], row["queued"], row["deferred"], row["guard"]) == ("customer_daily_limit", 1, 1, 1)
        assert report["verdict"] == "blocked"


def test_a_reply_field_without_the_first_line_joins_by_the_stat_field():
    """Should reply= keep another line of the reply than stat= does, the first line quoted in stat= joins."""
    line = sendmail_line(SENDMAIL_AT, sendmail_reply_field(SPLIT_REWRITTEN[-1:]), "Deferred: " + FIRST,
                         relay="[127.0.0.1]", address="127.0.0.1")
    [event] = joined([line], guard_lines(stamp_of(SENDMAIL_AT) - 0.4, 3, SPLIT))
    assert classes([event]) == ["customer_daily_limit"] and event["guard_join"]["logged"] == FIRST


def test_many_deferrals_of_a_queue_run_each_find_the_rewrite_before_them():
    """Two queue runners at once, each in its own guard session: every deferral joins; the same reply twice in the
    window (Google's session token differs in each) is no ambiguity."""
    at = stamp_of(SENDMAIL_AT)
    other = R.wrap(R.render("customer_daily"), token="y99-0a0b.11", width=35)
    guard = guard_lines(at - 2.0, 3, SPLIT) + guard_lines(at - 1.5, 4, other)
    sendmail = [deferred_first_line(SENDMAIL_AT, FIRST, qid="4A2B3C4D0056%02d" % n, pid=4242 + n % 2)
                for n in range(4)]
    events = joined(sendmail, guard)
    assert classes(events) == ["customer_daily_limit"] * 4
    assert all(e["reply"] in (SPLIT_REWRITTEN, R.apply_retry(other, LIMITS)) for e in events)


@pytest.mark.parametrize("guard_at, session_reply", [
    (None, None),  # no guard log at all (Sendmail sending to the relay itself)
    (-30.0, SPLIT),  # the only rewrite long before: another attempt's
    (+5.0, SPLIT),  # the only rewrite after Sendmail's line: a later attempt's
    (-0.5, R.wrap(R.render("user_daily"), token=TOKEN, width=35)),  # another first line (450-4.4.5 …)
], ids=["no-guard-log", "rewrite-long-before", "rewrite-after", "other-first-line"])
def test_a_first_line_without_its_rewrite_stays_unknown(guard_at, session_reply):
    at = stamp_of(SENDMAIL_AT)
    guard = guard_lines(at + guard_at, 3, session_reply) if guard_at is not None else []
    sendmail = [deferred_first_line(SENDMAIL_AT, FIRST)]
    [event] = joined(sendmail, guard)
    assert event == P.sendmail_log(sendmail, NOW)[0] and "guard_join" not in event
    assert classes([event]) == ["unknown"]


AMBIGUOUS = [
    # the same cause in another layout: other words after the same first line
    ["550-5.7.1 Daily SMTP relay limit exceeded for", "550-5.7.1 customer. Sending limits: see the relay's "
     "article 166852.", "550 5.7.1 Ask your administrator. %s - gsmtp" % TOKEN],
    # another rule's reply behind the same first line (the refusals' "Invalid credentials for relay", 5.7.1 too)
    ["550-5.7.1 Daily SMTP relay limit exceeded for",
     "550 5.7.1 " + R.render("invalid_credentials", ip="198.51.100.7").split(" ", 2)[2]],
]


@pytest.mark.parametrize("other", AMBIGUOUS, ids=["same-cause-other-words", "other-cause"])
def test_two_replies_behind_the_same_first_line_stay_unknown(other):
    """Nearest in time is not proof: the nearer rewrite may be another queue runner's. No join."""
    rules = LIMITS + R.retry_rules()["refusals"]
    assert R.apply_retry(other, rules)[0] == FIRST
    at = stamp_of(SENDMAIL_AT)
    guard = guard_lines(at - 3.0, 3, SPLIT) + guard_lines(at - 0.2, 4, other, rules)
    [event] = joined([deferred_first_line(SENDMAIL_AT, FIRST)], guard)
    assert "guard_join" not in event and classes([event]) == ["unknown"]
    # once the other reply is out of the window, the one left is joined
    guard = guard_lines(at - 3.0, 3, SPLIT) + guard_lines(at - P.GUARD_JOIN_WINDOW - 1, 4, other, rules)
    [event] = joined([deferred_first_line(SENDMAIL_AT, FIRST)], guard)
    assert event["reply"] == SPLIT_REWRITTEN


@pytest.mark.parametrize("version, prefix, with_reply", SENDMAIL_VERSIONS)
def test_a_line_that_names_its_cause_is_left_alone(version, prefix, with_reply):
    """A one-line reply, and a first line that carries the phrase, keep what Sendmail logged, rewrite or not."""
    at = stamp_of(prefix)
    user = R.wrap(R.render("user_daily"), token=TOKEN)  # the phrase on the first line
    whole = R.apply_retry(R.wrap(R.render("customer_daily"), token=TOKEN, multiline=False), LIMITS)[0]
    guard = guard_lines(at - 0.5, 3, user) + guard_lines(at - 0.4, 4, SPLIT)
    sendmail = [deferred_first_line(prefix, R.apply_retry(user, LIMITS)[0], with_reply, qid="4A2B3C4D005601"),
                deferred_first_line(prefix, whole, with_reply, qid="4A2B3C4D005602")]
    assert joined(sendmail, guard) == P.sendmail_log(sendmail, NOW), version
    assert classes(P.sendmail_log(sendmail, NOW)) == ["user_daily_limit", "customer_daily_limit"]
