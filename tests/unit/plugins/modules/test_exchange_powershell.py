# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Exchange modules' PowerShell, read with a real PowerShell grammar
(tree-sitter-powershell): no syntax error, the argument spec equals the
documentation, shared helpers are the same text in every module, and no
construct runs text as code. There is no PowerShell runtime here: these are
static proofs, and each checker is shown to catch the fault it looks for."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
MODULES = os.path.join(ROOT, "plugins", "modules")
FIXTURES = os.path.join(HERE, "fixtures", "exchange")
NAMES = ("exchange_send_connector", "exchange_edge_facts", "exchange_transport_retry")


def _load_pstree():
    spec = importlib.util.spec_from_file_location("exchange_pstree", os.path.join(FIXTURES, "pstree.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pstree = _load_pstree()


def ps1_path(name):
    return os.path.join(MODULES, name + ".ps1")


@pytest.fixture(scope="module")
def scripts():
    return {name: pstree.Script.from_path(ps1_path(name)) for name in NAMES}


def documentation(name):
    with open(os.path.join(MODULES, name + ".py"), encoding="utf-8") as handle:
        source = handle.read()
    namespace = {}
    exec(compile(source, name + ".py", "exec"), namespace)  # pylint: disable=exec-used
    return yaml.safe_load(namespace["DOCUMENTATION"])


def test_every_exchange_module_is_covered():
    found = sorted(entry[:-4] for entry in os.listdir(MODULES) if entry.startswith("exchange_") and entry.endswith(".ps1"))
    assert found == sorted(NAMES)
    for name in NAMES:
        assert os.path.isfile(os.path.join(MODULES, name + ".py")), "%s.ps1 needs its documentation stub" % name


# --- grammar ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_parses_without_errors(scripts, name):
    script = scripts[name]
    assert script.root.type == "program"
    assert script.syntax_errors() == []
    # Not vacuous: the tree holds the module's commands and its argument spec.
    assert any(command.name == "Import-ExchangeShell" for command in script.commands())
    assert script.variable_value("spec")["supports_check_mode"] is True


def test_grammar_reports_broken_powershell():
    broken = pstree.Script(b"$x = @{ a = 1\nSet-SendConnector -Identity 'x' -Port (587\n")
    assert broken.syntax_errors()
    assert pstree.Script(b"$x = @{ a = 1 }\n").syntax_errors() == []


@pytest.mark.parametrize("name", NAMES)
def test_module_header(name):
    with open(ps1_path(name), encoding="utf-8") as handle:
        text = handle.read()
    assert text.startswith("#!powershell\n")
    assert "\n#AnsibleRequires -CSharpUtil Ansible.Basic\n" in text
    assert "GNU General Public License v3.0+" in text
    assert "\r" not in text and "\t" not in text
    assert "[Ansible.Basic.AnsibleModule]::Create($args, $spec)" in text


# --- argument spec == DOCUMENTATION ----------------------------------------------------------------------
_SPEC_KEYS = {"type", "required", "default", "choices", "elements", "aliases", "no_log"}


def _normal(entry):
    return {
        "type": entry.get("type", "str"),
        "required": bool(entry.get("required", False)),
        "default": entry.get("default"),
        "choices": entry.get("choices"),
        "elements": entry.get("elements"),
        "aliases": entry.get("aliases") or None,
    }


@pytest.mark.parametrize("name", NAMES)
def test_argument_spec_matches_documentation(scripts, name):
    spec = scripts[name].variable_value("spec")
    doc = documentation(name)
    assert doc["module"] == name
    assert doc["author"] == "smarthost.relay maintainers (!UNKNOWN)"
    options = spec["options"]
    assert sorted(options) == sorted(doc["options"])
    for option, entry in options.items():
        assert set(entry) <= _SPEC_KEYS, "%s: unexpected spec keys %s" % (option, set(entry) - _SPEC_KEYS)
        assert _normal(entry) == _normal(doc["options"][option]), option
        assert bool(entry.get("no_log")) == option.endswith("_password"), "%s: no_log must be set exactly for secrets" % option
        assert "no_log" not in doc["options"][option]
        assert doc["options"][option]["description"]
    check_mode = doc["attributes"]["check_mode"]["support"]
    assert spec["supports_check_mode"] is (check_mode in ("full", "partial"))


def test_argument_spec_comparison_catches_drift(scripts):
    # A spec that disagrees with its documentation in one detail is caught.
    spec = scripts["exchange_send_connector"].variable_value("spec")
    doc = documentation("exchange_send_connector")
    assert _normal(spec["options"]["port"]) == _normal(doc["options"]["port"])
    drifted = dict(spec["options"]["port"], default=25)
    assert _normal(drifted) != _normal(doc["options"]["port"])


def test_spec_relations(scripts):
    spec = scripts["exchange_send_connector"].variable_value("spec")
    assert ["smart_host_auth", "BasicAuthRequireTLS", ["auth_username", "auth_password"]] in spec["required_if"]
    assert ["tls_auth_level", "DomainValidation", ["tls_domain"]] in spec["required_if"]
    for name in NAMES:
        assert scripts[name].variable_value("spec")["required_together"] == [["session_username", "session_password"]]


# --- shared helpers --------------------------------------------------------------------------------------
def test_shared_functions_are_identical(scripts):
    definitions = {}
    for name, script in scripts.items():
        for function, text in script.functions().items():
            definitions.setdefault(function, {})[name] = text
    shared = {function: texts for function, texts in definitions.items() if len(texts) > 1}
    # The session loader and the value conversions exist in more than one module ...
    assert set(shared) >= {"Import-ExchangeShell", "ConvertTo-Text", "ConvertTo-Flag", "ConvertTo-TimeSpanText",
                           "ConvertTo-SettingValue", "ConvertTo-ConnectorState", "Test-SameSetting"}
    assert set(shared["Import-ExchangeShell"]) == set(NAMES)
    # ... and every copy is the same text, so the hub and the Edge compare settings the same way.
    for function, texts in shared.items():
        assert len(set(texts.values())) == 1, "%s differs between %s" % (function, sorted(texts))


# --- no text is ever run as code -------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_no_code_from_text(scripts, name):
    script = scripts[name]
    assert script.code_running_constructs() == []
    # Every command is called by a literal Verb-Noun name; none is taken from a variable.
    for command in script.commands():
        assert command.name, "a command without a literal name at line %d: %s" % (command.line, command.text)


@pytest.mark.parametrize("snippet", [
    "Invoke-Expression $options.name",
    "iex \"Set-SendConnector -Identity $($options.name)\"",
    "& $options.name",
    ". $options.name",
    "$block = [scriptblock]::Create($options.name)",
    "$ExecutionContext.InvokeCommand.ExpandString($options.name)",
    "Invoke-Command -ScriptBlock $block",
    "Start-Process -FilePath cmd.exe -ArgumentList $options.name",
    "Add-Type -TypeDefinition $options.name",
    "$ps = [PowerShell]::Create()",
    "$ExecutionContext.InvokeCommand.NewScriptBlock($options.name)",
])
def test_code_from_text_is_caught(snippet):
    # The checker flags every way of running text as code.
    tampered = pstree.Script(b"$options = $module.Params\nSet-SendConnector -Identity $options.name -Port 587\n" + snippet.encode() + b"\n")
    assert tampered.syntax_errors() == []
    assert tampered.code_running_constructs(), snippet


@pytest.mark.parametrize("name", NAMES)
def test_module_parameters_reach_cmdlets_as_values(scripts, name):
    # $module.Params values are only ever bound to parameters or used in expressions: no command text in the
    # file contains an option's value, because no command is built from text at all (see above), and the
    # parameter names passed to every command are literal (checked against Microsoft's lists elsewhere).
    script = scripts[name]
    for command in script.commands():
        for splat in command.splats:
            keys, unresolved = script.splat_keys(splat)
            assert not unresolved, "%s line %d: @%s gets keys that are not literal: %s" % (
                name, command.line, splat, unresolved)
            assert keys


def test_unresolvable_splat_keys_are_caught():
    script = pstree.Script(b"$p = @{ Identity = 'x' }\n$p[$options.name] = 1\nSet-SendConnector @p\n")
    keys, unresolved = script.splat_keys("p")
    assert keys == {"Identity"} and unresolved


@pytest.mark.parametrize("name", NAMES)
def test_format_operator_applies_to_whole_message(scripts, name):
    # "a {0}" + "b" -f $x formats only "b": every -f in the modules formats a whole (parenthesized) message.
    assert scripts[name].format_precedence_slips() == []


def test_format_precedence_slip_is_caught():
    assert pstree.Script(b'$m = "a {0} " + "b" -f $x\n').format_precedence_slips() == [1]
    assert pstree.Script(b'$m = ("a {0} " + "b") -f $x\n').format_precedence_slips() == []
