# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import re

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import constants as C
from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import check_profile
from ansible_collections.smarthost.relay.plugins.module_utils._relay.replies import (
    LIMIT_RULES, REFUSAL_RULES, apply_rules, retry_rules)


@pytest.mark.parametrize("reply,expected", [
    (C.REPLY_USER_DAILY, "450 4.4.5 Daily SMTP relay limit exceeded for user."),
    (C.REPLY_CUSTOMER_DAILY, "450 4.7.1 Daily SMTP relay limit exceeded for customer."),
    ("550-5.4.5 Daily SMTP relay limit exceeded for user.", "450-4.4.5 Daily SMTP relay limit exceeded for user."),
    # Not limits: left alone (a refusal of this server, a bad recipient, the peak limit that is a 4xx already).
    ("550 5.7.1 Invalid credentials for relay [192.0.2.1].", "550 5.7.1 Invalid credentials for relay [192.0.2.1]."),
    ("550 5.1.1 The email account that you tried to reach does not exist.",
     "550 5.1.1 The email account that you tried to reach does not exist."),
    (C.REPLY_CUSTOMER_PEAK, C.REPLY_CUSTOMER_PEAK),
])
def test_limit_rules(reply, expected):
    assert apply_rules(reply, LIMIT_RULES) == expected


@pytest.mark.parametrize("reply,expected", [
    ("550 5.7.0 Mail relay denied [192.0.2.1].", "450 4.7.0 Mail relay denied [192.0.2.1]."),
    ("550 5.7.1 Invalid credentials for relay [192.0.2.1].", "450 4.7.1 Invalid credentials for relay [192.0.2.1]."),
    ("530 5.7.0 Must issue a STARTTLS command first.", "450 4.7.0 Must issue a STARTTLS command first."),
    ("530-5.7.0 Authentication Required.", "450-4.7.0 Authentication Required."),
    (C.REPLY_USER_DAILY, C.REPLY_USER_DAILY),
])
def test_refusal_rules(reply, expected):
    assert apply_rules(reply, REFUSAL_RULES) == expected


def test_rules_are_postfix_regexp_table_syntax():
    """Postfix's regexp tables read POSIX extended expressions: no Python-only syntax, ${n} in replacements."""
    for rule in LIMIT_RULES + REFUSAL_RULES:
        assert not re.search(r"\(\?|\\[dswDSWbB]", rule["pattern"]), rule
        groups = re.compile(rule["pattern"]).groups
        assert set(int(n) for n in re.findall(r"\$\{([0-9]+)\}", rule["replacement"])) <= set(range(1, groups + 1))
        assert "\\" not in rule["replacement"], rule


def test_published_in_relay_settings():
    report = check_profile({"host": "smtp-relay.gmail.com", "tls": "required", "auth": False,
                            "domains": ["example.com"], "allowlist": ["203.0.113.0/24"]})
    assert report.normalized["retry_replies"] == retry_rules()
    assert [r["pattern"] for r in retry_rules()["limits"]] == [r["pattern"] for r in LIMIT_RULES]
