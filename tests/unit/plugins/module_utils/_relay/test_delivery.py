# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The post-change test delivery (delivery.py): following the test message through each MTA's log or transcript,
removing only it after a failure, and explaining the failure with the doctor's catalogue.

The log lines are written from the MTAs' formats (Postfix's cleanup ``message-id=`` and smtp ``status=`` lines,
qmail-send's lines as multilog and syslog write them, Sendmail's ``-v`` transcript with ``>>>`` for what the client
sent), with the relay's replies rendered from the catalogue; the MTAs are faked by a ``run`` that writes the log.
The real MTAs are exercised by the molecule scenarios only.
"""

from __future__ import annotations

import re

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import delivery
from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_host
from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_parsers as P
from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies as R

TOKEN = "x12-20020a05.37"
RELAY = "relay.smarthost.test[10.89.0.2]"
BAD_CREDENTIALS = R.wrap(R.render("bad_credentials"), token=TOKEN)
DENIED = R.wrap(R.render("relay_denied", ip="198.51.100.7", domains="example.com"), token=TOKEN)
SENDER, RECIPIENT = "mta@example.com", "relay-test@example.net"

MULTILOG = """@400000006a1b2c3d0a1b2c3d new msg 131089
@400000006a1b2c3d0a1b2c3e info msg 131089: bytes 412 from <postmaster@example.com> qp 4242 uid 0
@400000006a1b2c3d0a1b2c3f starting delivery 7: msg 131089 to remote qmail-test@example.net
@400000006a1b2c3d0a1b2c40 status: local 0/10 remote 1/20
@400000006a1b2c3d0a1b2c41 delivery 7: success: 127.0.0.1_accepted_message./Remote_host_said:_250_2.0.0_OK_1a2b-000001.1_-_gsmtp/
@400000006a1b2c3d0a1b2c42 status: local 0/10 remote 0/20
@400000006a1b2c3d0a1b2c43 end msg 131089
"""

SYSLOG = """Nov 29 15:00:00 mx qmail: 1795963728.1 info msg 99: bytes 300 from <postmaster@example.com> qp 11 uid 0
Nov 29 15:00:00 mx qmail: 1795963728.2 starting delivery 3: msg 99 to remote qmail-test@example.net
Nov 29 15:00:01 mx qmail: 1795963729.1 delivery 3: deferral: Connected_to_127.0.0.1_but_connection_died._(#4.4.2)/
Nov 29 15:00:30 mx qmail: 1795963758.1 starting delivery 4: msg 99 to remote qmail-test@example.net
Nov 29 15:00:31 mx qmail: 1795963759.1 delivery 4: failure: Connected_to_127.0.0.1_but_sender_was_rejected./Remote_host_said:_550_5.7.0_Mail_relay_denied/
Nov 29 15:00:31 mx qmail: 1795963759.2 end msg 99
"""


def qmail_escape(text):
    """What qmail-send does to a report before it logs it: line ends to '/', blanks to '_'."""
    return text.replace("\n", "/").replace(" ", "_")


# --- qmail: qmail-send's log --------------------------------------------------------------------------------

def test_qmail_success_from_multilog():
    lines = MULTILOG.splitlines()
    assert P.qmail_messages_from(lines, "POSTMASTER@example.com") == ["131089"]
    event, ended = delivery.qmail_outcome(lines, "131089", "qmail-test@example.net")
    assert event["status"] == "sent" and ended
    assert event["local"] == "127.0.0.1 accepted message. Remote host said: 250 2.0.0 OK 1a2b-000001.1 - gsmtp"


def test_qmail_deferral_then_failure_from_syslog():
    lines = SYSLOG.splitlines()
    event, ended = delivery.qmail_outcome(lines[:3], "99", "qmail-test@example.net")
    assert (event["status"], event["local"], ended) == (
        "deferred", "Connected to 127.0.0.1 but connection died. (#4.4.2)", False)
    event, ended = delivery.qmail_outcome(lines, "99", "qmail-test@example.net")
    assert event["status"] == "bounced" and event["reply"] == ["550 5.7.0 Mail relay denied"] and ended


def test_qmail_other_messages_and_recipients_are_ignored():
    lines = MULTILOG.splitlines()
    assert delivery.qmail_outcome(lines, "131090", "qmail-test@example.net") == (None, False)
    assert delivery.qmail_outcome(lines, "131089", "someone-else@example.net") == (None, True)
    assert P.qmail_messages_from(lines, "other@example.com") == []


def test_message_line_ends_and_headers():
    text = delivery.message("qmail", "postmaster@example.com", "qmail-test@example.net", "<id@example.com>", "mx")
    assert "Message-ID: <id@example.com>\n" in text and "To: <qmail-test@example.net>\n" in text
    assert "\r" not in text  # qmail-inject takes UNIX newlines
    text = delivery.message("postfix", SENDER, RECIPIENT, "<id@example.com>", "mx")
    assert "Subject: smarthost.relay Postfix test delivery from mx\r\n" in text
    assert "Postfix on mx was configured" in text and "Auto-Submitted: auto-generated\r\n" in text


# --- the log follower (shared with the doctor's host side) ----------------------------------------------------

def test_follower_reads_only_new_lines(tmp_path):
    path = tmp_path / "current"
    path.write_text("old line\n")
    log = doctor_host.Follower(None, str(path))
    with open(str(path), "a") as handle:
        handle.write("new line\n")
    assert log.lines() == ["new line"] and log.lines() == ["new line"] and log.source == str(path)
    path.write_text("rotated\n")  # multilog started a new current
    assert log.lines() == ["rotated"]
    missing = doctor_host.Follower(None, str(tmp_path / "missing"))
    assert missing.lines() == [] and missing.source is None


def test_follower_uses_the_journal_when_systemd_runs(monkeypatch):
    monkeypatch.setattr(doctor_host, "has_journal", lambda: True)
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, "1793620800.1 h postfix/smtp[1]: x\n", ""

    log = doctor_host.Follower(run, clock=lambda: 1793620800.0)
    assert log.source == "journal" and log.lines() == ["1793620800.1 h postfix/smtp[1]: x"]
    assert calls[0][-3:] == ["--since", "@1793620799", "SYSLOG_FACILITY=2"]
    assert doctor_host.Follower(run, use_journal=False, candidates=()).source is None


# --- Postfix: the mail log ----------------------------------------------------------------------------------

POSTFIX_PREFIXES = {"3.5": ("Nov  2 11:59:00 deb11", "3F2A1C0E12"),
                    "3.7": ("2026-11-02T11:59:00.123456+00:00 deb12", "4B7C2D1F3A"),
                    "3.10": ("1793620740.123456 deb13", "4Q8Zs55GBvzB7Bq")}


def postfix_lines(prefix, qid, mid, status):
    return [
        "%s postfix/pickup[90]: %s: uid=0 from=<%s>" % (prefix, qid, SENDER),
        "%s postfix/cleanup[91]: %s: message-id=%s" % (prefix, qid, mid),
        "%s postfix/qmgr[92]: %s: from=<%s>, size=612, nrcpt=1 (queue active)" % (prefix, qid, SENDER),
        "%s postfix/smtp[93]: %sX: to=<%s>, relay=%s:587, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent "
        "(250 2.0.0 OK %s - gsmtp)" % (prefix, qid, RECIPIENT, RELAY, TOKEN),  # another message, same recipient
        "%s postfix/smtp[94]: %s: to=<%s>, relay=%s:587, delay=1, delays=0/0/0.5/0.5, %s" % (
            prefix, qid, RECIPIENT, RELAY, status),
    ]


# Postfix logs the line ends of a SASL failure's reply as "?"
BAD_LOGIN = ("dsn=4.7.8, status=deferred (SASL authentication failed; server %s said: %s)"
             % (RELAY, "?".join(BAD_CREDENTIALS)))


@pytest.mark.parametrize("version", sorted(POSTFIX_PREFIXES))
def test_postfix_outcome(version):
    prefix, qid = POSTFIX_PREFIXES[version]
    mid = "<smarthost-relay-test.0a1b@example.com>"
    lines = postfix_lines(prefix, qid, mid, BAD_LOGIN)
    queue_id, event = delivery.postfix_outcome(lines, mid, RECIPIENT)
    assert queue_id == qid and event["status"] == "deferred" and event["stage"] == "AUTH"
    assert event["local"].startswith("SASL authentication failed; server %s said: 535-5.7.8" % RELAY)
    assert delivery.postfix_outcome(lines[:3], mid, RECIPIENT) == (qid, None)
    assert delivery.postfix_outcome(lines, "<other@example.com>", RECIPIENT) == (None, None)


class FakePostfix(object):
    """``run`` for Postfix: sendmail writes the log lines the MTA would, postsuper is recorded."""

    def __init__(self, log, status, rc=0):
        self.log, self.status, self.rc, self.calls = log, status, rc, []

    def __call__(self, argv, data=None, timeout=None, merge=False):  # pylint: disable=unused-argument
        self.calls.append(argv)
        if argv[0].endswith("sendmail") and self.rc == 0:
            mid = re.search(r"^Message-ID: (\S+)", data, re.MULTILINE).group(1)
            with open(self.log, "a") as handle:
                handle.write("\n".join(postfix_lines("1793620740.1 deb13", "4Q8Zs55GBvzB7Bq", mid, self.status)
                                       + [""]))
        return (self.rc, "sendmail: fatal: no such user" if self.rc else "", "")


class Clock(object):
    def __init__(self):
        self.now = 1793620800.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def params(tmp_path, **extra):
    out = {"sender": SENDER, "recipient": RECIPIENT, "timeout": 60, "sendmail": "/usr/sbin/sendmail",
           "postsuper": "/usr/sbin/postsuper", "queue_parent": str(tmp_path), "qmail_dir": str(tmp_path / "qmail"),
           "log_file": str(tmp_path / "mail.log")}
    out.update(extra)
    (tmp_path / "mail.log").touch()
    return out


def deliver(mta, tmp_path, run, **extra):
    clock = Clock()
    return delivery.deliver(mta, params(tmp_path, **extra), run=run, clock=clock, sleep=clock.sleep)


def test_postfix_failure_removes_only_the_test_message_and_names_the_fix(tmp_path):
    run = FakePostfix(str(tmp_path / "mail.log"), BAD_LOGIN)
    report = deliver("postfix", tmp_path, run)
    assert report["status"] == "deferred" and not report["delivered"] and report["removed"]
    assert run.calls[-1] == ["/usr/sbin/postsuper", "-d", "4Q8Zs55GBvzB7Bq"]
    assert [c for c in run.calls if "postsuper" in c[0]] == [run.calls[-1]]
    assert not [c for c in run.calls if "postqueue" in c[0]]  # a refusal is a verdict: not retried
    diagnosis = report["diagnosis"]
    assert (diagnosis["class"], diagnosis["stage"], diagnosis["reply"]["code"]) == ("bad_credentials", "AUTH", 535)
    # the reply's lines, which Postfix logged with "?" between them, read as the relay's one text
    assert diagnosis["reply"]["text"] == R.normalise(list(BAD_CREDENTIALS))[2]
    assert "relay_auth_password" in [f["variable"] for f in diagnosis["fixes"]]
    assert "relay doctor: bad_credentials (SMTP AUTH credentials refused) at AUTH" in report["msg"]
    assert "fix: relay_auth_username" in report["msg"] and "535-5.7.8" in report["msg"]
    assert "removed from postfix's queue" in report["msg"]


def test_postfix_allowlist_fix_names_the_address_the_relay_saw(tmp_path):
    status = ("dsn=5.7.0, status=bounced (host %s said: %s (in reply to RCPT TO command))"
              % (RELAY, " ".join(DENIED)))
    report = deliver("postfix", tmp_path, FakePostfix(str(tmp_path / "mail.log"), status))
    assert report["status"] == "bounced" and report["diagnosis"]["class"] == "allowlist"
    assert report["diagnosis"]["stage"] == "RCPT"
    assert "relay_allowlist = 198.51.100.7/32" in report["msg"]


def test_postfix_sent_removes_nothing(tmp_path):
    run = FakePostfix(str(tmp_path / "mail.log"), "dsn=2.0.0, status=sent (250 2.0.0 OK %s - gsmtp)" % TOKEN)
    report = deliver("postfix", tmp_path, run)
    assert report["delivered"] and report["status"] == "sent" and not report["removed"]
    assert "diagnosis" not in report and len(run.calls) == 1
    assert run.calls[0][:5] == ["/usr/sbin/sendmail", "-i", "-f", SENDER, "--"]


GREETING_TIMEOUT = ("dsn=4.4.2, status=deferred (conversation with %s timed out while receiving the initial "
                    "server greeting)" % RELAY)
SENT = "dsn=2.0.0, status=sent (250 2.0.0 OK %s - gsmtp)" % TOKEN


class RetriedPostfix(FakePostfix):
    """Each ``postqueue -i`` of the test message logs its next attempt: ``statuses`` in turn, the last repeated."""

    def __init__(self, log, statuses):
        FakePostfix.__init__(self, log, statuses[0])
        self.statuses, self.mid = list(statuses[1:]), None

    def __call__(self, argv, data=None, timeout=None, merge=False):
        if argv[0].endswith("sendmail"):
            self.mid = re.search(r"^Message-ID: (\S+)", data, re.MULTILINE).group(1)
        if argv[0].endswith("postqueue") and self.statuses:
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            with open(self.log, "a") as handle:
                handle.write(postfix_lines("1793620741.1 deb13", "4Q8Zs55GBvzB7Bq", self.mid, status)[-1] + "\n")
            self.calls.append(argv)
            return 0, "", ""
        return FakePostfix.__call__(self, argv, data, timeout, merge)


@pytest.mark.parametrize("reply, local, says", [
    (None, "conversation with relay timed out while receiving the initial server greeting", True),
    (None, "connect to relay[10.0.0.1]:587: Connection timed out", True),
    ("421-4.7.0 Try again later, closing connection. (EHLO) - gsmtp", "host relay said: 421-4.7.0 …", True),
    (None, "connect to relay[10.0.0.1]:587: Connection refused", False),
    ("450-4.4.5 Daily SMTP relay limit exceeded for user", "host relay said: 450-4.4.5 …", False),
    ("535-5.7.8 Username and Password not accepted", "SASL authentication failed; …", False),
])
def test_a_deferral_says_nothing_only_for_a_timeout_or_a_421(reply, local, says):
    assert delivery.says_nothing({"status": "deferred", "reply": reply, "local": local}) is says
    assert delivery.says_nothing({"status": "bounced", "reply": reply, "local": local}) is False


def test_postfix_retries_an_attempt_that_said_nothing_and_reports_the_next(tmp_path):
    run = RetriedPostfix(str(tmp_path / "mail.log"), [GREETING_TIMEOUT, GREETING_TIMEOUT, SENT])
    report = deliver("postfix", tmp_path, run)
    assert report["delivered"] and report["status"] == "sent" and not report["removed"], report
    assert [c for c in run.calls if "postqueue" in c[0]] == [["/usr/sbin/postqueue", "-i", "4Q8Zs55GBvzB7Bq"]] * 2
    assert not [c for c in run.calls if "postsuper" in c[0]]


def test_postfix_gives_up_on_attempts_that_say_nothing_at_the_timeout(tmp_path):
    timed_out = "dsn=4.4.1, status=deferred (connect to %s:587: Connection timed out)" % RELAY
    run = RetriedPostfix(str(tmp_path / "mail.log"), [GREETING_TIMEOUT, timed_out])
    report = deliver("postfix", tmp_path, run, timeout=20)
    assert report["status"] == "deferred" and not report["delivered"] and report["removed"], report
    assert report["diagnosis"]["class"] == "unreachable" and "Connection timed out" in report["detail"]
    retries = [c for c in run.calls if "postqueue" in c[0]]
    # the first request at once, then one every RETRY_EVERY seconds however fast the attempts come back
    assert len(retries) == 20 / delivery.RETRY_EVERY, retries
    assert run.calls[-1] == ["/usr/sbin/postsuper", "-d", "4Q8Zs55GBvzB7Bq"]


def test_postfix_not_submitted_and_timeout(tmp_path):
    report = deliver("postfix", tmp_path, FakePostfix(str(tmp_path / "mail.log"), BAD_LOGIN, rc=75))
    assert report["status"] == "not submitted" and report["detail"] == "sendmail: fatal: no such user"
    assert "diagnosis" not in report and not report["removed"]
    calls = []
    report = deliver("postfix", tmp_path, lambda argv, **kw: calls.append(argv) or (0, "", ""), timeout=3)
    assert report["status"] == "timeout" and report["queue_id"] is None and calls == [calls[0]]


# --- Sendmail: the verbose transcript -------------------------------------------------------------------------

def transcript(status, auth_reply=tuple(BAD_CREDENTIALS), after_auth=()):
    return "\n".join([
        "%s... Connecting to relay.smarthost.test. port 587 via relay..." % RECIPIENT,
        "220 relay.smarthost.test ESMTP ready",
        ">>> EHLO mta-auth.corp.test",
        "250-relay.smarthost.test at your service",
        "250-STARTTLS",
        "250 AUTH LOGIN PLAIN",
        ">>> STARTTLS",
        "220 2.0.0 Ready to start TLS",
        ">>> EHLO mta-auth.corp.test",
        "250-relay.smarthost.test at your service",
        "250 AUTH LOGIN PLAIN",
        ">>> AUTH PLAIN AG10YUBleGFtcGxlLmNvbQBzZWNyZXQ=",
    ] + list(auth_reply) + list(after_auth) + [
        ">>> QUIT",
        "221 2.0.0 closing connection %s - gsmtp" % TOKEN,
        "%s... %s" % (RECIPIENT, status),
    ]) + "\n"


def test_sendmail_status_and_refusal_from_the_transcript():
    lines = transcript("Deferred: Temporary AUTH failure").splitlines()
    assert delivery.sendmail_status(lines, RECIPIENT) == ("deferred", "Deferred: Temporary AUTH failure")
    reply, stage = delivery.sendmail_refusal(lines)
    assert reply == list(BAD_CREDENTIALS) and stage == "AUTH"
    assert delivery.sendmail_status(lines[:1], RECIPIENT) == (
        "deferred", "Connecting to relay.smarthost.test. port 587 via relay...")
    assert delivery.sendmail_status(["<%s>... Sent (OK)" % RECIPIENT], RECIPIENT) == ("sent", "Sent (OK)")
    assert delivery.sendmail_status(["%s... User unknown" % RECIPIENT], RECIPIENT)[0] == "bounced"
    assert not [line for line in lines if delivery.visible(line) and "AG10YUB" in line]


def fake_sendmail(tmp_path, output, rc=0):
    """A sendmail program that prints ``output`` and records its arguments and private queue."""
    program = tmp_path / "bin" / "sendmail"
    program.parent.mkdir()
    (tmp_path / "out.txt").write_text(output)
    program.write_text("#!/bin/sh\necho \"$@\" > %s/argv\ncat > %s/message\ncat %s/out.txt\nexit %d\n"
                       % (tmp_path, tmp_path, tmp_path, rc))
    program.chmod(0o755)
    return str(program)


def test_sendmail_failure_is_explained_and_its_private_queue_removed(tmp_path):
    parent = tmp_path / "spool"
    parent.mkdir()
    program = fake_sendmail(tmp_path, transcript("Deferred: Temporary AUTH failure"))
    report = delivery.deliver("sendmail", params(tmp_path, sendmail=program, queue_parent=str(parent)))
    assert report["status"] == "deferred" and report["removed"] and list(parent.iterdir()) == []
    argv = (tmp_path / "argv").read_text().split()
    assert argv[:6] == ["-Am", "-odi", "-v", "-N", "never", "-oep"]
    assert argv[6].startswith("-OQueueDirectory=%s/smarthost-relay-test." % parent) and argv[-2:] == [SENDER, RECIPIENT]
    assert report["diagnosis"]["class"] == "bad_credentials" and report["diagnosis"]["stage"] == "AUTH"
    assert "AG10YUB" not in str(report) and "535 5.7.8" in report["msg"]
    assert report["transcript"][-1] == "%s... Deferred: Temporary AUTH failure" % RECIPIENT
    assert "(the relay's last replies: %s / %s / 221 2.0.0 closing connection" % tuple(BAD_CREDENTIALS[-2:]) \
        in report["msg"]


def test_sendmail_status_line_reply_and_success(tmp_path):
    """Sendmail's status line quotes the last line of the relay's reply; the transcript has all of it."""
    parent = tmp_path / "spool"
    parent.mkdir()
    rcpt = [">>> MAIL From:<%s> SIZE=612 AUTH=<>" % SENDER, "250 2.1.0 OK %s - gsmtp" % TOKEN,
            ">>> RCPT To:<%s>" % RECIPIENT] + list(DENIED)
    program = fake_sendmail(tmp_path, transcript("Deferred: " + DENIED[-1], ["235 2.7.0 Accepted"], rcpt))
    report = delivery.deliver("sendmail", params(tmp_path, sendmail=program, queue_parent=str(parent)))
    diagnosis = report["diagnosis"]
    assert (diagnosis["class"], diagnosis["stage"]) == ("allowlist", "RCPT") and list(parent.iterdir()) == []
    assert diagnosis["fixes"][0] == {"variable": "relay_allowlist", "value": "198.51.100.7/32",
                                     "why": diagnosis["fixes"][0]["why"]}
    (tmp_path / "out.txt").write_text("%s... Sent (OK %s - gsmtp)\n" % (RECIPIENT, TOKEN))
    report = delivery.deliver("sendmail", params(tmp_path, sendmail=program, queue_parent=str(parent)))
    assert report["delivered"] and not report["removed"] and "diagnosis" not in report


# --- qmail: qmail-inject and qmail-send's log -------------------------------------------------------------------

class FakeQmail(object):
    """``run`` for qmail: qmail-inject queues the message under queue/mess and qmail-send logs ``results``."""

    def __init__(self, tmp_path, results, write_log=True):
        self.tmp_path, self.results, self.write_log, self.calls = tmp_path, results, write_log, []

    def __call__(self, argv, data=None, timeout=None, merge=False):  # pylint: disable=unused-argument
        self.calls.append(argv)
        mess = self.tmp_path / "qmail" / "queue" / "mess" / "7"
        mess.mkdir(parents=True)
        (mess / "131089").write_text(data)
        if self.write_log:
            lines = ["@400000006a1b2c3d0a1b2c3e info msg 131089: bytes 412 from <%s> qp 4242 uid 0" % SENDER]
            for number, (kind, text) in enumerate(self.results, 7):
                lines += ["@400000006a1b2c3d0a1b2c3f starting delivery %d: msg 131089 to remote %s" % (number, RECIPIENT),
                          "@400000006a1b2c3d0a1b2c41 delivery %d: %s: %s" % (number, kind, qmail_escape(text))]
            with open(str(self.tmp_path / "mail.log"), "a") as handle:
                handle.write("\n".join(lines) + "\n")
        return 0, "", ""


def test_qmail_deferral_stays_queued_and_is_explained(tmp_path):
    run = FakeQmail(tmp_path, [("deferral", "Connected to 10.89.0.2 but sender was rejected.\nRemote host said: "
                                + "\n".join(R.wrap(R.render("invalid_credentials"), token=TOKEN)) + "\n")])
    report = deliver("qmail", tmp_path, run, timeout=10)
    assert report["status"] == "deferred" and report["queue_id"] == "131089" and not report["removed"]
    assert report["detail"].startswith("still queued after 10 s; last attempt: Connected to 10.89.0.2")
    assert report["diagnosis"]["class"] == "sender_domain" and report["diagnosis"]["stage"] == "MAIL"
    assert run.calls == [[str(tmp_path / "qmail" / "bin" / "qmail-inject"), "-f" + SENDER, "-a", RECIPIENT]]


def test_qmail_success_and_unconfirmed(tmp_path):
    report = deliver("qmail", tmp_path, FakeQmail(tmp_path, [("success", "10.89.0.2 accepted message.\n")]))
    assert report["status"] == "sent" and report["delivered"]
    other = tmp_path / "other"
    other.mkdir()
    clock = Clock()

    def sleep(seconds):  # qmail-send delivers it while the module waits
        clock.sleep(seconds)
        (other / "qmail" / "queue" / "mess" / "7" / "131089").unlink()

    report = delivery.deliver("qmail", params(other, log_file=None), run=FakeQmail(other, [], write_log=False),
                              clock=clock, sleep=sleep)
    assert report["status"] == "unconfirmed" and report["delivered"] and report["log_source"] is None
    assert report["queue_id"] == "131089"


def test_run_command_merges_on_request_and_times_out():
    argv = ["sh", "-c", "echo out; echo err >&2; exit 3"]
    assert delivery.run_command(argv, merge=True) == (3, "out\nerr\n", "")
    assert delivery.run_command(argv) == (3, "out\n", "err\n")
    assert delivery.run_command(["sleep", "5"], timeout=0.2) == (None, "", "")
    assert delivery.run_command(["/nonexistent/sendmail"])[0] == 127


def test_sendmail_timeout_still_removes_its_private_queue(tmp_path):
    parent = tmp_path / "spool"
    parent.mkdir()
    seen = []

    def run(argv, data=None, timeout=None, merge=False):  # pylint: disable=unused-argument
        seen.append(timeout)
        return None, "", ""

    report = delivery.deliver("sendmail", params(tmp_path, queue_parent=str(parent), timeout=1), run=run)
    assert report["status"] == "timeout" and seen == [35] and list(parent.iterdir()) == []
    assert report["detail"] == "no answer from the relay within 35 seconds" and "diagnosis" not in report
