# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Findings: what a rule says about one variable, and how to fix it."""

from __future__ import annotations

import re

SEVERITIES = ("error", "warning", "note")


class Finding:
    """One rule's verdict on one variable.

    ``variable`` is the profile key it concerns (``port``, ``allowlist[3]``),
    ``rule`` a stable rule id (``tls-required-port-587``), ``message`` what is
    wrong, ``fix`` how to fix it, ``severity`` one of error, warning, note.
    """

    __slots__ = ("variable", "rule", "message", "fix", "severity")

    def __init__(self, variable, rule, message, fix="", severity="error"):
        if severity not in SEVERITIES:
            raise ValueError("severity must be one of %s, not %r" % (", ".join(SEVERITIES), severity))
        self.variable = variable
        self.rule = rule
        self.message = message
        self.fix = fix or ""
        self.severity = severity

    def as_dict(self):
        return {
            "variable": self.variable,
            "rule": self.rule,
            "message": self.message,
            "fix": self.fix,
            "severity": self.severity,
        }

    def renamed(self, prefix, names):
        """A copy that calls each setting in ``names`` by ``prefix + name``, in
        ``variable`` and wherever ``message`` or ``fix`` cite it as ``name:`` or
        ``name[`` (so a role's ``relay_tls`` is named as the user wrote it)."""
        if not prefix:
            return self
        pattern = re.compile(r"(?<![\w.])(%s)(?=:|\[)" % "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))

        def rename(text):
            return pattern.sub(lambda m: prefix + m.group(1), text)

        variable = self.variable if self.variable.startswith(prefix) else prefix + self.variable
        return Finding(variable, self.rule, rename(self.message), rename(self.fix), self.severity)

    def format(self):
        text = "%s [%s]: %s" % (self.variable, self.rule, self.message)
        if self.fix:
            text += " Fix: %s" % self.fix
        return text

    def __str__(self):
        return self.format()

    def __repr__(self):
        return "Finding(%r, %r, %r, %r, %r)" % (self.variable, self.rule, self.message, self.fix, self.severity)

    def __eq__(self, other):
        if not isinstance(other, Finding):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __hash__(self):
        return hash((self.variable, self.rule, self.message, self.fix, self.severity))


def format_findings(findings):
    """One line per finding: ``- <variable> [<rule>]: <message> Fix: <fix>``."""
    return "\n".join("- " + f.format() for f in findings)


class RelayRuleError(ValueError):
    """A value that breaks a relay rule (e.g. a malformed or too wide range).

    Carries the ``rule`` id and a ``fix``; ``to_finding(variable)`` turns it
    into an error ``Finding`` once the caller knows which variable it was.
    """

    def __init__(self, message, rule="invalid", fix=""):
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.fix = fix

    def to_finding(self, variable, severity="error"):
        return Finding(variable, self.rule, self.message, self.fix, severity)
