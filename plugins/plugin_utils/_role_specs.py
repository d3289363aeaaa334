# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The variables the collection's roles declare, read from their ``meta/argument_specs.yml``."""

from __future__ import annotations

import os

import yaml

ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")


def _role_options(roles_dir):
    for role in sorted(os.listdir(roles_dir)) if os.path.isdir(roles_dir) else ():
        path = os.path.join(roles_dir, role, "meta", "argument_specs.yml")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as handle:
            specs = (yaml.safe_load(handle) or {}).get("argument_specs") or {}
        for entry in specs.values():
            yield from ((entry or {}).get("options") or {}).items()


def role_variables(roles_dir=ROLES):
    """Every option of every entry point of every role under ``roles_dir``."""
    return {name for name, _spec in _role_options(roles_dir)}


def role_secret_variables(roles_dir=ROLES):
    """The options the roles under ``roles_dir`` declare ``no_log`` (their passwords)."""
    return {name for name, spec in _role_options(roles_dir) if (spec or {}).get("no_log")}
