# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render the exchange role's tasks the way ansible-playbook does, without a host.

The role's defaults, vars and task files are loaded with ansible-core's
DataLoader (trusted as templates, as for a role on disk); the relay settings
come from the relay role's own task arguments run through the real relay
rule engine; the task arguments are then templated with ansible-core's
Templar, which drops omitted arguments as the task executor does.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.smarthost.relay.plugins.filter.relay_allowlist import FilterModule
from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import check_profile
from ansible_collections.smarthost.relay.plugins.modules.relay_settings_check import DOCUMENTATION as RELAY_DOC
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import validate_from_doc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
ROLE = os.path.join(ROOT, "roles", "exchange")
RELAY_ROLE = os.path.join(ROOT, "roles", "relay")
MODULES = os.path.join(ROOT, "plugins", "modules")
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")  # linked by tests/unit/conftest.py


# The hosts every rendering's inventory holds besides the one rendered.
INVENTORY_HOSTS = ["ex01.corp.example.test", "ex02.corp.example.test", "edge01.dmz.example.test"]


# The collection's filters the role uses, registered by name in each Templar (ansible-playbook finds them
# through its collection loader; these tests import the collection by a plain sys.path entry).
COLLECTION_FILTERS = {"smarthost.relay." + name: function for name, function in FilterModule().filters().items()}


class RoleRenderer(object):
    def __init__(self):
        self.loader = DataLoader()

    def templar(self, variables):
        templar = Templar(loader=self.loader, variables=variables)
        for name, function in COLLECTION_FILTERS.items():
            templar.environment.filters[name] = function
        return templar

    def load(self, *parts):
        return self.loader.load_from_file(os.path.join(*parts), trusted_as_template=True) or {}

    def tasks(self, name):
        return self.load(ROLE, "tasks", name)

    def module_task(self, task_file, module, index=0):
        found = [task for task in self.tasks(task_file) if module in task]
        assert found, "%s: no %s task" % (task_file, module)
        return found[index]

    def variables(self, host_vars=None, check_mode=False, inventory_hostname="ex-test"):
        """Every variable a task of the role sees, with relay_settings as the relay role publishes it."""
        host_vars = dict(host_vars or {})
        variables = {}
        variables.update(self.load(RELAY_ROLE, "defaults", "main.yml"))
        variables.update(self.load(ROLE, "defaults", "main.yml"))
        variables.update(self.load(ROLE, "vars", "main.yml"))
        variables.update(host_vars)
        hosts = [inventory_hostname] + INVENTORY_HOSTS
        hostvars = {host: {} for host in hosts}
        hostvars[inventory_hostname] = dict(host_vars)
        variables.update({
            "inventory_hostname": inventory_hostname,
            "groups": {"all": hosts, "ungrouped": hosts},
            "hostvars": hostvars,
            "ansible_play_hosts_all": [inventory_hostname],
            "ansible_check_mode": check_mode,
        })
        variables["relay_settings"] = self.relay_settings(variables)
        return variables

    def relay_settings(self, variables):
        """The relay role's check task, templated and run through the relay rule engine."""
        task = self.load(RELAY_ROLE, "tasks", "main.yml")[0]
        args = self.templar(variables).template(task["smarthost.relay.relay_settings_check"])
        params, errors, dummy = validate_from_doc(RELAY_DOC, args)
        assert not errors, errors
        params.pop("variable_prefix")
        report = check_profile({key: value for key, value in params.items() if value is not None})
        assert not report.errors, [finding.format() for finding in report.errors]
        return report.normalized

    def render(self, task_file, module, host_vars=None, check_mode=False, item=None, index=0):
        """The module arguments the task sends, after templating (omitted ones removed)."""
        variables = self.variables(host_vars, check_mode)
        if item is not None:
            variables["item"] = item
        task = self.module_task(task_file, module, index)
        return self.templar(variables).template(task[module])

    def template(self, expression, host_vars=None, check_mode=False):
        variables = self.variables(host_vars, check_mode)
        return self.templar(variables).template(trust_as_template(expression))


@pytest.fixture(scope="session")
def role():
    return RoleRenderer()


def powershell_spec(name):
    """The argument spec a module's .ps1 gives Ansible.Basic (its own, with the module util's session options merged
    in), read with the PowerShell grammar (tests/unit/plugins/modules/exchange_scripts.py)."""
    spec = importlib.util.spec_from_file_location(
        "exchange_scripts", os.path.join(ROOT, "tests", "unit", "plugins", "modules", "exchange_scripts.py"))
    if spec.name not in sys.modules:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules[spec.name].module_spec_by_name(name)


def validate_module_args(name, args):
    """Validate arguments with ansible-core's ArgumentSpecValidator against the spec the .ps1 gives Ansible.Basic
    (the same rules Ansible.Basic applies: types, choices, required, required_if, required_together)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec = powershell_spec(name)
    validator = ArgumentSpecValidator(spec["options"], required_together=spec.get("required_together"),
                                      required_if=spec.get("required_if"))
    return validator.validate(dict(args))


# --- ansible-playbook runs (test_exchange_playbook.py) ------------------------------------------------
# They take seconds of CPU each, so they start in the background as soon as collection is done and run
# while the other tests do; the tests that read them wait for them.
PLAYBOOKS = os.path.join(HERE, "playbooks")
PLAYBOOK_RUNS = {
    "syntax": ["--syntax-check"],
    "check": ["--check"],
}
_RUNNING = {}


def ansible_playbook():
    import shutil

    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return candidate if os.path.exists(candidate) else shutil.which("ansible-playbook")


def _start_playbooks(workdir):
    import subprocess

    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_FORKS": "8",
        "ANSIBLE_LOCAL_TEMP": os.path.join(workdir, "tmp"),
        "ANSIBLE_HOME": os.path.join(workdir, "home"),
    })
    for name, extra in PLAYBOOK_RUNS.items():
        out = open(os.path.join(workdir, name + ".out"), "wb")  # pylint: disable=consider-using-with
        err = open(os.path.join(workdir, name + ".err"), "wb")  # pylint: disable=consider-using-with
        command = [ansible_playbook(), "-i", os.path.join(HERE, "inventory", "hosts.yml"), os.path.join(PLAYBOOKS, "site.yml")]
        process = subprocess.Popen(command + extra, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)  # pylint: disable=consider-using-with
        _RUNNING[name] = (process, out, err)


def pytest_collection_finish(session):
    # Under pytest-xdist every worker collects everything: there the runs start when a test needs them.
    if session.config.option.collectonly or ansible_playbook() is None or _RUNNING or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if any(item.nodeid.split("::")[0].endswith("test_exchange_playbook.py") for item in session.items):
        import tempfile

        _start_playbooks(tempfile.mkdtemp(prefix="exchange-playbook-"))


def pytest_sessionfinish(session):
    del session
    for process, out, err in _RUNNING.values():
        if process.poll() is None:
            process.kill()
            process.wait()
        out.close()
        err.close()


@pytest.fixture(scope="session")
def playbook_runs():
    """{name: (returncode, stdout, stderr)} of the ansible-playbook runs."""
    import subprocess

    if ansible_playbook() is None:
        pytest.skip("ansible-playbook is not installed")
    if not _RUNNING:
        import tempfile

        _start_playbooks(tempfile.mkdtemp(prefix="exchange-playbook-"))
    results = {}
    for name, (process, out, err) in _RUNNING.items():
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        out.flush()
        err.flush()
        with open(out.name, encoding="utf-8") as stdout, open(err.name, encoding="utf-8") as stderr:
            results[name] = (process.returncode, stdout.read(), stderr.read())
    return results
