# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the qmail role tests: run ansible-playbook on the real role files, with this checkout as the
collection smarthost.relay. (A module of its own: several test directories have a conftest.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLE = os.path.join(ROOT, "roles", "qmail")


def ansible_playbook():
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return candidate if os.path.exists(candidate) else shutil.which("ansible-playbook")


def role_defaults():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        return yaml.safe_load(handle)


# A module beside the playbook (ansible-playbook finds it in library/): returns the facts it is given, so that a
# plan sees a host's names (ansible_facts['fqdn'], ['hostname']) without gathering the test machine's own.
FACTS_MODULE = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"facts": {"type": "dict", "required": True}}, supports_check_mode=True)
    module.exit_json(changed=False, ansible_facts=module.params["facts"])


if __name__ == "__main__":
    main()
"""


def role_vars_of(role, tasks_file, task_name):
    """The ``vars`` a task of ``roles/<role>/tasks/<tasks_file>`` passes (an include_role's, say), as written."""
    with open(os.path.join(ROOT, "roles", role, "tasks", tasks_file)) as handle:
        tasks = yaml.safe_load(handle)
    found = []

    def walk(items):
        for task in items:
            if task.get("name") == task_name:
                found.append(task.get("vars", {}))
            for key in ("block", "rescue", "always"):
                walk(task.get(key, []))
    walk(tasks)
    assert len(found) == 1, "%s: %d tasks named %r" % (tasks_file, len(found), task_name)
    return found[0]


def make_runner(tmp_path):
    """``run(playbook: list, inventory: dict, check=False) -> CompletedProcess`` (stdout and stderr together),
    working in ``tmp_path``; the playbook may call ``qmail_test_facts: {facts: {...}}`` (see FACTS_MODULE)."""
    if ansible_playbook() is None:
        pytest.skip("ansible-playbook not installed")
    collections = tmp_path / "collections" / "ansible_collections" / "smarthost"
    collections.mkdir(parents=True)
    os.symlink(ROOT, str(collections / "relay"))
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "qmail_test_facts.py").write_text(FACTS_MODULE)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_FORKS": "20",
        "ANSIBLE_STDOUT_CALLBACK": "default",
    })

    def run(playbook, inventory, check=False):
        (tmp_path / "playbook.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
        (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        cmd = [ansible_playbook(), "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "playbook.yml")]
        if check:
            cmd.append("--check")
        return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                              check=False, cwd=str(tmp_path))

    return run
