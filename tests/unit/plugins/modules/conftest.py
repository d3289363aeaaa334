# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Exchange modules' PowerShell and their module util, each parsed once; the relay stand-in's fixtures
(relay_pki, relay_standin_factory) for the relay doctor's probe."""

from __future__ import annotations

import pytest

from exchange_scripts import NAMES, UTIL_PATH, ps1_path, pstree
from relay_standin.pytest_plugin import relay_pki, relay_standin_factory  # noqa: F401  pylint: disable=unused-import


@pytest.fixture(scope="session")
def scripts():
    """{module name: its parsed .ps1}"""
    return {name: pstree.Script.from_path(ps1_path(name)) for name in NAMES}


@pytest.fixture(scope="session")
def util():
    """The parsed module util the modules share."""
    return pstree.Script.from_path(UTIL_PATH)
