# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""doctor_host.examine on a faked Sendmail host behind the relay guard: the journal (Sendmail's mail facility, the
guard's unit) answered by a fake ``journalctl``, the queue a directory of ``qf`` files. Lines written from the
formats (Sendmail's ``to=…, stat=…, reply=…``; the guard's ``[N] rewrite (<cause>): '<line>' -> '<new>'``)."""

from __future__ import annotations

import calendar

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_host
from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies as R

NOW = calendar.timegm((2026, 11, 2, 12, 0, 0, 0, 0, 0))
QID = "4A2B3C4D005678"
# the customer's daily limit with its words split over the first two lines ("… exceeded for" / "customer. …")
SPLIT = R.wrap(R.render("customer_daily"), token="x12-20020a05.37", width=35)
REWRITTEN = R.apply_retry(SPLIT, R.retry_rules()["limits"])


def sendmail_journal(at):
    first = REWRITTEN[0]
    return ["%.6f deb12 sm-mta[4242]: %s: to=<a@example.net>, delay=00:00:05, xdelay=00:00:05, mailer=relay, "
            "pri=120412, relay=[127.0.0.1] [127.0.0.1], dsn=4.7.1, reply=%s, stat=Deferred: %s"
            % (at, QID, first.replace("-", " ", 1), first)]


def guard_journal(at):
    prefix = "%.6f deb12 python3[77]:" % at
    return (["%s [3] connect from 127.0.0.1:40003" % prefix]
            + ["%s [3] rewrite (customer_daily): %r -> %r" % (prefix, old, new) for old, new in zip(SPLIT, REWRITTEN)]
            + ["%s [3] close (done)" % prefix])


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A Sendmail host with one message held; ``host(guard_lines)`` examines it with that guard journal."""
    (tmp_path / ("qf" + QID)).write_text("V8\nT%d\nSapp@example.com\nRPFD:a@example.net\nMDeferred: %s\n.\n"
                                         % (NOW - 300, REWRITTEN[0]))
    monkeypatch.setattr(doctor_host, "has_journal", lambda: True)

    def examine(guard_lines, guard=True):
        def run(argv):
            assert argv[0] == "journalctl", argv
            return 0, "\n".join(guard_lines if "-u" in argv else sendmail_journal(NOW - 60)), ""
        return doctor_host.examine(run, "sendmail", NOW - 3600, NOW, guard=guard, queue_dir=str(tmp_path))
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
