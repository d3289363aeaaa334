# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smarthost.relay.plugins.filter.retry_choice import FilterModule, retry_choice
from ansible_collections.smarthost.relay.plugins.module_utils._relay.replies import retry_rules

RELAY = {"host": "smtp-relay.gmail.com", "retry_replies": retry_rules()}


def test_registered():
    assert FilterModule().filters() == {"retry_choice": retry_choice}


def test_rules_in_order():
    out = retry_choice(RELAY, limits=True, refusals=True)
    assert out == {"enabled": True, "rules": RELAY["retry_replies"]["limits"] + RELAY["retry_replies"]["refusals"]}


@pytest.mark.parametrize("limits, refusals, enabled, kinds", [
    ("yes", "no", True, ["limits"]),
    ("false", "true", True, ["refusals"]),
    (0, "off", False, []),
    ("y", "t", True, ["limits", "refusals"]),
])
def test_switches_read_as_ansible_booleans(limits, refusals, enabled, kinds):
    out = retry_choice(RELAY, limits=limits, refusals=refusals)
    assert out["enabled"] is enabled
    assert out["rules"] == [rule for kind in kinds for rule in RELAY["retry_replies"][kind]]


@pytest.mark.parametrize("value, kwargs, match", [
    (RELAY, {"limits": "perhaps", "refusals": True}, "limits"),
    (RELAY, {"limits": True}, "refusals"),
    ("settings", {"limits": True, "refusals": True}, "_input"),
    ({"host": "smtp-relay.gmail.com"}, {"limits": True, "refusals": False}, r"retry_replies\.limits is missing"),
])
def test_errors(value, kwargs, match):
    with pytest.raises(AnsibleFilterError, match=match):
        retry_choice(value, **kwargs)
