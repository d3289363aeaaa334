# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Variable names: a mistyped role variable (``relay_prot``) is silently ignored by Ansible, so the setting
the user meant never applies. ``unknown_variables(names, known)`` reports each name with a role prefix that no
role declares and that is close to one that does, naming the nearest."""

from __future__ import annotations

import difflib

from .findings import Finding

# The prefixes of the roles' public variables.
PREFIXES = ("relay_", "postfix_", "sendmail_", "qmail_", "exchange_")
# Facts the roles publish (set_fact / register) and per-host inventory variables they read, which are not role
# arguments.
PUBLISHED = ("relay_settings", "relay_guard_changed", "relay_guard_config_changed", "relay_guard_backup",
             "exchange_server_name")
# How close a name must be to a known one to be taken for a typo of it (difflib ratio). Names further from every
# known name are left alone: they belong to something else (a test bed's relay_standin_config, say).
CUTOFF = 0.8

RULES = {
    "variable-unknown": "a relay_* or <mta>_* variable that no role declares but that is close to one (a typo) "
                        "is refused, naming the nearest known variable",
}


def unknown_variables(names, known, prefixes=PREFIXES, cutoff=CUTOFF):
    """Findings (errors) for the ``names`` with one of ``prefixes`` that are not in ``known`` (or ``PUBLISHED``)
    but within ``cutoff`` of a known name; sorted by name."""
    known = sorted(set(known) | set(PUBLISHED))
    findings = []
    for name in sorted(set(n for n in names if isinstance(n, str))):
        if not name.startswith(tuple(prefixes)) or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=cutoff)
        if close:
            findings.append(Finding(
                name, "variable-unknown",
                "%s is not a variable of any smarthost.relay role, so Ansible ignores it and %s keeps its default; "
                "did you mean %s?" % (name, close[0], close[0]),
                "rename %s to %s in the inventory" % (name, close[0])))
    return findings
