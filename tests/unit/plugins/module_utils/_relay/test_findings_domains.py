# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import constants as C
from ansible_collections.smarthost.relay.plugins.module_utils._relay.domains import (
    address_domain,
    domain_matches,
    helo_identifies_customer,
    is_fqdn,
    is_hostname,
    normalize_domain,
)
from ansible_collections.smarthost.relay.plugins.module_utils._relay.findings import (
    Finding,
    RelayRuleError,
    format_findings,
)


def test_constants_match_the_document():
    assert C.DEFAULT_RELAY_HOST == "smtp-relay.gmail.com"
    assert C.RELAY_PORTS == (25, 465, 587)
    assert C.MAX_RANGE_ADDRESSES == 65536 == 2 ** (32 - C.MIN_PREFIXLEN[4]) == 2 ** (128 - C.MIN_PREFIXLEN[6])
    assert C.REPLY_USER_DAILY == "550 5.4.5 Daily SMTP relay limit exceeded for user."
    assert C.REPLY_CUSTOMER_DAILY == "550 5.7.1 Daily SMTP relay limit exceeded for customer."
    assert C.REPLY_CUSTOMER_PEAK == "450 4.2.1 Peak SMTP relay limit exceeded for customer."
    assert (C.TLS_NONE, C.TLS_OPPORTUNISTIC, C.TLS_REQUIRED, C.TLS_IMPLICIT) == ("none", "opportunistic", "required", "implicit")
    assert (C.SENDERS_REGISTERED, C.SENDERS_DOMAINS, C.SENDERS_ANY) == ("registered_users", "domain_addresses", "any_address")


def test_finding_as_dict_and_format():
    f = Finding("port", "port-allowed", "port 2525 is not a relay port", "use port: 587")
    assert f.as_dict() == {"variable": "port", "rule": "port-allowed", "message": "port 2525 is not a relay port",
                           "fix": "use port: 587", "severity": "error"}
    assert format_findings([f, Finding("tls", "tls-mode", "m", severity="note")]) == (
        "- port [port-allowed]: port 2525 is not a relay port Fix: use port: 587\n- tls [tls-mode]: m")
    assert f == Finding("port", "port-allowed", "port 2525 is not a relay port", "use port: 587")
    assert len({f, Finding("port", "port-allowed", "port 2525 is not a relay port", "use port: 587")}) == 1
    assert "port-allowed" in repr(f)


def test_finding_rejects_unknown_severity():
    with pytest.raises(ValueError, match="severity"):
        Finding("port", "x", "m", severity="fatal")


def test_relay_rule_error_to_finding():
    exc = RelayRuleError("bad", rule="allowlist-syntax", fix="fix it")
    assert isinstance(exc, ValueError)
    assert exc.to_finding("allowlist[3]").as_dict() == {
        "variable": "allowlist[3]", "rule": "allowlist-syntax", "message": "bad", "fix": "fix it", "severity": "error"}


@pytest.mark.parametrize("name, expected", [
    ("Example.COM", "example.com"),
    ("example.com.", "example.com"),
    ("  mail.example.com ", "mail.example.com"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("MAIL.Bücher.DE.", "mail.xn--bcher-kva.de"),
])
def test_normalize_domain(name, expected):
    assert normalize_domain(name) == expected


@pytest.mark.parametrize("name", ["", "   ", ".", None, 42])
def test_normalize_domain_rejects(name):
    with pytest.raises(RelayRuleError):
        normalize_domain(name)


@pytest.mark.parametrize("name, hostname, fqdn", [
    ("mail.example.com", True, True),
    ("example.com", True, True),
    ("localhost", True, False),
    ("mail", True, False),
    ("a-b.example.com", True, True),
    ("-a.example.com", False, False),
    ("a-.example.com", False, False),
    ("a_b.example.com", False, False),
    ("a..example.com", False, False),
    ("198.51.100.7", False, False),
    ("[198.51.100.7]", False, False),
    ("2001:db8::1", False, False),
    ("x" * 64 + ".com", False, False),
    ("x" * 63 + ".com", True, True),
    (".".join(["a" * 49] * 5) + ".com", True, True),  # 253 octets: the maximum
    ("a" + ".".join(["a" * 49] * 5) + ".com", False, False),  # 254 octets
    ("mail.example.123", False, False),
    ("", False, False),
    (None, False, False),
])
def test_hostname_and_fqdn(name, hostname, fqdn):
    assert is_hostname(name) is hostname
    assert is_fqdn(name) is fqdn


@pytest.mark.parametrize("address, domain", [
    ("", None),
    ("<>", None),
    (None, None),
    ("user", None),
    ("user@", None),
    ("user@Example.COM", "example.com"),
    ("<user@example.com>", "example.com"),
    ("<@relay.example.net,@b.example.org:user@example.com>", "example.com"),
    ('"odd@local"@example.org', "example.org"),
    ("user@[198.51.100.7]", "[198.51.100.7]"),
])
def test_address_domain(address, domain):
    assert address_domain(address) == domain


def test_domain_matches_prefers_the_most_specific_domain():
    domains = ["example.com", "eu.example.com"]
    assert domain_matches("mail.eu.example.com", domains) == "eu.example.com"
    assert domain_matches("mail.example.com", domains) == "example.com"
    assert domain_matches("example.com", domains) == "example.com"
    assert domain_matches("notexample.com", domains) is None
    assert domain_matches("example.com.evil.net", domains) is None
    assert domain_matches("MAIL.EXAMPLE.COM.", domains) == "example.com"
    assert domain_matches("", domains) is None
    assert domain_matches(None, domains) is None
    assert domain_matches("mail.example.com", ["", None, "example.com"]) == "example.com"


@pytest.mark.parametrize("helo, expected", [
    ("mail.example.com", "example.com"),
    ("example.com", "example.com"),  # the bare domain is one of "your domain names"
    ("mx1.eu.example.org", "example.org"),
    ("mail.bücher.de", "xn--bcher-kva.de"),
    ("mail", None),  # not fully qualified
    ("localhost", None),
    ("mail.other.net", None),
    ("notexample.com", None),
    ("example.com.evil.net", None),
    ("[198.51.100.7]", None),
    ("198.51.100.7", None),
    ("", None),
    (None, None),
])
def test_helo_identifies_customer(helo, expected):
    assert helo_identifies_customer(helo, ["example.com", "example.org", "bücher.de"]) == expected
