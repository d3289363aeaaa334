# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection: scripted failures at chosen stages of an SMTP session.

A fault rule (one entry of the config's ``faults`` list) says *where*
(``stage``, optional ``ports``), *what* (``action``: reply, close,
reset, stall, unlisten) and *how often* (``times``; a window of
``after_seconds``/``for_seconds`` counted from when the rule was first
loaded).  Rules keep their counters across config reloads as long as their
text does not change, so a test can append a rule without re-arming others.

A ``reply`` is one line, or several (a YAML list of lines, or one string with
newlines) laid out as SMTP multi-line replies are: the same code on every line,
``-`` after it on all but the last.  It is sent exactly as given.  Instead of
``reply``, ``reply_key`` names an entry of the engine's reply catalogue; it is
rendered and laid out like the stand-in's own replies (``reply_layout``, a
session token, ``- gsmtp``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, FrozenSet, List, Optional, Set, Tuple

from .engine import replies
from .wire import logical_of

STAGES = ("connect", "helo", "starttls", "auth", "mail", "rcpt", "data", "end_of_data")
ACTIONS = ("reply", "close", "reset", "stall", "unlisten")
DEFAULT_FAULT_REPLY = "421 4.7.0 Try again later, closing connection."
SERVICE_PORTS = {"smtp": 25, "smtps": 465, "submission": 587}
_LINE_RE = re.compile(r"^[45][0-9][0-9]([ -][^\r\n]*)?$")
_KNOWN_KEYS = {"stage", "action", "reply", "reply_key", "disconnect", "seconds", "ports", "times", "after_seconds",
               "for_seconds"}


class FaultConfigError(ValueError):
    """A fault rule that cannot be understood."""


@dataclass(frozen=True)
class FaultRule:
    """One scripted failure.  ``ports`` holds service port numbers (25,
    465, 587) or is None for every port."""

    stage: str
    action: str
    reply: str = DEFAULT_FAULT_REPLY
    reply_lines: Tuple[str, ...] = (DEFAULT_FAULT_REPLY,)
    reply_key: Optional[str] = None
    disconnect: bool = True
    seconds: float = 0.0
    ports: Optional[FrozenSet[int]] = None
    times: Optional[int] = None
    after_seconds: float = 0.0
    for_seconds: Optional[float] = None

    def key(self) -> str:
        data = asdict(self)
        data["ports"] = sorted(self.ports) if self.ports is not None else None
        return json.dumps(data, sort_keys=True)

    def describe(self) -> dict:
        """The rule as recorded in a transaction record."""
        out = {"stage": self.stage, "action": self.action}
        if self.action == "reply":
            out["reply"] = self.reply
            if self.reply_key:
                out["reply_key"] = self.reply_key
        if self.action == "stall":
            out["seconds"] = self.seconds
        return out


def _number(value, name, index, minimum=0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise FaultConfigError("faults[%d].%s must be a number >= %s, got %r" % (index, name, minimum, value))
    return float(value)


def _ports(value, index) -> Optional[FrozenSet[int]]:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    out = set()
    for item in items:
        if isinstance(item, str) and item in SERVICE_PORTS:
            out.add(SERVICE_PORTS[item])
        elif isinstance(item, int) and not isinstance(item, bool) and item in SERVICE_PORTS.values():
            out.add(item)
        else:
            raise FaultConfigError(
                "faults[%d].ports: %r is not one of 25, 465, 587 (or smtp, smtps, submission)" % (index, item)
            )
    return frozenset(out)


def reply_lines(value, name: str = "reply") -> Tuple[str, ...]:
    """The lines of a configured reply: one line, a list of lines or a string with newlines.  Every line a
    4xx/5xx reply line with the same code, ``-`` after the code on all but the last, a space (or nothing) on
    the last."""
    if isinstance(value, str):
        items = value.replace("\r\n", "\n").strip("\n").split("\n")
    elif isinstance(value, (list, tuple)) and value and all(isinstance(item, str) for item in value):
        items = list(value)
    else:
        raise FaultConfigError("%s must be a 4xx or 5xx reply line or a list of lines, got %r" % (name, value))
    lines = tuple(item.strip() for item in items)
    for line in lines:
        if not _LINE_RE.match(line):
            raise FaultConfigError("%s must be a 4xx or 5xx reply line, got %r" % (name, line))
    if len({line[:3] for line in lines}) != 1:
        raise FaultConfigError("%s: every line of a multi-line reply must have the same code, got %r"
                               % (name, list(lines)))
    if any(line[3:4] != "-" for line in lines[:-1]) or lines[-1][3:4] == "-":
        raise FaultConfigError("%s: a multi-line reply has '-' after the code on every line but the last, got %r"
                               % (name, list(lines)))
    return lines


def parse_fault(entry, index: int) -> FaultRule:
    """Validate one ``faults`` entry (a mapping) into a ``FaultRule``."""
    if not isinstance(entry, dict):
        raise FaultConfigError("faults[%d] must be a mapping, got %r" % (index, entry))
    unknown = set(entry) - _KNOWN_KEYS
    if unknown:
        raise FaultConfigError("faults[%d]: unknown key(s) %s" % (index, ", ".join(sorted(unknown))))
    action = entry.get("action", "reply")
    if action not in ACTIONS:
        raise FaultConfigError("faults[%d].action must be one of %s, got %r" % (index, ", ".join(ACTIONS), action))
    stage = entry.get("stage", "connect" if action == "unlisten" else None)
    if stage not in STAGES:
        raise FaultConfigError("faults[%d].stage must be one of %s, got %r" % (index, ", ".join(STAGES), stage))
    if action == "unlisten" and stage != "connect":
        raise FaultConfigError("faults[%d]: action unlisten only applies to stage connect" % index)
    reply_key = entry.get("reply_key")
    if reply_key is not None:
        if "reply" in entry:
            raise FaultConfigError("faults[%d]: give reply or reply_key, not both" % index)
        known = replies.BY_KEY.get(reply_key) if isinstance(reply_key, str) else None
        if known is None or known.code < 400:
            refusals = ", ".join(k for k, v in sorted(replies.BY_KEY.items()) if v.code >= 400)
            raise FaultConfigError("faults[%d].reply_key must be a 4xx or 5xx entry of the reply catalogue (%s), "
                                   "got %r" % (index, refusals, reply_key))
        lines, reply = (), replies.render(reply_key)
    else:
        lines = reply_lines(entry.get("reply", DEFAULT_FAULT_REPLY), "faults[%d].reply" % index)
        reply = lines[0] if len(lines) == 1 else logical_of(list(lines))
    disconnect = entry.get("disconnect", reply.startswith("421") or stage == "connect")
    times = entry.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise FaultConfigError("faults[%d].times must be a whole number >= 1, got %r" % (index, times))
    for_seconds = entry.get("for_seconds")
    return FaultRule(
        stage=stage,
        action=action,
        reply=reply,
        reply_lines=lines,
        reply_key=reply_key,
        disconnect=bool(disconnect),
        seconds=_number(entry.get("seconds", 0), "seconds", index),
        ports=_ports(entry.get("ports"), index),
        times=times,
        after_seconds=_number(entry.get("after_seconds", 0), "after_seconds", index),
        for_seconds=None if for_seconds is None else _number(for_seconds, "for_seconds", index),
    )


def parse_faults(entries) -> List[FaultRule]:
    """Validate the config's ``faults`` list."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise FaultConfigError("faults must be a list, got %r" % (entries,))
    return [parse_fault(entry, index) for index, entry in enumerate(entries)]


@dataclass
class _RuleState:
    rule: FaultRule
    armed_at: float
    hits: int = 0

    def active(self, now: float) -> bool:
        elapsed = now - self.armed_at
        if elapsed < self.rule.after_seconds:
            return False
        if self.rule.for_seconds is not None and elapsed >= self.rule.after_seconds + self.rule.for_seconds:
            return False
        return self.rule.times is None or self.hits < self.rule.times


@dataclass
class FaultPlan:
    """The live fault rules with their counters.  Thread-safe: the server
    consults it from its event loop, tests may inspect it from another
    thread."""

    states: List[_RuleState] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, rules: List[FaultRule], previous: Optional["FaultPlan"] = None, now: Optional[float] = None):
        """A plan for ``rules``, keeping the counters of rules that were
        already in ``previous`` (same text, same occurrence)."""
        now = time.monotonic() if now is None else now
        carried: Dict[str, List[_RuleState]] = {}
        if previous is not None:
            for state in previous.states:
                carried.setdefault(state.rule.key(), []).append(state)
        states = []
        for rule in rules:
            old = carried.get(rule.key())
            states.append(old.pop(0) if old else _RuleState(rule, now))
        return cls(states)

    def take(self, stage: str, service_port: int, now: Optional[float] = None) -> Optional[FaultRule]:
        """The first active rule for ``stage`` on ``service_port``, counted
        as one occurrence; None when no fault applies."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for state in self.states:
                rule = state.rule
                if rule.stage != stage or rule.action == "unlisten":
                    continue
                if rule.ports is not None and service_port not in rule.ports:
                    continue
                if state.active(now):
                    state.hits += 1
                    return rule
        return None

    def unlistened_ports(self, now: Optional[float] = None) -> Set[int]:
        """Service ports that an active ``unlisten`` rule takes down."""
        now = time.monotonic() if now is None else now
        down: Set[int] = set()
        with self._lock:
            for state in self.states:
                if state.rule.action == "unlisten" and state.active(now):
                    down.update(state.rule.ports or SERVICE_PORTS.values())
        return down

    def hits(self) -> List[int]:
        with self._lock:
            return [state.hits for state in self.states]
