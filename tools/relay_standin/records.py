# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The record: one JSON line per transaction (and per connection).

Writers append each line with a single ``write(2)`` on an ``O_APPEND``
descriptor, so readers that tail the file concurrently see whole lines; a
reader ignores a last line that has no newline yet.

Python API for tests: ``load(path)``, ``parse(data)``, ``RecordTail`` (a record
in a container or on a testinfra host), ``transactions(records)``,
``connections(records)``, ``refused_connections(records, dos=None)``,
``summarize(records)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

KIND_TRANSACTION = "transaction"
KIND_CONNECTION = "connection"
VERDICTS = ("accepted", "refused", "deferred", "abandoned")
# Where the stand-in's image and the scenarios keep the record.
CONTAINER_RECORD = "/var/lib/relay-standin/record.jsonl"
# The server's status (server.RelayServer.status), rewritten beside the record after every change.
STATUS_NAME = "status.json"
CONTAINER_STATUS = str(Path(CONTAINER_RECORD).with_name(STATUS_NAME))


def status_path(record: Optional[Path]) -> Optional[Path]:
    """Where the server writes its status for a record at ``record`` (None: no record, no status)."""
    return Path(record).with_name(STATUS_NAME) if record else None


class RecordWriter:
    """Appends JSON lines to one file.  Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: Optional[int] = os.open(str(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: Dict[str, Any]) -> None:
        data = (json.dumps(record, sort_keys=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                return
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class NullWriter:
    """Stands in for a writer when no record file is configured."""

    path = None

    def write(self, record: Dict[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


def parse(data: bytes) -> List[Dict[str, Any]]:
    """The complete record lines of ``data`` (an unfinished last line is left out)."""
    return [json.loads(line.decode("utf-8")) for line in data.split(b"\n")[:-1] if line.strip()]


def load(path) -> List[Dict[str, Any]]:
    """Every complete record line of ``path`` (missing file: empty list)."""
    try:
        with open(path, "rb") as handle:
            return parse(handle.read())
    except FileNotFoundError:
        return []


class RecordTail:
    """The tests' one reader of a record that lives elsewhere (in a container, on a testinfra host), read
    incrementally: a full matrix's record is megabytes.  ``read_from(offset)`` returns the file's bytes from
    ``offset`` on (empty when the file does not exist yet); ``records()`` returns every complete line so far."""

    def __init__(self, read_from: Callable[[int], bytes]) -> None:
        self.read_from = read_from
        self.offset = 0
        self.lines: List[Dict[str, Any]] = []

    @classmethod
    def in_container(cls, container: str, path: str = CONTAINER_RECORD) -> "RecordTail":
        """The record in a podman container (``podman exec CONTAINER tail``)."""
        def read_from(offset: int) -> bytes:
            return subprocess.run(["podman", "exec", container, "tail", "-c", "+%d" % (offset + 1), path],
                                  capture_output=True, check=True).stdout
        return cls(read_from)

    @classmethod
    def on_host(cls, host: Any, path: str = CONTAINER_RECORD) -> "RecordTail":
        """The record on a testinfra host (a missing file reads as empty)."""
        return cls(lambda offset: host.run("tail -c +%d %s 2>/dev/null || true" % (offset + 1, path)).stdout_bytes)

    def records(self) -> List[Dict[str, Any]]:
        data = self.read_from(self.offset)
        complete = data[:data.rfind(b"\n") + 1]  # an unfinished last line is read next time
        self.offset += len(complete)
        self.lines.extend(parse(complete))
        return self.lines


def transactions(records: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r for r in records if r.get("kind") == KIND_TRANSACTION]


def connections(records: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r for r in records if r.get("kind") == KIND_CONNECTION]


def accepted(records: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r for r in transactions(records) if r.get("verdict") == "accepted"]


def _count(items: Iterable[Any]) -> Dict[str, int]:
    return {str(key): value for key, value in sorted(Counter(items).items(), key=lambda kv: str(kv[0]))}


def summarize(records: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """Counts for a quick verdict on a run: per verdict and reply code, the
    connections used (and messages per connection), per port, TLS, AUTH
    user, HELO name and client address."""
    records = list(records)
    trans = transactions(records)
    conns = connections(records)
    conn_ids = {r.get("connection") for r in trans} | {r.get("connection") for r in conns}
    conn_ids.discard(None)
    accepted_per_conn = Counter(r.get("connection") for r in trans if r.get("verdict") == "accepted")
    return {
        "transactions": len(trans),
        "verdicts": _count(r.get("verdict") for r in trans),
        "codes": _count(r.get("code") for r in trans),
        "recipients_accepted": sum(len(r.get("recipients") or ()) for r in trans if r.get("verdict") == "accepted"),
        "rewritten_senders": sum(1 for r in trans if r.get("sender_rewritten") not in (None, r.get("sender"))),
        "connections": len(conn_ids),
        "connections_with_transactions": len({r.get("connection") for r in trans}),
        "connections_without_transactions": sum(1 for r in conns if not r.get("transactions")),
        "max_accepted_per_connection": max(accepted_per_conn.values()) if accepted_per_conn else 0,
        "connections_refused": sum(1 for r in conns if r.get("refusal")),
        "dos_refusals": _count(r.get("dos") for r in conns if r.get("dos")),
        "ports": _count(r.get("port") for r in trans),
        "tls": _count(r.get("tls_version") if r.get("tls") else "none" for r in trans),
        "auth_users": _count(r.get("auth_user") or "-" for r in trans),
        "helo": _count(r.get("helo") or "-" for r in trans),
        "client_ips": _count(r.get("client_ip") for r in trans),
    }


def format_transaction(record: Dict[str, Any]) -> str:
    """One human-readable line for a transaction record."""
    tls = record.get("tls_version") if record.get("tls") else "plain"
    sender = record.get("sender") or "<>"
    if record.get("sender_rewritten") and record.get("sender_rewritten") != record.get("sender"):
        sender += " => " + record["sender_rewritten"]
    recipients = ",".join(record.get("recipients") or ()) or "-"
    return "%s %s#%s port=%s %s auth=%s helo=%s from=%s to=%s %s %s" % (
        record.get("ts", "?"), record.get("connection"), record.get("seq"), record.get("port"), tls,
        record.get("auth_user") or "-", record.get("helo") or "-", sender, recipients,
        record.get("verdict"), record.get("reply"),
    )


def format_connection(record: Dict[str, Any]) -> str:
    tls = record.get("tls_version") if record.get("tls") else "plain"
    line = "%s %s port=%s %s client=%s transactions=%s end=%s" % (
        record.get("ts", "?"), record.get("connection"), record.get("port"), tls, record.get("client_ip"),
        record.get("transactions"), record.get("end"),
    )
    refusal = record.get("refusal")
    if refusal:
        line += " %s%s: %s" % (refusal.get("stage"), " (dos: %s)" % record["dos"] if record.get("dos") else "",
                               refusal.get("reply"))
    return line


def refused_connections(records: Iterable[Dict[str, Any]], dos: Optional[str] = None) -> List[Dict[str, Any]]:
    """Connections the relay itself refused at HELO/EHLO (malformed name, denial of service); with ``dos``
    (``"burst"``, ``"generic_helo"``, or ``True`` for either) only denial-of-service refusals."""
    out = [r for r in connections(records) if r.get("refusal")]
    if dos is True:
        return [r for r in out if r.get("dos")]
    if dos:
        return [r for r in out if r.get("dos") == dos]
    return out
