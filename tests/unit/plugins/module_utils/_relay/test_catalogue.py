# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every profile in tests/unit/catalogue/bad_profiles.yml fails the engine
with an error naming the expected variable and rule."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import RULES, check_profile

CATALOGUE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "catalogue", "bad_profiles.yml")


def load_catalogue():
    with open(CATALOGUE) as f:
        return yaml.safe_load(f)["profiles"]


ENTRIES = load_catalogue()


def test_catalogue_is_big_and_unique():
    ids = [e["id"] for e in ENTRIES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)
    assert len({e["rule"] for e in ENTRIES}) >= 25


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_bad_profile_fails_naming_variable_and_rule(entry):
    report = check_profile(entry["profile"])
    assert not report.ok, "%s passed: %s" % (entry["id"], report.format())
    assert entry["rule"] in RULES
    matching = [f for f in report.errors if f.variable == entry["variable"] and f.rule == entry["rule"]]
    assert matching, "expected %s [%s], got:\n%s" % (entry["variable"], entry["rule"], report.format())
    line = matching[0].format()
    assert line.startswith("%s [%s]: " % (entry["variable"], entry["rule"]))
    assert " Fix: " in line
    if entry.get("message"):
        assert entry["message"] in matching[0].message
    password = entry["profile"].get("auth_password")
    if password:
        assert password not in report.format()
        assert password not in repr(report.as_dict())
