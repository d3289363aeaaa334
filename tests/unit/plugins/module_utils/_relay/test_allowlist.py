# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import random

import netaddr
import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import allowlist as A
from ansible_collections.smarthost.relay.plugins.module_utils._relay.allowlist import (
    address_allowed,
    check_allowlist,
    parse_range,
)
from ansible_collections.smarthost.relay.plugins.module_utils._relay.findings import RelayRuleError

# The three text forms of one IPv6 address shown in the service document.
DOC_FORMS = ("1050:0000:0000:0000:0005:0600:300c:326b", "1050:0:0:0:5:600:300c:326b", "1050::5:600:300c:326b")


def rules(findings):
    return [(f.variable, f.rule) for f in findings]


# --- parse_range -------------------------------------------------------------

@pytest.mark.parametrize("text", DOC_FORMS)
def test_document_ipv6_forms_are_one_address(text):
    net = parse_range(text)
    assert isinstance(net, netaddr.IPNetwork)
    assert str(net) == "1050::5:600:300c:326b/128"
    assert net.size == 1


@pytest.mark.parametrize("text, canonical", [
    ("198.51.100.7", "198.51.100.7/32"),
    (" 198.51.100.0/24 ", "198.51.100.0/24"),
    ("198.51.100.0 / 24", "198.51.100.0/24"),
    ("1050:0000:0000:0000:0005:0600:300c:0000/112", "1050::5:600:300c:0/112"),
    ("1050:0:0:0:5:600:300c:0/112", "1050::5:600:300c:0/112"),
    ("1050::5:600:300c:0/112", "1050::5:600:300c:0/112"),
    ("2001:DB8::/32", "2001:db8::/32"),
    ("::ffff:198.51.100.7", "::ffff:198.51.100.7/128"),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("::/0", "::/0"),
])
def test_parse_range_canonical(text, canonical):
    assert str(parse_range(text)) == canonical


def test_parse_range_accepts_netaddr_objects():
    assert str(parse_range(netaddr.IPNetwork("198.51.100.0/24"))) == "198.51.100.0/24"
    assert str(parse_range(netaddr.IPAddress("198.51.100.7"))) == "198.51.100.7/32"


@pytest.mark.parametrize("text, rule, message", [
    ("", "allowlist-syntax", "empty allowlist entry"),
    ("not-an-ip", "allowlist-syntax", "is not a valid IPv4 or IPv6 address or CIDR range"),
    ("300.1.1.1", "allowlist-syntax", "is not a valid IPv4 or IPv6 address"),
    ("127.1", "allowlist-syntax", "is not a valid IPv4 or IPv6 address"),
    ("010.1.1.1", "allowlist-syntax", "leading zeros"),
    ("1050:::5", "allowlist-syntax", "is not a valid IPv4 or IPv6 address"),
    ("fe80::1%eth0", "allowlist-syntax", "zone index"),
    ("198.51.100.0/33", "allowlist-syntax", "IPv4 allows /0 to /32"),
    ("2001:db8::/129", "allowlist-syntax", "IPv6 allows /0 to /128"),
    ("198.51.100.0/", "allowlist-syntax", "does not use CIDR format"),
    ("198.51.100.0/x", "allowlist-syntax", "does not use CIDR format"),
    ("198.51.100.0/255.255.255.0", "allowlist-syntax", "does not use CIDR format"),
    ("198.51.100.0/24/24", "allowlist-syntax", "does not use CIDR format"),
    (42, "allowlist-syntax", "expected a string, got int"),
    (None, "allowlist-syntax", "expected a string"),
])
def test_parse_range_errors(text, rule, message):
    with pytest.raises(RelayRuleError) as exc:
        parse_range(text)
    assert exc.value.rule == rule
    assert message in str(exc.value)
    assert exc.value.fix


def test_netmask_gets_cidr_suggestion():
    with pytest.raises(RelayRuleError) as exc:
        parse_range("198.51.100.0/255.255.255.0")
    assert exc.value.fix == "write the mask 255.255.255.0 as the prefix length /24"


@pytest.mark.parametrize("text, meant, single", [
    ("198.51.100.5/24", "198.51.100.0/24", "198.51.100.5/32"),
    ("10.1.2.3/16", "10.1.0.0/16", "10.1.2.3/32"),
    ("1050::5:600:300c:326b/112", "1050::5:600:300c:0/112", "1050::5:600:300c:326b/128"),
    ("1050:0000:0000:0000:0005:0600:300c:326b/64", "1050::/64", "1050::5:600:300c:326b/128"),
])
def test_host_bits_name_the_network_meant(text, meant, single):
    with pytest.raises(RelayRuleError) as exc:
        parse_range(text)
    assert exc.value.rule == "allowlist-host-bits"
    assert "host bits set" in str(exc.value)
    assert "the network is probably %s" % meant in str(exc.value)
    assert exc.value.fix == "write %s for the network, or %s for the single address" % (meant, single)


# --- size limit: both sides of each boundary --------------------------------

@pytest.mark.parametrize("text, addresses, ok", [
    ("198.51.0.0/16", 65536, True),
    ("198.50.0.0/15", 131072, False),
    ("198.51.128.0/17", 32768, True),
    ("2001:db8::/112", 65536, True),
    ("2001:db8::/111", 131072, False),
    ("2001:db8::/113", 32768, True),
    ("2001:db8::/64", 2 ** 64, False),
    ("0.0.0.0/0", 2 ** 32, False),
    ("::/0", 2 ** 128, False),
    ("198.51.100.7", 1, True),
])
def test_size_limit(text, addresses, ok):
    report = check_allowlist([text])
    assert report.ranges[0]["addresses"] == addresses
    size_errors = [f for f in report.errors if f.rule == "allowlist-max-addresses"]
    assert (not size_errors) is ok
    if not ok:
        assert size_errors[0].variable == "allowlist[0]"
        assert "holds %d addresses; the relay allows at most 65,536 addresses per range" % addresses in size_errors[0].message


def test_exactly_65536_addresses_in_total_is_fine():
    report = check_allowlist(["2001:4860:4000::/113", "2001:4860:4000::8000/113"])
    assert report.ok
    assert report.total == 65536


def test_size_error_texts():
    report = check_allowlist(["2001:db8::/111", "198.50.0.0/15"])
    v6, v4 = report.errors
    assert "(IPv6 /112 or narrower)" in v6.message
    assert "(IPv4 /16 or narrower)" in v4.message
    assert v6.fix == "split it into /112 ranges or, better, list only the addresses your servers send from"


# --- report contents ----------------------------------------------------------

def test_report_ranges_and_total():
    report = check_allowlist(["198.51.100.16/29", DOC_FORMS[0], "2001:4860:4000::/120"])
    assert report.ok
    assert [r["cidr"] for r in report.ranges] == ["198.51.100.16/29", "1050::5:600:300c:326b/128", "2001:4860:4000::/120"]
    assert [r["addresses"] for r in report.ranges] == [8, 1, 256]
    assert [r["version"] for r in report.ranges] == [4, 6, 6]
    assert report.ranges[0]["first"] == "198.51.100.16"
    assert report.ranges[0]["last"] == "198.51.100.23"
    assert report.ranges[1]["input"] == DOC_FORMS[0]
    assert report.total == 265
    d = report.as_dict()
    assert d["ok"] is True and d["total"] == 265 and d["errors"] == []


def test_total_counts_distinct_addresses_and_enabled_only():
    report = check_allowlist([
        "198.51.100.0/24", "198.51.100.0/25",
        {"range": "203.0.113.0/24", "enabled": False, "description": "old"},
    ])
    assert report.total == 256
    assert report.ranges[2]["enabled"] is False
    assert report.ranges[2]["description"] == "old"
    assert [str(n) for n in report.networks()] == ["198.51.100.0/24", "198.51.100.0/25"]
    assert len(report.networks(enabled_only=False)) == 3


def test_entries_as_one_string_and_dict_keys():
    report = check_allowlist("198.51.100.7, 198.51.100.8\n2001:4860::1")
    assert [r["cidr"] for r in report.ranges] == ["198.51.100.7/32", "198.51.100.8/32", "2001:4860::1/128"]
    report = check_allowlist([{"cidr": "198.51.100.7"}, {"address": "198.51.100.9"}])
    assert report.total == 2
    assert check_allowlist(None).ranges == []


def test_collects_every_error():
    report = check_allowlist(["x", "198.51.100.5/24", "10.0.0.0/8", "y"])
    assert rules(report.errors) == [
        ("allowlist[0]", "allowlist-syntax"),
        ("allowlist[1]", "allowlist-host-bits"),
        ("allowlist[2]", "allowlist-max-addresses"),
        ("allowlist[3]", "allowlist-syntax"),
    ]


# --- duplicates, overlap, containment -----------------------------------------

def test_duplicate_names_both_entries():
    report = check_allowlist(["198.51.100.0/24", "203.0.113.0/24", "198.51.100.0/24"])
    assert rules(report.errors) == [("allowlist[2]", "allowlist-duplicate")]
    assert report.errors[0].message == "allowlist[2] (198.51.100.0/24) duplicates allowlist[0] (198.51.100.0/24)"
    assert report.errors[0].fix == "remove allowlist[2]"


def test_duplicate_in_different_text_forms():
    report = check_allowlist(list(DOC_FORMS))
    assert rules(report.errors) == [("allowlist[1]", "allowlist-duplicate"), ("allowlist[2]", "allowlist-duplicate")]
    assert "duplicates allowlist[0]" in report.errors[0].message
    assert report.total == 1


def test_contained_range_names_both_entries():
    report = check_allowlist(["198.51.100.128/25", "198.51.100.0/24"])
    assert rules(report.errors) == [("allowlist[0]", "allowlist-overlap")]
    assert report.errors[0].message == (
        "allowlist[0] (198.51.100.128/25) is contained in allowlist[1] (198.51.100.0/24); the ranges overlap")
    assert report.errors[0].fix == "remove allowlist[0], or narrow allowlist[1] so they no longer overlap"


def test_nested_ranges_report_the_innermost_container():
    report = check_allowlist(["198.51.0.0/16", "198.51.100.0/24", "198.51.100.7", "198.51.200.0/24"])
    msgs = {f.variable: f.message for f in report.errors}
    assert "contained in allowlist[0]" in msgs["allowlist[1]"]
    assert "contained in allowlist[1]" in msgs["allowlist[2]"]
    assert "contained in allowlist[0]" in msgs["allowlist[3]"]


def test_adjacent_ranges_do_not_overlap():
    report = check_allowlist(["198.51.100.0/25", "198.51.100.128/25", "198.51.101.0/24"])
    assert report.ok
    assert report.total == 512


def test_ipv4_and_ipv6_never_overlap():
    report = check_allowlist(["0.0.0.0/16", "::/112"])
    assert not [f for f in report.errors if f.rule in ("allowlist-overlap", "allowlist-duplicate")]


def test_ten_thousand_ranges_with_some_overlaps():
    rng = random.Random(7)
    nets = set()
    while len(nets) < 10000:
        nets.add("%d.%d.%d.0/24" % (rng.randint(1, 99), rng.randint(0, 255), rng.randint(0, 255)))
    entries = sorted(nets) + ["1.2.3.0/24", "1.2.3.128/25"]
    report = check_allowlist(entries)
    overlap = [f for f in report.errors if f.rule in ("allowlist-overlap", "allowlist-duplicate")]
    expected = netaddr.IPSet(entries)
    assert report.total == expected.size
    # every flagged entry really lies in another entry
    assert {f.variable for f in overlap} >= {"allowlist[10001]"}
    assert len(report.ranges) == 10002


# --- non-public space ------------------------------------------------------------

@pytest.mark.parametrize("text, what", [
    ("10.1.0.0/16", "private (RFC 1918)"),
    ("172.16.5.0/24", "private (RFC 1918)"),
    ("192.168.1.10", "private (RFC 1918)"),
    ("127.0.0.1", "loopback"),
    ("169.254.1.0/24", "link-local"),
    ("100.64.1.0/24", "carrier-grade NAT"),
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.0/25", "documentation"),
    ("198.18.0.0/16", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.0/16", "reserved"),
    ("0.0.0.0/16", "'this network'"),
    ("255.255.255.255", "broadcast"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::/112", "link-local"),
    ("fd00:1234::/112", "unique local (ULA"),
    ("fc00::1", "unique local (ULA"),
    ("2001:db8::/112", "documentation"),
    ("3fff::1", "documentation"),
    ("ff02::1", "multicast"),
    ("::ffff:198.51.100.7", "IPv4-mapped"),
    ("2002:c633:6407::1", "6to4"),
    ("1050::5:600:300c:326b", "outside global unicast 2000::/3"),
])
def test_non_public_space_warns(text, what):
    report = check_allowlist([text])
    assert report.ok
    assert [f.rule for f in report.warnings] == ["allowlist-public"]
    assert what in report.warnings[0].message
    assert report.warnings[0].severity == "warning"
    assert "public egress address" in report.warnings[0].message


def test_range_that_includes_non_public_space():
    report = check_allowlist(["192.0.0.0/16"])
    assert "includes 192.0.0.0/24" in report.warnings[0].message


@pytest.mark.parametrize("text", ["8.8.8.0/24", "2001:4860:4860::8888", "74.125.0.0/16", "1.1.1.1"])
def test_public_space_is_quiet(text):
    report = check_allowlist([text])
    assert report.ok and report.warnings == []


# --- egress addresses -------------------------------------------------------------

def test_uncovered_egress_is_an_error_naming_it():
    report = check_allowlist(["8.8.8.0/29"], egress=["8.8.8.3", "8.8.4.4", "2001:4860::1"])
    assert rules(report.errors) == [("egress_addresses[1]", "egress-covered"), ("egress_addresses[2]", "egress-covered")]
    assert report.errors[0].message == (
        "egress address 8.8.4.4 is not covered by any enabled allowlist range; the relay would refuse its mail")
    assert report.errors[0].fix == "add 8.8.4.4 to allowlist (or enable the entry that covers it)"
    assert report.egress[0]["covered_by"] == "8.8.8.0/29"
    assert report.egress[1]["covered"] is False


def test_disabled_entry_does_not_cover():
    report = check_allowlist([{"range": "8.8.8.0/29", "enabled": False}], egress=["8.8.8.3"])
    assert rules(report.errors) == [("egress_addresses[0]", "egress-covered")]


def test_egress_range_covered_by_two_adjacent_ranges():
    report = check_allowlist(["8.8.8.0/25", "8.8.8.128/25"], egress=["8.8.8.0/24"])
    assert report.ok


def test_egress_in_every_ipv6_form():
    report = check_allowlist(["2001:4860:0:0:5:600:300c:0/112"], egress=["2001:4860:0000:0000:0005:0600:300c:326b"])
    assert report.ok
    assert report.egress[0]["covered_by"] == "2001:4860::5:600:300c:0/112"


def test_malformed_and_private_egress():
    report = check_allowlist(["8.8.8.0/29"], egress=["nope", "10.0.0.5"])
    assert ("egress_addresses[0]", "allowlist-syntax") in rules(report.errors)
    assert ("egress_addresses[1]", "egress-covered") in rules(report.errors)
    assert ("egress_addresses[1]", "egress-public") in rules(report.warnings)


def test_range_much_wider_than_egress_suggests_narrowest():
    report = check_allowlist(["8.8.0.0/16"], egress=["8.8.8.3", "8.8.8.9"])
    narrow = [f for f in report.warnings if f.rule == "allowlist-narrow"]
    assert len(narrow) == 1
    expected = netaddr.spanning_cidr(["8.8.8.3", "8.8.8.9"])
    assert str(expected) == "8.8.8.0/28"
    assert narrow[0].message == (
        "8.8.0.0/16 holds 65536 addresses but the egress addresses inside it fit in 8.8.8.0/28 (16); "
        "keep the allowed IP range as narrow as possible")
    assert narrow[0].fix == "replace 8.8.0.0/16 with 8.8.8.0/28"


def test_wide_factor_boundary():
    # one egress address in a /28: 16 addresses = 16 x /32 -> warned at factor 16, not at 17
    assert [f.rule for f in check_allowlist(["8.8.8.0/28"], egress=["8.8.8.1"]).warnings] == ["allowlist-narrow"]
    assert check_allowlist(["8.8.8.0/28"], egress=["8.8.8.1"], wide_factor=17).warnings == []
    assert check_allowlist(["8.8.8.0/29"], egress=["8.8.8.1"]).warnings == []


def test_single_ipv6_egress_in_a_112():
    report = check_allowlist(["2001:4860::/112"], egress=["2001:4860::1"])
    assert report.warnings[0].fix == "replace 2001:4860::/112 with 2001:4860::1/128"


def test_range_covering_no_egress_is_reported():
    report = check_allowlist(["8.8.8.0/29", "8.8.4.0/29"], egress=["8.8.8.1", "8.8.8.2", "8.8.8.5"])
    assert rules(report.warnings) == [("allowlist[1]", "allowlist-narrow")]
    assert "covers none of egress_addresses" in report.warnings[0].message


def test_custom_variable_names():
    report = check_allowlist(["x"], egress=["y"], variable="relay_allowlist", egress_variable="relay_egress_addresses")
    assert rules(report.errors) == [("relay_allowlist[0]", "allowlist-syntax"),
                                    ("relay_egress_addresses[0]", "allowlist-syntax")]


# --- address_allowed (the stand-in's fast path) --------------------------------------

@pytest.mark.parametrize("ip, allowed", [
    ("198.51.100.7", True),
    ("198.51.100.8", False),
    ("::ffff:198.51.100.7", True),   # dual-stack sockets report IPv4 clients like this
    ("[198.51.100.7]", True),
    ("1050:0000:0000:0000:0005:0600:300c:326b", True),
    ("1050::5:600:300c:326b%lo", True),
    ("1050::5:600:300c:326c", False),
    ("not-an-ip", False),
    ("", False),
    (None, False),
])
def test_address_allowed(ip, allowed):
    ranges = [netaddr.IPNetwork("198.51.100.7/32"), "1050::5:600:300c:326b", "garbage"]
    assert address_allowed(ip, ranges) is allowed


def test_address_allowed_with_report_ranges():
    report = check_allowlist(["198.51.100.0/24"])
    assert address_allowed(netaddr.IPAddress("198.51.100.200"), report.ranges)
    assert not address_allowed("198.51.101.1", report.ranges)
    assert not address_allowed("198.51.100.1", [])
    assert not address_allowed("198.51.100.1", None)


def test_missing_netaddr_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(A, "HAS_NETADDR", False)
    monkeypatch.setattr(A, "NETADDR_IMPORT_ERROR", ImportError("No module named 'netaddr'"))
    with pytest.raises(RelayRuleError) as exc:
        check_allowlist(["198.51.100.7"])
    assert exc.value.rule == "netaddr-missing"
    assert "pip install netaddr" in exc.value.fix


def test_allowed_ranges_compiled_lookup():
    compiled = A.AllowedRanges(["198.51.100.0/25", "198.51.100.128/25", "2001:4860::/112", "bad", None,
                                {"cidr": "8.8.8.8/32"}])
    assert address_allowed("198.51.100.255", compiled)
    assert address_allowed("::ffff:198.51.100.1", compiled)
    assert address_allowed("2001:4860:0000:0000:0000:0000:0000:ffff", compiled)
    assert address_allowed("8.8.8.8", compiled)
    assert not address_allowed("8.8.8.9", compiled)
    assert not address_allowed("2001:4860::1:0", compiled)
    assert not address_allowed("garbage", compiled)
    assert "198.51.100.7" in compiled
    assert "198.51.99.255" not in compiled
