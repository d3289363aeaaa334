# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every cmdlet and parameter the Exchange modules and their module util call
exists, per Microsoft's documentation, in every Exchange version the module can
meet: 2010, 2013, 2016, 2019 and Subscription Edition
(fixtures/exchange/cmdlets.yml names the source). Parameters passed by
splatting count with every key their hashtable can hold."""

from __future__ import annotations

import fnmatch
import os

import pytest
import yaml

from exchange_scripts import FIXTURES, NAMES, pstree, util_exports

# Cmdlets a module calls only when the session has them, and the one it falls back to (Exchange 2010).
FALLBACKS = {"Get-TransportService": "Get-TransportServer", "Set-TransportService": "Set-TransportServer"}

with open(os.path.join(FIXTURES, "cmdlets.yml"), encoding="utf-8") as _handle:
    CATALOGUE = yaml.safe_load(_handle)
VERSIONS = CATALOGUE["versions"]
COMMON = set(CATALOGUE["common_parameters"])


def applicable(cmdlet, parameter):
    """The versions Microsoft lists for a parameter of an Exchange cmdlet (empty when unknown)."""
    entry = CATALOGUE["exchange"][cmdlet]
    if parameter in COMMON:
        return set(entry["versions"])
    versions = entry["parameters"].get(parameter)
    if versions is None:
        return set()
    return set(entry["versions"]) if versions == "all" else set(versions)


def calls(script):
    """(cmdlet, parameters, line) for every call, splatted keys included."""
    result = []
    for command in script.commands():
        parameters = set(command.parameters)
        for splat in command.splats:
            keys, unresolved = script.splat_keys(splat)
            assert not unresolved, unresolved
            parameters |= keys
        result.append((command.name, parameters, command.line))
    return result


def test_catalogue_is_consistent():
    assert VERSIONS == ["2010", "2013", "2016", "2019", "SE"]
    for cmdlet, entry in CATALOGUE["exchange"].items():
        assert set(entry["versions"]) <= set(VERSIONS), cmdlet
        assert isinstance(entry["complete"], bool)
        for parameter, versions in entry["parameters"].items():
            assert versions == "all" or set(versions) <= set(entry["versions"]), (cmdlet, parameter)
    # What the tests rely on, as Microsoft documents it.
    assert applicable("Set-SendConnector", "TlsAuthLevel") == set(VERSIONS)
    assert applicable("Set-SendConnector", "TlsCertificateName") == {"2013", "2016", "2019", "SE"}
    assert "2010" not in CATALOGUE["exchange"]["Set-TransportService"]["versions"]
    assert applicable("Set-TransportServer", "TransientFailureRetryInterval") == set(VERSIONS)


@pytest.mark.parametrize("name", NAMES + ("_ExchangeShell",))
def test_every_command_is_known(scripts, util, name):
    # A module may call its own functions and those the util exports; the util its own functions.
    script = util if name == "_ExchangeShell" else scripts[name]
    functions = set(script.functions()) if script is util else set(script.functions()) | set(util_exports(util))
    for command, parameters, line in calls(script):
        if command in functions:
            continue
        if command in CATALOGUE["powershell"]:
            allowed = set(CATALOGUE["powershell"][command]) | COMMON
            assert parameters <= allowed, "%s line %d: %s %s" % (name, line, command, sorted(parameters - allowed))
            continue
        assert command in CATALOGUE["exchange"], "%s line %d: %s is neither an Exchange nor a PowerShell cmdlet " \
            "of the catalogue, nor a function of the module" % (name, line, command)
        for parameter in parameters:
            assert applicable(command, parameter), "%s line %d: %s has no parameter -%s" % (name, line, command, parameter)


@pytest.mark.parametrize("version", ["2010", "2013", "2016", "2019", "SE"])
@pytest.mark.parametrize("name", NAMES)
def test_cmdlets_and_parameters_exist_in_version(scripts, name, version):
    used = {}
    for command, parameters, dummy in calls(scripts[name]):
        if command in CATALOGUE["exchange"]:
            used.setdefault(command, set()).update(parameters)
    assert used, "the module calls no Exchange cmdlet"
    for command, parameters in used.items():
        if command in FALLBACKS and version not in CATALOGUE["exchange"][command]["versions"]:
            # The module picks the fallback at run time (Get-Command), which must cover the same parameters.
            fallback = FALLBACKS[command]
            assert fallback in used, "%s has no fallback call for %s" % (name, command)
            assert version in CATALOGUE["exchange"][fallback]["versions"]
            continue
        assert version in CATALOGUE["exchange"][command]["versions"], "%s: %s is not in Exchange %s" % (
            name, command, version)
        missing = sorted(parameter for parameter in parameters if version not in applicable(command, parameter))
        assert not missing, "%s: %s has no %s in Exchange %s" % (name, command, missing, version)


def test_send_connector_parameters(scripts):
    # The settings of the service document reach New-/Set-SendConnector as parameters.
    used = {}
    for command, parameters, dummy in calls(scripts["exchange_send_connector"]):
        used.setdefault(command, set()).update(parameters)
    for parameter in ("SmartHosts", "DNSRoutingEnabled", "Port", "RequireTLS", "TlsAuthLevel", "TlsDomain",
                      "SmartHostAuthMechanism", "AuthenticationCredential", "Fqdn", "SourceTransportServers",
                      "MaxMessageSize", "ConnectionInactivityTimeOut", "DomainSecureEnabled", "AddressSpaces"):
        assert parameter in used["Set-SendConnector"], parameter
        assert parameter in used["New-SendConnector"], parameter
    assert "Usage" in used["New-SendConnector"]
    assert "Start-EdgeSynchronization" in used


def test_unknown_parameter_is_caught(scripts):
    tampered = pstree.Script(scripts["exchange_send_connector"].source + b"\nSet-SendConnector -Identity 'x' -TlsCertificateName 'y'\n")
    bad = [(command, parameters) for command, parameters, dummy in calls(tampered)
           if command == "Set-SendConnector" and "2010" not in applicable(command, "TlsCertificateName")
           and "TlsCertificateName" in parameters]
    assert bad, "a parameter Exchange 2010 lacks must be noticed"
    misspelt = pstree.Script(b"Get-SendConnecter -Identity 'x'\n")
    assert [command for command, dummy, dummy2 in calls(misspelt) if command not in CATALOGUE["exchange"]] == ["Get-SendConnecter"]


@pytest.mark.parametrize("name", NAMES)
def test_remote_session_imports_every_exchange_cmdlet_used(scripts, name):
    # An implicit remote session only has the cmdlets Import-PSSession was asked for.
    script = scripts[name]
    imported = script.variable_value("commands")
    for command, dummy, line in calls(script):
        if command in CATALOGUE["exchange"]:
            assert any(fnmatch.fnmatchcase(command, pattern) for pattern in imported), "%s line %d: %s is not imported" % (
                name, line, command)
