# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Usage counters for the relay's sending limits, kept in memory.

Every check is O(1) amortised: each counter is a queue of timestamped
entries with a running total, pruned from the old end when it is read.
Windows are sliding (the last N seconds), which is how the service document
states them ("per 24-hour period", "in a 10-minute window").

Per user (identity: the SMTP AUTH user, else the envelope sender): messages
and *unique* recipients per daily window.  Per customer: *total* recipients
per daily window and per peak window.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, Iterable, Optional, Tuple


class SlidingTotal:
    """Sum of counts added within the last ``window`` seconds."""

    def __init__(self) -> None:
        self._entries: Deque[Tuple[float, int]] = deque()
        self._total = 0

    def add(self, now: float, count: int = 1) -> None:
        if count:
            self._entries.append((now, count))
            self._total += count

    def total(self, now: float, window: float) -> int:
        horizon = now - window
        entries = self._entries
        while entries and entries[0][0] <= horizon:
            self._total -= entries.popleft()[1]
        return self._total


class SlidingUniqueSet:
    """Distinct keys seen within the last ``window`` seconds."""

    def __init__(self) -> None:
        self._entries: Deque[Tuple[float, str]] = deque()
        self._last_seen: Dict[str, float] = {}

    def add(self, now: float, key: str) -> None:
        self._entries.append((now, key))
        self._last_seen[key] = now

    def _prune(self, now: float, window: float) -> None:
        horizon = now - window
        entries = self._entries
        while entries and entries[0][0] <= horizon:
            seen, key = entries.popleft()
            if self._last_seen.get(key) == seen:
                del self._last_seen[key]

    def count(self, now: float, window: float) -> int:
        self._prune(now, window)
        return len(self._last_seen)

    def count_with(self, now: float, window: float, extra: Iterable[str]) -> int:
        """How many distinct keys there would be with ``extra`` added."""
        self._prune(now, window)
        return len(self._last_seen) + len({key for key in extra if key not in self._last_seen})


@dataclass(frozen=True)
class Windows:
    daily_seconds: float
    peak_seconds: float


class UsageLedger:
    """Relay usage of one customer and its users.  Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._customer_daily = SlidingTotal()
        self._customer_peak = SlidingTotal()
        self._user_messages: Dict[str, SlidingTotal] = {}
        self._user_recipients: Dict[str, SlidingUniqueSet] = {}

    @staticmethod
    def _key(address: str) -> str:
        return (address or "").strip().lower()

    def user_messages(self, user: str, now: float, windows: Windows) -> int:
        with self._lock:
            counter = self._user_messages.get(self._key(user))
            return counter.total(now, windows.daily_seconds) if counter else 0

    def user_unique_recipients(self, user: str, now: float, windows: Windows, pending: Iterable[str] = ()) -> int:
        """Distinct recipients of ``user`` in the daily window, counting
        ``pending`` (recipients of the open transaction) as if relayed."""
        pending = [self._key(r) for r in pending]
        with self._lock:
            unique = self._user_recipients.get(self._key(user))
            if unique is None:
                return len(set(pending))
            return unique.count_with(now, windows.daily_seconds, pending)

    def customer_recipients(self, now: float, windows: Windows) -> Tuple[int, int]:
        """(daily total, peak total) of recipients relayed for the customer."""
        with self._lock:
            return (
                self._customer_daily.total(now, windows.daily_seconds),
                self._customer_peak.total(now, windows.peak_seconds),
            )

    def record_message(self, user: str, recipients: Iterable[str], now: float) -> None:
        """Count one relayed message of ``user`` to ``recipients``."""
        recipients = [self._key(r) for r in recipients]
        key = self._key(user)
        with self._lock:
            self._user_messages.setdefault(key, SlidingTotal()).add(now, 1)
            unique = self._user_recipients.setdefault(key, SlidingUniqueSet())
            for recipient in recipients:
                unique.add(now, recipient)
            self._customer_daily.add(now, len(recipients))
            self._customer_peak.add(now, len(recipients))

    def seed(self, now: float, user: Optional[str] = None, messages: int = 0, unique_recipients: int = 0,
             customer_recipients: int = 0) -> None:
        """Pretend earlier traffic happened at ``now`` (a test aid): messages
        and synthetic unique recipients for ``user``, extra customer
        recipients that belong to no user."""
        key = self._key(user or "")
        with self._lock:
            if messages:
                self._user_messages.setdefault(key, SlidingTotal()).add(now, messages)
            if unique_recipients:
                unique = self._user_recipients.setdefault(key, SlidingUniqueSet())
                for number in range(unique_recipients):
                    unique.add(now, "seed-%d@seed.invalid" % number)
            if customer_recipients:
                self._customer_daily.add(now, customer_recipients)
                self._customer_peak.add(now, customer_recipients)
