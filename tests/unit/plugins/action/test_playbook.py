# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The real plugins, loaded by ansible-playbook: they pass and fail as
intended, in check mode too, and never connect to a host."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import constants

HERE = os.path.dirname(os.path.abspath(__file__))


def collections_path():
    path = os.path.abspath(constants.__file__)
    marker = os.sep + "ansible_collections" + os.sep
    return path[:path.rindex(marker)]


def ansible_playbook():
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return candidate if os.path.exists(candidate) else shutil.which("ansible-playbook")


@pytest.mark.skipif(ansible_playbook() is None, reason="ansible-playbook not installed")
@pytest.mark.parametrize("check_mode", [False, True])
def test_playbook(tmp_path, check_mode):
    inventory = tmp_path / "inventory.ini"
    # a loopback port where nothing listens: any connection attempt would make the host unreachable
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inventory.write_text(
        "[unreachable]\nnohost.invalid ansible_host=127.0.0.1 ansible_port=%d ansible_connection=ssh "
        "ansible_ssh_timeout=3\n"
        "[local]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n" % (port, sys.executable))
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collections_path(),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
    })
    cmd = [ansible_playbook(), "-i", str(inventory), os.path.join(HERE, "playbooks", "relay_checks.yml")]
    if check_mode:
        cmd.append("--check")
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          check=False)
    out = proc.stdout
    assert proc.returncode == 0, out
    assert "RELAY-CHECKS-LOCALHOST-OK" in out
    assert "RELAY-CHECKS-NO-CONNECTION-OK 8" in out
    assert "unreachable=0" in out and "UNREACHABLE" not in out
    assert "correct-horse-battery" not in out
