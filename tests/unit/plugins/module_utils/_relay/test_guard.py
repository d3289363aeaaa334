# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay guard's rules (guard.py), which the relay_guard role's YAML used to hold: each rule passes a good value
and refuses a bad one, naming the variable; only where the guard listens is checked when it is being removed."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.smarthost.relay.plugins.module_utils._relay.guard import RULES, check_guard
from ansible_collections.smarthost.relay.plugins.module_utils._relay.mta import check_mta
from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import check_profile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "..")

with open(os.path.join(ROOT, "roles", "relay_guard", "defaults", "main.yml"), encoding="utf-8") as _handle:
    DEFAULTS = yaml.safe_load(_handle)

RELAY = check_profile({"domains": ["example.com"], "allowlist": ["8.8.8.0/29"],
                       "helo_name": "mail.example.com"}).normalized
LOCAL_NAMES = ["mx1.example.net", "mx1", "localhost", ".localdomain"]
DOMAIN = {"relay_guard_local_sender_rewrite": "domain", "relay_guard_local_sender_domains": LOCAL_NAMES,
          "relay_guard_local_sender_domain": "example.com"}
ADDRESS = {"relay_guard_local_sender_rewrite": "address", "relay_guard_local_sender_domains": LOCAL_NAMES,
           "relay_guard_local_sender_address": "alerts@example.com"}


def found(**values):
    return [(f.variable, f.rule) for f in check_guard(RELAY, dict(DEFAULTS, **values))]


def test_role_defaults_break_no_rule():
    assert found() == []
    assert found(**DOMAIN) == []
    assert found(**ADDRESS) == []


# (good values, bad values, the finding of the bad ones), one row per rule and per way of breaking it.
CASES = [
    ({"relay_guard_address": "::1"}, {"relay_guard_address": "0.0.0.0"}, ("relay_guard_address", "guard-address")),
    ({"relay_guard_address": "127.0.0.1"}, {"relay_guard_address": "localhost"},
     ("relay_guard_address", "guard-address")),
    ({"relay_guard_port": 1023}, {"relay_guard_port": 1024}, ("relay_guard_port", "guard-port")),
    ({"relay_guard_port": 1}, {"relay_guard_port": 0}, ("relay_guard_port", "guard-port")),
    ({"relay_guard_port": "24"}, {"relay_guard_port": "smtp"}, ("relay_guard_port", "guard-port")),
    ({"relay_guard_connect_timeout": 1}, {"relay_guard_connect_timeout": 0},
     ("relay_guard_connect_timeout", "guard-timeout")),
    ({"relay_guard_reply_timeout": 86400}, {"relay_guard_reply_timeout": 86401},
     ("relay_guard_reply_timeout", "guard-timeout")),
    ({"relay_guard_pool_max_connections": 1000}, {"relay_guard_pool_max_connections": 1001},
     ("relay_guard_pool_max_connections", "guard-pool-range")),
    ({"relay_guard_pool_max_connections": 1, "relay_guard_pool_max_idle": 0}, {"relay_guard_pool_max_connections": 0},
     ("relay_guard_pool_max_connections", "guard-pool-range")),
    ({"relay_guard_pool_max_idle": 0}, {"relay_guard_pool_max_idle": -1},
     ("relay_guard_pool_max_idle", "guard-pool-range")),
    ({"relay_guard_pool_idle_timeout": 3600}, {"relay_guard_pool_idle_timeout": 3601},
     ("relay_guard_pool_idle_timeout", "guard-pool-range")),
    ({"relay_guard_pool_idle_timeout": 1}, {"relay_guard_pool_idle_timeout": 0},
     ("relay_guard_pool_idle_timeout", "guard-pool-range")),
    ({"relay_guard_pool_max_messages": 10 ** 9}, {"relay_guard_pool_max_messages": 10 ** 9 + 1},
     ("relay_guard_pool_max_messages", "guard-pool-range")),
    ({"relay_guard_pool_max_messages": 0}, {"relay_guard_pool_max_messages": -1},
     ("relay_guard_pool_max_messages", "guard-pool-range")),
    ({"relay_guard_pool_max_age": 604800}, {"relay_guard_pool_max_age": 604801},
     ("relay_guard_pool_max_age", "guard-pool-range")),
    ({"relay_guard_pool_max_age": 0}, {"relay_guard_pool_max_age": -1}, ("relay_guard_pool_max_age", "guard-pool-range")),
    ({"relay_guard_pool_wait": 1}, {"relay_guard_pool_wait": 0}, ("relay_guard_pool_wait", "guard-pool-range")),
    ({"relay_guard_pool_wait": "3600"}, {"relay_guard_pool_wait": "an hour"}, ("relay_guard_pool_wait", "guard-pool-range")),
    ({"relay_guard_pool_wait": 120}, {"relay_guard_pool_wait": None}, ("relay_guard_pool_wait", "guard-pool-range")),
    ({"relay_guard_pool_max_connections": 8, "relay_guard_pool_max_idle": 8},
     {"relay_guard_pool_max_connections": 2, "relay_guard_pool_max_idle": 4},
     ("relay_guard_pool_max_idle", "guard-pool-max-idle")),
    (ADDRESS, dict(ADDRESS, relay_guard_local_sender_rewrite="masquerade"),
     ("relay_guard_local_sender_rewrite", "guard-local-sender-rewrite")),
    (DOMAIN, dict(DOMAIN, relay_guard_local_sender_domains=[]),
     ("relay_guard_local_sender_domains", "guard-local-sender-domains")),
    (dict(DOMAIN, relay_guard_local_sender_domains=["MX1.example.net."]),
     dict(DOMAIN, relay_guard_local_sender_domains=["mx1.example.net", "bad name"]),
     ("relay_guard_local_sender_domains", "guard-local-sender-domains")),
    (DOMAIN, dict(DOMAIN, relay_guard_local_sender_domain="example"),
     ("relay_guard_local_sender_domain", "guard-local-sender-domain")),
    (dict(DOMAIN, relay_guard_local_sender_domain="Example.COM."), dict(DOMAIN, relay_guard_local_sender_domain=""),
     ("relay_guard_local_sender_domain", "guard-local-sender-domain")),
    (ADDRESS, dict(ADDRESS, relay_guard_local_sender_address="alerts"),
     ("relay_guard_local_sender_address", "guard-local-sender-address")),
    (ADDRESS, dict(ADDRESS, relay_guard_local_sender_address="a@b@example.com"),
     ("relay_guard_local_sender_address", "guard-local-sender-address")),
    (DOMAIN, dict(DOMAIN, relay_guard_local_sender_domains=["mx1.example.net", "Example.com"]),
     ("relay_guard_local_sender_domain", "guard-local-sender-target")),
    (dict(DOMAIN, relay_guard_local_sender_domains=[".example.com"]),
     dict(DOMAIN, relay_guard_local_sender_domains=[".example.com"], relay_guard_local_sender_domain="mail.example.com"),
     ("relay_guard_local_sender_domain", "guard-local-sender-target")),
    (ADDRESS, dict(ADDRESS, relay_guard_local_sender_address="root@mx1.example.net"),
     ("relay_guard_local_sender_address", "guard-local-sender-target")),
]


@pytest.mark.parametrize("good, bad, expected", CASES)
def test_each_rule_passes_good_and_refuses_bad_values(good, bad, expected):
    assert found(**good) == []
    assert expected in found(**bad)
    assert expected[1] in RULES


def test_every_rule_has_a_case():
    assert {rule for dummy, dummy2, (dummy3, rule) in CASES} == set(RULES)


def test_without_a_rewrite_the_local_sender_settings_are_not_read():
    assert found(relay_guard_local_sender_domains=["bad name"], relay_guard_local_sender_domain="example",
                 relay_guard_local_sender_address="alerts") == []


def test_only_the_listening_address_and_port_are_checked_when_the_guard_is_removed():
    broken = {"relay_guard_pool_wait": 0, "relay_guard_connect_timeout": 0, "relay_guard_local_sender_rewrite": "x"}
    assert found(relay_guard_state="absent", **broken) == []
    assert found(relay_guard_state="absent", relay_guard_address="0.0.0.0", relay_guard_port=2525, **broken) == [
        ("relay_guard_address", "guard-address"), ("relay_guard_port", "guard-port")]


def test_every_broken_rule_is_reported_at_once():
    broken = {**DOMAIN, "relay_guard_local_sender_domains": [], "relay_guard_address": "0.0.0.0",
              "relay_guard_port": 2525, "relay_guard_pool_max_connections": 2, "relay_guard_pool_wait": 0}
    assert found(**broken) == [
        ("relay_guard_address", "guard-address"), ("relay_guard_port", "guard-port"),
        ("relay_guard_pool_wait", "guard-pool-range"), ("relay_guard_pool_max_idle", "guard-pool-max-idle"),
        ("relay_guard_local_sender_domains", "guard-local-sender-domains")]


def test_findings_name_the_values_and_carry_a_fix():
    findings = check_guard(RELAY, dict(DEFAULTS, relay_guard_port=2525, relay_guard_pool_max_idle=9))
    assert [f.message.split(" ")[0] for f in findings] == ["relay_guard_port", "relay_guard_pool_max_idle"]
    assert "got 2525" in findings[0].message and "sendmail_guard_port" in findings[0].message
    assert "(9)" in findings[1].message and "(4)" in findings[1].message
    assert all(f.fix and f.severity == "error" for f in findings)


def test_unknown_variables_are_ignored():
    assert found(relay_guard_changed=True, relay_guard_backup="/etc/x.bak") == []


def test_check_mta_runs_the_guard_rules():
    assert [(f.variable, f.rule) for f in check_mta("relay_guard", RELAY, dict(DEFAULTS, relay_guard_pool_wait=0))] == \
        [("relay_guard_pool_wait", "guard-pool-range")]
