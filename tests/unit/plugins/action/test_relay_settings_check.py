# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
from unittest.mock import MagicMock

import pytest
import yaml

from ansible_collections.smarthost.relay.plugins.action.relay_settings_check import ActionModule
from ansible_collections.smarthost.relay.plugins.modules import relay_settings_check as doc_module
from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import PROFILE_KEYS
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import argument_spec_from_doc


CATALOGUE = os.path.join(os.path.dirname(__file__), "..", "..", "catalogue", "bad_profiles.yml")
with open(CATALOGUE) as _f:
    ENTRIES = yaml.safe_load(_f)["profiles"]

GOOD = {"domains": ["example.com"], "auth": True, "auth_username": "relay@example.com",
        "auth_password": "correct-horse-battery", "null_sender": True, "helo_name": "mail.example.com",
        "licenses": 250, "servers": 2}


def test_plugin_stays_on_the_controller():
    assert ActionModule.TRANSFERS_FILES is False
    assert ActionModule._requires_connection is False
    assert ActionModule._supports_check_mode is True


def test_documentation_is_the_schema():
    spec = argument_spec_from_doc(doc_module.DOCUMENTATION)
    options = {"variable_prefix", "variable_names", "mta", "mta_vars", "settings", "facts", "inventory"}
    assert set(spec) == set(PROFILE_KEYS) | options
    assert spec["tls"]["choices"] == ["none", "opportunistic", "required", "implicit"]
    assert spec["allowlist"] == {"type": "list", "elements": "raw"}


@pytest.mark.parametrize("check_mode", [False, True])
def test_good_profile_passes(run_action, check_mode):
    result = run_action(ActionModule, GOOD, check_mode=check_mode)
    assert not result.get("failed"), result["msg"]
    assert result["changed"] is False
    n = result["normalized"]
    assert (n["host"], n["port"], n["tls"], n["tls_verify"], n["identity"]) == (
        "smtp-relay.gmail.com", 587, "required", True, "auth")
    assert n["auth_password"] == "********"
    assert n["throttles"]["messages_per_minute"] == 90
    assert "null-sender-single-recipient" in " ".join(result["notes"])
    assert "correct-horse-battery" not in json.dumps(result)
    assert result["msg"] == "relay settings OK: smtp-relay.gmail.com:587, tls required, SMTP AUTH"


def test_warnings_become_ansible_warnings(run_action):
    result = run_action(ActionModule, dict(GOOD, allowed_senders="any_address"))
    assert not result.get("failed")
    assert len(result["warnings"]) == 1
    assert result["warnings"][0].startswith("allowed_senders [any-address-not-recommended]: The Any addresses option")


def test_failure_lists_every_rule_with_variable_and_fix(run_action):
    result = run_action(ActionModule, {"port": 465, "tls": "required", "auth": True, "auth_password": "pw-pw-pw",
                                       "domains": ["example.com"], "allowlist": ["10.0.0.0/15"]})
    assert result["failed"] is True
    lines = result["msg"].splitlines()
    assert lines[0] == "The relay settings break 3 rule(s):"
    assert lines[1].startswith("- port [tls-required-port-587]: ") and " Fix: set port: 587" in lines[1]
    assert lines[2].startswith("- auth_username [auth-credentials]: ")
    assert lines[3].startswith("- allowlist[0] [allowlist-max-addresses]: ")
    assert {f["rule"] for f in result["findings"]} >= {"tls-required-port-587", "auth-credentials",
                                                       "allowlist-max-addresses", "allowlist-public"}
    assert "pw-pw-pw" not in json.dumps(result)


def test_variable_prefix_names_the_callers_variables(run_action):
    result = run_action(ActionModule, {"port": 465, "tls": "required", "domains": ["example.com"],
                                       "allowlist": ["10.0.0.0/15"], "variable_prefix": "relay_"})
    lines = result["msg"].splitlines()
    assert lines[1].startswith("- relay_port [tls-required-port-587]: ") and " Fix: set relay_port: 587" in lines[1]
    assert "relay_tls: required" in lines[1]
    assert lines[2].startswith("- relay_allowlist[0] [allowlist-max-addresses]: ")
    assert {f["variable"] for f in result["findings"]} >= {"relay_port", "relay_allowlist[0]"}
    assert "variable_prefix" not in result["normalized"]


def test_argument_spec_errors_fail_naming_the_option_and_hide_the_password(run_action):
    result = run_action(ActionModule, {"port": "smtp", "auth_password": "sekrit-value", "bogus": 1,
                                       "domains": ["sekrit-value"]})
    assert result["failed"] is True
    assert "[argument-spec]" in result["msg"]
    assert "port" in result["msg"] and "bogus" in result["msg"]
    assert "sekrit-value" not in json.dumps(result)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_catalogue_fails_before_reaching_a_host(run_action, entry):
    result = run_action(ActionModule, entry["profile"])
    assert result["failed"] is True
    rule = entry.get("action_rule", entry["rule"])
    variable = entry["variable"]
    if rule == "argument-spec":
        assert "[argument-spec]" in result["msg"] and variable in result["msg"], result["msg"]
    else:
        assert "- %s [%s]: " % (variable, rule) in result["msg"], result["msg"]
    password = entry["profile"].get("auth_password")
    if password:
        assert password not in json.dumps(result)


# --- MTA rules and variable names ------------------------------------------------------------------

def test_mta_rules_fail_naming_the_variable(run_action):
    settings = run_action(ActionModule, {"domains": ["example.com"], "allowlist": ["8.8.8.0/29"]})["normalized"]
    result = run_action(ActionModule, {"mta": "qmail", "settings": settings,
                                       "mta_vars": {"qmail_timeoutremote": 600, "qmail_timeoutsmtpd": 0}})
    assert result["failed"] and result["msg"].startswith("The qmail settings break 2 rule(s):")
    assert "\n- qmail_timeoutremote [qmail-timeoutremote]: " in result["msg"]
    assert "\n- qmail_timeoutsmtpd [qmail-timeoutsmtpd]: " in result["msg"]
    ok = run_action(ActionModule, {"mta": "qmail", "settings": settings, "mta_vars": {"qmail_timeoutremote": 900}})
    assert not ok.get("failed") and ok["msg"] == "qmail settings OK"


def test_exchange_rules_read_the_inventory(run_action):
    settings = run_action(ActionModule, {"domains": ["example.com"], "allowlist": ["8.8.8.0/29"]})["normalized"]
    inventory = {"host": "ex01", "play_hosts": ["ex01"], "hosts": {"ex01": {"ansible_connection": "winrm"}}}
    args = {"mta": "exchange", "settings": settings, "inventory": inventory,
            "mta_vars": {"exchange_source_servers": ["EX01", "EX99"], "exchange_connector_name": "Outbound"}}
    result = run_action(ActionModule, args)
    assert result["failed"] and result["msg"].startswith("The exchange settings break 1 rule(s):")
    assert "\n- exchange_source_servers [exchange-source-servers]: " in result["msg"]
    ok = run_action(ActionModule, dict(args, mta_vars={"exchange_source_servers": ["EX01"]}))
    assert not ok.get("failed") and ok["msg"] == "exchange settings OK"


def test_relay_guard_rules_name_the_variable(run_action):
    settings = run_action(ActionModule, {"domains": ["example.com"], "allowlist": ["8.8.8.0/29"]})["normalized"]
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "relay_guard", "defaults",
                           "main.yml"), encoding="utf-8") as handle:
        guard_vars = yaml.safe_load(handle)
    args = {"mta": "relay_guard", "settings": settings, "mta_vars": dict(guard_vars, relay_guard_pool_wait=0)}
    result = run_action(ActionModule, args)
    assert result["failed"] and result["msg"].startswith("The relay_guard settings break 1 rule(s):")
    assert "\n- relay_guard_pool_wait [guard-pool-range]: " in result["msg"]
    ok = run_action(ActionModule, dict(args, mta_vars=guard_vars))
    assert not ok.get("failed") and ok["msg"] == "relay_guard settings OK"


def test_mta_needs_the_relay_settings(run_action):
    result = run_action(ActionModule, {"mta": "postfix"})
    assert result["failed"] and "settings is required with mta: postfix" in result["msg"]


def test_detect_needs_no_settings(run_action):
    result = run_action(ActionModule, {"mta": "detect", "mta_vars": {"sendmail_timeout_datafinal": "30m"}})
    assert result["failed"] and "sendmail_timeout_datafinal [sendmail-timeout-datafinal]" in result["msg"]


def test_mistyped_variable_names_fail_with_the_relay_rules(run_action):
    result = run_action(ActionModule, dict(GOOD, variable_prefix="relay_",
                                           variable_names=["relay_prot", "relay_domains", "relay_standin_config"]))
    assert result["failed"] and "- relay_prot [variable-unknown]: " in result["msg"]
    assert "did you mean relay_port?" in result["msg"] and "relay_standin_config" not in result["msg"]


def test_a_role_call_checks_the_task_variables_names(run_action):
    task = MagicMock()
    task.args = dict(GOOD, variable_prefix="relay_")
    task.async_val, task.check_mode, task.action = 0, False, "smarthost.relay.relay_settings_check"
    plugin = ActionModule(task, MagicMock(), MagicMock(), MagicMock(), MagicMock(), None)
    result = plugin.run(task_vars={"relay_prot": 587, "relay_port": None, "inventory_hostname": "mx1"})
    assert result["failed"] and "- relay_prot [variable-unknown]: " in result["msg"]
    assert not run_action(ActionModule, dict(GOOD, variable_prefix="relay_")).get("failed")
