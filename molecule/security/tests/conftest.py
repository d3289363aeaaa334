# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of the security scans: containers, playbook runs, the stand-in's config, host checksums."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import testinfra
import yaml

import relay_record

SCENARIO = Path(__file__).resolve().parents[1]
ROOT = SCENARIO.parents[1]
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
LOG_PATH = EPHEMERAL / "ansible.log"
# Each playbook run of the scans sets its own verbosity and diff on its command line (relay_record.run_playbook
# logs it to LOG_PATH); nothing inherited from the molecule tier may change that.
for _name in ("ANSIBLE_LOG_PATH", "ANSIBLE_VERBOSITY", "ANSIBLE_DIFF_ALWAYS"):
    os.environ.pop(_name, None)

MTAS = {"postfix": "srt-security-postfix", "sendmail": "srt-security-sendmail"}
RELAY = "srt-security-relay"
OUTSIDER = "srt-security-outsider"
NETWORK, OUTSIDE_NETWORK = "srt-security", "srt-security-out"
STANDIN_CONFIG = "/etc/relay-standin/config.yml"
PASSWORDS = {"postfix": "security-Postfix-pw-5b0e", "sendmail": "security-Sendmail-pw-93c4"}  # molecule.yml
# The MTA configuration a run could change: every file of the MTA's configuration directory.
# Sendmail sends through the relay guard (roles/relay_guard), whose configuration holds the SMTP AUTH password.
CONFIG_DIRS = {"postfix": "/etc/postfix", "sendmail": "/etc/mail /etc/smarthost-relay-guard"}
DAEMON_PIDS = {"postfix": "/var/spool/postfix/pid/master.pid", "sendmail": "/run/sendmail/mta/sendmail.pid"}


def podman(*args, stdin=None, check=True):
    return subprocess.run(["podman", *args], input=stdin, capture_output=True, text=True, check=check).stdout


def host(name):
    return testinfra.get_host("podman://" + name)


def address(container, network):
    info = json.loads(podman("inspect", container, "--format", "json"))[0]
    return info["NetworkSettings"]["Networks"][network]["IPAddress"]


def standin_add_users(users):
    """Teach the stand-in more SMTP AUTH users, keeping the ones it has."""
    current = yaml.safe_load(podman("exec", RELAY, "cat", STANDIN_CONFIG))["users"]
    relay_record.standin(RELAY, users={**current, **users})


def run_site(inventory, *args, tmpdir, extra_vars=None, env=None):
    """playbooks/site.yml as a user runs it, with a TMPDIR of its own (the secret scan reads it afterwards);
    extra vars go through a 0600 file, never the command line."""
    return relay_record.run_playbook(ROOT / "playbooks" / "site.yml", *args, inventory=inventory,
                                     extra_vars=extra_vars or None, env=dict(env or {}, TMPDIR=str(tmpdir)))


def recap(output):
    """{host: {ok: n, changed: n, ...}} from the PLAY RECAP."""
    counters = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        if ":" in line and "ok=" in line:
            name, items = line.split(":", 1)
            counters[name.strip()] = {k: int(v) for k, v in (item.split("=") for item in items.split())}
    return counters


def config_state(mta):
    """Checksums of every file of the MTA's configuration directory and the daemon's process id."""
    target = host(MTAS[mta])
    sums = target.check_output("find %s -type f -print0 | sort -z | xargs -0 sha256sum" % CONFIG_DIRS[mta])
    pid = target.check_output("cat %s" % DAEMON_PIDS[mta]).split()[0]
    return {"files": sums, "pid": pid}


@pytest.fixture(scope="session")
def relay():
    return relay_record.relay()


@pytest.fixture(scope="session")
def results():
    """Measured numbers, written to .cache/logs/security-verify.json at the end of the run."""
    found = {}
    yield found
    out = Path(os.environ.get("SMARTHOST_ROOT", ROOT)) / ".cache" / "logs" / "security-verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(found, indent=2, sort_keys=True))
