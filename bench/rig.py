# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A throw-away podman rig for the benchmarks: one network, the relay stand-in, N MTA containers.

Everything is named srt-bench-…; ``Rig.down()`` removes it all. Needs scripts/lib.sh's environment
(CONTAINERS_CONF, PATH with the venv) and the images from scripts/build-images.sh.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import paths  # noqa: F401  pylint: disable=unused-import  # before relay_standin
from relay_standin import records

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
PKI = Path(os.environ.get("SMARTHOST_PKI", ROOT / ".cache" / "pki"))
NETWORK = "srt-bench"
RELAY = "srt-bench-relay"
PASSWORD_FILE = CACHE / "secrets.yml"
# Everything the run's commands print goes here too, so it can be searched for the password at the end.
LOG = CACHE / "run.log"
BASE_IMAGE = "localhost/smarthost-debian:12"
# The base image with the Postfix role's Debian packages installed (bench/postfix.Containerfile).
POSTFIX_IMAGE = "localhost/smarthost-bench-postfix:12"
POSTFIX_CONTAINERFILE = ROOT / "bench" / "postfix.Containerfile"
# The site section over SSH: the controller's key (made once, kept in the cache) and the settings docs/quickstart.md gives a fleet.
SSH_KEY = CACHE / "id_ed25519"
SSH_ENV = {"ANSIBLE_PIPELINING": "True", "ANSIBLE_HOST_KEY_CHECKING": "False",
           "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null"}


def log(text):
    with open(LOG, "a", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")


def podman(*args, check=True, stdin=None):
    proc = subprocess.run(["podman", *args], input=stdin, capture_output=True, text=True, check=False)
    log("$ podman %s\n%s%s" % (" ".join(args), proc.stdout, proc.stderr))
    if check and proc.returncode != 0:
        raise RuntimeError("podman %s failed: %s" % (" ".join(args), proc.stderr[-2000:]))
    return proc


class Rig:
    def __init__(self, licenses=100000):
        self.licenses = licenses
        self.etc = CACHE / "relay" / "etc"
        self.var = CACHE / "relay" / "var"
        self.password = None
        self.subnet = None  # the bench network's range, once up() has created it
        self.converged = {}  # role: (container, inventory) kept for the next section

    @property
    def record(self):
        return self.var / "record.jsonl"

    def up(self):
        self.down()
        for path in (self.etc, self.var):
            path.mkdir(parents=True, exist_ok=True)
        podman("network", "create", NETWORK)
        subnet = self.subnet = podman("network", "inspect", NETWORK, "--format",
                                      "{{range .Subnets}}{{.Subnet}} {{end}}").stdout.split()[0]
        self.password = os.urandom(12).hex()
        PASSWORD_FILE.write_text('relay_auth_password: "%s"\n' % self.password)
        PASSWORD_FILE.chmod(0o600)
        shutil.copy(PKI / "relay.pem", self.etc / "cert.pem")
        shutil.copy(PKI / "relay.key", self.etc / "key.pem")
        config = {
            "hostname": "relay.smarthost.test",
            "tls": {"cert": "/etc/relay-standin/cert.pem", "key": "/etc/relay-standin/key.pem"},
            "record": "/var/lib/relay-standin/record.jsonl",
            "allowlist": [subnet],
            "users": {"bench@example.com": self.password},
            "domains": ["example.com"],
            "licenses": self.licenses,
        }
        (self.etc / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        podman("run", "-d", "--name", RELAY, "--network", NETWORK, "--network-alias", "relay.smarthost.test",
               "-v", "%s:/opt/smarthost:ro" % ROOT, "-v", "%s:/etc/relay-standin" % self.etc,
               "-v", "%s:/var/lib/relay-standin" % self.var, "localhost/smarthost-relay:latest")
        deadline = time.monotonic() + 60
        while '"listening"' not in podman("logs", RELAY).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError("the relay stand-in did not start: %s" % podman("logs", RELAY).stderr[-2000:])
            time.sleep(0.5)
        return self

    def add_hosts(self, names, image=BASE_IMAGE, ssh=False):
        """Start the containers and wait for systemd; with ``ssh``, authorise SSH_KEY and return {name: address}."""
        for name in names:
            podman("run", "-d", "--name", name, "--hostname", name.replace("srt-bench-", "") + ".example.com",
                   "--network", NETWORK, "--systemd=always", image, "/sbin/init")
        for name in names:  # systemd has started (the roles talk to it)
            deadline = time.monotonic() + 120
            while podman("exec", name, "systemctl", "is-system-running", check=False).stdout.strip() not in (
                    "running", "degraded") and time.monotonic() < deadline:
                time.sleep(1)
        return {name: self.authorise_ssh(name) for name in names} if ssh else {}

    def authorise_ssh(self, name):
        if not SSH_KEY.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(SSH_KEY)], check=True)
        pub = SSH_KEY.with_suffix(".pub").read_text()
        podman("exec", "-i", name, "sh", "-c", "install -d -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys"
               " && chmod 600 /root/.ssh/authorized_keys && systemctl start ssh",
               stdin=pub)
        return podman("inspect", "--format", '{{(index .NetworkSettings.Networks "%s").IPAddress}}' % NETWORK,
                      name).stdout.strip()

    def remove_hosts(self, names):
        if names:
            podman("rm", "-f", "-t", "1", *names, check=False)

    def down(self):
        names = [n for n in podman("ps", "-a", "--format", "{{.Names}}").stdout.split() if n.startswith("srt-bench-")]
        self.remove_hosts(names)
        podman("network", "rm", "-f", NETWORK, check=False)
        shutil.rmtree(CACHE / "relay", ignore_errors=True)

    def records(self):
        """Every complete line of the stand-in's record (transactions, and connections as they close)."""
        return records.load(self.record)

    def transactions(self):
        return [r for r in self.records() if r.get("kind") == "transaction"]


def image_recipe(containerfile, base_id):
    """The label that says which Containerfile and base image an image was built from."""
    return hashlib.sha256(containerfile.encode() + b"\0" + base_id.encode()).hexdigest()[:16]


def postfix_image():
    """POSTFIX_IMAGE, built when it is missing or its Containerfile or base image changed; returns its tag."""
    base_id = podman("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE).stdout.strip()
    recipe = image_recipe(POSTFIX_CONTAINERFILE.read_text(), base_id)
    have = podman("image", "inspect", "--format", '{{index .Labels "smarthost.recipe"}}', POSTFIX_IMAGE, check=False)
    if have.returncode != 0 or have.stdout.strip() != recipe:
        # --pull=never: the base is the local test-bed image, never a registry's
        podman("build", "--pull=never", "--label", "smarthost.recipe=%s" % recipe, "-t", POSTFIX_IMAGE,
               "-f", str(POSTFIX_CONTAINERFILE), str(POSTFIX_CONTAINERFILE.parent))
    return POSTFIX_IMAGE


def write_inventory(path, groups, extra_vars=None, addresses=None):
    """An inventory of podman containers: {group: [names]} plus shared vars; over SSH when ``addresses`` (as root,
    with SSH_KEY) gives each container's address."""
    connection = ["    ansible_connection: containers.podman.podman"] if not addresses else [
        "    ansible_connection: ssh", "    ansible_user: root", "    ansible_ssh_private_key_file: %s" % SSH_KEY]
    lines = ["all:", "  vars:", *connection,
             "    ansible_python_interpreter: /usr/bin/python3", "    ansible_become: false"]
    for key, value in (extra_vars or {}).items():
        lines.append("    %s: %s" % (key, json.dumps(value)))
    lines.append("  children:")
    for group, names in groups.items():
        lines.append("    %s:" % group)
        lines.append("      hosts:")
        lines.extend("        %s:" % name + (" {ansible_host: %s}" % addresses[name] if addresses else "")
                     for name in names)
    path.write_text("\n".join(lines) + "\n")
    return path


RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


class Played(NamedTuple):
    seconds: float
    changed: dict
    output: str
    # CPU seconds (user + system) of ansible-playbook, its workers and what they ran and waited for on the controller
    cpu_seconds: float


def run_playbook(inventory, playbook, *args, forks=5, env=None):
    """Run ansible-playbook (``env`` added to the environment); return a Played. Raises on failure."""
    cmd = ["ansible-playbook", "-i", str(inventory), "-f", str(forks), "-e", "@%s" % PASSWORD_FILE, str(playbook), *args]
    # Per-task times in the log, to see where a slow run spends them.
    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", **(env or {}))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)  # pylint: disable=consider-using-with
        # wait4: this child's own usage, not that of other threads' children (--parallel)
        dummy, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    log("$ %s\n%s%s" % (" ".join(cmd), stdout, stderr))
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), stdout[-4000:] + stderr[-2000:]))
    changed = {m.group(1): int(m.group(3)) for m in RECAP.finditer(stdout)}
    return Played(elapsed, changed, stdout, usage.ru_utime + usage.ru_stime)
