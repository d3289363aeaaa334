# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The MTA roles' rules (mta.py): every rule refuses what the roles' assert.yml files used to, naming the variable."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.smarthost.relay.plugins.module_utils._relay.mta import RULES, check_mta
from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import check_profile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "..")


def defaults(role):
    with open(os.path.join(ROOT, "roles", role, "defaults", "main.yml")) as handle:
        return yaml.safe_load(handle)


RELAY = check_profile({"domains": ["example.com"], "allowlist": ["8.8.8.0/29"], "helo_name": "mail.example.com",
                       "local_sender": "alerts@example.com"}).normalized
AUTH = check_profile({"domains": ["example.com"], "auth": True, "auth_username": "relay@example.com",
                      "auth_password": "pw-secret"}).normalized


def found(mta, relay=None, facts=None, **values):
    mta_vars = dict(defaults(mta), **values)
    return [(f.variable, f.rule) for f in check_mta(mta, relay or RELAY, mta_vars, facts) if f.severity == "error"]


@pytest.mark.parametrize("mta", ["postfix", "sendmail", "qmail"])
def test_role_defaults_break_no_rule(mta):
    assert found(mta) == []


@pytest.mark.parametrize("mta, relay, values, expected", [
    ("postfix", AUTH, {"postfix_sasl_mechanism_filter": []}, ("postfix_sasl_mechanism_filter", "postfix-sasl-mechanisms")),
    ("postfix", None, {"postfix_null_sender_transport": "smtp"}, ("postfix_null_sender_transport", "postfix-null-sender-transport")),
    ("postfix", None, {"postfix_main_cf": {"relayhost": "x"}}, ("postfix_main_cf", "postfix-main-cf-relay-settings")),
    ("postfix", None, {"postfix_generic_map": {"a b": "c"}}, ("postfix_generic_map", "postfix-address-map")),
    ("postfix", None, {"postfix_local_sender_domains": ["a b"]}, ("postfix_local_sender_domains", "postfix-local-sender-domains")),
    ("postfix", None, {"postfix_inet_interfaces": ""}, ("postfix_inet_interfaces", "postfix-inet-interfaces")),
    ("postfix", None, {"postfix_test_timeout": 0}, ("postfix_test_timeout", "mta-positive")),
    ("sendmail", dict(RELAY, tls="implicit", port=465), {"sendmail_limit_replies_retry": False,
                                                         "sendmail_relay_refusals_retry": False},
     ("relay_tls", "sendmail-implicit-tls")),
    ("sendmail", dict(AUTH, auth_username="re lay@example.com"), {}, ("relay_auth_username", "sendmail-auth-username-quoting")),
    ("sendmail", None, {"sendmail_timeout_datafinal": "30m"}, ("sendmail_timeout_datafinal", "sendmail-timeout-datafinal")),
    ("sendmail", None, {"sendmail_timeout_datafinal": "1 hour"}, ("sendmail_timeout_datafinal", "sendmail-timeout-datafinal")),
    ("sendmail", None, {"sendmail_queue_interval": "15"}, ("sendmail_queue_interval", "sendmail-time-value")),
    ("sendmail", None, {"sendmail_listen_addresses": ["localhost"]}, ("sendmail_listen_addresses", "sendmail-listen-addresses")),
    ("sendmail", None, {"sendmail_relay_clients": ["10.0.0.0/8"]}, ("sendmail_relay_clients", "sendmail-relay-clients")),
    ("sendmail", None, {"sendmail_masquerade_as": "example"}, ("sendmail_masquerade_as", "sendmail-masquerade-domain")),
    ("sendmail", None, {"sendmail_guard_port": 2525}, ("sendmail_guard_port", "mta-guard-port")),
    ("sendmail", dict(RELAY, tls_ca_file="/etc/my ca.pem"), {}, ("relay_tls_ca_file", "sendmail-m4-quoting")),
    ("qmail", AUTH, {}, ("relay_auth", "qmail-auth")),
    ("qmail", None, {"qmail_starttls_client": False, "qmail_limit_replies_retry": False, "qmail_relay_refusals_retry": False},
     ("qmail_starttls_client", "qmail-starttls-client")),
    ("qmail", None, {"qmail_timeoutremote": 600}, ("qmail_timeoutremote", "qmail-timeoutremote")),
    ("qmail", None, {"qmail_timeoutsmtpd": 0}, ("qmail_timeoutsmtpd", "qmail-timeoutsmtpd")),
    ("qmail", None, {"qmail_concurrencyremote": 0}, ("qmail_concurrencyremote", "mta-unset-is-null")),
    ("qmail", None, {"qmail_stunnel_address": "0.0.0.0"}, ("qmail_stunnel_address", "qmail-stunnel-address")),
    ("qmail", None, {"qmail_supervisor": "command"}, ("qmail_restart_command", "qmail-restart-command")),
    ("qmail", None, {"qmail_dir": "var/qmail"}, ("qmail_dir", "qmail-absolute-path")),
    ("qmail", None, {"qmail_local_sender_domains": [".com"]}, ("qmail_local_sender_domains", "qmail-local-sender-domains")),
    ("qmail", None, {"qmail_defaulthost": "root@example.com"}, ("qmail_defaulthost", "qmail-defaulthost")),
    ("qmail", None, {"qmail_internal_routes": ["bad domain:x.example.com"]}, ("qmail_internal_routes[0]", "qmail-routes")),
    ("qmail", None, {"qmail_keep_routes": [""]}, ("qmail_keep_routes[0]", "qmail-routes")),
])
def test_each_rule_names_its_variable(mta, relay, values, expected):
    assert expected in found(mta, relay, **values)
    assert expected[1] in RULES


def test_sendmail_host_name_needs_facts():
    assert found("sendmail", facts={"fqdn": "mail"}) == [("ansible_fqdn", "sendmail-fqdn")]
    assert found("sendmail", facts={"fqdn": "mail.example.com"}) == []


def test_null_is_unset():
    assert found("qmail", qmail_timeoutsmtpd=None, qmail_concurrencyremote=None) == []
    assert found("qmail", qmail_timeoutsmtpd=900, qmail_concurrencyremote=3) == []


def test_detect_checks_only_the_given_own_variables():
    given = {"qmail_timeoutremote": 600, "sendmail_timeout_datafinal": "30m", "postfix_test_timeout": "5"}
    findings = [(f.variable, f.rule) for f in check_mta("detect", AUTH, given)]
    assert findings == [("sendmail_timeout_datafinal", "sendmail-timeout-datafinal"),
                        ("qmail_timeoutremote", "qmail-timeoutremote")]  # relay_auth with qmail: not known yet


def test_findings_carry_a_fix():
    for finding in check_mta("qmail", AUTH, dict(defaults("qmail"), qmail_timeoutremote=1)):
        assert finding.fix and finding.format().startswith("%s [%s]: " % (finding.variable, finding.rule))


def test_unknown_mta():
    with pytest.raises(ValueError):
        check_mta("exim", RELAY, {})
