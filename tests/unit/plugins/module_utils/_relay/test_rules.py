# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rule table: every rule of the engine has a fix, and docs/troubleshooting.md lists them all, as generated."""

from __future__ import annotations

import importlib.util
import os

from ansible_collections.smarthost.relay.plugins.module_utils._relay import exchange, guard, mta, profile, variables
from ansible_collections.smarthost.relay.plugins.module_utils._relay.rules import FIXES

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", ".."))


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_reference", os.path.join(ROOT, "scripts", "gen_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_rule_has_a_fix_and_no_fix_is_orphaned():
    rules = set(profile.RULES) | set(mta.RULES) | set(exchange.RULES) | set(guard.RULES) | set(variables.RULES)
    assert rules == set(FIXES), (rules - set(FIXES), set(FIXES) - rules)
    assert all(FIXES.values())


def test_rule_ids_are_unique_across_tables():
    tables = [set(profile.RULES), set(mta.RULES), set(exchange.RULES), set(guard.RULES), set(variables.RULES)]
    assert sum(len(table) for table in tables) == len(set().union(*tables))


def test_troubleshooting_lists_every_finding_and_is_current():
    gen = load_generator()
    with open(os.path.join(ROOT, "docs", "troubleshooting.md"), encoding="utf-8") as handle:
        current = handle.read()
    assert gen.render_troubleshooting(ROOT, current) == current, "run: .venv/bin/python scripts/gen_reference.py"
    for rule in FIXES:
        assert "| `%s` |" % rule in current, rule
