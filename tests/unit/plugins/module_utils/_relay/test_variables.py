# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Mistyped role variables are refused naming the nearest known one; other tools' variables are left alone."""

from __future__ import annotations

from ansible_collections.smarthost.relay.plugins.module_utils._relay.variables import unknown_variables
from ansible_collections.smarthost.relay.plugins.plugin_utils._role_specs import role_variables

KNOWN = role_variables()


def test_role_variables_are_read_from_every_role():
    assert {"relay_port", "qmail_timeoutremote", "sendmail_timeout_datafinal", "postfix_throttle",
            "exchange_edge", "relay_guard_port"} <= KNOWN


def test_typos_name_the_nearest_known_variable():
    findings = unknown_variables(["relay_prot", "qmail_timeoutremot", "relay_port", "relay_settings",
                                  "relay_test_recipients"], KNOWN)
    assert [(f.variable, f.rule) for f in findings] == [("qmail_timeoutremot", "variable-unknown"),
                                                        ("relay_prot", "variable-unknown"),
                                                        ("relay_test_recipients", "variable-unknown")]
    assert "did you mean relay_port?" in findings[1].message and findings[1].fix == "rename relay_prot to relay_port in the inventory"


def test_other_names_are_left_alone():
    names = ["relay_standin_config", "relay_standin_defaults", "qmail_bed_control", "sendmail_mta_allowlist",
             "exchange_server_name", "ansible_port", "relay_guard_changed", "existing_postfix_address"]
    assert unknown_variables(names, KNOWN) == []
