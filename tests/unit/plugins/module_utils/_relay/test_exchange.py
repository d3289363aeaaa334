# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Exchange connector rules (exchange.py), which the role's YAML used to hold: each rule passes a good value
and refuses a bad one, naming the variable; the rules that read the inventory only run when it is given."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.smarthost.relay.plugins.module_utils._relay.exchange import RULES, check_exchange
from ansible_collections.smarthost.relay.plugins.module_utils._relay.mta import check_mta
from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import check_profile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "..")

with open(os.path.join(ROOT, "roles", "exchange", "defaults", "main.yml"), encoding="utf-8") as _handle:
    DEFAULTS = yaml.safe_load(_handle)

RELAY = check_profile({"domains": ["example.com"], "allowlist": ["8.8.8.0/29"],
                       "helo_name": "mail.example.com"}).normalized
SECURE_WINRM = {"ansible_connection": "winrm", "ansible_port": 5986, "ansible_winrm_scheme": "https",
                "ansible_winrm_server_cert_validation": "validate"}
INVENTORY = {"host": "ex01.corp.example.test", "play_hosts": ["ex01.corp.example.test"],
             "hosts": {"ex01.corp.example.test": SECURE_WINRM, "ex02.corp.example.test": {},
                       "mbx3": {"exchange_server_name": "MAILBOX3"}, "edge01.dmz.example.test": SECURE_WINRM}}
EDGE = {"exchange_edge": True, "exchange_edge_site": "Default-First-Site-Name",
        "exchange_edge_servers": ["edge01.dmz.example.test"], "exchange_edge_hub_addresses": ["10.0.1.11"]}


def inventory_with(host_vars, host="ex01.corp.example.test"):
    return dict(INVENTORY, hosts=dict(INVENTORY["hosts"], **{host: host_vars}))


_WHOLE_INVENTORY = object()  # found()'s default: INVENTORY (None means "no inventory")


def found(relay=None, inventory=_WHOLE_INVENTORY, **values):
    inventory = INVENTORY if inventory is _WHOLE_INVENTORY else inventory
    return [(f.variable, f.rule) for f in check_exchange(relay or RELAY, dict(DEFAULTS, **values), inventory)]


def test_role_defaults_break_no_rule():
    assert found() == []
    assert found(**EDGE) == []


# (good values, bad values, the finding of the bad ones, the relay settings), one row per rule (and per way of
# breaking it).
CASES = [
    ({}, {}, ("relay_tls", "exchange-implicit-tls"), dict(RELAY, tls="implicit", port=465)),
    ({}, {}, ("relay_port", "exchange-implicit-tls"), dict(RELAY, tls="required", port=465)),
    ({}, {}, ("relay_tls_ca_file", "exchange-tls-ca-file"), dict(RELAY, tls_ca_file="C:\\ca.pem")),
    ({}, {}, ("relay_auth", "exchange-auth-requires-tls"), dict(RELAY, auth=True, tls="opportunistic", port=25)),
    ({"exchange_connector_name": "Outbound"}, {"exchange_connector_name": " "},
     ("exchange_connector_name", "exchange-connector-name"), None),
    ({"exchange_connector_name": "EdgeSync to the Internet"},
     {"exchange_connector_name": "EdgeSync - Site to Internet"},
     ("exchange_connector_name", "exchange-connector-name"), None),
    ({"exchange_max_message_size": "35MB"}, {"exchange_max_message_size": "35 megabytes"},
     ("exchange_max_message_size", "exchange-max-message-size"), None),
    ({"exchange_max_message_size": "Unlimited"}, {"exchange_max_message_size": "35"},
     ("exchange_max_message_size", "exchange-max-message-size"), None),
    ({"exchange_connection_inactivity_timeout": "1.00:15:00"}, {"exchange_connection_inactivity_timeout": "15m"},
     ("exchange_connection_inactivity_timeout", "exchange-timespan"), None),
    ({"exchange_session_username": "admin", "exchange_session_password": "********"},
     {"exchange_session_username": "admin"}, ("exchange_session_username", "exchange-session-password"), None),
    ({"exchange_source_servers": ["EX01", "ex02.corp.example.test", "mailbox3"]},
     {"exchange_source_servers": ["EX01", "EX99"]}, ("exchange_source_servers", "exchange-source-servers"), None),
    ({"exchange_source_servers": ["MAILBOX3"]}, {"exchange_source_servers": ["MBX3"]},
     ("exchange_source_servers", "exchange-source-servers"), None),
    (EDGE, dict(EDGE, exchange_edge_site=" "), ("exchange_edge_site", "exchange-edge-site"), None),
    (EDGE, dict(EDGE, exchange_source_servers=["EX01"]),
     ("exchange_source_servers", "exchange-edge-source-servers"), None),
    (dict(EDGE, exchange_edge_servers=[], exchange_edge_verify=False), dict(EDGE, exchange_edge_servers=[]),
     ("exchange_edge_servers", "exchange-edge-servers"), None),
    (EDGE, dict(EDGE, exchange_edge_servers=["edge01.dmz.example.test", "edge09.dmz.example.test"]),
     ("exchange_edge_servers", "exchange-edge-servers"), None),
    (dict(EDGE, exchange_edge_hub_addresses=["10.0.1.11", "2001:db8::11", "10.0.1.12/32"]),
     dict(EDGE, exchange_edge_hub_addresses=["10.0.1.0/24", "10.0.1.300"]),
     ("exchange_edge_hub_addresses", "exchange-edge-hub-addresses"), None),
    (dict(EDGE, exchange_edge_hub_addresses=[], exchange_edge_verify=False), dict(EDGE, exchange_edge_hub_addresses=[]),
     ("exchange_edge_hub_addresses", "exchange-edge-hub-addresses"), None),
    ({"exchange_retry": {"transient_failure_retry_count": 15, "message_retry_interval": "00:05:00"}},
     {"exchange_retry": {"transient_failure_retry_count": 16}}, ("exchange_retry", "exchange-retry"), None),
    ({"exchange_retry": {"outbound_connection_failure_retry_interval": "1.00:00:00"}},
     {"exchange_retry": {"outbound_connection_failure_retry_interval": 300}},
     ("exchange_retry", "exchange-retry"), None),
    ({"exchange_retry": {"transient_failure_retry_count": "2"}}, {"exchange_retry": {"retry_everything": True}},
     ("exchange_retry", "exchange-retry"), None),
]


@pytest.mark.parametrize("good, bad, expected, relay", CASES)
def test_each_rule_passes_good_and_refuses_bad_values(good, bad, expected, relay):
    if relay is not None:  # a relay settings rule: the relay settings are what is good or bad
        assert expected not in found()
        assert expected in found(relay)
    else:
        assert expected not in found(**good), found(**good)
        assert expected in found(**bad)
    assert expected[1] in RULES


@pytest.mark.parametrize("host_vars, variable", [
    (dict(SECURE_WINRM, ansible_winrm_scheme="http"), "ansible_winrm_scheme"),
    ({"ansible_connection": "winrm", "ansible_port": 5985}, "ansible_port"),
    (dict(SECURE_WINRM, ansible_winrm_server_cert_validation="ignore"), "ansible_winrm_server_cert_validation"),
])
def test_winrm_without_verified_https_is_refused_unless_allowed(host_vars, variable):
    assert found(inventory=inventory_with(host_vars)) == [(variable, "exchange-winrm-https")]
    assert found(inventory=inventory_with(host_vars), exchange_winrm_allow_insecure=True) == []


def test_winrm_is_checked_on_the_edge_servers_too():
    inventory = inventory_with({"ansible_connection": "winrm", "ansible_port": 5985}, "edge01.dmz.example.test")
    assert found(inventory=inventory) == []
    findings = check_exchange(RELAY, dict(DEFAULTS, **EDGE), inventory)
    assert [(f.variable, f.rule) for f in findings] == [("ansible_port", "exchange-winrm-https")]
    assert findings[0].message.startswith("edge01.dmz.example.test: ")


def test_other_connections_and_default_https_are_secure():
    assert found(inventory=inventory_with({"ansible_connection": "psrp"})) == []
    assert found(inventory=inventory_with({"ansible_connection": "winrm"})) == []


def test_inventory_rules_need_the_inventory():
    bad = {**EDGE, "exchange_edge_servers": ["edge09.dmz.example.test"]}
    assert found(inventory=None, **bad) == []
    assert found(inventory=None, exchange_source_servers=["EX99"]) == []
    assert found(inventory={"hosts": {}, "play_hosts": []}) == [("exchange_source_servers", "exchange-source-servers")]


def test_every_broken_rule_is_reported_at_once():
    findings = found(dict(RELAY, tls="implicit", port=465, tls_ca_file="C:\\ca.pem"),
                     inventory=inventory_with(dict(SECURE_WINRM, ansible_port=5985, ansible_winrm_scheme=None)),
                     exchange_connector_name="EdgeSync - Site to Internet", exchange_source_servers=["EX99"],
                     exchange_max_message_size="35 megabytes", exchange_session_username="admin")
    assert [rule for dummy, rule in findings] == [
        "exchange-implicit-tls", "exchange-tls-ca-file", "exchange-connector-name", "exchange-max-message-size",
        "exchange-session-password", "exchange-source-servers", "exchange-winrm-https"]


def test_findings_name_the_values_and_carry_a_fix():
    findings = check_exchange(RELAY, dict(DEFAULTS, exchange_source_servers=["ex99.corp.example.test"]), INVENTORY)
    assert len(findings) == 1
    assert "EX99" in findings[0].message and "EX01, EX02, MAILBOX3, EDGE01" in findings[0].message
    assert findings[0].fix and findings[0].severity == "error"


def test_check_mta_runs_the_exchange_rules():
    assert [(f.variable, f.rule) for f in check_mta("exchange", RELAY, dict(DEFAULTS, exchange_session_username="a"),
                                                    inventory=INVENTORY)] == \
        [("exchange_session_username", "exchange-session-password")]
