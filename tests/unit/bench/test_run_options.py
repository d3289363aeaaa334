# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""bench/run.py's command-line values and bench/report.py's pool row (no containers)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))  # run.py imports its neighbours (paths, rig, rounds, report)
run = __import__("run")
SPEC = importlib.util.spec_from_file_location("bench_report_pool", BENCH / "report.py")
report = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(report)


def test_a_role_var_is_a_name_and_a_yaml_value():
    assert run.parse_role_var("sendmail_queue_runners=1") == ("sendmail_queue_runners", 1)
    assert run.parse_role_var("relay_tls=required") == ("relay_tls", "required")
    assert run.parse_role_var("sendmail_mc_extra=[]") == ("sendmail_mc_extra", [])


@pytest.mark.parametrize("text", ["sendmail_queue_runners", "not a name=1", "=1"])
def test_a_role_var_without_a_name_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        run.parse_role_var(text)


POOL_RUN = {"style": "sendmail", "concurrency": 4, "noreuse": False, "messages_per_session": 10, "messages": 1000,
            "accepted": 1000, "seconds": 1.3, "messages_per_second": 755.2, "connections": 1,
            "connections_per_1000": 1.0, "most_on_one_connection": 1000, "dos_refusals": 0, "refused_by_guard": 0}
LOAD = {"load_before": [0.8, 1.0, 1.6], "load_after": [1.2, 1.1, 1.6]}


def test_the_pool_row_names_the_guards_cpu_and_the_rate_one_core_allows():
    measured = dict(POOL_RUN, guard_cpu_seconds=0.52, guard_ceiling_per_second=1923.1)
    [row] = [r for r in report.rows({"pool": dict(LOAD, results=[measured])}) if r[0] == "guard pool"]
    assert row[2].endswith("the guard used 0.5 CPU s = 1923.1 msg/s per core at most")


def test_an_older_pool_row_without_cpu_figures_reads_as_before():
    [row] = [r for r in report.rows({"pool": dict(LOAD, results=[POOL_RUN])}) if r[0] == "guard pool"]
    assert row[2].endswith("0 messages refused by the guard")


def test_throughput_splits_the_wait_for_the_queue_run_from_the_delivery():
    args = argparse.Namespace(messages=4)
    transactions = [{"connection": 1}] * 4
    result = run.throughput_result(args, [110.0, 111.0, 112.0, 113.0], 100.0, 3.0, transactions)
    assert result["seconds"] == 13.0 and result["messages_per_second"] == round(4 / 13.0, 1)
    assert result["first_accepted_seconds"] == 10.0
    assert result["delivery_seconds"] == 3.0 and result["delivery_messages_per_second"] == 1.0
    assert result["connections"] == 1 and result["connections_per_1000"] == 250.0


def test_throughput_row_names_the_delivery_phase_when_measured():
    row = {"accepted": 1000, "messages": 1000, "seconds": 20.0, "messages_per_second": 50.0, "seconds_99": 19.9,
           "connections": 1, "connections_per_1000": 1.0, "mta_deferred": 0}
    assert "delivery" not in report._throughput_row(row)  # pylint: disable=protected-access
    row.update(first_accepted_seconds=14.0, delivery_seconds=6.0, delivery_messages_per_second=166.5)
    assert "first accepted after 14.0 s, delivery 6.0 s = 166.5 msg/s, 1 connections" in \
        report._throughput_row(row)  # pylint: disable=protected-access
