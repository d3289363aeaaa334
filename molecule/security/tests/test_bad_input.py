# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input: the policy plugins' catalogue of bad profiles (tests/unit/catalogue/bad_profiles.yml), each as the
relay_* variables of one inventory host that connects to a live MTA container, through playbooks/site.yml.
Every entry is refused naming its variable and rule, and no MTA changed (configuration checksums, daemon pid).

Two runs, at the same time: the preflight play is any_errors_fatal, so the values that the roles' argument specs
refuse (their check runs first) would stop the play before the rule engine saw the others.
"""

from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import MTAS, ROOT, config_state, run_site  # noqa: I100

CATALOGUE = yaml.safe_load((ROOT / "tests" / "unit" / "catalogue" / "bad_profiles.yml").read_text())["profiles"]
# Catalogue entries that the roles' variables cannot express as written: each is still refused before any host
# is touched, by the rule named here (role defaults: relay_tls required).
ROLE_CANNOT_EXPRESS = {
    "auth-port-25-derived-tls": "relay_port [tls-required-port-587]",  # relay_tls is never unset
}
# Catalogue entries that the roles refuse by a rule of their own, naming (variable, rule, words of the message): a
# mistyped profile key is a mistyped role variable, which the relay role names with the nearest known one. (relay_port
# 0, relay_licenses 0 or less no longer mean "unset": the engine refuses them by the catalogue's own rule.)
ROLE_REFUSES_AS = {
    "unknown-key-typo": ("relay_prot", "variable-unknown", "did you mean relay_port?"),
}
# The catalogue's rule for a value the argument spec refuses, as Ansible's validation words it.
ARGUMENT_SPEC_WORDING = {"type-int": "unable to convert to int", "type-bool": "unable to convert to bool",
                         "tls-mode": "must be one of", "sender-mode": "must be one of"}
# What keeps a bad value out of the hosts while the catalogue profile leaves it unset.
SAFE_BASE = {"relay_host": "relay.smarthost.test", "relay_test_message": False,
             "ansible_connection": "containers.podman.podman", "ansible_become": False,
             "ansible_python_interpreter": "/usr/bin/python3"}


def argument_spec_entry(entry):
    return entry.get("action_rule") == "argument-spec" and entry["id"] not in {**ROLE_CANNOT_EXPRESS, **ROLE_REFUSES_AS}


def inventory(entries):
    """One host per entry, alternately Postfix and Sendmail, each connecting to the live container."""
    groups = {mta: {"hosts": {}} for mta in MTAS}
    for index, entry in enumerate(entries):
        mta = list(MTAS)[index % 2]
        host_vars = dict(SAFE_BASE, ansible_host=MTAS[mta])
        host_vars.update({"relay_" + key: value for key, value in entry["profile"].items()})
        groups[mta]["hosts"]["bad-" + entry["id"]] = host_vars
    return {"all": {"children": groups}}


def host_results(output):
    """{host: [failure messages]} from the json callback's output."""
    failures = {}
    for play in json.loads(output)["plays"]:
        for task in play["tasks"]:
            for name, result in task["hosts"].items():
                if result.get("failed"):
                    failures.setdefault(name, []).append(result.get("msg", ""))
    return failures


@pytest.fixture(scope="module")
def refusals(results):
    argument_spec = [e for e in CATALOGUE if argument_spec_entry(e)]
    engine = [e for e in CATALOGUE if not argument_spec_entry(e)]
    before = {mta: config_state(mta) for mta in MTAS}
    with tempfile.TemporaryDirectory(prefix="srt-security-bad-") as tmp:
        runs = []
        for name, entries in (("argument_spec", argument_spec), ("engine", engine)):
            path = Path(tmp) / ("%s.yml" % name)
            path.write_text(yaml.safe_dump(inventory(entries)))
            runs.append((entries, path))
        with ThreadPoolExecutor(max_workers=2) as pool:
            done = [pool.submit(run_site, path, "--forks", "20", tmpdir=tmp,
                                env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}) for _entries, path in runs]
            outcome = [(entries, future.result()) for (entries, _path), future in zip(runs, done)]
    after = {mta: config_state(mta) for mta in MTAS}
    results["bad_input"] = {"entries": len(CATALOGUE), "runs": len(outcome),
                            "run_seconds": [result.seconds for _entries, result in outcome],
                            "argument_spec_entries": len(argument_spec), "engine_entries": len(engine)}
    return {"outcome": outcome, "before": before, "after": after}


def test_the_whole_catalogue_runs():
    assert len(CATALOGUE) >= 58 and len({e["id"] for e in CATALOGUE}) == len(CATALOGUE)


def test_every_run_fails_in_preflight(refusals):
    for entries, result in refusals["outcome"]:
        assert result.returncode != 0, result.stderr[-2000:]
        plays = [play["play"]["name"] for play in json.loads(result.stdout)["plays"]]
        assert plays == ["Check the relay settings of every mail server"], plays  # no later play started
        assert len(entries) > 1


def test_every_entry_is_refused_naming_its_variable_and_rule(refusals, results):
    checked = 0
    for entries, result in refusals["outcome"]:
        failures = host_results(result.stdout)
        for entry in entries:
            messages = "\n".join(failures.get("bad-" + entry["id"], []))
            variable = "relay_" + entry["variable"]
            if entry["id"] in ROLE_CANNOT_EXPRESS:
                assert "- %s: " % ROLE_CANNOT_EXPRESS[entry["id"]] in messages, (entry["id"], messages)
                continue
            if entry["id"] in ROLE_REFUSES_AS:
                role_variable, rule, words = ROLE_REFUSES_AS[entry["id"]]
                assert "- %s [%s]: " % (role_variable, rule) in messages and words in messages, (entry["id"], messages)
            elif argument_spec_entry(entry):
                # The role's meta/argument_specs.yml refuses it first; Ansible's validation names the variable.
                assert messages.startswith("Validation of arguments failed:"), (entry["id"], messages)
                assert variable in messages and ARGUMENT_SPEC_WORDING[entry["rule"]] in messages, (entry["id"], messages)
            else:
                assert "- %s [%s]: " % (variable, entry["rule"]) in messages, (entry["id"], messages)
                if entry.get("message"):
                    # The findings name the role's variables where the catalogue names the profile's keys.
                    assert entry["message"] in " ".join(messages.replace("relay_", "").split()), (entry["id"], messages)
            checked += 1
    assert checked == len(CATALOGUE) - len(ROLE_CANNOT_EXPRESS)
    results["bad_input"]["refused_naming_variable_and_rule"] = checked


def test_no_password_of_the_catalogue_is_shown(refusals):
    passwords = {e["profile"]["auth_password"] for e in CATALOGUE if e["profile"].get("auth_password")}
    for _entries, result in refusals["outcome"]:
        for password in passwords:
            assert password not in result.stdout + result.stderr


@pytest.mark.parametrize("mta", MTAS)
def test_no_host_changed(refusals, mta):
    assert refusals["before"][mta] == refusals["after"][mta]
