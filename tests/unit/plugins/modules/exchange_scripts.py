# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the Exchange modules' PowerShell and their module util are, and the
PowerShell grammar reader (fixtures/exchange/pstree.py) the tests here use."""

from __future__ import annotations

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
MODULES = os.path.join(ROOT, "plugins", "modules")
FIXTURES = os.path.join(HERE, "fixtures", "exchange")
NAMES = ("exchange_send_connector", "exchange_edge_facts", "exchange_transport_retry")
UTIL_FQCN = "ansible_collections.smarthost.relay.plugins.module_utils._ExchangeShell"
UTIL_PATH = os.path.join(ROOT, "plugins", "module_utils", "_ExchangeShell.psm1")


def _load_pstree():
    spec = importlib.util.spec_from_file_location("exchange_pstree", os.path.join(FIXTURES, "pstree.py"))
    if spec.name not in sys.modules:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules[spec.name]


pstree = _load_pstree()


def ps1_path(name):
    return os.path.join(MODULES, name + ".ps1")


def util_exports(util_script):
    """The functions the module util exports: Export-ModuleMember -Function $exportedFunctions, a literal list."""
    exports = [command for command in util_script.commands() if command.name == "Export-ModuleMember"]
    assert len(exports) == 1 and exports[0].parameters == ["Function"], [command.text for command in exports]
    assert exports[0].arguments["Function"] == "$exportedFunctions"
    return util_script.variable_value("exportedFunctions")
