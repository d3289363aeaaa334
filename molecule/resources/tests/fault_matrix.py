# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault-matrix counting, shared by the scenarios that prove "nothing lost, nothing sent twice".

A ``Batch`` is the messages one MTA queued during one case: ``count`` messages with the unique Message-IDs
``<prefix>.<i>@example.com`` and one envelope sender of their own, so that the bounces (DSNs, null sender) the MTA
sends about them can be told apart from any other mail. They are submitted by the tests' one injector
(relay_standin.inject ``batch``) and read back with the one record reader (relay_standin.records.RecordTail). The
steps, for any MTA:

    batch = Batch("421-connect", "postfix", 500, run_id)
    podman("exec", "-i", container, "sh", "-c", inject.INSTALL, stdin=inject.source())   # once per container
    podman("exec", container, *batch.inject_argv())                                      # SMTP to localhost:25
    ... fault, recovery, flush ...
    tail = records.RecordTail.in_container("srt-<scenario>-relay")
    row = tally(batch, tail.records(), since=start, client_ip="10.89.1.3")
    row.update(settle(row, queued=..., bounced=...))
    print(format_table([row, ...]))
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from relay_standin import inject


@dataclass(frozen=True)
class Batch:
    """One MTA's messages in one case."""

    case: str
    mta: str
    count: int
    run: str

    @property
    def prefix(self):
        return "%s.%s.%s" % (self.case, self.mta, self.run)

    @property
    def sender(self):
        """The batch's own envelope sender: DSNs about the batch go to it."""
        return "%s.%s@example.com" % (self.case, self.mta)

    def message_id(self, index):
        return "<%s.%d@example.com>" % (self.prefix, index)

    def inject_argv(self, rate=0.0, hold_at=None, go_file=None):
        """The injector's command for the batch in the MTA's container (installed there with inject.INSTALL):
        to the MTA's own listener on localhost:25, in one session, at ``rate`` messages per second (0: as fast as
        the MTA takes them), reconnecting after a restart; with ``hold_at``, paused before that message until
        ``go_file`` exists. It prints "<submitted> <reconnects>"."""
        hold = ["--hold-at", hold_at, "--go-file", go_file] if hold_at is not None else []
        return inject.in_container("batch", self.prefix, self.sender, self.count, "--rate", rate, *hold)

    def owns(self, record):
        return (record.get("message_id") or "").startswith("<%s." % self.prefix)


def tally(batch, records, since=0.0, client_ip=None):
    """What the relay saw of ``batch``: messages accepted once or more, refused and deferred attempts, DSNs to the
    batch's sender, and (with ``client_ip``) the connections that client opened since ``since``."""
    recent = [r for r in records if r.get("time", 0) >= since]
    mine = [r for r in recent if r.get("kind") == "transaction" and batch.owns(r)]
    accepted = Counter(r["message_id"] for r in mine if r["verdict"] == "accepted")
    dsns = [r for r in recent if r.get("kind") == "transaction" and r.get("verdict") == "accepted"
            and r.get("sender") == "" and r.get("recipients") == [batch.sender]]
    row = {"case": batch.case, "mta": batch.mta, "messages": batch.count,
           "delivered": len(accepted), "once": sum(1 for n in accepted.values() if n == 1),
           "duplicated": sum(n - 1 for n in accepted.values()),
           "duplicate_ids": sorted(mid for mid, n in accepted.items() if n > 1),
           "dsn_at_relay": len(dsns),
           "attempts": dict(Counter(r["verdict"] for r in mine)),
           "first_accepted": min((r["time"] for r in mine if r["verdict"] == "accepted"), default=None)}
    if client_ip:
        conns = [r for r in recent if r.get("kind") == "connection" and r.get("client_ip") == client_ip]
        row["connections"] = len(conns)
        row["fault_hits"] = sum(len(r.get("faults") or []) for r in conns)
    return row


def opened_at(connection):
    """When a connection record's connection was opened (epoch seconds): the record is written when it closes."""
    return connection["time"] - connection.get("duration", 0.0)


def relay_connections(records, client_ip, since=0.0, messages=None):
    """The relay connections ``client_ip`` opened since ``since``, counted from the stand-in's connection records
    (written when a connection closes: read them after the client closed its connections, or after a relay restart
    closed them): ``connections``, ``carrying`` (with at least one transaction), ``dos_refusals`` (refused at
    HELO/EHLO by the denial-of-service rules), ``refused_at_helo``, ``most_transactions`` (on one connection) and,
    with ``messages``, ``connections_per_1000`` messages."""
    conns = [r for r in records if r.get("kind") == "connection" and r.get("client_ip") == client_ip
             and opened_at(r) >= since]
    row = {"connections": len(conns),
           "carrying": sum(1 for r in conns if r.get("transactions")),
           "dos_refusals": sum(1 for r in conns if r.get("dos")),
           "refused_at_helo": sum(1 for r in conns if r.get("end") == "refused"),
           "most_transactions": max((r.get("transactions") or 0 for r in conns), default=0)}
    if messages:
        row["connections_per_1000"] = round(1000.0 * len(conns) / messages, 1)
    return row


def settle(row, queued, bounced, dsn_local=0):
    """Close a row with what the MTA itself says: still queued, bounced (its log), DSNs kept locally.
    lost: neither delivered, nor bounced to someone, nor still queued."""
    return {"queued": queued, "bounced": bounced, "dsn_local": dsn_local,
            "lost": row["messages"] - row["delivered"] - bounced - queued}


COLUMNS = ("case", "mta", "messages", "delivered", "once", "duplicated", "lost", "bounced", "dsn_at_relay",
           "dsn_local", "queued", "connections", "seconds")


def format_table(rows, columns=COLUMNS):
    """A fixed-width text table of the rows (missing cells blank)."""
    cells = [[str(c) for c in columns]] + [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.rjust(width) if n > 1 else cell.ljust(width)
                               for n, (cell, width) in enumerate(zip(line, widths))) for line in cells)


def switch_over(records, batch, is_old, is_new):
    """Where the batch's accepted transactions switch from the old setting to the new one: counts of each, the
    last old and first new transaction (time, connection), and how many old ones came after the first new one."""
    accepted = sorted((r for r in records if r.get("kind") == "transaction" and batch.owns(r)
                       and r["verdict"] == "accepted"), key=lambda r: r["time"])
    old = [r for r in accepted if is_old(r)]
    new = [r for r in accepted if is_new(r)]
    first_new = new[0]["time"] if new else None
    return {"old": len(old), "new": len(new), "neither": len(accepted) - len(old) - len(new),
            "last_old": old[-1]["ts"] if old else None, "first_new": new[0]["ts"] if new else None,
            "last_old_time": old[-1]["time"] if old else None,
            "last_old_index": old[-1]["message_id"] if old else None,
            "first_new_index": new[0]["message_id"] if new else None,
            "old_after_first_new": sum(1 for r in old if first_new is not None and r["time"] > first_new)}
