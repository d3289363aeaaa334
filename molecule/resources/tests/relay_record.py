# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Testinfra helpers shared by the scenarios: reach containers, read the relay stand-in's record."""

from __future__ import annotations

import json
import os
import time

import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

RECORD = "/var/lib/relay-standin/record.jsonl"


def group_hosts(group):
    """The scenario's containers in an inventory group, as fast podman-exec testinfra hosts."""
    runner = AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
    return [testinfra.get_host("podman://" + name) for name in runner.get_hosts(group)]


def relay():
    return group_hosts("relay")[0]


def read_record(relay_host):
    """Every record line written so far (transactions and connections)."""
    text = relay_host.run("cat %s 2>/dev/null || true" % RECORD).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def transactions(relay_host, **match):
    """Transactions whose fields equal every keyword given."""
    return [r for r in read_record(relay_host)
            if r.get("kind") == "transaction" and all(r.get(k) == v for k, v in match.items())]


def wait_for_transactions(relay_host, count=1, timeout=90, **match):
    """Poll the record until ``count`` matching transactions have arrived; return them."""
    deadline = time.monotonic() + timeout
    while True:
        found = transactions(relay_host, **match)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(1)


def unique_id(tag):
    return "<%s.%d.%d@smarthost.test>" % (tag, os.getpid(), time.time_ns())
