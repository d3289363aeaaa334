# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.smarthost.relay.plugins.action import relay_allowlist_check as action_module
from ansible_collections.smarthost.relay.plugins.action.relay_allowlist_check import ActionModule


def test_plugin_stays_on_the_controller():
    assert ActionModule.TRANSFERS_FILES is False
    assert ActionModule._requires_connection is False
    assert ActionModule._supports_check_mode is True


@pytest.mark.parametrize("check_mode", [False, True])
def test_good_allowlist(run_action, check_mode):
    result = run_action(ActionModule, {
        "allowlist": ["8.8.8.0/29", "1050:0000:0000:0000:0005:0600:300c:326b"],
        "egress_addresses": ["8.8.8.1", "8.8.8.6"]}, check_mode=check_mode)
    assert not result.get("failed"), result["msg"]
    assert result["changed"] is False
    assert [r["cidr"] for r in result["ranges"]] == ["8.8.8.0/29", "1050::5:600:300c:326b/128"]
    assert result["total"] == 9
    assert result["egress"][1]["covered_by"] == "8.8.8.0/29"
    assert result["msg"] == "2 range(s), 9 address(es) allowed"
    # 1050::/16 is not global unicast: a warning, shown as an Ansible warning
    assert any("allowlist[1] [allowlist-public]" in w for w in result["warnings"])


def test_bad_allowlist_lists_every_error(run_action):
    result = run_action(ActionModule, {"allowlist": ["8.8.8.5/24", "8.8.0.0/15", "8.8.8.0/24", "8.8.8.0/24"],
                                       "egress_addresses": ["1.1.1.1"]})
    assert result["failed"] is True
    msg = result["msg"]
    assert msg.startswith("The IP allowlist breaks ")
    for expected in ("- allowlist[0] [allowlist-host-bits]: ", "- allowlist[1] [allowlist-max-addresses]: ",
                     "- allowlist[3] [allowlist-duplicate]: ", "- allowlist[2] [allowlist-overlap]: ",
                     "- egress_addresses[0] [egress-covered]: "):
        assert expected in msg


def test_argument_errors_raise(run_action):
    with pytest.raises(AnsibleActionFail, match="allowlist"):
        run_action(ActionModule, {})
    with pytest.raises(AnsibleActionFail, match="wide_factor"):
        run_action(ActionModule, {"allowlist": [], "wide_factor": "wide"})


def test_missing_netaddr(run_action, monkeypatch):
    monkeypatch.setattr(action_module, "HAS_NETADDR", False)
    with pytest.raises(AnsibleActionFail, match="needs the Python library netaddr"):
        run_action(ActionModule, {"allowlist": ["8.8.8.8"]})
