# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile values stay data on their way to PowerShell.

The role's task is rendered with hostile values as ansible-playbook renders it,
then ansible-core builds the very payload it would send over WinRM
(module_common.modify_module, the PowerShell exec wrapper's manifest). The
values arrive as JSON strings in the module's arguments (complex_args), equal
to what the user wrote; the module's script travels unchanged, with none of
them in it. The script side (no code built from text; every value bound to a
parameter) is proven in tests/unit/plugins/modules/test_exchange_powershell.py.
"""

from __future__ import annotations

import base64
import json
import os

import pytest

from conftest import MODULES, validate_module_args

from ansible.executor.module_common import modify_module
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

SEND = "smarthost.relay.exchange_send_connector"

HOSTILE = [
    "Out'bound",
    'Out"bound',
    "x'; Remove-SendConnector -Identity * -Confirm:$false; '",
    'x"; Remove-SendConnector -Identity *; "',
    "$(Remove-Item -Recurse -Force C:\\)",
    "@(Stop-Computer -Force)",
    "`$env:COMPUTERNAME` `n `\" `'",
    "line1\nSet-SendConnector -Identity x -SmartHosts evil.example\r\nline3",
    "a; b | c & d && e || f",
    "\u2018smart quotes\u2019 \u201cdouble\u201d",
    "'@\n$(whoami)\n@'",
    "<# comment #> # rest",
    "%PATH% ${env:PATH} $null $true",
]


FIELDS = {
    # option of the module: role variable that feeds it
    "name": "exchange_connector_name",
    "auth_password": "relay_auth_password",
    "domain_controller": "exchange_domain_controller",
    "session_uri": "exchange_session_uri",
    "session_username": "exchange_session_username",
    "session_password": "exchange_session_password",
    "snapin": "exchange_snapin",
}
# Two renderings place every hostile value in some option.
CASES = [dict(zip(FIELDS, HOSTILE[start:] + HOSTILE[:start])) for start in (0, len(FIELDS))]


def host_vars(case):
    variables = {
        "relay_domains": ["example.com"],
        "relay_helo_name": "mail.example.com",
        "relay_auth": True,
        "relay_auth_username": "relay@example.com",
        "exchange_source_servers": ["EX01"],
    }
    for option, value in case.items():
        variables[FIELDS[option]] = value
    return variables


def payload(args):
    """The bytes ansible-core sends to the Windows host for this module and these arguments, split into the
    bootstrap part and the exec wrapper's manifest."""
    built = modify_module(module_name=SEND, module_path=os.path.join(MODULES, "exchange_send_connector.ps1"),
                          module_args=dict(args), templar=Templar(loader=DataLoader()), task_vars={})
    data = built.b_module_data
    bootstrap, manifest = data.split(b"\n\0\0\0\0\n", 1)
    return json.loads(bootstrap), json.loads(manifest)


def module_action(manifest):
    actions = [action for action in manifest["actions"] if action["name"] == "module_wrapper.ps1"]
    assert len(actions) == 1
    return actions[0]


def test_cases_cover_every_hostile_value():
    assert {value for case in CASES for value in case.values()} == set(HOSTILE)


@pytest.mark.parametrize("case", CASES, ids=["first", "second"])
def test_hostile_values_arrive_as_json_strings(role, case):
    args = role.render("connector.yml", SEND, host_vars(case))
    # Rendering passed every value through unchanged: nothing was templated, quoted or escaped (the role
    # only trims the connector name).
    for option, value in case.items():
        assert args[option] == (value.strip() if option == "name" else value), option
    assert not validate_module_args("exchange_send_connector", args).error_messages

    dummy, manifest = payload(args)
    action = module_action(manifest)
    variables = {variable["Name"]: variable["Value"] for variable in action["params"]["Variables"]}
    complex_args = variables["complex_args"]
    # The module receives the values as JSON strings, equal to the user's, under their option names.
    for option in case:
        assert isinstance(complex_args[option], str)
        assert complex_args[option] == args[option], option
    assert complex_args["smart_hosts"] == ["smtp-relay.gmail.com"]
    assert complex_args["port"] == 587 and complex_args["require_tls"] is True

    # The script itself is the module file, byte for byte: no value was put into its text, nor into any
    # other script the wrapper runs; the values travel only in the JSON manifest.
    script_name = action["params"]["Script"]
    script = base64.b64decode(manifest["scripts"][script_name]["script"])
    with open(os.path.join(MODULES, "exchange_send_connector.ps1"), "rb") as handle:
        assert script == handle.read()
    for value in case.values():
        for name, info in manifest["scripts"].items():
            assert value.encode("utf-8") not in base64.b64decode(info["script"]), (name, value)


def test_payload_reads_values_only_from_complex_args():
    # The module wrapper hands the arguments to the module as the variable $complex_args, which
    # Ansible.Basic reads as data (ConvertFrom-Json of the manifest), never as script.
    dummy, manifest = payload({"name": "Outbound", "smart_hosts": ["smtp-relay.gmail.com"], "source_servers": ["EX01"]})
    action = module_action(manifest)
    assert [variable["Name"] for variable in action["params"]["Variables"]] == ["complex_args"]
    assert action["params"]["ForModule"] is True
    assert "Ansible.Basic" in " ".join(action["params"]["CSharpModules"])
