# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make ``ansible_collections.smarthost.relay`` importable for plain pytest.

Under ``ansible-test units`` (or with the collection installed) this does
nothing.  Otherwise it links ``.cache/collections/ansible_collections/
smarthost/relay`` to the repository root and puts ``.cache/collections`` first
on ``sys.path``.
"""

from __future__ import annotations

import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")


def _importable():
    try:
        importlib.import_module("ansible_collections.smarthost.relay.plugins.module_utils._relay.constants")
    except ImportError:
        return False
    return True


def _link():
    parent = os.path.join(COLLECTIONS, "ansible_collections", "smarthost")
    os.makedirs(parent, exist_ok=True)
    link = os.path.join(parent, "relay")
    if not os.path.lexists(link):
        try:
            os.symlink(ROOT, link)
        except FileExistsError:  # another xdist worker won the race
            pass
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    for name in [m for m in sys.modules if m == "ansible_collections" or m.startswith("ansible_collections.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


if not _importable():
    _link()
