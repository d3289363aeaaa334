# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import constants as C
from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import (
    PROFILE_KEYS,
    RULES,
    check_profile,
)

ALLOW = {"domains": ["example.com"], "allowlist": ["8.8.8.0/29"]}
AUTH = {"domains": ["example.com"], "auth": True, "auth_username": "relay@example.com",
        "auth_password": "correct-horse-battery"}


def errors(report):
    return [(f.variable, f.rule) for f in report.errors]


def rules_of(findings):
    return [f.rule for f in findings]


def others(findings):
    """``findings`` without the local-sender ones: ALLOW and AUTH use the engine's default mode,
    registered_users, where those always speak (tested in test_profile_local_sender.py)."""
    return [f for f in findings if not f.rule.startswith("local-sender-")]


def with_(base, **kw):
    d = dict(base)
    d.update(kw)
    return d


# --- good profiles and defaults ------------------------------------------------------

def test_minimal_allowlist_profile_defaults():
    report = check_profile(ALLOW)
    assert report.ok, report.format()
    n = report.normalized
    assert (n["host"], n["port"], n["tls"], n["tls_verify"]) == ("smtp-relay.gmail.com", 587, "required", True)
    assert n["allowed_senders"] == "registered_users"
    assert n["auth"] is False and n["auth_password"] is None
    assert n["allowlist"] == ["8.8.8.0/29"] and n["allowlist_total"] == 8
    assert n["identity"] is None and n["customer_domain"] == "example.com"
    assert n["limits"] is None and n["throttles"] is None
    assert set(PROFILE_KEYS) <= set(n)
    json.dumps(report.as_dict())  # serialisable for Ansible


def test_auth_profile_is_ok_and_masks_password():
    report = check_profile(AUTH)
    assert report.ok, report.format()
    assert report.normalized["identity"] == "auth"
    assert report.normalized["auth_password"] == C.SECRET_MASK
    assert "correct-horse-battery" not in json.dumps(report.as_dict())
    assert rules_of(others(report.notes)) == ["auth-user-limits"]
    assert "10,000 messages and 10,000 unique recipients per 24 h" in report.notes[0].message


def test_password_never_echoed_even_when_misplaced():
    secret = "hunter2-secret"
    report = check_profile(with_(AUTH, auth_password=secret, helo_name=secret, host=secret + ":25", domains=[secret]))
    assert not report.ok
    assert secret not in json.dumps(report.as_dict())
    assert secret not in report.format()


def test_non_string_password_not_echoed():
    report = check_profile(with_(AUTH, auth_password=123456789))
    assert ("auth_password", "type-str") in errors(report)
    assert "123456789" not in report.format()


@pytest.mark.parametrize("profile, port, tls, verify", [
    ({"port": 465}, 465, "implicit", True),
    ({"port": 587}, 587, "required", True),
    ({"port": 25}, 25, "opportunistic", False),
    ({"tls": "implicit"}, 465, "implicit", True),
    ({"tls": "required"}, 587, "required", True),
    ({"tls": "opportunistic"}, 587, "opportunistic", False),
    ({"tls": "none"}, 587, "none", False),
    ({"tls": "none", "port": 25}, 25, "none", False),
    ({"tls": "opportunistic", "port": 25}, 25, "opportunistic", False),
    ({"tls": "REQUIRED", "port": "587"}, 587, "required", True),
])
def test_port_tls_derivation(profile, port, tls, verify):
    report = check_profile(with_(ALLOW, **profile))
    assert report.ok, report.format()
    n = report.normalized
    assert (n["port"], n["tls"], n["tls_verify"]) == (port, tls, verify)


def test_port_25_without_tls_gets_a_note():
    report = check_profile(with_(ALLOW, port=25))
    assert [(f.variable, f.rule, f.severity) for f in report.notes] == [("tls", "tls-mode", "note")]


@pytest.mark.parametrize("port", [25, 465, 587])
def test_every_relay_port_is_allowed(port):
    report = check_profile(with_(ALLOW, port=port))
    assert "port-allowed" not in rules_of(report.errors)


@pytest.mark.parametrize("port", [0, 24, 26, 464, 466, 586, 588, 2525, 65536, -1])
def test_other_ports_are_refused(port):
    report = check_profile(with_(ALLOW, port=port, tls="none"))
    assert ("port", "port-allowed") in errors(report)


# --- TLS rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("tls, port, expected", [
    ("required", 587, []),
    ("required", 25, [("port", "tls-required-port-587")]),
    ("required", 465, [("port", "tls-required-port-587")]),
    ("implicit", 465, []),
    ("implicit", 587, [("port", "implicit-tls-port-465")]),
    ("implicit", 25, [("port", "implicit-tls-port-465")]),
    ("none", 465, [("tls", "port-465-implicit-tls")]),
    ("opportunistic", 465, [("tls", "port-465-implicit-tls")]),
    ("none", 25, []),
    ("none", 587, []),
    ("opportunistic", 25, []),
    ("opportunistic", 587, []),
])
def test_tls_port_matrix(tls, port, expected):
    assert errors(check_profile(with_(ALLOW, tls=tls, port=port))) == expected


def test_tls_required_error_text():
    report = check_profile(with_(ALLOW, tls="required", port=25))
    f = report.errors[0]
    assert f.message == ("tls: required needs port 587, not 25; the document: if you require TLS encryption, "
                         "you must point your server to the relay on port 587")
    assert f.fix == "set port: 587"


def test_tls_verify_rules():
    assert errors(check_profile(with_(ALLOW, tls="none", tls_verify=True))) == [("tls_verify", "tls-verify-needs-tls")]
    r = check_profile(with_(ALLOW, tls="opportunistic", tls_verify=True))
    assert r.ok and rules_of(others(r.warnings)) == ["tls-verify-opportunistic"]
    r = check_profile(with_(ALLOW, tls="required", tls_verify=False))
    assert r.ok and rules_of(others(r.warnings)) == ["tls-verify-off"]
    r = check_profile(with_(AUTH, tls_verify=False))
    assert "capture the SMTP AUTH credentials" in r.warnings[0].message
    r = check_profile(with_(ALLOW, tls="implicit", tls_verify="no"))
    assert r.normalized["tls_verify"] is False


def test_tls_ca_file():
    r = check_profile(with_(ALLOW, tls_ca_file="/etc/ssl/relay-ca.pem"))
    assert r.ok and others(r.warnings) == [] and r.normalized["tls_ca_file"] == "/etc/ssl/relay-ca.pem"
    r = check_profile(with_(ALLOW, tls="none", tls_ca_file="/etc/ssl/relay-ca.pem"))
    assert rules_of(others(r.warnings)) == ["tls-ca-file-unused"]


def test_unknown_tls_mode():
    r = check_profile(with_(ALLOW, tls="starttls"))
    assert errors(r) == [("tls", "tls-mode")]
    assert "tls 'starttls' is not one of none, opportunistic, required, implicit" in r.errors[0].message


# --- AUTH rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, expected", [
    ({"tls": "required", "port": 587}, []),
    ({"tls": "none"}, [("auth", "auth-requires-tls")]),
    ({"tls": "opportunistic"}, [("auth", "auth-requires-tls")]),
    ({"tls": "implicit", "port": 465}, [("auth", "auth-requires-tls")]),
    ({"port": 25}, [("auth", "auth-requires-tls")]),
    ({"port": 465}, [("auth", "auth-requires-tls")]),
])
def test_auth_requires_tls_required_on_587(extra, expected):
    assert errors(check_profile(with_(AUTH, **extra))) == expected


def test_auth_requires_tls_text():
    r = check_profile(with_(AUTH, tls="none"))
    assert r.errors[0].message.startswith("SMTP AUTH needs tls: required (STARTTLS on port 587), not tls: none")
    assert r.errors[0].fix == "set tls: required and port: 587"


def test_auth_credentials_both_missing_collected():
    r = check_profile({"domains": ["example.com"], "auth": True})
    assert errors(r) == [("auth_username", "auth-credentials"), ("auth_password", "auth-credentials")]


@pytest.mark.parametrize("username", ["relay", "@example.com", "relay@", "relay@localhost"])
def test_auth_username_not_an_address_is_an_error(username):
    r = check_profile(with_(AUTH, auth_username=username))
    assert ("auth_username", "auth-username-address") in errors(r)
    assert "not an address" in r.errors[0].message and r.errors[0].fix.startswith("use the full address")


def test_auth_username_outside_domains_warns():
    r = check_profile(with_(AUTH, auth_username="relay@other.net"))
    assert "auth_username's domain other.net is not one of domains" in r.warnings[0].message


def test_credentials_without_auth_warn():
    r = check_profile(with_(ALLOW, auth_username="relay@example.com", auth_password="secret-pw"))
    assert r.ok and rules_of(others(r.warnings)) == ["auth-unused"]
    assert r.normalized["auth_password"] == C.SECRET_MASK


# --- allowlist or AUTH ----------------------------------------------------------------------------

def test_allowlist_or_auth():
    assert errors(check_profile({"domains": ["example.com"]})) == [("allowlist", "allowlist-or-auth")]
    assert check_profile(AUTH).ok
    assert check_profile(ALLOW).ok
    assert check_profile(with_(AUTH, allowlist=["8.8.8.0/29"])).ok
    r = check_profile({"domains": ["example.com"], "allowlist": [{"range": "8.8.8.0/29", "enabled": False}]})
    assert errors(r) == [("allowlist", "allowlist-or-auth")]


def test_allowlist_findings_are_merged_and_normalized():
    r = check_profile({"domains": ["example.com"], "auth": False,
                       "allowlist": ["2001:4860:0000:0000:0005:0600:300c:0000/112", {"range": "8.8.8.8", "description": "dns"}],
                       "egress_addresses": ["8.8.8.8", "1.1.1.1"]})
    assert errors(r) == [("egress_addresses[1]", "egress-covered")]
    assert r.normalized["allowlist"] == ["2001:4860::5:600:300c:0/112",
                                         {"range": "8.8.8.8/32", "enabled": True, "description": "dns"}]
    assert r.normalized["allowlist_total"] == 65537
    assert r.normalized["egress_addresses"] == ["8.8.8.8", "1.1.1.1"]


def test_egress_without_allowlist_with_auth_is_fine():
    assert check_profile(with_(AUTH, egress_addresses=["8.8.8.8"])).ok


# --- senders, HELO, rewrite, null sender ------------------------------------------------------

@pytest.mark.parametrize("extra", [
    {"allowed_senders": "any_address"},
    {"allowed_senders": "any_address", "foreign_senders": True},
    {"null_sender": True},
])
def test_identity_satisfied_by_auth(extra):
    r = check_profile(with_(AUTH, **extra))
    assert "sender-identity" not in rules_of(r.errors), r.format()
    assert r.normalized["identity"] == "auth"


@pytest.mark.parametrize("helo, ok", [
    ("mail.example.com", True),
    ("example.com", True),           # the bare domain is one of "your domain names"
    ("MX1.Example.COM.", True),
    ("mx.eu.example.org", True),
    ("mail.other.net", False),
    ("notexample.com", False),
    ("example.com.evil.net", False),
])
def test_identity_by_helo(helo, ok):
    r = check_profile(with_(ALLOW, domains=["example.com", "example.org"], null_sender=True, helo_name=helo))
    assert ("sender-identity" not in rules_of(r.errors)) is ok
    if ok:
        assert r.normalized["identity"] == "helo"


def test_every_trigger_reported_separately():
    r = check_profile(with_(ALLOW, allowed_senders="any_address", foreign_senders=True, null_sender=True))
    assert [v for v, rule in errors(r) if rule == "sender-identity"] == ["allowed_senders", "foreign_senders", "null_sender"]
    assert r.errors[0].fix.startswith("set auth: true (tls: required, port: 587, auth_username, auth_password), or helo_name: mail.example.com")


def test_any_address_warning_is_the_documents_text():
    r = check_profile(with_(AUTH, allowed_senders="any_address"))
    assert r.ok
    assert [(f.variable, f.rule, f.message) for f in r.warnings] == [
        ("allowed_senders", "any-address-not-recommended", C.ANY_ADDRESS_WARNING)]
    assert "Therefore, we don't recommend this option." in C.ANY_ADDRESS_WARNING


def test_foreign_senders_note_names_postmaster_of_the_identified_domain():
    r = check_profile(with_(ALLOW, domains=["example.com", "example.org"], allowed_senders="any_address",
                            foreign_senders=True, helo_name="mail.example.org"))
    assert r.ok, r.format()
    note = [f for f in r.notes if f.rule == "sender-rewrite"][0]
    assert note.variable == "foreign_senders"
    assert "rewrites envelope senders outside your domains to postmaster@example.org" in note.message
    assert "postmaster@[your domain]" in note.message
    assert r.normalized["sender_rewrite"] == "postmaster@example.org"


def test_foreign_senders_need_any_address():
    for mode in ("registered_users", "domain_addresses"):
        r = check_profile(with_(AUTH, allowed_senders=mode, foreign_senders=True))
        assert errors(r) == [("allowed_senders", "foreign-senders-need-any-address")]


def test_null_sender_note_and_limit():
    r = check_profile(with_(AUTH, null_sender=True))
    assert r.ok
    note = [f for f in r.notes if f.rule == "null-sender-single-recipient"][0]
    assert "does not support multiple envelope recipients (RCPT TO)" in note.message
    assert r.normalized["null_sender_recipient_limit"] == 1
    assert check_profile(AUTH).normalized["null_sender_recipient_limit"] is None


def test_helo_syntax():
    r = check_profile(with_(ALLOW, helo_name="mail"))
    assert errors(r) == [("helo_name", "helo-syntax")]
    r = check_profile(with_(ALLOW, helo_name="[8.8.8.1]"))
    assert errors(r) == [("helo_name", "helo-syntax")]


def test_sender_mode():
    assert errors(check_profile(with_(ALLOW, allowed_senders="anyone"))) == [("allowed_senders", "sender-mode")]
    for mode in C.SENDER_MODES:
        r = check_profile(with_(AUTH, allowed_senders=mode))
        assert r.ok and r.normalized["allowed_senders"] == mode


# --- domains and host -------------------------------------------------------------------------------

def test_domains():
    assert errors(check_profile({"allowlist": ["8.8.8.0/29"]})) == [("domains", "domains-required")]
    r = check_profile(with_(ALLOW, domains=["Example.COM.", "bücher.de", "example.com", "localhost"]))
    assert errors(r) == [("domains[3]", "domain-syntax")]
    assert [(f.variable, f.rule) for f in others(r.warnings)] == [("domains[2]", "domain-duplicate")]
    assert r.normalized["domains"] == ["example.com", "xn--bcher-kva.de"]
    assert check_profile(with_(ALLOW, domains="example.com, example.org")).normalized["domains"] == [
        "example.com", "example.org"]


@pytest.mark.parametrize("host, rule, severity", [
    ("smtp-relay.gmail.com", None, None),
    ("SMTP-Relay.Gmail.com.", None, None),
    ("smtp-relay.google.com", None, None),
    ("relay.smarthost.test", "host-not-google", "note"),
    ("localhost", "host-not-google", "note"),
    ("127.0.0.1", "host-ip-literal", "error"),
    ("::1", "host-ip-literal", "error"),
    ("142.250.0.1", "host-ip-literal", "error"),
    ("smtp.gmail.com", "host-certificate-name", "error"),
    ("aspmx.l.google.com", "host-certificate-name", "error"),
    ("smtp-relay.gmail.com:587", "host-syntax", "error"),
    ("[smtp-relay.gmail.com]", "host-syntax", "error"),
    ("[smtp-relay.gmail.com]:25", "host-syntax", "error"),
    ("smtp_relay.gmail.com", "host-syntax", "error"),
])
def test_host(host, rule, severity):
    r = check_profile(with_(ALLOW, host=host))
    found = [(f.rule, f.severity) for f in r.findings if f.variable == "host"]
    assert found == ([] if rule is None else [(rule, severity)])


@pytest.mark.parametrize("host, rule", [("142.250.0.1", "host-syntax"), ("smtp.gmail.com", "host-not-google")])
def test_host_without_verification_only_warns_or_notes(host, rule):
    r = check_profile({"domains": ["example.com"], "allowlist": ["8.8.8.0/29"], "tls": "none", "port": 25, "host": host})
    assert r.ok and rule in [f.rule for f in r.findings if f.variable == "host"]


def test_stand_in_with_verification_is_a_note():
    r = check_profile(with_(ALLOW, host="relay.smarthost.test", tls_ca_file="/etc/ca.pem"))
    assert r.ok and [f.rule for f in r.findings if f.variable == "host"] == ["host-not-google"]


@pytest.mark.parametrize("key, value, rule", [
    ("port", 0, "port-allowed"), ("port", -25, "port-allowed"),
    ("licenses", 0, "licenses-positive"), ("licenses", -5, "licenses-positive"),
])
def test_zero_or_negative_is_not_unset(key, value, rule):
    r = check_profile(with_(ALLOW, **{key: value}))
    assert (key, rule) in errors(r)
    assert "unset (null)" in [f for f in r.errors if f.rule == rule][0].fix


def test_host_fix_names_the_bare_host():
    r = check_profile(with_(ALLOW, host="[smtp-relay.gmail.com]:25"))
    assert r.errors[0].fix == "write host: smtp-relay.gmail.com and set the port with port:"


# --- licences, types, unknown keys -----------------------------------------------------------------

def test_licenses_limits_and_throttles():
    r = check_profile(with_(ALLOW, licenses=250, servers=2))
    assert r.ok
    assert r.normalized["limits"]["customer_peak_recipients"] == 2250
    assert r.normalized["throttles"]["messages_per_minute"] == 90
    r = check_profile(with_(ALLOW, licenses=3, paid=False))
    assert r.normalized["limits"]["customer_daily_recipients"] == 100


@pytest.mark.parametrize("key, value, rule", [
    ("licenses", 0, "licenses-positive"),
    ("licenses", -1, "licenses-positive"),
    ("licenses", "many", "type-int"),
    ("licenses", 2.5, "type-int"),
    ("servers", 0, "servers-positive"),
    ("auth", "maybe", "type-bool"),
    ("paid", 2, "type-bool"),
    ("null_sender", [], "type-bool"),
    ("port", "smtp", "type-int"),
    ("port", True, "type-int"),
    ("helo_name", 42, "type-str"),
    ("domains", 42, "type-list"),
    ("allowlist", {"range": "8.8.8.8"}, "type-list"),
])
def test_type_and_range_errors(key, value, rule):
    r = check_profile(with_(ALLOW, **{key: value}))
    assert (key, rule) in errors(r), r.format()


def test_unknown_key_suggests_the_close_one():
    r = check_profile(with_(ALLOW, prot=587))
    assert errors(r) == [("prot", "profile-unknown-key")]
    assert r.errors[0].fix == "did you mean 'port'?"
    r = check_profile(with_(ALLOW, zzz=1))
    assert r.errors[0].fix.startswith("remove it; known settings: host, port")


def test_not_a_dict():
    r = check_profile(["port", 25])
    assert errors(r) == [("profile", "type-dict")]
    assert errors(check_profile(None)) == [("domains", "domains-required"), ("allowlist", "allowlist-or-auth")]


def test_collects_all_findings_not_just_the_first():
    r = check_profile({"port": 465, "tls": "none", "auth": True, "allowed_senders": "any_address",
                       "null_sender": True, "allowlist": ["10.0.0.0/15"], "licenses": 0, "prot": 1})
    assert len(r.errors) >= 6
    assert {"profile-unknown-key", "port-465-implicit-tls", "auth-requires-tls", "auth-credentials",
            "domains-required", "allowlist-max-addresses", "licenses-positive"} <= set(rules_of(r.errors))


def test_every_emitted_rule_is_documented():
    profiles = [
        {}, ALLOW, AUTH, with_(ALLOW, port=25), with_(AUTH, tls_verify=False, null_sender=True),
        with_(ALLOW, allowed_senders="any_address", foreign_senders=True, helo_name="mail.example.com"),
        {"prot": 1, "port": "x", "tls": "bogus", "host": "a:b", "tls_verify": True, "tls_ca_file": "/x",
         "auth": True, "domains": ["x", "x.com", "x.com"], "allowlist": ["10.0.0.5/8", "10.0.0.0/8", "10.0.0.0/8"],
         "egress_addresses": ["8.8.8.8"], "licenses": 0, "servers": 0, "allowed_senders": "nobody"},
    ]
    seen = set()
    for p in profiles:
        seen.update(f.rule for f in check_profile(p).findings)
    assert seen <= set(RULES) | {"type-dict"}
