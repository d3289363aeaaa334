# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Exchange modules' PowerShell and their module util, read with a real
PowerShell grammar (tree-sitter-powershell): no syntax error, the argument spec
(with the session options merged in from the module util) equals the
documentation (with its doc fragments merged in, by ansible-core), the shared helpers exist once (in the module util,
which exports exactly what the modules call, and which ansible-core finds from
each module's #AnsibleRequires line), and no construct runs text as code. There
is no PowerShell runtime here: these are static proofs, and each checker is
shown to catch the fault it looks for."""

from __future__ import annotations

import base64
import os

import pytest
from ansible.executor.powershell.module_manifest import PSModuleDepFinder

from exchange_scripts import (MODULES, NAMES, UTIL_FQCN, UTIL_PATH, documentation, module_spec, option_shape, ps1_path,
                              pstree, util_exports)

UTIL_REQUIRES = "#AnsibleRequires -PowerShell " + UTIL_FQCN


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
    assert any(command.name == "Import-ExchangeRemoteShell" for command in script.commands())
    assert script.variable_value("spec")["supports_check_mode"] is True


def test_util_parses_without_errors(util):
    assert util.root.type == "program"
    assert util.syntax_errors() == []
    assert {"Resolve-ExchangeSnapin", "Import-ExchangeRemoteShell", "ConvertTo-SettingValue"} <= set(util.functions())


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
    assert "[Ansible.Basic.AnsibleModule]::Create($args, $spec, @(Get-ExchangeSessionSpec" in text
    assert "\n" + UTIL_REQUIRES + "\n" in text


def test_util_header():
    with open(UTIL_PATH, encoding="utf-8") as handle:
        text = handle.read()
    assert text.startswith("# Copyright (c) smarthost.relay maintainers\n")
    assert "GNU General Public License v3.0+" in text
    assert "private to the smarthost.relay collection" in text
    assert "\r" not in text and "\t" not in text


@pytest.mark.parametrize("name", NAMES)
def test_ansible_core_finds_the_util(name):
    # ansible-core's own dependency scan, as it builds the payload for the Windows host: the #AnsibleRequires line
    # names the util, and the collection serves it (through ansible-core's collection loader, tests/unit/conftest.py).
    finder = PSModuleDepFinder()
    with open(ps1_path(name), "rb") as handle:
        dependencies = finder.scan_module(handle.read(), fqn="ansible_collections.smarthost.relay.plugins.modules." + name)
    assert UTIL_FQCN + ".psm1" in dependencies
    with open(UTIL_PATH, "rb") as handle:
        assert base64.b64decode(finder.scripts[UTIL_FQCN + ".psm1"].script) == handle.read()


# --- argument spec == DOCUMENTATION ----------------------------------------------------------------------
_SPEC_KEYS = {"type", "required", "default", "choices", "elements", "aliases", "no_log"}


@pytest.mark.parametrize("name", NAMES)
def test_argument_spec_matches_documentation(scripts, util, name):
    spec = module_spec(scripts[name], util)
    doc = documentation(name)
    assert doc["module"] == name
    assert doc["author"] == "smarthost.relay maintainers (!UNKNOWN)"
    options = spec["options"]
    assert sorted(options) == sorted(doc["options"])
    for option, entry in options.items():
        assert set(entry) <= _SPEC_KEYS, "%s: unexpected spec keys %s" % (option, set(entry) - _SPEC_KEYS)
        assert option_shape(entry) == option_shape(doc["options"][option]), option
        assert bool(entry.get("no_log")) == option.endswith("_password"), "%s: no_log must be set exactly for secrets" % option
        assert "no_log" not in doc["options"][option]
        assert doc["options"][option]["description"]
    check_mode = doc["attributes"]["check_mode"]["support"]
    assert spec["supports_check_mode"] is (check_mode in ("full", "partial"))


def test_argument_spec_comparison_catches_drift(scripts):
    # A spec that disagrees with its documentation in one detail is caught.
    spec = scripts["exchange_send_connector"].variable_value("spec")
    doc = documentation("exchange_send_connector")
    assert option_shape(spec["options"]["port"]) == option_shape(doc["options"]["port"])
    drifted = dict(spec["options"]["port"], default=25)
    assert option_shape(drifted) != option_shape(doc["options"]["port"])


def test_spec_relations(scripts, util):
    spec = module_spec(scripts["exchange_send_connector"], util)
    assert ["smart_host_auth", "BasicAuthRequireTLS", ["auth_username", "auth_password"]] in spec["required_if"]
    assert ["tls_auth_level", "DomainValidation", ["tls_domain"]] in spec["required_if"]
    for name in NAMES:
        assert module_spec(scripts[name], util)["required_together"] == [["session_username", "session_password"]]


# --- shared helpers ----------------------------------------------------------------------------------------
def _util_calls(script, util_functions):
    return {command.name for command in script.commands() if command.name in util_functions}


def export_mismatch(scripts, util):
    """(exported but called by no module, called by a module but not exported)"""
    exported = set(util_exports(util))
    called = set()
    for script in scripts.values():
        called |= _util_calls(script, util.functions())
    return sorted(exported - called), sorted(called - exported)


def test_util_exports_exactly_what_the_modules_call(scripts, util):
    exported = util_exports(util)
    assert len(exported) == len(set(exported))
    assert set(exported) <= set(util.functions()), set(exported) - set(util.functions())
    assert export_mismatch(scripts, util) == ([], [])
    # The internal helpers stay internal.
    assert "ConvertTo-AddressSpaceText" in set(util.functions()) - set(exported)


def test_export_check_catches_drift(scripts):
    # An export no module calls, and a util function a module calls but the util does not export, are noticed.
    with open(UTIL_PATH, "rb") as handle:
        source = handle.read()
    entry = b"    'Test-SameSetting'\n"
    assert source.count(entry) == 1
    extra = pstree.Script(source.replace(entry, entry + b"    'ConvertTo-AddressSpaceText'\n"))
    assert export_mismatch(scripts, extra) == (["ConvertTo-AddressSpaceText"], [])
    missing = pstree.Script(source.replace(entry, b""))
    assert export_mismatch(scripts, missing) == ([], ["Test-SameSetting"])


def test_each_helper_exists_once(scripts, util):
    # No module defines a helper of the util again, and every module loads the shell through the util.
    for name, script in scripts.items():
        assert not set(script.functions()) & set(util.functions()), name
        shell = {"Get-ExchangeSessionSpec", "Resolve-ExchangeSnapin", "Import-ExchangeRemoteShell", "Remove-ExchangeRemoteShell",
                 "ConvertTo-Text"}
        assert shell <= _util_calls(script, util.functions()), name


@pytest.fixture(scope="module")
def every_script(scripts, util):
    return dict(scripts, _ExchangeShell=util)


EVERY = NAMES + ("_ExchangeShell",)


@pytest.mark.parametrize("name", EVERY)
def test_no_code_from_text(every_script, name):
    script = every_script[name]
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
    "Import-Module -Name $options.name",
    "Import-Module -ModuleInfo $options -Global",
    "$proxy = $options.name\nImport-Module -ModuleInfo $proxy -Global",
    "$proxy = Import-PSSession -Session $s\nImport-Module -ModuleInfo $proxy -Global -Name $options.name",
    "$proxy = Import-PSSession -Session $s\n$proxy = New-Module -Name $options.name\nImport-Module -ModuleInfo $proxy -Global",
])
def test_code_from_text_is_caught(snippet):
    # The checker flags every way of running text as code.
    tampered = pstree.Script(b"$options = $module.Params\nSet-SendConnector -Identity $options.name -Port 587\n" + snippet.encode() + b"\n")
    assert tampered.syntax_errors() == []
    assert tampered.code_running_constructs(), snippet


@pytest.mark.parametrize("name", EVERY)
def test_module_parameters_reach_cmdlets_as_values(every_script, name):
    # $module.Params values are only ever bound to parameters or used in expressions: no command text in the
    # file contains an option's value, because no command is built from text at all (see above), and the
    # parameter names passed to every command are literal (checked against Microsoft's lists elsewhere).
    script = every_script[name]
    for command in script.commands():
        for splat in command.splats:
            keys, unresolved = script.splat_keys(splat)
            assert not unresolved, "%s line %d: @%s gets keys that are not literal: %s" % (
                name, command.line, splat, unresolved)
            assert keys


def test_remote_proxy_import_is_allowed():
    # The util's one Import-Module: the proxy module Import-PSSession returned, imported globally.
    script = pstree.Script(b"$proxy = Import-PSSession -Session $session -CommandName $CommandName\n"
                           b"$null = Import-Module -ModuleInfo $proxy -Global -DisableNameChecking -ErrorAction Stop\n")
    assert script.syntax_errors() == [] and script.code_running_constructs() == []


def test_unresolvable_splat_keys_are_caught():
    script = pstree.Script(b"$p = @{ Identity = 'x' }\n$p[$options.name] = 1\nSet-SendConnector @p\n")
    keys, unresolved = script.splat_keys("p")
    assert keys == {"Identity"} and unresolved


@pytest.mark.parametrize("name", EVERY)
def test_format_operator_applies_to_whole_message(every_script, name):
    # "a {0}" + "b" -f $x formats only "b": every -f in the modules formats a whole (parenthesized) message.
    assert every_script[name].format_precedence_slips() == []


def test_format_precedence_slip_is_caught():
    assert pstree.Script(b'$m = "a {0} " + "b" -f $x\n').format_precedence_slips() == [1]
    assert pstree.Script(b'$m = ("a {0} " + "b") -f $x\n').format_precedence_slips() == []
