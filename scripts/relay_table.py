# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print what the relay stand-in received, one row per sending host and way of sending.

Usage: PYTHONPATH=tools python3 scripts/relay_table.py RECORD.jsonl [IP=HOST=MTA ...]
(the record is read with the stand-in's own reader, relay_standin.records)
"""

import sys
from collections import defaultdict

from relay_standin.records import load

COLUMNS = ("host", "mta", "port", "tls", "auth", "helo", "accepted", "refused", "connections")


def rows(records, hosts):
    groups = defaultdict(lambda: {"accepted": 0, "refused": 0, "connections": set()})
    for record in records:
        if record.get("kind") != "transaction":
            continue
        host, mta = hosts.get(record.get("client_ip"), (record.get("client_ip"), "?"))
        tls = record.get("tls_version") if record.get("tls") else "none"
        key = (host, mta, record.get("port"), tls, record.get("auth_user") or "-", record.get("helo") or "-")
        group = groups[key]
        group["accepted" if record.get("verdict") == "accepted" else "refused"] += 1
        group["connections"].add(record.get("connection"))
    return [key + (g["accepted"], g["refused"], len(g["connections"])) for key, g in sorted(groups.items(), key=str)]


def main(argv):
    hosts = {}
    for mapping in argv[1:]:
        address, host, mta = mapping.split("=", 2)
        hosts[address] = (host, mta)
    table = [COLUMNS] + [tuple(str(cell) for cell in row) for row in rows(load(argv[0]), hosts)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for index, row in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    return 0 if len(table) > 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
