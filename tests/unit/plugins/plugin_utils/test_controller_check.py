# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller checks' shared base and result building."""

from __future__ import annotations

from types import SimpleNamespace

from ansible_collections.smarthost.relay.plugins.action.relay_allowlist_check import ActionModule as AllowlistCheck
from ansible_collections.smarthost.relay.plugins.action.relay_settings_check import ActionModule as SettingsCheck
from ansible_collections.smarthost.relay.plugins.module_utils._relay.findings import Finding
from ansible_collections.smarthost.relay.plugins.plugin_utils._controller_check import ControllerCheckAction, add_findings

WARNING = Finding("relay_allowlist[0]", "private-range", "10.0.0.0/8 is private", severity="warning")
ERRORS = [Finding("relay_tls", "tls-port", "port 465 needs tls implicit", fix="set relay_tls: implicit"),
          Finding("relay_port", "port", "port 2525 is not offered")]


def test_both_checks_are_controller_checks():
    for action in (AllowlistCheck, SettingsCheck):
        assert issubclass(action, ControllerCheckAction)
    assert ControllerCheckAction._requires_connection is False and ControllerCheckAction.TRANSFERS_FILES is False


def test_warnings_only_do_not_fail():
    result = {}
    assert add_findings(result, SimpleNamespace(warnings=[WARNING], errors=[]), "The thing breaks %d rule(s)") is False
    assert result == {"warnings": [WARNING.format()]}


def test_errors_fail_with_every_error_listed():
    result = {}
    assert add_findings(result, SimpleNamespace(warnings=[], errors=ERRORS), "The thing breaks %d rule(s)") is True
    assert result["failed"] is True and "warnings" not in result
    first, rest = result["msg"].split("\n", 1)
    assert first == "The thing breaks 2 rule(s):"
    assert ERRORS[0].format() in rest and ERRORS[1].format() in rest
