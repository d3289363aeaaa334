# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests: address counting and canonical forms agree with netaddr."""

from __future__ import annotations

import netaddr
from hypothesis import given, settings, strategies as st

from ansible_collections.smarthost.relay.plugins.module_utils._relay.allowlist import (
    address_allowed,
    check_allowlist,
    parse_range,
)


@st.composite
def networks(draw, version=None):
    version = version or draw(st.sampled_from([4, 6]))
    bits = 32 if version == 4 else 128
    prefixlen = draw(st.integers(0, bits))
    value = draw(st.integers(0, 2 ** bits - 1))
    value &= ~((1 << (bits - prefixlen)) - 1)
    return netaddr.IPNetwork((value, prefixlen), version)


def ipv6_full(ip):
    return ":".join("%04x" % w for w in ip.words)


def ipv6_no_leading_zeros(ip):
    return ":".join("%x" % w for w in ip.words)


@settings(max_examples=400, deadline=None)
@given(networks())
def test_count_matches_netaddr(net):
    report = check_allowlist([str(net)])
    rng = report.ranges[0]
    assert rng["addresses"] == net.size == 2 ** ((32 if net.version == 4 else 128) - net.prefixlen)
    assert rng["cidr"] == str(net.cidr)
    assert rng["first"] == str(netaddr.IPAddress(net.first, net.version))
    assert rng["last"] == str(netaddr.IPAddress(net.last, net.version))
    too_big = net.size > 65536
    assert any(f.rule == "allowlist-max-addresses" for f in report.errors) is too_big
    assert too_big is (net.prefixlen < (16 if net.version == 4 else 112))


@settings(max_examples=400, deadline=None)
@given(networks(version=6))
def test_every_ipv6_text_form_parses_to_the_compact_form(net):
    forms = [
        "%s/%d" % (ipv6_full(net.ip), net.prefixlen),
        "%s/%d" % (ipv6_no_leading_zeros(net.ip), net.prefixlen),
        "%s/%d" % (net.ip.format(netaddr.ipv6_compact), net.prefixlen),
        "%s/%d" % (net.ip.format(netaddr.ipv6_compact).upper(), net.prefixlen),
    ]
    assert {str(parse_range(f)) for f in forms} == {str(net)}


@settings(max_examples=200, deadline=None)
@given(st.lists(networks(), min_size=0, max_size=30))
def test_total_is_the_distinct_count(nets):
    report = check_allowlist([str(n) for n in nets])
    assert report.total == netaddr.IPSet(nets).size


@settings(max_examples=200, deadline=None)
@given(st.lists(networks(), min_size=1, max_size=30))
def test_overlap_findings_match_pairwise_truth(nets):
    report = check_allowlist([str(n) for n in nets])
    flagged = {int(f.variable[len("allowlist["):-1]) for f in report.errors
               if f.rule in ("allowlist-overlap", "allowlist-duplicate")}
    # an entry is flagged iff it lies inside another entry that comes first in (start, widest) order,
    # i.e. every entry except one representative of each maximal group of nested/equal ranges
    expected = set()
    for i, a in enumerate(nets):
        for j, b in enumerate(nets):
            if i == j or a.version != b.version:
                continue
            if b.first <= a.first and a.last <= b.last and (b.size > a.size or j < i):
                expected.add(i)
                break
    assert flagged == expected


@settings(max_examples=300, deadline=None)
@given(networks(), st.integers(0, 2 ** 128 - 1))
def test_address_allowed_matches_netaddr(net, value):
    bits = 32 if net.version == 4 else 128
    ip = netaddr.IPAddress(value % (2 ** bits), net.version)
    assert address_allowed(str(ip), [str(net)]) is (ip in net)


@settings(max_examples=200, deadline=None)
@given(st.lists(networks(), max_size=20), st.integers(0, 2 ** 128 - 1), st.sampled_from([4, 6]))
def test_compiled_ranges_agree_with_linear_scan(nets, value, version):
    from ansible_collections.smarthost.relay.plugins.module_utils._relay.allowlist import AllowedRanges

    ip = netaddr.IPAddress(value % (2 ** (32 if version == 4 else 128)), version)
    expected = any(ip.version == n.version and ip in n for n in nets)
    if ip.version == 6 and ip.is_ipv4_mapped():
        v4 = ip.ipv4()
        expected = any(n.version == 4 and v4 in n for n in nets)
    assert address_allowed(str(ip), AllowedRanges([str(n) for n in nets])) is expected
    assert address_allowed(str(ip), [str(n) for n in nets]) is expected
