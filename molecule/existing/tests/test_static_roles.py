# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""qmail and Exchange cannot run here (no qmail program, no Windows): static/site.yml pulls their roles into an
existing-style playbook with include_role, against hosts on a closed loopback port (static/hosts.yml). With only
their required variables, each role gets through every controller-side task (argument specs, the relay check,
the role's own checks) and stops at its first task that needs the host, after the unrelated tasks before it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "static"
FIRST_HOST_TASK = {
    "qmail01": "smarthost.relay.qmail : Gather the facts that select the platform's variables",
    "ex01": "smarthost.relay.exchange : Point the send connector at the relay",
}


def ansible_playbook(*args, callback="default"):
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK=callback, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")
    env.pop("ANSIBLE_CONFIG", None)
    env.pop("ANSIBLE_LOG_PATH", None)
    return subprocess.run(["ansible-playbook", "-i", str(STATIC / "hosts.yml"), str(STATIC / "site.yml"), *args],
                          capture_output=True, text=True, env=env, check=False)


@pytest.fixture(scope="module")
def per_host():
    """{host: [(task name, outcome, result)]} in run order."""
    result = ansible_playbook(callback="ansible.posix.json")
    report = json.loads(result.stdout)
    runs = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                outcome = ("unreachable" if res.get("unreachable") else "failed" if res.get("failed")
                           else "skipped" if res.get("skipped") else "ok")
                runs.setdefault(host, []).append((task["task"]["name"], outcome, res))
    return runs


def test_syntax_check():
    result = ansible_playbook("--syntax-check")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("host, role", [("qmail01", "qmail"), ("ex01", "exchange")])
def test_role_passes_every_controller_side_task(per_host, host, role):
    tasks = per_host[host]
    stop = next(i for i, (dummy, outcome, dummy2) in enumerate(tasks) if outcome in ("failed", "unreachable"))
    # The stop is the role's first task that needs the host, and it stopped for want of the host.
    assert tasks[stop][0] == FIRST_HOST_TASK[host]
    assert "127.0.0.1" in tasks[stop][2]["msg"] or "winrm" in tasks[stop][2]["msg"]
    before = [name for name, outcome, dummy in tasks[:stop] if outcome == "ok"]
    assert before[0] == "Announce the maintenance"
    assert "smarthost.relay.relay : Check the relay settings against the relay service's rules" in before
    assert any(name.startswith("smarthost.relay.%s : Validating arguments" % role) for name in before)
    assert not any(outcome in ("failed", "unreachable") for dummy, outcome, dummy2 in tasks[:stop])


def test_unrelated_plays_ran(per_host):
    assert [name for name, outcome, dummy in per_host["localhost"]] == ["Note the change window"]
