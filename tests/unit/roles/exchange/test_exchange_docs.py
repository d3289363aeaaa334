# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/exchange.md: its PowerShell parses and uses only cmdlets and parameters
Microsoft documents; it names every variable of the role, maps the service
document's steps, and says what is verified only statically."""

from __future__ import annotations

import os
import re
import sys

import yaml

from conftest import ROLE, ROOT, powershell_spec

DOC = os.path.join(ROOT, "docs", "exchange.md")
CATALOGUE = os.path.join(ROOT, "tests", "unit", "plugins", "modules", "fixtures", "exchange", "cmdlets.yml")


def text():
    with open(DOC, encoding="utf-8") as handle:
        return handle.read()


def blocks(language):
    return re.findall(r"```%s\n(.*?)```" % language, text(), re.S)


def test_powershell_of_the_checklist():
    powershell_spec("exchange_send_connector")  # loads the grammar helper
    pstree = sys.modules["exchange_pstree"]
    with open(CATALOGUE, encoding="utf-8") as handle:
        catalogue = yaml.safe_load(handle)
    used = set()
    snippets = blocks("powershell")
    assert len(snippets) >= 4
    for snippet in snippets:
        script = pstree.Script(snippet.encode("utf-8"))
        assert script.syntax_errors() == [], snippet
        assert script.code_running_constructs() == []
        for command in script.commands():
            used.add(command.name)
            if command.name in catalogue["powershell"]:
                assert set(command.parameters) <= set(catalogue["powershell"][command.name]), command.text
                continue
            entry = catalogue["exchange"][command.name]
            for parameter in command.parameters:
                assert parameter in entry["parameters"], command.text
            # The checklist works on every version it is meant for.
            assert {"2010", "2013", "2016", "2019"} <= set(entry["versions"]), command.name
    for cmdlet in ("Get-SendConnector", "Get-EdgeSubscription", "Test-EdgeSynchronization", "Get-ReceiveConnector",
                   "Get-MessageTrackingLog", "Get-Queue", "Start-EdgeSynchronization"):
        assert cmdlet in used, cmdlet


def test_yaml_examples_parse_and_use_known_variables():
    with open(os.path.join(ROLE, "defaults", "main.yml"), encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)
    with open(os.path.join(ROOT, "roles", "relay", "defaults", "main.yml"), encoding="utf-8") as handle:
        relay = yaml.safe_load(handle)
    examples = [yaml.safe_load(block) for block in blocks("yaml")]
    plays = [play for example in examples if isinstance(example, list) for play in example]
    assert len(plays) == 2
    for play in plays:
        role = play["roles"][0]
        assert role["role"] == "smarthost.relay.exchange"
        for name in role["vars"]:
            assert name in defaults or name in relay, name


def test_every_variable_and_step_is_documented():
    doc = text()
    with open(os.path.join(ROLE, "defaults", "main.yml"), encoding="utf-8") as handle:
        for name in yaml.safe_load(handle):
            assert "`%s`" % name in doc or name in doc, name
    for phrase in ("Without an Edge server", "With an Edge server", "Start-EdgeSynchronization", "DomainSecureEnabled",
                   "statically only", "not run here", "Operator's verification checklist", "ansible_winrm_server_cert_validation: validate",
                   "Kerberos", "NTLM", "CredSSP", "exchange_session: remote", "exchange_session: snapin"):
        assert phrase in doc, phrase
    # Each step of both Exchange sections of the service document appears in the mapping tables.
    without_edge, with_edge = doc.split("With an Edge server:")[0], doc.split("With an Edge server:")[1]
    for step in ("1-3", "4", "5", "6-8", "10-12", "13", "14-15", "18"):
        assert "\n| %s |" % step in without_edge, step
    for step in ("3", "4", "5", "6-7", "8", "9", "10", "11", "12"):
        assert "\n| %s |" % step in with_edge, step
