# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""bench/report.py: the table's rows, text and Markdown forms, and the password count (no containers)."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SPEC = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
report = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(report)

LOAD = {"load_before": [9.5, 8.0, 7.0], "load_after": [10.0, 8.5, 7.25]}
REPORT = {
    "date": "2026-11-29 17:00",
    "machine": {"cpus": 2, "ram_gib": 23.5, "kernel": "6.1", "versions": {"ansible-core": "2.19.14"}},
    "policy": dict(LOAD, runs=7, results=[{"ranges": 10, "allowlist_s": 0.0002, "allowlist_egress_s": 0.0003,
                                           "profile_s": 0.0004}]),
    "roles": dict(LOAD, results={"postfix": {
        "converge": {"median": 41.5, "samples": [41.5, 40.0, 43.0]}, "rerun": {"median": 10.1, "samples": [10.1]},
        "check_fresh": {"median": 9.0, "samples": [9.0]}, "check_converged": {"median": 9.8, "samples": [9.8]},
        "rerun_changed": [0, 0, 0]}}),
    "throughput": dict(LOAD, results={"postfix": {
        "mta_version": "3.7.11", "messages": 1000, "accepted": 1000, "seconds": 22.0, "seconds_99": 21.0,
        "messages_per_second": 45.5, "connections": 20, "connections_per_1000": 20.0, "mta_deferred": 0}}),
    "site": dict(LOAD, results=[{"hosts": 20, "forks": 5, "seconds": 400.0, "seconds_per_host": 20.0}]),
    "notes": ["a note"],
    "password_in_output": 0,
}


def test_one_row_per_measured_item_in_section_order():
    rows = report.rows(REPORT)
    assert [r[0] for r in rows] == ["policy", "role", "mta", "site.yml"]
    assert rows[1][2] == ("first converge 41.5 s, idempotent rerun 10.1 s (changed 0), check mode on the fresh "
                          "host 9.0 s, check mode 9.8 s (median of 3)")
    assert "1000/1000 accepted in 22.0 s = 45.5 msg/s" in rows[2][2]
    assert "20.0 per 1,000" in rows[2][2]
    assert rows[3][1:3] == ("20 hosts, forks 5, over podman", "400.0 s total, 20.0 s per host")
    assert all(r[3] == "9.5 8.0 7.0 → 10.0 8.5 7.2" for r in rows)


def test_check_mode_on_the_fresh_host_only_when_measured():
    phases = dict(REPORT["roles"]["results"]["postfix"], check_fresh={"median": None, "samples": []})
    partial = dict(REPORT, roles=dict(LOAD, results={"postfix": phases}))
    assert "fresh" not in report.rows(partial)[1][2]


def test_sections_not_run_are_left_out():
    partial = {key: value for key, value in REPORT.items() if key not in ("roles", "site")}
    assert [r[0] for r in report.rows(partial)] == ["policy", "mta"]


def test_text_names_machine_load_and_password_count():
    text = report.format_text(REPORT)
    assert text.startswith("smarthost.relay benchmarks, 2026-11-29 17:00 UTC; 2 CPUs, 23.5 GiB RAM, kernel 6.1;")
    assert "load average" in text
    assert text.rstrip().endswith("bench AUTH password in this run's output: 0 times")


def test_markdown_table_has_a_row_per_item_and_the_notes():
    lines = report.format_markdown(REPORT).splitlines()
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 2 + len(report.rows(REPORT))  # header, rule, rows
    assert all(line.count(" | ") == 3 for line in table)
    assert "- a note" in lines


def test_count_secret():
    assert report.count_secret(["xx s3cret yy", "s3crets3cret"], "s3cret") == 3
    assert report.count_secret(["anything"], "") == 0
    assert report.count_secret(["anything"], None) == 0


def _phase(samples):
    done = sorted(x for x in samples if x is not None)
    return {"median": statistics.median(done) if done else None, "samples": samples}


def _role(converge, rerun, check=None):
    return {"converge": _phase(converge), "rerun": _phase(rerun),
            "check_fresh": {"median": None, "samples": []},
            "check_converged": {"median": check, "samples": [check] if check else []},
            "rerun_changed": [0] * len(converge), "failures": []}


BASELINE_RUN = dict(REPORT, roles=dict(LOAD, results={"postfix": _role([40.0, 45.0, None], [8.0, 10.0, 9.0], 10.0),
                                                      "baseline": _role([30.0, 36.0, 33.0], [4.0, 5.0, 4.5])}))


def test_ratio_of_medians_and_of_each_round_after_the_role_rows():
    rows = [r for r in report.rows(BASELINE_RUN) if r[0] == "role"]
    assert [r[1] for r in rows] == ["postfix", "baseline", "postfix / baseline"]
    assert rows[2][2] == ("first converge 1.29× (rounds: 1.33×, 1.25×, n/a), "
                          "idempotent rerun 2.00× (rounds: 2.00×, 2.00×, 2.00×)")


def test_baseline_row_has_no_check_mode():
    rows = {r[1]: r[2] for r in report.rows(BASELINE_RUN)}
    assert rows["baseline"] == "first converge 33.0 s, idempotent rerun 4.5 s (changed 0) (median of 3)"
    assert "check mode 10.0 s" in rows["postfix"]


def test_no_ratio_row_without_both_sides():
    alone = dict(REPORT, roles=dict(LOAD, results={"baseline": _role([30.0], [4.0])}))
    assert [r[1] for r in report.rows(alone) if r[0] == "role"] == ["baseline"]


def test_ratio():
    assert report.ratio(3.0, 2.0) == 1.5
    assert report.ratio(None, 2.0) is None
    assert report.ratio(3.0, None) is None
    assert report.ratio(3.0, 0) is None


def test_site_row_with_controller_cpu_and_image():
    run = {"hosts": 20, "forks": 20, "image": "preinstalled", "seconds": 120.0, "seconds_per_host": 6.0,
           "cpu_seconds": 90.0, "cpu_seconds_per_host": 4.5}
    site = dict(REPORT, site=dict(LOAD, results=[run, dict(run, image="plain")]))
    figures = [r[2] for r in report.rows(site) if r[0] == "site.yml"]
    assert figures == [
        "120.0 s total, 6.0 s per host, controller CPU 90.0 s = 4.50 s per host, Postfix preinstalled",
        "120.0 s total, 6.0 s per host, controller CPU 90.0 s = 4.50 s per host, Postfix installed by the role"]


def test_markdown_says_how_to_rerun_issue_18s_goals():
    markdown = report.format_markdown(REPORT)
    assert "--roles postfix,baseline --runs 3" in markdown
    assert "--site 1:1,5:5,20:20" in markdown


def test_site_rows_name_the_connection_and_scale_against_one_host_over_the_same():
    one = {"hosts": 1, "forks": 1, "seconds": 20.0, "seconds_per_host": 20.0}
    runs = [one, dict(one, hosts=20, forks=20, seconds=60.0, seconds_per_host=3.0),
            dict(one, connection="ssh", seconds=10.0), dict(one, connection="ssh", hosts=20, forks=20, seconds=50.0)]
    table = [r for r in report.rows(dict(REPORT, site=dict(LOAD, results=runs))) if r[0] == "site.yml"]
    assert [r[1] for r in table] == ["1 hosts, forks 1, over podman", "20 hosts, forks 20, over podman",
                                     "1 hosts, forks 1, over ssh", "20 hosts, forks 20, over ssh"]
    assert table[1][2].endswith(", 3.0× one host's wall time")
    assert table[3][2].endswith(", 5.0× one host's wall time")
    assert "one host" not in table[0][2] + table[2][2]
