# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No password given to relay_settings_check appears in any part of its result, passing or failing."""

from __future__ import annotations

import json

import pytest

from ansible_collections.smarthost.relay.plugins.action.relay_settings_check import ActionModule
SECRET_OPTIONS = ("auth_password",)
from ansible_collections.smarthost.relay.plugins.modules.relay_settings_check import DOCUMENTATION
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import argument_spec_from_doc

PASSWORD = "Tr0ub4dor-and-3"
AUTH = {"auth": True, "tls": "required", "auth_username": "relay@example.com", "auth_password": PASSWORD,
        "domains": ["example.com"], "helo_name": "mail.example.com"}

CALLS = {
    # passing calls
    "good profile": AUTH,
    "good profile, numeric password": dict(AUTH, auth_password=31415926),
    "good profile, password in a list": dict(AUTH, auth_password=[PASSWORD]),
    "qmail rules, raw settings with the password": {
        "mta": "qmail", "settings": {"auth_password": PASSWORD, "auth": False}, "mta_vars": {"qmail_timeoutremote": 900}},
    # refused by a relay rule
    "rule: auth on port 465": dict(AUTH, port=465),
    "rule: password as the HELO name": dict(AUTH, helo_name=PASSWORD),
    "rule: password as the local sender": dict(AUTH, local_sender=PASSWORD),
    "rule: password as an allowlist entry": dict(AUTH, allowlist=[PASSWORD]),
    "rule: password without auth": {"auth_password": PASSWORD, "domains": [PASSWORD + ".example.com"]},
    # refused by the argument spec, the password given to the wrong option as well
    "argspec: password as the port": dict(AUTH, port=PASSWORD),
    "argspec: password as tls": dict(AUTH, tls=PASSWORD),
    "argspec: password as an unknown option": dict(AUTH, **{PASSWORD: PASSWORD}),
    "argspec: password in a mapping": dict(AUTH, auth_password={"value": PASSWORD}, port="smtp"),
    # MTA rules: the roles' own passwords (no_log in their argument specs) and the settings' password
    "mta: detect with the relay password among the variables": {
        "mta": "detect", "mta_vars": {"relay_auth_password": PASSWORD, "sendmail_timeout_datafinal": PASSWORD}},
    "mta: exchange session password": {
        "mta": "exchange", "settings": {"auth_password": PASSWORD, "tls": "implicit", "auth": True},
        "mta_vars": {"exchange_session_password": PASSWORD, "exchange_session_username": "corp\\svc",
                     "exchange_connector_name": PASSWORD}},
    "mta: qmail with the password as a timeout": {
        "mta": "qmail", "settings": {"auth_password": PASSWORD}, "mta_vars": {"qmail_timeoutremote": PASSWORD}},
}


def test_auth_password_is_the_secret_option():
    assert SECRET_OPTIONS == ("auth_password",)
    spec = argument_spec_from_doc(DOCUMENTATION, secret=SECRET_OPTIONS)
    assert spec["auth_password"]["no_log"] is True
    assert "no_log" not in argument_spec_from_doc(DOCUMENTATION)["auth_password"]


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_no_password_in_any_output(run_action, name, check_mode):
    args = CALLS[name]
    result = run_action(ActionModule, args, check_mode=check_mode)
    text = json.dumps(result)
    assert PASSWORD not in text and "31415926" not in text, text
    assert "Tr0ub4dor" not in text
    assert result["changed"] is False
    assert "msg" in result


def test_the_calls_cover_passing_and_every_kind_of_failure(run_action):
    outcomes = {name: run_action(ActionModule, args) for name, args in CALLS.items()}
    passed = [name for name, result in outcomes.items() if not result.get("failed")]
    assert sorted(passed) == ["good profile", "good profile, numeric password", "good profile, password in a list",
                              "qmail rules, raw settings with the password"]
    for name, result in outcomes.items():
        kind = name.split(":")[0]
        if kind == "argspec":
            assert "[argument-spec]" in result["msg"], name
        elif kind in ("rule", "mta"):
            assert result["failed"] and result["findings"], name


def test_the_password_is_masked_where_it_would_have_been(run_action):
    result = run_action(ActionModule, dict(AUTH, port=PASSWORD))
    assert "argument 'port'" in result["msg"] and "********" in result["msg"]
    result = run_action(ActionModule, CALLS["mta: detect with the relay password among the variables"])
    assert "- sendmail_timeout_datafinal [sendmail-timeout-datafinal]: " in result["msg"]
    assert "'********'" in result["msg"]
    result = run_action(ActionModule, CALLS["qmail rules, raw settings with the password"])
    assert result["normalized"]["auth_password"] == "********"


@pytest.mark.parametrize("password", ["gmail", "relay", "0", "example"])
def test_a_password_inside_the_settings_does_not_change_them(run_action, password):
    """The normalized settings configure the MTAs: a (weak) password that is part of the host name, a domain or a
    retry pattern is masked where a text quotes it, never inside them."""
    clean = run_action(ActionModule, dict(AUTH, auth_password="Unrelated-pw-42"))
    result = run_action(ActionModule, dict(AUTH, auth_password=password))
    assert not result.get("failed"), result["msg"]
    assert result["normalized"] == clean["normalized"]
    assert result["normalized"]["host"] == "smtp-relay.gmail.com"
    assert result["normalized"]["auth_password"] == "********"
