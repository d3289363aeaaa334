# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The exchange role without a host: its variables and argument specs agree,
every module task sends arguments its module accepts, and the relay rules
become the send connector settings the service document asks for."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from ansible_collections.smarthost.relay.plugins.module_utils._relay.mta import check_mta
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import validate_from_doc
from conftest import RELAY_DOC, ROLE, powershell_spec, validate_module_args

BASE = {"relay_domains": ["example.com"], "relay_allowlist": ["198.51.100.16/29"], "relay_helo_name": "mail.example.com",
        "exchange_source_servers": ["EX01"]}
AUTH = dict(BASE, relay_auth=True, relay_auth_username="relay@example.com", relay_auth_password="correct-horse-battery")
EDGE = dict(BASE, exchange_source_servers=[], exchange_edge=True, exchange_edge_site="Default-First-Site-Name",
            exchange_edge_servers=["edge01.dmz.example.test"], exchange_edge_hub_addresses=["10.0.1.11"])
SEND = "smarthost.relay.exchange_send_connector"
EDGE_FACTS = "smarthost.relay.exchange_edge_facts"
RETRY = "smarthost.relay.exchange_transport_retry"
CHECK = "smarthost.relay.relay_settings_check"


def read_yaml(*parts):
    with open(os.path.join(ROLE, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def all_tasks():
    for name in sorted(os.listdir(os.path.join(ROLE, "tasks"))):
        for task in read_yaml("tasks", name) or []:
            yield name, task


# --- variables and argument specs ------------------------------------------------------------------
def test_defaults_match_argument_specs():
    defaults = read_yaml("defaults", "main.yml")
    options = read_yaml("meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)
    python_types = {"str": str, "bool": bool, "int": int, "list": list, "dict": dict}
    for name, spec in options.items():
        assert name.startswith("exchange_"), name
        assert spec["default"] == defaults[name], name
        assert isinstance(defaults[name], python_types[spec["type"]]), name
        if "choices" in spec:
            assert defaults[name] in spec["choices"], name
        assert spec["description"], name
    assert options["exchange_session_password"]["no_log"] is True


def test_internal_variables_are_prefixed():
    for name in read_yaml("vars", "main.yml"):
        assert name.startswith("__exchange_"), name
    known = set(read_yaml("vars", "main.yml")) | set(read_yaml("defaults", "main.yml"))
    used = set()
    for dummy, task in all_tasks():
        known.update(task.get("vars", {}))
        if "register" in task:
            known.add(task["register"])
        # Templates in values, and the bare expressions of when/until/that.
        expressions = [task.get("when", ""), task.get("until", "")]
        expressions += re.findall(r"\{\{.*?\}\}|\{%.*?%\}", yaml.safe_dump(task, width=10000), re.S)
        for key in task:
            if isinstance(task[key], dict) and "that" in task[key]:
                expressions += task[key]["that"]
        for expression in expressions:
            used.update(re.findall(r"\b(__exchange_[a-z_]+|exchange_[a-z_]+)\b", str(expression)))
    assert used, "no variable found: the scan is broken"
    assert used - known == set(), "tasks use variables the role does not define"


def test_meta_depends_on_relay_role_first():
    meta = read_yaml("meta", "main.yml")
    assert meta["dependencies"][0] == {"role": "smarthost.relay.relay"}
    assert meta["galaxy_info"]["platforms"][0]["name"] == "Windows"


def test_module_tasks_use_known_options_and_hide_secrets():
    seen = set()
    for task_file, task in all_tasks():
        modules = [key for key in task if key.startswith("smarthost.relay.exchange_")]
        if not modules:
            continue
        module = modules[0]
        seen.add(module)
        options = powershell_spec(module.split(".")[-1])["options"]
        assert set(task[module]) <= set(options), "%s: %s" % (task_file, set(task[module]) - set(options))
        secrets = [arg for arg in task[module] if arg.endswith("_password")]
        if secrets:
            assert task.get("no_log") == "{{ __exchange_no_log }}", "%s: %s carries %s" % (task_file, task["name"], secrets)
    assert seen == {SEND, EDGE_FACTS, RETRY}


def test_no_log_follows_relay_no_log(role):
    assert role.template("{{ __exchange_no_log }}", AUTH) is True
    assert role.template("{{ __exchange_no_log }}", dict(AUTH, relay_no_log=False)) is False
    assert role.template("{{ __exchange_no_log }}", BASE) is False
    assert role.template("{{ __exchange_no_log }}", dict(BASE, exchange_session_username="a", exchange_session_password="b")) is True


# --- relay rules -> connector settings ---------------------------------------------------------------
@pytest.mark.parametrize("host_vars, expected", [
    # IP allowlist, TLS required (the default): 587, RequireTLS, the relay's certificate and name validated.
    (BASE, {"port": 587, "require_tls": True, "ignore_starttls": False, "tls_auth_level": "DomainValidation",
            "tls_domain": "smtp-relay.gmail.com", "smart_host_auth": "None", "fqdn": "mail.example.com",
            "smart_hosts": ["smtp-relay.gmail.com"], "source_servers": ["EX01"]}),
    # SMTP AUTH: BasicAuthRequireTLS with the user and password.
    (AUTH, {"smart_host_auth": "BasicAuthRequireTLS", "auth_username": "relay@example.com",
            "auth_password": "correct-horse-battery", "port": 587}),
    # No certificate validation asked for: encryption only.
    (dict(BASE, relay_tls_verify=False), {"tls_auth_level": "EncryptionOnly", "tls_domain": None}),
    # Opportunistic TLS: port 25, TLS not required, no authentication level.
    (dict(BASE, relay_tls="opportunistic", relay_port=25),
     {"port": 25, "require_tls": False, "ignore_starttls": False, "tls_auth_level": None, "tls_domain": None}),
    (dict(BASE, relay_tls="none", relay_port=25),
     {"port": 25, "require_tls": False, "ignore_starttls": True, "tls_auth_level": None}),
    # Optional settings pass through; the play's hosts are the default source servers.
    (dict(BASE, exchange_max_message_size="35MB", exchange_connection_inactivity_timeout="00:15:00",
          exchange_source_servers=[], exchange_domain_controller="dc01.corp.example.test"),
     {"max_message_size": "35MB", "connection_inactivity_timeout": "00:15:00", "source_servers": ["ex-test"],
      "domain_controller": "dc01.corp.example.test"}),
    (dict(BASE, exchange_session="snapin", exchange_snapin="Microsoft.Exchange.Management.PowerShell.E2010"),
     {"session": "snapin", "snapin": "Microsoft.Exchange.Management.PowerShell.E2010", "session_uri": None}),
])
def test_connector_arguments(role, host_vars, expected):
    args = role.render("connector.yml", SEND, host_vars)
    result = validate_module_args("exchange_send_connector", args)
    assert not result.error_messages, result.error_messages
    assert args["mode"] == "connector" and args["name"] == "Outbound"
    for key, value in expected.items():
        if value is None:
            assert key not in args, key
        else:
            assert args[key] == value, key


def test_helo_name_left_alone_when_not_set(role):
    args = role.render("connector.yml", SEND, dict(AUTH, relay_helo_name="", relay_null_sender=True))
    assert "fqdn" not in args


def test_edge_arguments(role):
    hub = role.render("edge.yml", SEND, EDGE)
    assert not validate_module_args("exchange_send_connector", hub).error_messages
    assert hub["mode"] == "edge"
    assert hub["name"] == "EdgeSync - Default-First-Site-Name to Internet"
    assert hub["edge_sync"] is True and "source_servers" not in hub and "take_over" not in hub
    assert hub["tls_auth_level"] == "DomainValidation"

    # The Edge check compares with what the hub module returned, except in check mode after a would-be change.
    edge_vars = dict(EDGE, __exchange_hub_connector={"changed": True, "connector": {"Port": 587}})
    checked = role.render("edge.yml", EDGE_FACTS, edge_vars, item="edge01.dmz.example.test")
    assert not validate_module_args("exchange_edge_facts", checked).error_messages
    assert checked["expected"] == {"Port": 587}
    assert checked["hub_addresses"] == ["10.0.1.11"] and checked["session"] == "snapin"
    in_check_mode = role.render("edge.yml", EDGE_FACTS, edge_vars, check_mode=True, item="edge01.dmz.example.test")
    assert "expected" not in in_check_mode


def test_edge_tasks_are_delegated_and_retried():
    tasks = {task["name"]: task for task in read_yaml("tasks", "edge.yml")}
    check = [task for task in tasks.values() if EDGE_FACTS in task][0]
    assert check["delegate_to"] == "{{ item }}" and check["loop"] == "{{ exchange_edge_servers }}"
    assert check["delegate_facts"] is True
    assert check["until"] == "__exchange_edge is not failed"
    hub = [task for task in tasks.values() if SEND in task][0]
    assert hub["run_once"] is True


@pytest.mark.parametrize("host_vars, expected", [
    (dict(BASE, exchange_retry_document_values=True),
     {"transient_failure_retry_interval": "00:01:00", "transient_failure_retry_count": 2,
      "outbound_connection_failure_retry_interval": "00:05:00"}),
    (dict(BASE, exchange_retry_document_values=True, exchange_retry={"transient_failure_retry_count": 3,
                                                                     "message_retry_interval": "00:05:00"}),
     {"transient_failure_retry_interval": "00:01:00", "transient_failure_retry_count": 3,
      "outbound_connection_failure_retry_interval": "00:05:00", "message_retry_interval": "00:05:00"}),
])
def test_retry_arguments(role, host_vars, expected):
    args = role.render("retry.yml", RETRY, host_vars, item="EX01")
    assert not validate_module_args("exchange_transport_retry", args).error_messages
    assert args["server"] == "EX01"
    for key, value in expected.items():
        assert args[key] == value, key
    assert role.template("{{ __exchange_retry | length > 0 }}", BASE) is False


# --- the Exchange rules (tasks/check.yml: the rule engine's, on what the role passes it) -------------------------
def problems(role, host_vars):
    """(variable, rule) of every finding of the role's check task, its arguments templated as the role runs it and
    run through the rule engine as the action plugin runs them."""
    variables = role.variables(host_vars)
    task = role.module_task("check.yml", CHECK)
    variables.update(task.get("vars", {}))
    args, errors, dummy = validate_from_doc(RELAY_DOC, role.templar(variables).template(task[CHECK]))
    assert not errors, errors
    assert "exchange_session_password" not in [name for name, value in args["mta_vars"].items()
                                               if value not in ("", "********")]
    findings = check_mta(args["mta"], args["settings"], args["mta_vars"], args["facts"] or {}, args["inventory"])
    return [(finding.variable, finding.rule) for finding in findings]


def test_no_rule_is_left_in_the_role_yaml():
    assert "__exchange_rules" not in read_yaml("vars", "main.yml")
    assert [task for task in read_yaml("tasks", "check.yml") if CHECK in task][0][CHECK]["mta"] == "exchange"
    asserts = [task["ansible.builtin.assert"]["that"] for dummy, task in all_tasks() if "ansible.builtin.assert" in task]
    assert asserts == [["relay_settings is defined", "relay_settings is mapping",
                        "relay_settings.host | default('') | length > 0"]]


def test_good_settings_break_no_rule(role):
    for host_vars in (BASE, dict(EDGE, exchange_retry_document_values=True),
                      dict(BASE, exchange_session_username="admin", exchange_session_password="s3cret-pass")):
        assert problems(role, host_vars) == []


# Each case breaks several rules at once; every one is reported, each naming its variable and rule.
@pytest.mark.parametrize("host_vars, expected", [
    (dict(BASE, relay_tls="implicit", relay_tls_ca_file="C:\\ca.pem", exchange_source_servers=["ex01.corp.example.test", "EX99"],
          exchange_connector_name="EdgeSync - Site to Internet", exchange_max_message_size="35 megabytes",
          exchange_connection_inactivity_timeout="15m", exchange_session_username="admin",
          ansible_connection="winrm", ansible_port=5985),
     [("relay_tls", "exchange-implicit-tls"), ("relay_tls_ca_file", "exchange-tls-ca-file"),
      ("exchange_connector_name", "exchange-connector-name"), ("exchange_max_message_size", "exchange-max-message-size"),
      ("exchange_connection_inactivity_timeout", "exchange-timespan"),
      ("exchange_session_username", "exchange-session-password"), ("exchange_source_servers", "exchange-source-servers"),
      ("ansible_port", "exchange-winrm-https")]),
    (dict(EDGE, exchange_edge_site=" ", exchange_source_servers=["EX01"],
          exchange_edge_servers=["edge01.dmz.example.test", "edge09.dmz.example.test"],
          exchange_edge_hub_addresses=["10.0.1.0/24", "10.0.1.300"],
          ansible_connection="winrm", ansible_winrm_server_cert_validation="ignore"),
     [("exchange_edge_site", "exchange-edge-site"), ("exchange_source_servers", "exchange-edge-source-servers"),
      ("exchange_edge_servers", "exchange-edge-servers"), ("exchange_edge_hub_addresses", "exchange-edge-hub-addresses"),
      ("ansible_winrm_server_cert_validation", "exchange-winrm-https")]),
    (dict(EDGE, exchange_edge_servers=[], exchange_edge_hub_addresses=[]),
     [("exchange_edge_servers", "exchange-edge-servers"), ("exchange_edge_hub_addresses", "exchange-edge-hub-addresses")]),
    (dict(BASE, exchange_retry={"transient_failure_retry_count": 16, "message_retry_interval": "5m", "retry_everything": True}),
     [("exchange_retry", "exchange-retry")]),
])
def test_bad_settings_break_named_rules(role, host_vars, expected):
    assert problems(role, host_vars) == expected


def test_insecure_winrm_can_be_allowed(role):
    host_vars = dict(BASE, ansible_connection="winrm", ansible_winrm_scheme="http", exchange_winrm_allow_insecure=True)
    assert problems(role, host_vars) == []
