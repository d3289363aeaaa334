# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the stand-in's parts: usage ledger, fault plan, message facts."""

from __future__ import annotations

import pytest

from relay_standin.faults import FaultConfigError, FaultPlan, parse_faults
from relay_standin.ledger import SlidingTotal, SlidingUniqueSet, UsageLedger, Windows
from relay_standin.message import message_id

WINDOWS = Windows(daily_seconds=100.0, peak_seconds=10.0)


def test_sliding_total_forgets_old_entries():
    total = SlidingTotal()
    total.add(0.0, 5)
    total.add(5.0, 2)
    assert total.total(9.0, 10.0) == 7
    assert total.total(10.0, 10.0) == 2
    assert total.total(15.0, 10.0) == 0


def test_sliding_unique_set_counts_distinct_and_refreshes():
    unique = SlidingUniqueSet()
    unique.add(0.0, "a")
    unique.add(1.0, "b")
    unique.add(5.0, "a")
    assert unique.count(6.0, 10.0) == 2
    assert unique.count(11.0, 10.0) == 1        # b expired, a seen again at 5
    assert unique.count_with(11.0, 10.0, ["a", "c", "c"]) == 2


def test_ledger_counts_users_unique_and_customer_total():
    ledger = UsageLedger()
    for dummy in range(3):
        ledger.record_message("Alice@Example.com", ["x@r.test", "y@r.test"], 1.0)
    assert ledger.user_messages("alice@example.com", 2.0, WINDOWS) == 3
    assert ledger.user_unique_recipients("alice@example.com", 2.0, WINDOWS) == 2
    assert ledger.user_unique_recipients("alice@example.com", 2.0, WINDOWS, pending=["z@r.test"]) == 3
    assert ledger.customer_recipients(2.0, WINDOWS) == (6, 6)
    assert ledger.customer_recipients(12.0, WINDOWS) == (6, 0)
    assert ledger.customer_recipients(102.0, WINDOWS) == (0, 0)


def test_ledger_is_fast_enough_for_many_messages():
    ledger = UsageLedger()
    for number in range(20000):
        ledger.record_message("alice@example.com", ["r%d@r.test" % (number % 50)], float(number))
        ledger.customer_recipients(float(number), WINDOWS)
        ledger.user_unique_recipients("alice@example.com", float(number), WINDOWS)
    assert ledger.customer_recipients(19999.0, WINDOWS) == (100, 10)
    assert ledger.user_unique_recipients("alice@example.com", 19999.0, WINDOWS) == 50


def test_fault_plan_times_and_window():
    rules = parse_faults([{"stage": "mail", "times": 2}, {"stage": "rcpt", "after_seconds": 5, "for_seconds": 5}])
    plan = FaultPlan.build(rules, now=0.0)
    assert plan.take("mail", 587, now=1.0) is rules[0]
    assert plan.take("mail", 587, now=1.0) is rules[0]
    assert plan.take("mail", 587, now=1.0) is None
    assert plan.take("rcpt", 25, now=4.9) is None
    assert plan.take("rcpt", 25, now=5.0) is rules[1]
    assert plan.take("rcpt", 25, now=10.0) is None


def test_fault_plan_keeps_counters_of_unchanged_rules():
    first = parse_faults([{"stage": "mail", "times": 1}])
    plan = FaultPlan.build(first, now=0.0)
    plan.take("mail", 587, now=0.0)
    again = FaultPlan.build(parse_faults([{"stage": "mail", "times": 1}, {"stage": "helo", "times": 1}]), plan, 9.0)
    assert again.take("mail", 587, now=9.0) is None
    assert again.take("helo", 587, now=9.0) is not None
    assert again.hits() == [1, 1]


def test_fault_ports_and_unlisten():
    plan = FaultPlan.build(parse_faults([{"stage": "connect", "ports": ["submission", 465]},
                                         {"action": "unlisten", "ports": [25], "for_seconds": 1}]), now=0.0)
    assert plan.take("connect", 25, now=0.0) is None
    assert plan.take("connect", 587, now=0.0) is not None
    assert plan.unlistened_ports(now=0.5) == {25}
    assert plan.unlistened_ports(now=1.5) == set()


def test_fault_defaults():
    [reply, soft, stall] = parse_faults([{"stage": "mail"}, {"stage": "rcpt", "reply": "550 5.1.1 no"},
                                         {"stage": "data", "action": "stall", "seconds": 2}])
    assert (reply.reply, reply.disconnect) == ("421 4.7.0 Try again later, closing connection.", True)
    assert soft.disconnect is False
    assert stall.describe() == {"stage": "data", "action": "stall", "seconds": 2.0}
    with pytest.raises(FaultConfigError):
        parse_faults({"stage": "mail"})


@pytest.mark.parametrize("reply, lines, logical", [
    ("451 4.3.0 Try later", ("451 4.3.0 Try later",), "451 4.3.0 Try later"),
    ("421", ("421",), "421"),
    (["550-5.7.1 a", "550 5.7.1 b x1.2 - gsmtp"], ("550-5.7.1 a", "550 5.7.1 b x1.2 - gsmtp"), "550 5.7.1 a b"),
    ("550-5.7.1 a\r\n550-5.7.1 b\n550 5.7.1 c\n", ("550-5.7.1 a", "550-5.7.1 b", "550 5.7.1 c"), "550 5.7.1 a b c"),
    (["554-No", "554 status codes"], ("554-No", "554 status codes"), "554 No status codes"),
])
def test_fault_replies_one_or_many_lines(reply, lines, logical):
    [rule] = parse_faults([{"stage": "mail", "reply": reply}])
    assert (rule.reply_lines, rule.reply, rule.reply_key) == (lines, logical, None)


def test_fault_reply_key():
    [rule, soft] = parse_faults([{"stage": "mail", "reply_key": "dos_helo"},
                                 {"stage": "rcpt", "reply_key": "customer_daily"}])
    assert (rule.reply_key, rule.reply_lines, rule.disconnect) == ("dos_helo", (), True)
    assert soft.disconnect is False and soft.reply.startswith("550 5.7.1 Daily SMTP relay limit exceeded")
    assert soft.describe() == {"stage": "rcpt", "action": "reply", "reply": soft.reply, "reply_key": "customer_daily"}


@pytest.mark.parametrize("entry, message", [
    ({"stage": "mail", "reply": ["550-5.7.1 a", "451 4.3.0 b"]}, "same code"),
    ({"stage": "mail", "reply": ["550 5.7.1 a", "550 5.7.1 b"]}, "'-' after the code"),
    ({"stage": "mail", "reply": ["550-5.7.1 a", "550-5.7.1 b"]}, "'-' after the code"),
    ({"stage": "mail", "reply": ["550-5.7.1 a", "250 2.0.0 b"]}, "4xx or 5xx"),
    ({"stage": "mail", "reply": []}, "4xx or 5xx"),
    ({"stage": "mail", "reply": 550}, "4xx or 5xx"),
    ({"stage": "mail", "reply": "550-5.7.1 dangling"}, "'-' after the code"),
    ({"stage": "mail", "reply_key": "no_such_reply"}, "reply catalogue"),
    ({"stage": "mail", "reply_key": "dos_helo", "reply": "421 4.7.0 x"}, "not both"),
])
def test_bad_fault_replies(entry, message):
    with pytest.raises(FaultConfigError, match=message):
        parse_faults([entry])


@pytest.mark.parametrize("content, expected", [
    (b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody", "<a@b>"),
    (b"message-id:\r\n <folded@b>\r\n\r\n", "<folded@b>"),
    (b"Subject: x\r\n\r\nMessage-ID: <in-body@b>\r\n", None),
    (b"", None),
])
def test_message_id(content, expected):
    assert message_id(content) == expected
