# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The readers of _relay/sendmail_host: Sendmail time values, the comparison that ignores m4's date stamp, class w
from ``sendmail -bt``, and the relay mailer's arguments. The steps themselves are tested through the modules
(tests/unit/plugins/modules/test_sendmail_*.py)."""

from __future__ import annotations

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import sendmail_host as S


@pytest.mark.parametrize("value, expected", [
    ("1h", 3600), ("60m", 3600), ("90", 5400), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("59m59s", 3599),
    ("", 0), (None, 0),
])
def test_seconds(value, expected):
    assert S.seconds(value) == expected


def test_significant_lines_leave_out_comments_and_blank_lines():
    first = "##### built by root@a on Sat Dec  5 10:00:00 UTC 2026\n#####\nV10/Berkeley\n\nDS[relay]\n"
    second = "##### built by root@b on Sun Dec  6 05:00:00 UTC 2026\nV10/Berkeley\nDS[relay]\n"
    assert S.significant(first) == S.significant(second) == ["V10/Berkeley", "DS[relay]"]
    assert S.significant(second) != S.significant(second.replace("DS[relay]", "DS[other]"))


def test_class_w_from_the_address_test_mode():
    output = ("ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)\nEnter <ruleset> <address>\n"
              "> localhost\nMTA.example.com\n[10.0.0.5]\n[IPv6:::1]\nnot a name\n> ")
    assert S.class_w(output) == ["[10.0.0.5]", "[ipv6:::1]", "localhost", "mta.example.com"]


@pytest.mark.parametrize("lines, expected", [
    (["Mrelay,\tP=[IPC], F=mDFMuXa8k,", "\t\tT=DNS/RFC822/SMTP,", "\t\tA=TCP $h 587"], "TCP $h 587"),
    (["Mrelay,\tP=[IPC], F=mDFMuXa8k, A=TCP $h 2525"], "TCP $h 2525"),
    (["Msmtp,\tP=[IPC], A=TCP $h"], None),
    (["Mrelay,\tP=[IPC],", "\tT=DNS", "\tL=990", "\tR=x", "\tA=TCP $h 25"], None),
])
def test_relay_mailer_args(lines, expected):
    assert S.relay_mailer_args(lines) == expected
