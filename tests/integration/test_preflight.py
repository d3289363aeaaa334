# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/preflight.yml checks the example fleet on the controller and never contacts a host."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
PASSWORD = "example-only-app-password"


def preflight(*extra):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [Path(sys.executable).parent / "ansible-playbook", "-i", EXAMPLES / "inventory",
         "--vault-password-file", EXAMPLES / "vault-password.txt", ROOT / "playbooks" / "preflight.yml", "-vvv", *extra],
        capture_output=True, text=True, env=env, check=False)


def test_example_fleet_passes_without_contacting_a_host():
    run = preflight()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "ESTABLISH" not in run.stdout  # no connection plugin was ever started
    for host in ("mx1.example.com", "legacy-app.example.com", "lists.example.com", "hub1.corp.example.com"):
        assert re.search(r"^%s\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0" % re.escape(host), run.stdout, re.M)
    assert "smtp-relay.gmail.com:587 tls=required verify=True auth=True" in run.stdout
    assert PASSWORD not in run.stdout + run.stderr


def test_a_violation_stops_every_host_naming_the_variable():
    run = preflight("-e", "relay_port=465")
    assert run.returncode != 0
    assert "relay_port [tls-required-port-587]" in run.stdout
    assert "ESTABLISH" not in run.stdout
    assert PASSWORD not in run.stdout + run.stderr
