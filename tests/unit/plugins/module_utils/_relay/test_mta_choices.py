# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the MTA roles derive alike (mta_choices.py): retry on or off, the retry rules, the test delivery's sender."""

from __future__ import annotations

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay.mta import check_mta
from ansible_collections.smarthost.relay.plugins.module_utils._relay.mta_choices import (
    mta_test_sender,
    retry_choice,
    retry_on,
)
from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import check_profile
from ansible_collections.smarthost.relay.plugins.module_utils._relay.replies import retry_rules

RELAY = check_profile({"domains": ["example.com"], "allowlist": ["8.8.8.0/29"], "helo_name": "mail.example.com"}).normalized
LIMITS = retry_rules()["limits"]
REFUSALS = retry_rules()["refusals"]


@pytest.mark.parametrize("limits, refusals, expected", [
    (True, True, True), (True, False, True), (False, True, True), (False, False, False), (None, 0, False)])
def test_retry_on(limits, refusals, expected):
    assert retry_on(limits, refusals) is expected


@pytest.mark.parametrize("limits, refusals, enabled, rules", [
    (True, True, True, LIMITS + REFUSALS),
    (True, False, True, LIMITS),
    (False, True, True, REFUSALS),
    (False, False, False, []),
])
def test_retry_choice_takes_the_published_rules_limits_first(limits, refusals, enabled, rules):
    assert retry_choice(RELAY, limits, refusals) == {"enabled": enabled, "rules": rules}


def test_retry_choice_returns_a_copy():
    choice = retry_choice(RELAY, True, False)
    choice["rules"].append({"cause": "mine"})
    assert RELAY["retry_replies"]["limits"] == LIMITS


@pytest.mark.parametrize("relay", [None, {}, {"retry_replies": None}, {"retry_replies": {"refusals": []}},
                                   {"retry_replies": {"limits": "550 5.4.5"}}])
def test_retry_choice_refuses_settings_without_the_rules(relay):
    with pytest.raises(ValueError, match=r"relay_settings\.retry_replies\.limits is missing"):
        retry_choice(relay, True, False)


def test_retry_choice_reads_no_rules_when_both_are_off():
    assert retry_choice({}, False, False) == {"enabled": False, "rules": []}


@pytest.mark.parametrize("mta", ["sendmail", "qmail"])
@pytest.mark.parametrize("limits, refusals", [(True, True), (True, False), (False, True), (False, False)])
def test_the_rules_of_mta_py_see_the_guard_as_the_roles_do(mta, limits, refusals):
    # With TLS required and the guard off, each MTA has a rule that fires (implicit TLS for Sendmail, the
    # STARTTLS client for qmail); it must fire exactly when retry_choice says the guard is off.
    relay = dict(RELAY, tls="implicit", port=465)
    mta_vars = {"%s_limit_replies_retry" % mta: limits, "%s_relay_refusals_retry" % mta: refusals,
                "qmail_starttls_client": False}
    rule = {"sendmail": "sendmail-implicit-tls", "qmail": "qmail-starttls-client"}[mta]
    fired = rule in [f.rule for f in check_mta(mta, relay, {k: v for k, v in mta_vars.items() if k.startswith(mta)})]
    assert fired is not retry_choice(relay, limits, refusals)["enabled"]


AUTH = {"auth": True, "auth_username": "relay@example.com", "customer_domain": "example.com"}
ALLOWLIST = {"auth": False, "auth_username": None, "customer_domain": "example.com"}


@pytest.mark.parametrize("relay, explicit, local_sender, expected", [
    (AUTH, "me@example.com", "alerts@example.com", "me@example.com"),
    (AUTH, "", "alerts@example.com", "relay@example.com"),
    (dict(AUTH, auth_username=None), "", "", ""),
    (ALLOWLIST, "", "alerts@example.com", "alerts@example.com"),
    (ALLOWLIST, "", "", "postmaster@example.com"),
    (dict(ALLOWLIST, customer_domain=None), "", "", "postmaster@"),
    (None, "", "", "postmaster@"),
])
def test_mta_test_sender(relay, explicit, local_sender, expected):
    assert mta_test_sender(relay, explicit, local_sender) == expected


def test_mta_test_sender_defaults():
    assert mta_test_sender(RELAY) == "postmaster@example.com"
