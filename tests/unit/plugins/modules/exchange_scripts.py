# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the Exchange modules' PowerShell, their documentation and their module util are, the PowerShell
grammar reader (fixtures/exchange/pstree.py) the tests here use, and the argument spec each module ends up
with once Ansible.Basic has merged the session options (Get-ExchangeSessionSpec) into it."""

from __future__ import annotations

import copy
import importlib.util
import os
import sys

import yaml

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


def own_documentation(name):
    """A module's DOCUMENTATION as written in its .py stub, without its doc fragments."""
    with open(os.path.join(MODULES, name + ".py"), encoding="utf-8") as handle:
        source = handle.read()
    namespace = {}
    exec(compile(source, name + ".py", "exec"), namespace)  # pylint: disable=exec-used
    return yaml.safe_load(namespace["DOCUMENTATION"])


def documentation(name):
    """A module's documentation as ansible-doc shows it: ansible-core merges its doc fragments (this collection's
    through the collection loader tests/unit/conftest.py installs)."""
    from ansible.plugins.loader import fragment_loader  # pylint: disable=import-outside-toplevel
    from ansible.utils.plugin_docs import get_docstring  # pylint: disable=import-outside-toplevel

    return get_docstring(os.path.join(MODULES, name + ".py"), fragment_loader, collection_name="smarthost.relay",
                         is_module=True, plugin_type="module")[0]


def option_shape(entry):
    """What an argument spec entry and an option's documentation must agree on."""
    return {
        "type": entry.get("type", "str"),
        "required": bool(entry.get("required", False)),
        "default": entry.get("default"),
        "choices": entry.get("choices"),
        "elements": entry.get("elements"),
        "aliases": entry.get("aliases") or None,
    }


def util_exports(util_script):
    """The functions the module util exports: Export-ModuleMember -Function $exportedFunctions, a literal list."""
    exports = [command for command in util_script.commands() if command.name == "Export-ModuleMember"]
    assert len(exports) == 1 and exports[0].parameters == ["Function"], [command.text for command in exports]
    assert exports[0].arguments["Function"] == "$exportedFunctions"
    return util_script.variable_value("exportedFunctions")


# --- the session options: one argument spec fragment (Get-ExchangeSessionSpec), one doc fragment ------------
SESSION_SPEC_FUNCTION = "Get-ExchangeSessionSpec"
SESSION_DOC_FRAGMENT = "smarthost.relay.exchange_session"


def session_spec(util_script, arguments=None):
    """What Get-ExchangeSessionSpec returns when called with arguments ({parameter: value}), read statically:
    its literal $sessionSpec with its parameters bound (to their defaults unless given)."""
    bindings = util_script.parameter_defaults(SESSION_SPEC_FUNCTION)
    unknown = set(arguments or {}) - set(bindings)
    assert not unknown, "%s has no parameter %s" % (SESSION_SPEC_FUNCTION, sorted(unknown))
    bindings.update(arguments or {})
    return util_script.variable_value("sessionSpec", bindings)


def session_fragment_arguments(script):
    """The arguments ({parameter: literal value}) of the Get-ExchangeSessionSpec call a module passes as its one
    fragment: [Ansible.Basic.AnsibleModule]::Create($args, $spec, @(Get-ExchangeSessionSpec ...)). None when the
    module's one Create call is not of that form."""
    calls = script.static_calls("Ansible.Basic.AnsibleModule", "Create")
    if len(calls) != 1 or len(calls[0]) != 3:
        return None
    spec_args, fragments = calls[0][:2], calls[0][2]
    if [script.text(node) for node in spec_args] != ["$args", "$spec"] or not script.text(fragments).startswith("@("):
        return None
    inside = [script.command(node) for node in script.of_type_under(fragments, "command")]
    if [command.name for command in inside] != [SESSION_SPEC_FUNCTION] or inside[0].splats:
        return None
    command = inside[0]
    if set(command.parameters) != set(command.argument_nodes):  # a switch, or a value that is no argument
        return None
    try:
        return {name: script.value(node) for name, node in command.argument_nodes.items()}
    except pstree.PowerShellValueError:
        return None


def merge_spec_fragment(spec, fragment):
    """Ansible.Basic's MergeFragmentSpec: what the spec lacks comes from the fragment, dictionaries merge key by
    key, lists are extended; the spec's own values win."""
    merged = copy.deepcopy(spec)
    for key, value in fragment.items():
        if key not in merged:
            merged[key] = copy.deepcopy(value)
        elif isinstance(value, dict):
            merged[key] = merge_spec_fragment(merged[key], value)
        elif isinstance(value, list):
            merged[key] = merged[key] + copy.deepcopy(value)
    return merged


def module_spec(script, util_script):
    """The argument spec Ansible.Basic checks a module's arguments against: its $spec with the session fragment."""
    arguments = session_fragment_arguments(script)
    assert arguments is not None, "the module does not pass @(%s) to Create" % SESSION_SPEC_FUNCTION
    return merge_spec_fragment(script.variable_value("spec"), session_spec(util_script, arguments))


def module_spec_by_name(name):
    """module_spec of one module, parsing its .ps1 and the module util (for tests outside this directory)."""
    return module_spec(pstree.Script.from_path(ps1_path(name)), pstree.Script.from_path(UTIL_PATH))
