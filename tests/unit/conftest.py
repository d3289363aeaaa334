# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make ``ansible_collections.smarthost.relay`` importable for plain pytest, for every test below.

Under ``ansible-test units`` (or with the collection installed) this does
nothing.  Otherwise it links ``.cache/collections/ansible_collections/
smarthost/relay`` to the repository root and installs ansible-core's own
collection loader for ``.cache/collections``, as ``ansible-playbook`` and
``ansible-test units`` do: collection packages then also serve their non-Python
files (``pkgutil.get_data``), which is how ansible-core reads a collection's
PowerShell module utils.
"""

from __future__ import annotations

import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
    for name in [m for m in sys.modules if m == "ansible_collections" or m.startswith("ansible_collections.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    # pylint: disable-next=import-outside-toplevel
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    _AnsibleCollectionFinder(paths=[COLLECTIONS])._install()  # pylint: disable=protected-access


if not _importable():
    _link()
