# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay_guard role's check (tasks/check.yml, the ``check`` entry point): its YAML keeps no rule, the role
runs it first, the Sendmail and qmail roles run it on the values they pass the guard, and a playbook gets each
refusal naming the variable and the rule (guard.py) - on the controller, with no host contacted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
ROLES = ROOT / "roles"
GUARD_INCLUDES = {"sendmail": "Run the relay guard that Sendmail sends through",
                  "qmail": "Run the relay guard that qmail sends through"}
CHECK_INCLUDE = "Check the relay guard's settings as this role passes them"


def tasks_of(role, name):
    return yaml.safe_load((ROLES / role / "tasks" / name).read_text(encoding="utf-8")) or []


def walk(tasks):
    for task in tasks:
        yield task
        for key in ("block", "rescue", "always"):
            yield from walk(task.get(key, []))


def named(role, tasks_file, name):
    found = [task for task in walk(tasks_of(role, tasks_file)) if task.get("name") == name]
    assert len(found) == 1, (role, tasks_file, name)
    return found[0]


def test_the_role_yaml_keeps_no_rule():
    asserts = [(path.name, task) for path in sorted((ROLES / "relay_guard" / "tasks").glob("*.yml"))
               for task in walk(tasks_of("relay_guard", path.name))
               if "ansible.builtin.assert" in task or "ansible.builtin.fail" in task]
    # only the ordering check: the relay role has published relay_settings
    assert [(name, task["ansible.builtin.assert"]["that"]) for name, task in asserts] == [
        ("check.yml", ["relay_settings is defined"])]
    assert "__relay_guard_domain_re" not in (ROLES / "relay_guard" / "vars" / "main.yml").read_text(encoding="utf-8")


def test_main_runs_the_check_first_and_the_check_is_an_entry_point():
    assert tasks_of("relay_guard", "main.yml")[0]["ansible.builtin.import_tasks"] == "check.yml"
    check = tasks_of("relay_guard", "check.yml")[1]["smarthost.relay.relay_settings_check"]
    assert check["mta"] == "relay_guard"
    specs = yaml.safe_load((ROLES / "relay_guard" / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    assert specs["argument_specs"]["check"]["options"] == specs["argument_specs"]["main"]["options"]


@pytest.mark.parametrize("role", sorted(GUARD_INCLUDES))
def test_the_mta_roles_check_the_values_they_pass_the_guard(role):
    configure = named(role, "configure.yml", GUARD_INCLUDES[role])
    check = named(role, "check.yml", CHECK_INCLUDE)
    assert check["ansible.builtin.include_role"] == {"name": "smarthost.relay.relay_guard", "tasks_from": "check"}
    assert check["vars"] == configure["vars"]
    assert check["when"] == configure["when"]


# --- through ansible-playbook, on the controller -----------------------------------------------------------------

BASE = {"relay_domains": ["example.com"], "relay_allowlist": ["8.8.8.0/29"], "relay_helo_name": "mail.example.com",
        "relay_local_sender": "alerts@example.com", "relay_test_message": False}
RELAY_SETTINGS = {"host": "smtp-relay.gmail.com", "port": 587, "tls": "required"}
# host -> (entry point, variables, the failure's "variable [rule]" or text, or None when it passes)
HOSTS = {
    "guard-good": ("relay_guard", {"relay_settings": RELAY_SETTINGS}, None),
    "guard-domain-rewrite": ("relay_guard", {"relay_settings": RELAY_SETTINGS, "relay_guard_local_sender_rewrite": "domain",
                                             "relay_guard_local_sender_domains": ["mx1.example.net", "localhost"],
                                             "relay_guard_local_sender_domain": "example.com"}, None),
    "guard-pool-wait": ("relay_guard", {"relay_settings": RELAY_SETTINGS, "relay_guard_pool_wait": 0},
                        "relay_guard_pool_wait [guard-pool-range]"),
    "guard-port-high": ("relay_guard", {"relay_settings": RELAY_SETTINGS, "relay_guard_port": 2525},
                        "relay_guard_port [guard-port]"),
    "guard-no-domains": ("relay_guard", {"relay_settings": RELAY_SETTINGS, "relay_guard_local_sender_rewrite": "address",
                                         "relay_guard_local_sender_address": "alerts@example.com"},
                         "relay_guard_local_sender_domains [guard-local-sender-domains]"),
    "guard-public-address": ("relay_guard", {"relay_settings": RELAY_SETTINGS, "relay_guard_address": "0.0.0.0"},
                             "relay_guard_address"),  # the argument spec of the check entry point refuses it first
    "guard-no-relay-settings": ("relay_guard", {}, "relay_settings: run smarthost.relay.relay"),
    "sendmail-good": ("sendmail", BASE, None),
    "sendmail-idle": ("sendmail", dict(BASE, relay_guard_pool_max_idle=9),
                      "relay_guard_pool_max_idle [guard-pool-max-idle]"),
    "sendmail-guard-off": ("sendmail", dict(BASE, relay_guard_pool_max_idle=9, sendmail_limit_replies_retry=False,
                                            sendmail_relay_refusals_retry=False), None),
    # the role's values win over the inventory's, in its check as in its run (include_role vars)
    "sendmail-port-passed": ("sendmail", dict(BASE, relay_guard_port=2525), None),
    "qmail-good": ("qmail", BASE, None),
    "qmail-rewrite-passed": ("qmail", dict(BASE, relay_guard_local_sender_rewrite="bogus", relay_guard_port=2525), None),
    "qmail-connections": ("qmail", dict(BASE, relay_guard_pool_max_connections=0),
                          "relay_guard_pool_max_connections [guard-pool-range]"),
}


def ansible_playbook():
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return candidate if os.path.exists(candidate) else shutil.which("ansible-playbook")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """host -> [(task name, result)], from one ansible-playbook run (json callback) over every host of HOSTS."""
    if ansible_playbook() is None:
        pytest.skip("ansible-playbook not installed")
    tmp = tmp_path_factory.mktemp("guard-check")
    collections = tmp / "collections" / "ansible_collections" / "smarthost"
    collections.mkdir(parents=True)
    os.symlink(str(ROOT), str(collections / "relay"))
    hosts = {host: dict(variables, __entry=entry, ansible_connection="local",
                        ansible_python_interpreter=sys.executable)
             for host, (entry, variables, dummy) in HOSTS.items()}
    playbook = [{"name": "Each role's check, on the controller", "hosts": "all", "gather_facts": False,
                 "tasks": [{"name": "Run the check entry point",
                            "ansible.builtin.include_role": {"name": "smarthost.relay.{{ __entry }}",
                                                             "tasks_from": "check"}}]}]
    (tmp / "playbook.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    (tmp / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}, sort_keys=False))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_FORKS="20",
               ANSIBLE_LOCAL_TEMP=str(tmp / "tmp"), ANSIBLE_HOME=str(tmp / "home"))
    run = subprocess.run([ansible_playbook(), "-i", str(tmp / "inventory.yml"), str(tmp / "playbook.yml")],
                         env=env, capture_output=True, text=True, timeout=600, check=False, cwd=str(tmp))
    report = json.loads(run.stdout)
    per_host = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                per_host.setdefault(host, []).append((task["task"]["name"], result))
    return per_host


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_each_refusal_names_the_variable_and_rule(results, host):
    dummy, dummy2, expected = HOSTS[host]
    failed = [(name, result) for name, result in results[host] if result.get("failed")]
    if expected is None:
        assert not failed, failed
        ran = "smarthost.relay.relay_guard : Check the relay guard's settings against the guard's rules" in [
            name for name, dummy3 in results[host]]
        assert ran is (host != "sendmail-guard-off")
    else:
        assert len(failed) == 1 and expected in failed[0][1].get("msg", ""), failed
    assert not [result for dummy3, result in results[host] if result.get("unreachable")]
