# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How long the relay policy checks take for 10, 1,000 and 10,000 allowlist ranges.

Not a pass/fail test: prints a table (median of --runs runs) and optionally
writes the numbers as JSON.  Uses the engine directly (bench/paths.py puts plugins/module_utils on
sys.path, imported as top-level ``_relay``), so no collection setup is needed.

    .venv/bin/python bench/policy_bench.py [--runs 7] [--sizes 10,1000,10000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time

import paths  # noqa: F401  pylint: disable=unused-import  # before _relay
from _relay.allowlist import AllowedRanges, address_allowed, check_allowlist
from _relay.profile import check_profile


def make_ranges(n, seed=1):
    """n distinct, non-overlapping public ranges: 3/4 IPv4 (/24 to /32), 1/4 IPv6 (/112 to /128),
    every third IPv6 range written in the document's full form with leading zeros."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        if rng.random() < 0.75:
            block = (rng.randint(1, 9), rng.randint(0, 255), rng.randint(0, 255))  # 1.0.0.0 - 9.255.255.255
            if ("4",) + block in seen:
                continue
            seen.add(("4",) + block)
            prefix = rng.choice([24, 26, 28, 29, 32])
            host = 0 if prefix != 32 else rng.randint(1, 254)
            out.append("%d.%d.%d.%d/%d" % (block + (host, prefix)))
        else:
            words = [0x2001, 0x4860, rng.randint(0, 0xffff), rng.randint(0, 0xffff), 0, 0, rng.randint(0, 0xffff)]
            if ("6",) + tuple(words) in seen:
                continue
            seen.add(("6",) + tuple(words))
            prefix = rng.choice([112, 120, 128])
            last = 0 if prefix != 128 else rng.randint(1, 0xffff)
            if len(out) % 3 == 0:
                text = ":".join("%04x" % w for w in words + [last])
            else:
                text = ":".join("%x" % w for w in words + [last])
            out.append("%s/%d" % (text, prefix))
    return out


def egress_for(ranges, count):
    """One address inside each of the first `count` ranges."""
    out = []
    for text in ranges[:count]:
        addr = text.split("/")[0]
        out.append(addr)
    return out


def median_time(func, runs, wall):
    """Median CPU seconds of `runs` calls (CPU time is not inflated by other
    processes on a busy machine); the median wall-clock time goes to `wall`."""
    cpu, clock = [], []
    for _run in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        func()
        cpu.append(time.process_time() - c0)
        clock.append(time.perf_counter() - w0)
    wall.append(statistics.median(clock))
    return statistics.median(cpu)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].rstrip("."))
    parser.add_argument("--runs", type=int, default=7, help="runs per measurement (median is reported)")
    parser.add_argument("--sizes", default="10,1000,10000", help="comma-separated allowlist sizes")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]

    rows = []
    for n in sizes:
        ranges = make_ranges(n)
        egress = egress_for(ranges, max(1, n // 10))
        profile = {"domains": ["example.com"], "allowlist": ranges, "egress_addresses": egress}
        report = check_allowlist(ranges)
        assert report.ok, report.errors[:3]
        probe = [r["cidr"] for r in report.ranges]
        compiled = AllowedRanges(probe)
        wall = []
        rows.append({
            "ranges": n,
            "allowlist_s": median_time(lambda: check_allowlist(ranges), args.runs, wall),
            "allowlist_egress_s": median_time(lambda: check_allowlist(ranges, egress=egress), args.runs, wall),
            "egress_addresses": len(egress),
            "profile_s": median_time(lambda: check_profile(profile), args.runs, wall),
            "address_allowed_miss_s": median_time(lambda: address_allowed("198.51.100.1", probe), args.runs, wall),
            "compiled_miss_s": median_time(lambda: address_allowed("198.51.100.1", compiled), args.runs, wall),
            "total_addresses": report.total,
        })
        rows[-1]["wall_s"] = dict(zip(("allowlist", "allowlist_egress", "profile", "address_allowed_miss", "compiled_miss"), wall))

    header = "%8s  %14s  %20s  %12s  %20s  %14s" % (
        "ranges", "allowlist (s)", "+ egress n/10 (s)", "profile (s)", "address_allowed (s)", "compiled (s)")
    print("relay policy checks, median CPU seconds of %d runs (Python %s, %s)" % (
        args.runs, platform.python_version(), platform.machine()))
    print(header)
    print("-" * len(header))
    for r in rows:
        print("%8d  %14.4f  %20.4f  %12.4f  %20.4f  %14.6f" % (
            r["ranges"], r["allowlist_s"], r["allowlist_egress_s"], r["profile_s"], r["address_allowed_miss_s"],
            r["compiled_miss_s"]))
    print("+ egress: with n/10 egress addresses; profile: check_profile with that allowlist and egress.")
    print("address_allowed: the stand-in's per-connection check against string ranges (worst case: no match);")
    print("compiled: the same against AllowedRanges built once.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "python": platform.python_version(), "results": rows}, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
