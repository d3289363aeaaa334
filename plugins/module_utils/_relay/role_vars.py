# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the rules of one role (mta.py, exchange.py, guard.py) see: the relay settings as the relay check normalized
them, the role's variables as the role sees them (null means unset), and the list their findings go to."""

from __future__ import annotations

import re

from .findings import Finding

_WHOLE_NUMBER = re.compile(r"^\s*-?[0-9]+\s*$")


class RoleVars:
    """The relay settings (``relay``), the role's variables (``v``) read leniently, and the findings."""

    def __init__(self, relay, role_vars):
        self.relay = relay or {}
        self.v = role_vars or {}
        self.findings = []

    def add(self, variable, rule, message, fix, severity="error"):
        self.findings.append(Finding(variable, rule, message, fix, severity))

    def given(self, name):
        return self.v.get(name) is not None

    def get(self, name, default=None):
        value = self.v.get(name)
        return default if value is None else value

    def text(self, name):
        value = self.v.get(name)
        return "" if value is None else str(value)

    def items(self, name):
        value = self.v.get(name)
        return [] if value is None else list(value)

    def boolean(self, name, default=False):
        value = self.v.get(name)
        if value is None:
            return default
        if isinstance(value, str):
            return value.strip().lower() in ("true", "yes", "on", "1")
        return bool(value)

    def whole_number(self, name):
        """The value as an int (an int, or a string of one), else None (null, a boolean, anything else)."""
        value = self.v.get(name)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _WHOLE_NUMBER.match(value):
            return int(value)
        return None
