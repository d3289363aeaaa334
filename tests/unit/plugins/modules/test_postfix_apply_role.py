# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Postfix role's configure.yml wired to postfix_apply, run by ansible-playbook on the controller (connection
local) against a fake /etc/postfix and the fake Postfix programs of postfix_fakes.py: a change is one task, a rerun
changes nothing, check mode reports with a diff and writes nothing, a failed ``postfix check`` fails with the role's
rolled-back message, and no password appears in any output at -vvv.

The probe's findings (``__postfix_probe``) are given, as a host with Postfix 3.7 and an empty main.cf would report
them; ``__postfix_config_dir`` and ``__postfix_sbin`` point at tmp_path (set_fact beats the role's vars).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import postfix_fakes
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PASSWORD = "role-Relay-pw-4d2e"
NEW_PASSWORD = "role-New-pw-83a1"
MAIN = "myhostname = mta.example.net\nmydestination = $myhostname, localhost\n"
MASTER = "smtp      inet  n       -       y       -       -       smtpd\n"
RELAY_VARS = {"relay_host": "relay.smarthost.test", "relay_tls": "required", "relay_auth": True,
              "relay_auth_username": "app@example.com", "relay_auth_password": PASSWORD,
              "relay_domains": ["example.com"], "relay_helo_name": "mta.example.com",
              "relay_allowed_senders": "domain_addresses", "relay_test_message": False}


def include(check=False, **extra):
    task = {"name": "Configure",
            "ansible.builtin.include_role": {"name": "smarthost.relay.postfix", "tasks_from": "configure"}}
    if check:
        task["ansible.builtin.include_role"]["apply"] = {"check_mode": True}
    task.update(extra)
    return task


def playbook(tmp_path):
    conf, bin_dir = tmp_path / "etc" / "postfix", tmp_path / "bin"
    probe = {"present": True, "packages": ["postfix"], "active": True, "enabled": True, "obsolete": [],
             "version": "3.7.11", "default_database_type": "hash", "main": {"inet_interfaces": "loopback-only"}, "master": MASTER.splitlines(),
             "services": ["smtp/inet"]}
    new = {"relay_auth_password": NEW_PASSWORD}
    return [{
        "name": "configure.yml with postfix_apply", "hosts": "all", "gather_facts": False, "vars": RELAY_VARS,
        "tasks": [
            {"name": "The fake host", "ansible.builtin.set_fact": {
                "__postfix_config_dir": str(conf), "__postfix_sbin": str(bin_dir), "__postfix_probe": probe}},
            include(),
            {"name": "First", "ansible.builtin.set_fact": {"first": "{{ __postfix_apply }}"}},
            include(),
            {"name": "Second", "ansible.builtin.set_fact": {"second": "{{ __postfix_apply }}"}},
            include(check=True, vars=new),
            {"name": "Check mode", "ansible.builtin.set_fact": {"check": "{{ __postfix_apply }}"}},
            {"name": "Make postfix check fail", "ansible.builtin.file": {"path": str(bin_dir / "check.fail"),
                                                                         "state": "touch"}},
            {"name": "A change that fails", "block": [include(vars=new)], "rescue": [
                {"name": "Failed", "ansible.builtin.set_fact": {"failed_msg": "{{ ansible_failed_result.msg }}"}}]},
            {"name": "Report", "ansible.builtin.copy": {
                "dest": str(tmp_path / "report.yml"),
                "content": "{{ {'first': first, 'second': second, 'check': check, 'failed_msg': failed_msg}"
                           " | to_nice_yaml }}"}},
        ]}]


@pytest.fixture(scope="module")
def converged(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("postfix_apply sets root:root on the files it writes")
    program = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(program):
        program = shutil.which("ansible-playbook")
    if program is None:
        pytest.skip("ansible-playbook not installed")
    tmp_path = tmp_path_factory.mktemp("postfix-role")
    conf, bin_dir = tmp_path / "etc" / "postfix", tmp_path / "bin"
    conf.mkdir(parents=True)
    bin_dir.mkdir()
    (conf / "main.cf").write_text(MAIN)
    (conf / "master.cf").write_text(MASTER)
    postfix_fakes.install(bin_dir)
    collections = tmp_path / "collections" / "ansible_collections" / "smarthost"
    collections.mkdir(parents=True)
    os.symlink(ROOT, str(collections / "relay"))
    (tmp_path / "playbook.yml").write_text(yaml.safe_dump(playbook(tmp_path), sort_keys=False))
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {"mta": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_HOME=str(tmp_path / "home"), ANSIBLE_STDOUT_CALLBACK="default",
               PATH="%s:%s" % (bin_dir, os.environ["PATH"]))
    result = subprocess.run([program, "-vvv", "--diff", "-i", str(tmp_path / "inventory.yml"),
                             str(tmp_path / "playbook.yml")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=300, check=False, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout[-6000:]
    with open(tmp_path / "report.yml") as handle:
        report = yaml.safe_load(handle)
    return {"conf": conf, "bin": bin_dir, "out": result.stdout, "report": report}


def test_a_change_is_one_task(converged):
    first, conf = converged["report"]["first"], converged["conf"]
    assert first["changed"] and first["action"] == "reload" and first["main_cf_changed"]
    main = (conf / "main.cf").read_text()
    assert "relayhost = [relay.smarthost.test]:587" in main and "smtp_sasl_auth_enable = yes" in main
    assert "smtp_generic_maps = regexp:%s/smarthost_local_senders" % conf in main
    assert (conf / "smarthost_sasl_passwd").read_text().endswith("app@example.com:%s\n" % PASSWORD)
    assert (conf / "smarthost_sasl_passwd").stat().st_mode & 0o777 == 0o600
    assert (conf / "smarthost_sasl_passwd.db").stat().st_mode & 0o777 == 0o600
    # the local senders' table names the host's own names, read from the configuration installed
    assert first["local_names"] == ["mta.example.net"]
    assert "@((.+\\.)?localhost|(.+\\.)?localdomain|mta\\.example\\.net)$/ ${1}@example.com" in (
        conf / "smarthost_local_senders").read_text()


def test_a_rerun_changes_nothing(converged):
    second = converged["report"]["second"]
    assert second["changed"] is False and second["action"] == "none"


def test_check_mode_reports_a_new_password_and_shows_main_cf_only(converged):
    check, conf = converged["report"]["check"], converged["conf"]
    assert check["changed"] and check["would_write"] == [str(conf / "smarthost_sasl_passwd")]
    assert (conf / "smarthost_sasl_passwd").read_text().endswith(":%s\n" % PASSWORD)


def test_a_failed_check_is_rolled_back_with_the_roles_message(converged):
    msg, conf = converged["report"]["failed_msg"], converged["conf"]
    assert msg.startswith('Postfix was left on its previous configuration (rolled back) because "Check the new '
                          'configuration with postfix check" failed: non-zero return code')
    assert (conf / "smarthost_sasl_passwd").read_text().endswith(":%s\n" % PASSWORD)
    assert not [name for name in os.listdir(conf) if name.startswith("smarthost_sasl_passwd.") and name.endswith("~")]


def test_no_password_in_the_output(converged):
    out = converged["out"]
    assert "TASK [smarthost.relay.postfix : Install the configuration" in out
    assert PASSWORD not in out and NEW_PASSWORD not in out
    assert "+relayhost = [relay.smarthost.test]:587" in out  # --diff shows main.cf
