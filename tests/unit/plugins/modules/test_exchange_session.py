# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The session options (how a module loads the Exchange Management Shell) are written once: their argument
spec is Get-ExchangeSessionSpec in the module util, which every module passes to
[Ansible.Basic.AnsibleModule]::Create as a fragment, and their documentation is the doc fragment
smarthost.relay.exchange_session, which every module's stub extends. No module repeats one, no module reads
one (the util's session code does), and the fragment documents exactly the util's spec. Read statically (no
PowerShell runtime here); each checker is shown to catch the fault it looks for."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.smarthost.relay.plugins.doc_fragments.exchange_session import ModuleDocFragment
from exchange_scripts import (NAMES, SESSION_DOC_FRAGMENT, SESSION_SPEC_FUNCTION, option_shape, own_documentation,
                              pstree, session_fragment_arguments, session_spec)

SESSION_OPTIONS = ("session", "session_uri", "session_authentication", "session_username", "session_password", "snapin")
# What a module's own documentation may still say about a session option: why its default differs.
OVERRIDABLE = {"description", "default"}
# The util's functions that open the session, the only code that reads the session options.
SESSION_READERS = {"Resolve-ExchangeSnapin", "Import-ExchangeRemoteShell"}


def fragment_options():
    return yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]


def session_option_reads(script):
    """(line, option) of each $x.<session option> or $x['<session option>'] in the script."""
    found = []
    for node in script.of_type("member_access", "element_access"):
        named = [child for child in node.children if child.is_named]
        if node.type == "member_access":
            key = script.text(named[-1])
        else:
            try:
                key = script.value(named[-1])
            except pstree.PowerShellValueError:
                continue
        if key in SESSION_OPTIONS:
            found.append((node.start_point[0] + 1, key))
    return found


def module_faults(script, doc):
    """How a module (its parsed .ps1 and its stub's own DOCUMENTATION) fails to take the session options from
    the shared fragments."""
    faults = []
    if session_fragment_arguments(script) is None:
        faults.append("does not call [Ansible.Basic.AnsibleModule]::Create($args, $spec, @(%s))" % SESSION_SPEC_FUNCTION)
    spec = script.variable_value("spec")
    faults += ["spec repeats %s" % option for option in SESSION_OPTIONS if option in spec["options"]]
    if any(set(group) & set(SESSION_OPTIONS) for group in spec.get("required_together", [])):
        faults.append("spec repeats required_together of the session options")
    faults += ["reads %s at line %d" % (option, line) for line, option in session_option_reads(script)]
    if SESSION_DOC_FRAGMENT not in (doc.get("extends_documentation_fragment") or []):
        faults.append("documentation does not extend %s" % SESSION_DOC_FRAGMENT)
    for option in SESSION_OPTIONS:
        own = doc["options"].get(option)
        if own is not None and not set(own) <= OVERRIDABLE:
            faults.append("documentation repeats %s (%s)" % (option, ", ".join(sorted(set(own) - OVERRIDABLE))))
    return faults


def fragment_mismatches(options, spec):
    """How the doc fragment's options differ from the util's argument spec fragment."""
    mismatches = []
    if sorted(options) != sorted(spec["options"]):
        mismatches.append("names: documented %s, spec %s" % (sorted(options), sorted(spec["options"])))
    for name in sorted(set(options) & set(spec["options"])):
        entry, documented = spec["options"][name], options[name]
        if option_shape(entry) != option_shape(documented):
            mismatches.append("%s: documented %s, spec %s" % (name, option_shape(documented), option_shape(entry)))
        if bool(entry.get("no_log")) != name.endswith("_password"):
            mismatches.append("%s: no_log must be set exactly for secrets" % name)
        if "no_log" in documented or not documented.get("description"):
            mismatches.append("%s: documentation needs a description and no no_log" % name)
    return mismatches


# --- every module takes the options from the fragments, and repeats none -----------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_module_takes_the_session_fragments(scripts, name):
    assert module_faults(scripts[name], own_documentation(name)) == []


def test_module_session_default(scripts):
    # Only the Edge module, for servers without a remote PowerShell endpoint, changes the default session.
    assert {name: session_fragment_arguments(scripts[name]) for name in NAMES} == {
        "exchange_send_connector": {},
        "exchange_transport_retry": {},
        "exchange_edge_facts": {"DefaultSession": "snapin"},
    }
    assert own_documentation("exchange_edge_facts")["options"]["session"]["default"] == "snapin"


def _tampered(scripts, old, new):
    source = scripts["exchange_send_connector"].source
    assert source.count(old) == 1, old
    return pstree.Script(source.replace(old, new))


@pytest.mark.parametrize("old, new, fault", [
    (b"        domain_controller = @{ type = 'str' }\n",
     b"        domain_controller = @{ type = 'str' }\n        session_uri = @{ type = 'str' }\n", "spec repeats session_uri"),
    (b"    supports_check_mode = $true\n",
     b"    required_together = @(, @('session_username', 'session_password'))\n    supports_check_mode = $true\n",
     "spec repeats required_together of the session options"),
    (b", @(Get-ExchangeSessionSpec))", b")", "does not call"),
    (b"@(Get-ExchangeSessionSpec)", b"@(Get-ExchangeSessionSpec -DefaultSession $options.mode)", "does not call"),
    (b"@(Get-ExchangeSessionSpec)", b"@(Get-OtherSpec)", "does not call"),
    (b"$edge = $options.mode -eq 'edge'\n", b"$edge = $options.mode -eq 'edge'\n$uri = $options.session_uri\n",
     "reads session_uri at line"),
    (b"$edge = $options.mode -eq 'edge'\n", b"$edge = $options.mode -eq 'edge'\n$uri = $module.Params['snapin']\n",
     "reads snapin at line"),
])
def test_module_check_catches_a_repeated_or_missing_fragment(scripts, old, new, fault):
    doc = own_documentation("exchange_send_connector")
    faults = module_faults(_tampered(scripts, old, new), doc)
    assert [found for found in faults if found.startswith(fault)], faults


def test_module_check_catches_repeated_documentation(scripts):
    script = scripts["exchange_send_connector"]
    doc = own_documentation("exchange_send_connector")
    repeated = dict(doc, options=dict(doc["options"], session_uri={"description": ["x"], "type": "str"}))
    assert module_faults(script, repeated) == ["documentation repeats session_uri (type)"]
    unextended = dict(doc, extends_documentation_fragment=["smarthost.relay._attributes"])
    assert module_faults(script, unextended) == ["documentation does not extend %s" % SESSION_DOC_FRAGMENT]


# --- the doc fragment documents exactly the util's spec ------------------------------------------------------
def test_doc_fragment_matches_the_util_spec(util):
    spec = session_spec(util)
    assert fragment_mismatches(fragment_options(), spec) == []
    assert sorted(spec["options"]) == sorted(SESSION_OPTIONS)
    assert spec["required_together"] == [["session_username", "session_password"]]
    assert "O(session_password)" in " ".join(fragment_options()["session_username"]["description"])
    # The Edge variant differs in the default session only.
    edge = session_spec(util, {"DefaultSession": "snapin"})
    assert edge["options"].pop("session") == dict(spec["options"].pop("session"), default="snapin")
    assert edge == spec


@pytest.mark.parametrize("old, new, mismatch", [
    (b"default = 'Kerberos'", b"default = 'Negotiate'", "session_authentication: documented"),
    (b"session_password = @{ type = 'str'; no_log = $true }", b"session_password = @{ type = 'str' }",
     "session_password: no_log"),
    (b"session_uri = @{ type = 'str' }", b"session_uri = @{ type = 'str'; no_log = $true }", "session_uri: no_log"),
    (b"snapin = @{ type = 'str' }", b"snapin = @{ type = 'str' }\n            session_port = @{ type = 'int' }", "names"),
    (b"[string]$DefaultSession = 'remote'", b"[string]$DefaultSession = 'snapin'", "session: documented"),
    (b"choices = @('remote', 'snapin')", b"choices = @('remote', 'snapin', 'local')", "session: documented"),
])
def test_fragment_check_catches_drift(util, old, new, mismatch):
    assert util.source.count(old) == 1, old
    drifted = session_spec(pstree.Script(util.source.replace(old, new)))
    found = fragment_mismatches(fragment_options(), drifted)
    assert [line for line in found if line.startswith(mismatch)], found


def test_only_the_util_session_code_reads_the_options(util):
    functions = {name: pstree.Script(text.encode("utf-8")) for name, text in util.functions().items()}
    readers = {name for name, script in functions.items() if session_option_reads(script)}
    assert readers == SESSION_READERS
