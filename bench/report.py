# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark report: machine facts, and the one table as text (stdout) and Markdown. Pure functions."""

from __future__ import annotations

import os
import platform

SECTIONS = ("policy", "roles", "throughput", "pool", "site")
# The bench's baseline playbooks (roles section) and the role of the collection each is the floor for.
BASELINE_FOR = {"baseline": "postfix"}


def load_average():
    return [round(value, 2) for value in os.getloadavg()]


def memory_gib():
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def machine(versions):
    return {"cpus": os.cpu_count(), "ram_gib": memory_gib(), "kernel": platform.release(),
            "os": platform.platform(terse=True), "versions": versions}


def _guard_cpu(run):
    """The guard's CPU time in a pool run, and the rate one core of it would allow (older runs lack both)."""
    if run.get("guard_cpu_seconds") is None:
        return ""
    return "; the guard used %.1f CPU s = %s msg/s per core at most" % (
        run["guard_cpu_seconds"], run.get("guard_ceiling_per_second"))


def _load(section):
    """Load average before → after; a section taken from an earlier run names that run."""
    return "%s → %s%s" % (" ".join("%.1f" % v for v in section["load_before"]),
                          " ".join("%.1f" % v for v in section["load_after"]),
                          " (run %s, %s)" % (section["run"], section["git"]) if "run" in section else "")


def _seconds(phase):
    """A phase's median, or how many of its runs failed."""
    if phase["median"] is None:
        return "failed"
    failed = sum(1 for sample in phase["samples"] if sample is None)
    return "%.1f s%s" % (phase["median"], " (%d failed)" % failed if failed else "")


def _check_mode(phases):
    """Check mode on the converged host; nothing for a run without check mode (a baseline)."""
    return ", check mode %s" % _seconds(phases["check_converged"]) if phases.get(
        "check_converged", {}).get("samples") else ""


def ratio(ours, base):
    """ours / base, None when either is missing or base is 0."""
    return ours / base if ours is not None and base else None


def _times(value):
    return "n/a" if value is None else "%.2f×" % value


def ratio_figures(ours, base):
    """A role's converge and rerun against its baseline's: the ratio of the medians, then each round's own
    (the rounds ran side by side, so a round's pair saw the same load)."""
    parts = []
    for phase, label in (("converge", "first converge"), ("rerun", "idempotent rerun")):
        rounds = [ratio(a, b) for a, b in zip(ours[phase]["samples"], base[phase]["samples"])]
        overall = ratio(ours[phase]["median"], base[phase]["median"])
        parts.append("%s %s (rounds: %s)" % (label, _times(overall), ", ".join(_times(r) for r in rounds) or "none"))
    return ", ".join(parts)


def _throughput_row(tp):
    row = "%d/%d accepted in %.1f s = %.1f msg/s (99%% in %.1f s)" % (
        tp["accepted"], tp["messages"], tp["seconds"], tp["messages_per_second"],
        float("nan") if tp["seconds_99"] is None else tp["seconds_99"])
    if tp.get("first_accepted_seconds") is not None:  # not in results from before 2026-12-07, nor without any
        row += "; first accepted after %.1f s, delivery %.1f s = %.1f msg/s" % (
            tp["first_accepted_seconds"], tp["delivery_seconds"], tp["delivery_messages_per_second"])
    return row + ", %d connections = %.1f per 1,000, %d deferred by the MTA" % (
        tp["connections"], tp["connections_per_1000"], tp["mta_deferred"])


def _role_rows(roles):
    out = []
    results = roles["results"]
    for role, phases in results.items():
        fresh = ", check mode on the fresh host %s" % _seconds(phases["check_fresh"]) if phases.get(
            "check_fresh", {}).get("samples") else ""
        out.append(("role", role, "first converge %s, idempotent rerun %s (changed %d)%s%s (median of %d)%s" % (
            _seconds(phases["converge"]), _seconds(phases["rerun"]), max(phases["rerun_changed"]), fresh,
            _check_mode(phases), len(phases["converge"]["samples"]),
            "".join("; %s" % failure for failure in phases.get("failures", []))), _load(roles)))
    for baseline, role in BASELINE_FOR.items():
        if baseline in results and role in results:
            out.append(("role", "%s / %s" % (role, baseline), ratio_figures(results[role], results[baseline]),
                        _load(roles)))
    return out


def _site_figures(run):
    """Wall time, and (runs since the controller's CPU was measured) CPU per host and the hosts' image."""
    figures = "%.1f s total, %.1f s per host" % (run["seconds"], run["seconds_per_host"])
    if "cpu_seconds_per_host" in run:
        figures += ", controller CPU %.1f s = %.2f s per host" % (run["cpu_seconds"], run["cpu_seconds_per_host"])
    if "image" in run:
        figures += ", Postfix preinstalled" if run["image"] == "preinstalled" else ", Postfix installed by the role"
    return figures


def rows(report):
    """The table as (section, item, figures, load average before → after) rows."""
    out = []
    policy = report.get("policy")
    if policy:
        for row in policy["results"]:
            out.append(("policy", "%d ranges" % row["ranges"],
                        "allowlist %.4f s, with egress %.4f s, profile %.4f s (CPU, median of %d)" % (
                            row["allowlist_s"], row["allowlist_egress_s"], row["profile_s"], policy["runs"]),
                        _load(policy)))
    roles = report.get("roles")
    if roles:
        out.extend(_role_rows(roles))
    throughput = report.get("throughput")
    if throughput:
        for role, tp in throughput["results"].items():
            out.append(("mta", "%s %s" % (role, tp.get("mta_version", "")), _throughput_row(tp), _load(throughput)))
    pool = report.get("pool")
    if pool:
        for run in pool["results"]:
            style = ("qmail-remote's sessions, 1 message each" if run["style"] == "qmail" else
                     "Sendmail's sessions, %d messages each" % run["messages_per_session"])
            out.append(("guard pool", "%s, %d at once%s" % (style, run["concurrency"],
                                                            ", no reuse" if run["noreuse"] else ""),
                        "%d/%d accepted in %.1f s = %.1f msg/s, %d relay connections = %.1f per 1,000 (most messages "
                        "on one: %d), %d DoS refusals at HELO, %d messages refused by the guard%s" % (
                            run["accepted"], run["messages"], run["seconds"], run["messages_per_second"],
                            run["connections"], run["connections_per_1000"], run["most_on_one_connection"],
                            run["dos_refusals"], run["refused_by_guard"], _guard_cpu(run)),
                        _load(pool)))
    site = report.get("site")
    if site:
        for run in site["results"]:
            over = run.get("connection", "podman")
            one_host = next((r for r in site["results"] if r["hosts"] == 1 and r.get("connection", "podman") == over),
                            None)
            scaled = ", %.1f× one host's wall time" % (run["seconds"] / one_host["seconds"]) if (
                one_host and run["hosts"] > 1) else ""
            out.append(("site.yml", "%d hosts, forks %d, over %s" % (run["hosts"], run["forks"], over),
                        _site_figures(run) + scaled, _load(site)))
    return out


def header(report):
    mach = report["machine"]
    return ("smarthost.relay benchmarks, %s UTC; %s CPUs, %s GiB RAM, kernel %s; %s" % (
        report["date"], mach["cpus"], mach["ram_gib"], mach["kernel"],
        ", ".join("%s %s" % item for item in mach["versions"].items())))


RERUN = ("Rerun: `bash bench/run.sh` (details in `bench/run.py --help`). Issue 18's converge and fleet goals in one run, "
         "the other sections kept from this file: `bash bench/run.sh --sections roles,site --roles postfix,baseline "
         "--runs 3 --site 1:1,5:5,20:20 --merge bench/results/latest.json` (roles: the Postfix role against "
         "bench/playbooks/baseline_postfix.yml, the manual steps alone, in rounds that alternate which goes first; "
         "site: forks = hosts on hosts with Postfix installed already, `--site-image plain` for bare ones; "
         "`--site-connection podman,ssh` times it over the podman connection and over SSH with pipelining and "
         "ControlPersist).")
NOTE = ("This machine's cores may be shared with other work, and a section's own containers load it too (20 hosts "
        "converging at once): the load average (1, 5, 15 min) before → after each section is part of every figure.")


def format_text(report):
    table = rows(report)
    widths = [max(len(r[i]) for r in table) for i in range(2)] if table else [0, 0]
    lines = [header(report), NOTE, ""]
    for section, item, figures, load in table:
        lines.append("%-*s  %-*s  %s  [load %s]" % (widths[0], section, widths[1], item, figures, load))
    lines.append("")
    lines.append("bench AUTH password in this run's output: %s times" % report.get("password_in_output", "?"))
    return "\n".join(lines) + "\n"


def format_markdown(report):
    lines = ["# Benchmarks", "", header(report).replace("smarthost.relay benchmarks, ", "Run "), "", NOTE, "",
             "| section | item | figures | load average before → after |", "| --- | --- | --- | --- |"]
    for row in rows(report):
        lines.append("| %s |" % " | ".join(cell.replace("|", "/") for cell in row))
    lines += ["", "The bench AUTH password occurs %s times in the run's output (every ansible-playbook run included)."
              % report.get("password_in_output", "?"), "", RERUN,
              ""]
    for note in report.get("notes", []):
        lines.append("- %s" % note)
    return "\n".join(lines).rstrip("\n") + "\n"


def count_secret(texts, secret):
    """How often the secret occurs in any of the texts (an empty secret is never counted)."""
    if not secret:
        return 0
    return sum(text.count(secret) for text in texts)
