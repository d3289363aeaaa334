# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Everything the server keeps between connections.

The current ``Settings`` (replaced on reload), the live fault plan, the
usage ledger (survives reloads, lost on restart), the TLS provider and the
record writer.  ``reload_if_changed`` is called at every new connection
and by the server's poll loop.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Deque, Dict, List, Optional

from .config import ConfigError, ConfigSource, Settings
from .faults import FaultPlan
from .ledger import UsageLedger
from .records import NullWriter, RecordWriter
from .tls import TlsConfigError, TlsProvider

log = logging.getLogger("relay_standin")


class ConnectionRate:
    """New connections per client address in a sliding window (the denial-of-service burst rule).
    Thread-safe; memory bounded by the addresses seen within the window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened: Dict[str, Deque[float]] = {}

    def note(self, address: str, window: float, now: Optional[float] = None) -> int:
        """Count a new connection from ``address``; how many it opened within the last ``window`` seconds,
        this one included."""
        now = time.monotonic() if now is None else now
        horizon = now - window
        with self._lock:
            opened = self._opened.setdefault(address, deque())
            while opened and opened[0] <= horizon:
                opened.popleft()
            opened.append(now)
            if len(self._opened) > 1024:  # forget addresses that went quiet
                for other in [a for a, times in self._opened.items() if times[-1] <= horizon]:
                    del self._opened[other]
            return len(opened)


class RelayState:
    """Shared, thread-safe server state."""

    def __init__(self, source: ConfigSource, settings: Settings) -> None:
        self.source = source
        self.ledger = UsageLedger()
        self.connection_rate = ConnectionRate()
        self.tls = TlsProvider()
        self.faults = FaultPlan()
        self.writer = NullWriter()
        self.settings = settings
        self.reload_count = 0
        self.last_error: Optional[str] = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._run_id = secrets.token_hex(3)
        self._listeners_changed: List[Callable[[], None]] = []
        self._apply(settings)

    @classmethod
    def from_file(cls, path: Path) -> "RelayState":
        source = ConfigSource(Path(path))
        return cls(source, source.load())

    def _apply(self, settings: Settings) -> None:
        """Make ``settings`` current (TLS first: a bad certificate keeps
        the old settings in force)."""
        self.tls.update(settings.tls_cert, settings.tls_key)
        with self._lock:
            old_path = getattr(self.writer, "path", None)
            if settings.record != old_path:
                self.writer.close()
                self.writer = RecordWriter(settings.record) if settings.record else NullWriter()
            self.faults = FaultPlan.build(list(settings.faults), self.faults)
            self.settings = settings

    def reload_if_changed(self) -> bool:
        """Reload the config file if it changed; True when new settings took
        effect.  A broken file is logged and the old settings stay."""
        if not self.source.changed():
            return False
        try:
            settings = self.source.load()
            self._apply(settings)
        except (ConfigError, TlsConfigError, OSError) as exc:
            self.source.mark_seen()
            self.last_error = str(exc)
            log.error("config %s not reloaded, keeping the previous settings: %s", self.source.path, exc)
            return False
        self.reload_count += 1
        self.last_error = None
        log.info("config %s reloaded", self.source.path)
        for callback in list(self._listeners_changed):
            callback()
        return True

    def on_reload(self, callback: Callable[[], None]) -> None:
        self._listeners_changed.append(callback)

    def now(self) -> float:
        """The relay's clock: wall time plus the configured offset."""
        return time.time() + self.settings.clock_offset_seconds

    def next_connection_id(self) -> str:
        return "%s-%06d" % (self._run_id, next(self._ids))

    def close(self) -> None:
        self.writer.close()
