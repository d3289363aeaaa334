# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smarthost.relay.plugins.filter import relay_allowlist as filter_module
from ansible_collections.smarthost.relay.plugins.filter.relay_allowlist import FilterModule, relay_allowlist


def test_registered():
    assert FilterModule().filters() == {"relay_allowlist": relay_allowlist}


def test_report():
    report = relay_allowlist(["1050:0000:0000:0000:0005:0600:300c:0000/112", "8.8.8.0/29"])
    assert report["ok"] is True
    assert [r["cidr"] for r in report["ranges"]] == ["1050::5:600:300c:0/112", "8.8.8.0/29"]
    assert report["total"] == 65544
    assert report["warnings"][0]["rule"] == "allowlist-public"


def test_rule_violations_are_returned_not_raised():
    report = relay_allowlist(["8.8.0.0/15", "8.8.8.0/29"], egress=["1.1.1.1"])
    assert report["ok"] is False
    assert [(e["variable"], e["rule"]) for e in report["errors"]] == [
        ("allowlist[0]", "allowlist-max-addresses"), ("allowlist[1]", "allowlist-overlap"),
        ("egress_addresses[0]", "egress-covered")]


def test_wide_factor():
    assert relay_allowlist(["8.8.8.0/28"], egress=["8.8.8.1"])["warnings"]
    assert not relay_allowlist(["8.8.8.0/28"], egress=["8.8.8.1"], wide_factor=32)["warnings"]


@pytest.mark.parametrize("value, kwargs, match", [
    ("8.8.8.8", {}, None),  # a string is split by the argument spec into a list
    ({"not": "a list"}, {}, "_input"),
    (None, {}, "_input"),
    (["8.8.8.8"], {"wide_factor": "x"}, "wide_factor"),
])
def test_input_validation(value, kwargs, match):
    if match is None:
        assert relay_allowlist(value, **kwargs)["total"] == 1
    else:
        with pytest.raises(AnsibleFilterError, match=match):
            relay_allowlist(value, **kwargs)


def test_scalar_input_becomes_a_one_entry_list():
    assert relay_allowlist(42)["errors"][0]["rule"] == "allowlist-syntax"


def test_missing_netaddr(monkeypatch):
    monkeypatch.setattr(filter_module, "HAS_NETADDR", False)
    with pytest.raises(AnsibleFilterError, match="netaddr"):
        relay_allowlist(["8.8.8.8"])
