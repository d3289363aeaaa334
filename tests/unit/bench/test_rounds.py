# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""bench/rounds.py: the order of the role runs in each round (no containers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SPEC = importlib.util.spec_from_file_location("bench_rounds", ROOT / "bench" / "rounds.py")
rounds = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(rounds)


def test_two_roles_alternate_which_goes_first():
    assert [rounds.round_order(["postfix", "baseline"], i) for i in range(4)] == [
        ["postfix", "baseline"], ["baseline", "postfix"], ["postfix", "baseline"], ["baseline", "postfix"]]


def test_each_role_takes_each_place_once_in_as_many_rounds_as_roles():
    roles = ["postfix", "sendmail", "baseline"]
    orders = [rounds.round_order(roles, i) for i in range(3)]
    assert all(sorted(order) == sorted(roles) for order in orders)
    for place in range(3):
        assert sorted(order[place] for order in orders) == sorted(roles)


def test_one_role_and_none():
    assert rounds.round_order(["postfix"], 5) == ["postfix"]
    assert not rounds.round_order([], 2)
    assert rounds.round_order(("a", "b"), 1) == ["b", "a"]
