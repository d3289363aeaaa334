# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""doctor_host.examine on a faked Sendmail host behind the relay guard and a faked qmail host: the journal
(the MTA's mail facility, the guard's unit) answered by a fake ``journalctl``, Sendmail's queue a directory of ``qf``
files, qmail's the output of a fake ``qmail-qread``. Lines written from the formats (Sendmail's ``to=…, stat=…,
reply=…``; qmail-send's ``delivery N: deferral: …``; the guard's ``[N] rewrite (<cause>): '<line>' -> '<new>'``)."""

from __future__ import annotations

import calendar

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_host
from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_parsers as P
from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies as R

NOW = calendar.timegm((2026, 11, 2, 12, 0, 0, 0, 0, 0))
QID = "4A2B3C4D005678"
# the customer's daily limit with its words split over the first two lines ("… exceeded for" / "customer. …")
SPLIT = R.wrap(R.render("customer_daily"), token="x12-20020a05.37", width=35)
REWRITTEN = R.apply_retry(SPLIT, R.retry_rules()["limits"])


def sendmail_journal(at, first=REWRITTEN[0]):
    return ["%.6f deb12 sm-mta[4242]: %s: to=<a@example.net>, delay=00:00:05, xdelay=00:00:05, mailer=relay, "
            "pri=120412, relay=[127.0.0.1] [127.0.0.1], dsn=4.7.1, reply=%s, stat=Deferred: %s"
            % (at, QID, first.replace("-", " ", 1), first)]


def guard_journal(at):
    prefix = "%.6f deb12 python3[77]:" % at
    return (["%s [3] connect from 127.0.0.1:40003" % prefix]
            + ["%s [3] rewrite (customer_daily): %r -> %r" % (prefix, old, new) for old, new in zip(SPLIT, REWRITTEN)]
            + ["%s [3] close (done)" % prefix])


def qf(status=None):
    """A ``qf`` file of one message held, with the status line ``M`` when ``status`` is given."""
    return "V8\nT%d\nSapp@example.com\nRPFD:a@example.net\n%s.\n" % (NOW - 300, "M%s\n" % status if status else "")


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A Sendmail host with one message held; ``host(guard_lines)`` examines it with that guard journal."""
    (tmp_path / ("qf" + QID)).write_text(qf("Deferred: %s" % REWRITTEN[0]))
    monkeypatch.setattr(doctor_host, "has_journal", lambda: True)

    def examine(guard_lines, guard=True, sendmail_lines=None):
        def run(argv):
            assert argv[0] == "journalctl", argv
            mail = sendmail_journal(NOW - 60) if sendmail_lines is None else sendmail_lines
            return 0, "\n".join(guard_lines if "-u" in argv else mail), ""
        return doctor_host.examine(run, "sendmail", NOW - 3600, NOW, guard=guard, queue_dir=str(tmp_path))
    examine.queue_file = tmp_path / ("qf" + QID)
    return examine


def by_class(report):
    return {row["class"]: (row["queued"], row["deferred"], row["guard"]) for row in report["classes"]}


def test_behind_the_guard_the_first_line_takes_the_rewrites_whole_reply(host):
    report = host(guard_journal(NOW - 60.3))
    assert by_class(report) == {"customer_daily_limit": (1, 1, 1)} and report["verdict"] == "blocked"


@pytest.mark.parametrize("guard_lines, guard", [([], True), (guard_journal(NOW - 60.3), False)],
                         ids=["no-guard-log", "guard-off"])
def test_without_the_guards_log_sendmail_is_read_as_before(host, guard_lines, guard):
    """Sendmail sending to the relay itself (the guard's unit logs nothing), or the doctor told not to read it."""
    assert by_class(host(guard_lines, guard=guard)) == {"unknown": (1, 1, 0)}


def test_the_queue_takes_the_reply_from_the_log_once_after_the_guard_join(host, monkeypatch):
    """Sendmail's queue keeps the first line; the log, joined to the guard's rewrite, gives the whole reply: the
    queue/log join runs once, on the joined events."""
    calls = []

    def join(queue, events):
        calls.append([event.get("guard_join") is not None for event in events])
        return P.sendmail_queue_with_log(queue, events)
    monkeypatch.setitem(doctor_host.QUEUE_JOINS, "sendmail", join)
    assert by_class(host(guard_journal(NOW - 60.3))) == {"customer_daily_limit": (1, 1, 1)}
    assert calls == [[True]]


def test_a_queue_entry_without_a_status_takes_the_logged_reply(host):
    """No guard; the ``qf`` file keeps no ``M`` line: the relay's reply comes from the log (``reply=``) alone."""
    host.queue_file.write_text(qf())
    denied = R.wrap(R.render("relay_denied", ip="198.51.100.7"), token="x12")[0]
    report = host([], sendmail_lines=sendmail_journal(NOW - 60, denied))
    assert by_class(report) == {"allowlist": (1, 1, 0)} and report["queue_size"] == 1


# --- qmail: the queue (qmail-qread) keeps no reasons; qmail-send's log gives them -----------------------------

QMAIL_MSG = "1234567"
QREAD = "2 Nov 2026 11:55:00 GMT  #%s  412  <app@example.com> \n\tremote\ta@example.net\n" % QMAIL_MSG


def qmail_journal(at, reply_lines):
    """qmail-send's lines (splogger to syslog's mail facility) for one deferral with ``reply_lines``."""
    report = ("Remote host said: " + "\n".join(reply_lines) + "\n").replace("\n", "/").replace(" ", "_")
    prefix = "%.6f deb12 qmail:" % at
    return ["%s info msg %s: bytes 412 from <app@example.com> qp 100 uid 0" % (prefix, QMAIL_MSG),
            "%s starting delivery 12: msg %s to remote a@example.net" % (prefix, QMAIL_MSG),
            "%s delivery 12: deferral: %s" % (prefix, report)]


@pytest.fixture
def qmail_host(tmp_path, monkeypatch):
    """A qmail host (``tmp_path`` its qmail directory) with one message queued; ``qmail_host(mail_lines,
    guard_lines)`` examines it with those journals (the mail facility, the guard's unit)."""
    qread = tmp_path / "bin" / "qmail-qread"
    qread.parent.mkdir()
    qread.write_text("#!/bin/sh\n")
    qread.chmod(0o755)
    monkeypatch.setattr(doctor_host, "has_journal", lambda: True)
    monkeypatch.setattr(doctor_host, "QMAIL_LOGS", ())

    def examine(mail_lines, guard_lines=()):
        def run(argv):
            if argv[0] == str(qread):
                return 0, QREAD, ""
            assert argv[0] == "journalctl", argv
            return 0, "\n".join(guard_lines if "-u" in argv else mail_lines), ""
        return doctor_host.examine(run, "qmail", NOW - 3600, NOW, qmail_dir=str(tmp_path))
    return examine


def test_qmail_queue_takes_the_reason_of_its_latest_deferral(qmail_host):
    denied = R.wrap(R.render("relay_denied", ip="198.51.100.7"), token="x12")
    report = qmail_host(qmail_journal(NOW - 60, denied))
    assert by_class(report) == {"allowlist": (1, 1, 0)} and report["queue_size"] == 1
    assert report["log_source"] == "journal"


# --- qmail without qmail-qread (the qmail scenario's host: the role's files, no qmail programs) -------------------
#
# The fault matrix's three 5xx behind the guard: the user's daily limit at MAIL, the customer's daily limit at RCPT
# (its words split over the first two lines, as test_fault_matrix.CUSTOMER_DAILY_SPLIT), Mail relay denied at MAIL;
# the guard rewrites each to 450 on every line (the limits and the refusals rules) and logs every line of it.
RETRY = R.retry_rules()["limits"] + R.retry_rules()["refusals"]
FAULTS = {"user_daily": R.wrap(R.render("user_daily"), token="q1"),
          "customer_daily": ["550-5.7.1 Daily SMTP relay limit exceeded for",
                             "550-5.7.1 customer. The sending limits are explained in the relay's",
                             "550 5.7.1 article 166852; ask your administrator. q7f3c9a2e1.41 - gsmtp"],
          "relay_denied": R.wrap(R.render("relay_denied", ip="10.89.0.5", domains="example.com"), token="q3")}


def guard_rewrites(at, faults=None):
    """The guard's journal: one session per fault (``FAULTS`` unless given), each rewrite of each line logged."""
    lines = []
    for session, (cause, reply) in enumerate(sorted((faults or FAULTS).items()), 10):
        prefix = "%.6f qmail-tls python3[77]:" % (at + session)
        lines.append("%s [%d] connect from 127.0.0.1:%d" % (prefix, session, 40000 + session))
        lines += ["%s [%d] rewrite (%s): %r -> %r" % (prefix, session, cause, old, new)
                  for old, new in zip(reply, R.apply_retry(reply, RETRY))]
        lines.append("%s [%d] close (done)" % (prefix, session))
    return lines


@pytest.fixture
def qmail_without_qread(tmp_path, monkeypatch):
    """A qmail directory with an empty bin/ (no qmail-qread); ``examine(mail_lines, guard_lines)`` returns the
    report and the commands run."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setattr(doctor_host, "has_journal", lambda: True)
    monkeypatch.setattr(doctor_host, "QMAIL_LOGS", ())

    def examine(mail_lines, guard_lines):
        commands = []

        def run(argv):
            commands.append(argv)
            assert argv[0] == "journalctl", argv
            return 0, "\n".join(guard_lines if "-u" in argv else mail_lines), ""
        return doctor_host.examine(run, "qmail", NOW - 3600, NOW, qmail_dir=str(tmp_path)), commands
    return examine


def test_without_qmail_qread_the_queue_is_not_read_and_the_guards_log_is(qmail_without_qread):
    """No qmail-send log either (the scenario's driver writes none): the report is the guard's log alone."""
    report, commands = qmail_without_qread([], guard_rewrites(NOW - 600))
    assert by_class(report) == {"user_daily_limit": (0, 0, 1), "customer_daily_limit": (0, 0, 1),
                                "allowlist": (0, 0, 1)}
    assert (report["queue_read"], report["queue_size"], report["queued_with_reason"]) == (False, None, None)
    allowlist = next(row for row in report["classes"] if row["class"] == "allowlist")
    assert allowlist["fixes"][0]["value"] == "10.89.0.5/32"  # the address the relay named in its refusal
    assert report["queue_note"] == "queue not read: qmail-qread missing"
    assert "queue not read: qmail-qread missing" in report["reasons"]
    # the queue may hold mail: never healthy, never blocked on the log alone
    assert report["verdict"] == "degraded"
    assert all(argv[0] == "journalctl" for argv in commands)


def test_without_qmail_qread_qmail_sends_log_is_read(qmail_without_qread):
    """qmail-send's deferral of the guard's 450 rewrite (what qmail-remote got) and the guard's own record of it."""
    rewritten = R.apply_retry(FAULTS["relay_denied"], RETRY)
    report, _commands = qmail_without_qread(qmail_journal(NOW - 60, rewritten),
                                            guard_rewrites(NOW - 600, {"relay_denied": FAULTS["relay_denied"]}))
    assert by_class(report) == {"allowlist": (0, 1, 1)}
    assert report["queue_read"] is False and report["verdict"] == "degraded"


def test_without_anything_to_report_a_host_without_qmail_qread_is_not_healthy(qmail_without_qread):
    report, _commands = qmail_without_qread([], [])
    assert (report["classes"], report["verdict"], report["reasons"]) == (
        [], "degraded", ["queue not read: qmail-qread missing"])


def test_a_readable_queue_says_so(qmail_host):
    report = qmail_host([])
    assert report["queue_read"] is True and "queue_note" not in report and report["verdict"] == "healthy"
