# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark harness: one command, one table (and JSON) of what the collection costs.

    source scripts/lib.sh; python bench/run.py [--sections policy,roles,throughput,site] [--runs 3]
                                                [--roles postfix,sendmail] [--hosts 1,5,20] [--json FILE]

Sections: policy (the controller checks for 10/1,000/10,000 ranges), roles (first converge, idempotent rerun,
check mode on a fresh Debian 12 container, median of --runs), throughput (1,000 messages through each MTA until
the stand-in accepted them, and the TCP connections used), site (site.yml against 1/5/20 hosts, forks used).
Not a pass/fail test. Nothing outside this machine is contacted but Debian's mirror (package installs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bed import CACHE, ROOT, Bed, podman, run_playbook, write_inventory  # noqa: E402  pylint: disable=wrong-import-position

RELAY_VARS = {
    "relay_host": "relay.smarthost.test", "relay_tls": "required", "relay_auth": True,
    "relay_auth_username": "bench@example.com", "relay_domains": ["example.com"],
    "relay_helo_name": "bench.example.com", "relay_test_recipient": "",
}


def section_policy(args):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "policy_bench.py"), "--json", str(CACHE / "policy.json")],
                         capture_output=True, text=True, check=True)
    print(out.stdout)
    return json.loads((CACHE / "policy.json").read_text())


def trust_ca(inventory):
    run_playbook(inventory, ROOT / "molecule" / "resources" / "trust_test_ca.yml")


def section_roles(args, bed):
    results = {}
    for role in args.roles:
        samples = {"converge": [], "idempotent": [], "check": []}
        for index in range(args.runs):
            name = "srt-bench-%s-%d" % (role, index)
            bed.add_hosts([name])
            inventory = write_inventory(CACHE / "roles.yml", {role: [name]}, RELAY_VARS)
            trust_ca(inventory)
            for phase, extra in (("converge", ()), ("idempotent", ()), ("check", ("--check", "--diff"))):
                seconds, changed, dummy = run_playbook(inventory, ROOT / "bench" / "playbooks" / "role.yml",
                                                       "-e", "bench_role=%s" % role, *extra)
                if phase == "idempotent" and changed.get(name):
                    raise RuntimeError("%s: rerun reported %d changes" % (role, changed[name]))
                samples[phase].append(round(seconds, 2))
            bed.remove_hosts([name])
        results[role] = {phase: {"median": statistics.median(v), "samples": v} for phase, v in samples.items()}
    return results


def section_throughput(args, bed, count=1000):
    results = {}
    for role in args.roles:
        name = "srt-bench-tp-%s" % role
        bed.add_hosts([name])
        inventory = write_inventory(CACHE / "tp.yml", {role: [name]}, RELAY_VARS)
        trust_ca(inventory)
        run_playbook(inventory, ROOT / "bench" / "playbooks" / "role.yml", "-e", "bench_role=%s" % role)
        podman("cp", str(ROOT / "bench" / "inject.py"), "%s:/root/inject.py" % name)
        tag = "tp-%s-%d" % (role, time.time_ns())
        start = time.monotonic()
        podman("exec", name, "python3", "/root/inject.py", str(count), tag)
        submitted = time.monotonic() - start
        deadline = start + 900
        while True:
            mine = [t for t in bed.transactions() if (t.get("message_id") or "").startswith("<%s." % tag)]
            accepted = [t for t in mine if t.get("verdict") == "accepted"]
            if len(accepted) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - start
        results[role] = {
            "messages": count, "accepted": len(accepted), "seconds": round(elapsed, 2),
            "submit_seconds": round(submitted, 2), "messages_per_second": round(len(accepted) / elapsed, 1),
            "connections": len({t.get("connection") for t in mine}),
            "connections_per_1000": round(1000 * len({t.get("connection") for t in mine}) / max(1, len(accepted)), 1),
        }
        bed.remove_hosts([name])
    return results


def section_site(args, bed):
    results = {}
    for count in args.hosts:
        names = ["srt-bench-site-%02d" % n for n in range(count)]
        bed.add_hosts(names)
        inventory = write_inventory(CACHE / "site.yml", {"postfix": names}, RELAY_VARS)
        trust_ca(inventory)
        forks = min(count, 20)
        seconds, dummy, dummy2 = run_playbook(inventory, ROOT / "playbooks" / "site.yml", forks=forks)
        results[str(count)] = {"hosts": count, "forks": forks, "seconds": round(seconds, 1),
                               "seconds_per_host": round(seconds / count, 1)}
        bed.remove_hosts(names)
    return results


def machine():
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version()}


def print_table(report):
    print("\nsmarthost.relay benchmarks — %(date)s, %(cpus)s CPUs, %(platform)s" % report["machine"])
    for role, phases in report.get("roles", {}).items():
        print("role %-9s converge %6.1fs  rerun %6.1fs  check %6.1fs  (median of %d)" % (
            role, phases["converge"]["median"], phases["idempotent"]["median"], phases["check"]["median"],
            len(phases["converge"]["samples"])))
    for role, tp in report.get("throughput", {}).items():
        print("mta  %-9s %d/%d msgs in %.1fs = %.1f msg/s, %d connections (%.1f per 1,000)" % (
            role, tp["accepted"], tp["messages"], tp["seconds"], tp["messages_per_second"], tp["connections"],
            tp["connections_per_1000"]))
    for count, site in report.get("site", {}).items():
        print("site.yml %3s hosts, forks %2d: %6.1fs total, %5.1fs per host" % (
            count, site["forks"], site["seconds"], site["seconds_per_host"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="policy,roles,throughput,site")
    parser.add_argument("--roles", default="postfix,sendmail", type=lambda s: s.split(","))
    parser.add_argument("--hosts", default="1,5,20", type=lambda s: [int(n) for n in s.split(",")])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    CACHE.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine()}
    if "policy" in sections:
        report["policy"] = section_policy(args)
    bed = Bed()
    if set(sections) & {"roles", "throughput", "site"}:
        bed.up()
        try:
            for name, func in (("roles", section_roles), ("throughput", section_throughput), ("site", section_site)):
                if name in sections:
                    report[name] = func(args, bed)
        finally:
            bed.down()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
