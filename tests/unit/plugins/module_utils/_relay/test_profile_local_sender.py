# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Local accounts' mail (root, cron, daemons): the relay settings check's local_sender rules and the published
``local_senders`` decision the MTA roles apply."""

from __future__ import annotations

import re

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import PROFILE_KEYS, RULES, check_profile
from ansible_collections.smarthost.relay.plugins.module_utils._relay.replies import retry_rules

ALLOW = {"domains": ["example.com", "example.org"], "allowlist": ["8.8.8.0/29"]}
AUTH = {"domains": ["example.com"], "auth": True, "auth_username": "relay@example.com",
        "auth_password": "correct-horse-battery"}


def with_(base, **kw):
    d = dict(base)
    d.update(kw)
    return d


def local(report):
    return [(f.variable, f.rule, f.severity) for f in report.findings if f.rule.startswith("local-sender-")]


def test_registered_users_without_a_sender_warns():
    r = check_profile(with_(ALLOW, allowed_senders="registered_users"))
    assert r.ok, r.format()
    assert local(r) == [("local_sender", "local-sender-missing", "warning")]
    warning = r.warnings[-1]
    assert "mail from local accounts (root, cron, daemons)" in warning.message
    assert "<user>@example.com" in warning.message and "registered user" in warning.message
    assert warning.fix.startswith("set local_sender: alerts@example.com (a registered user's address)")
    # It still masquerades (root@example.com may be a registered user), but says so.
    assert r.normalized["local_senders"] == {"rewrite": "masquerade", "domain": "example.com", "address": None}
    assert r.normalized["local_sender"] is None


def test_the_engines_default_mode_is_registered_users_and_warns_too():
    assert local(check_profile(ALLOW)) == [("local_sender", "local-sender-missing", "warning")]


def test_registered_users_with_a_sender():
    r = check_profile(with_(ALLOW, allowed_senders="registered_users", local_sender="Alerts@Example.ORG"))
    assert r.ok and local(r) == [], r.format()
    assert r.normalized["local_sender"] == "Alerts@example.org"
    assert r.normalized["local_senders"] == {"rewrite": "address", "domain": "example.org",
                                             "address": "Alerts@example.org"}


def test_registered_users_with_smtp_auth_sends_local_mail_as_the_auth_user():
    r = check_profile(with_(AUTH, allowed_senders="registered_users"))
    assert r.ok and local(r) == [("local_sender", "local-sender-auth-user", "note")]
    assert "sent as the SMTP AUTH user relay@example.com" in r.notes[-1].message
    assert r.normalized["local_senders"] == {"rewrite": "address", "domain": "example.com",
                                             "address": "relay@example.com"}
    # An explicit sender wins over the AUTH user, silently.
    r = check_profile(with_(AUTH, allowed_senders="registered_users", local_sender="cron@example.com"))
    assert local(r) == [] and r.normalized["local_senders"]["address"] == "cron@example.com"


def test_auth_user_outside_the_domains_is_no_local_sender():
    r = check_profile(with_(AUTH, allowed_senders="registered_users", auth_username="relay@other.net"))
    assert ("local_sender", "local-sender-missing", "warning") in local(r)
    assert r.normalized["local_senders"]["rewrite"] == "masquerade"


def test_domain_addresses_masquerades_to_the_customer_domain():
    r = check_profile(with_(ALLOW, allowed_senders="domain_addresses"))
    assert r.ok and local(r) == []
    assert r.normalized["local_senders"] == {"rewrite": "masquerade", "domain": "example.com", "address": None}
    # The domain the relay identifies the server by (HELO here) is the one local mail is masqueraded to.
    r = check_profile(with_(ALLOW, allowed_senders="domain_addresses", helo_name="mx1.example.org"))
    assert r.normalized["local_senders"]["domain"] == "example.org"
    # SMTP AUTH does not make domain_addresses send local mail as the AUTH user: masquerading keeps the user.
    r = check_profile(with_(AUTH, allowed_senders="domain_addresses"))
    assert local(r) == [] and r.normalized["local_senders"]["rewrite"] == "masquerade"


def test_domain_addresses_with_a_sender_uses_it():
    r = check_profile(with_(ALLOW, allowed_senders="domain_addresses", local_sender="noreply@example.com"))
    assert r.normalized["local_senders"] == {"rewrite": "address", "domain": "example.com",
                                             "address": "noreply@example.com"}


def test_any_address_needs_no_rewrite():
    base = with_(AUTH, allowed_senders="any_address")
    r = check_profile(base)
    assert local(r) == []
    assert r.normalized["local_senders"] == {"rewrite": None, "domain": None, "address": None}
    # A sender given anyway is used, even outside the domains (the relay takes any address).
    r = check_profile(with_(base, local_sender="ops@partner.net"))
    assert local(r) == [] and r.normalized["local_senders"]["address"] == "ops@partner.net"


@pytest.mark.parametrize("value, message", [
    ("alerts", "is not an address"),
    ("@example.com", "is not an address"),
    ("alerts@localhost", "is not an address"),
    ("a b@example.com", "is not an address"),
    ("<alerts@example.com>", "is not an address"),
    ("alerts@other.net", "is not in one of domains (example.com, example.org)"),
])
def test_bad_local_sender_is_an_error_naming_the_variable(value, message):
    r = check_profile(with_(ALLOW, allowed_senders="registered_users", local_sender=value))
    assert [(f.variable, f.rule) for f in r.errors] == [("local_sender", "local-sender-address")]
    assert message in r.errors[0].message and r.errors[0].fix
    # No second finding about the same missing sender.
    assert "local-sender-missing" not in [f.rule for f in r.findings]


def test_blank_local_sender_is_unset():
    r = check_profile(with_(ALLOW, allowed_senders="registered_users", local_sender="  "))
    assert local(r) == [("local_sender", "local-sender-missing", "warning")]


def test_findings_are_renamed_for_the_roles_variables():
    r = check_profile(with_(ALLOW, allowed_senders="registered_users"))
    renamed = r.warnings[-1].renamed("relay_", PROFILE_KEYS)
    assert renamed.variable == "relay_local_sender"
    assert renamed.fix.startswith("set relay_local_sender: alerts@example.com")
    assert "or relay_auth: true (local mail is then sent as the SMTP AUTH user)" in renamed.fix


def test_the_rules_are_documented():
    assert {"local-sender-address", "local-sender-missing", "local-sender-auth-user"} <= set(RULES)


def test_retry_rules_fit_a_postfix_regexp_table_line():
    """The Postfix role writes each published rule as ``/<pattern>/ <replacement>``: no pattern may contain the
    delimiter or a line break, and the replacement keeps the matched text."""
    rules = retry_rules()
    for rule in rules["limits"] + rules["refusals"]:
        assert "/" not in rule["pattern"] and "\n" not in rule["pattern"], rule
        assert re.match(r"^4\$\{?1\}?$", rule["replacement"]), rule
