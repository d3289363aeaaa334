# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Testinfra helpers shared by the scenarios: reach containers, read the relay stand-in's record."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import testinfra
import yaml
from relay_standin import inject, records, testing

RECORD = records.CONTAINER_RECORD
STANDIN_CONFIG = "/etc/relay-standin/config.yml"


def group_hosts(group):
    """The scenario's containers in an inventory group, as fast podman-exec testinfra hosts.

    Names come from ``ansible-inventory --graph``, which prints no variables: testinfra's own lookup runs
    ``ansible-inventory --list``, and its dump of every host's variables (the stand-in's users and passwords among
    them) would land in the scenario's ANSIBLE_LOG_PATH.
    """
    graph = subprocess.run(["ansible-inventory", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--graph", group],
                           capture_output=True, text=True, check=True,
                           env=dict(os.environ, ANSIBLE_VERBOSITY="0")).stdout
    names = [line.split("|--", 1)[1].strip() for line in graph.splitlines() if "|--" in line and "|--@" not in line]
    return [testinfra.get_host("podman://" + name) for name in sorted(set(names))]


def relay():
    return group_hosts("relay")[0]


def read_record(relay_host):
    """Every complete record line written so far (transactions and connections)."""
    return records.RecordTail.on_host(relay_host, RECORD).records()


def transactions(relay_host, **match):
    """Transactions whose fields equal every keyword given."""
    return [r for r in read_record(relay_host)
            if r.get("kind") == "transaction" and all(r.get(k) == v for k, v in match.items())]


def wait_for_transactions(relay_host, count=1, timeout=90, **match):
    """Poll the record until ``count`` matching transactions have arrived; return them."""
    deadline = time.monotonic() + timeout
    while True:
        found = transactions(relay_host, **match)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(1)


def injector(*args):
    """The shell command that runs the tests' one SMTP injector (relay_standin.inject) with ``args`` on a host,
    by the host's own python3."""
    return "python3 -c %s %s" % (shlex.quote(inject.source()), " ".join(shlex.quote(str(a)) for a in args))


def smtp_session(host, request):
    """One SMTP session from ``host`` (relay_standin.inject's ``session``): every reply, as a dict."""
    return json.loads(host.check_output(injector("session", json.dumps(request))))


def unique_id(tag):
    return "<%s.%d.%d@smarthost.test>" % (tag, os.getpid(), time.time_ns())


def podman(*args, stdin=None):
    """Run podman on the controller; its stdout."""
    return subprocess.run(["podman", *args], input=stdin, capture_output=True, text=True, check=True).stdout


def standin(container, **changes):
    """Change the stand-in's config in ``container`` and wait until it runs with it; return the new config."""
    config = yaml.safe_load(podman("exec", container, "cat", STANDIN_CONFIG))
    config.update(changes)
    apply_config(container, config)
    return config


def apply_config(container, config):
    """Replace the stand-in's config in ``container`` atomically and wait until the server runs with it, its
    listeners in line (its status file names the new file's digest); return that status."""
    written = testing.config_bytes(config)
    # umask: the config holds the stand-in's users' passwords and stays 0600, as prepare_relay.yml wrote it.
    podman("exec", "-i", container, "sh", "-c",
           "umask 077 && cat > %s.new && mv %s.new %s" % (STANDIN_CONFIG, STANDIN_CONFIG, STANDIN_CONFIG),
           stdin=written.decode("utf-8"))
    return testing.wait_for_config(lambda: standin_status(container), written)


def standin_status(container):
    """The stand-in server's status file in ``container`` (None before it wrote one)."""
    result = subprocess.run(["podman", "exec", container, "cat", records.CONTAINER_STATUS],
                            capture_output=True, text=True, check=False)
    try:
        return json.loads(result.stdout) if result.returncode == 0 else None
    except ValueError:
        return None


def wait_for(predicate, timeout=90, interval=1.0, what="condition"):
    """Poll ``predicate`` until it returns something true; return that, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def arrived(relay_host, message_id, count=1, timeout=90):
    """Wait until ``count`` accepted transactions carry ``message_id``; fail otherwise."""
    found = wait_for_transactions(relay_host, count=count, timeout=timeout, message_id=message_id,
                                  verdict="accepted")
    assert len(found) >= count, "%s: %d of %d transactions arrived" % (message_id, len(found), count)
    return found


def sendmail_queue_run(host):
    """A Sendmail queue run now on ``host``, for every queued message (MinQueueAge waived), with the relay's host
    status forgotten (purgestat), as an admin would after a fix."""
    host.run("sendmail -bH >/dev/null 2>&1; sendmail -q -O MinQueueAge=0")


def sha(host, *paths):
    """sha256sum lines of ``paths`` on ``host``."""
    return host.check_output("sha256sum %s" % " ".join(paths))


def playbook_command(playbook, *args, extra_vars=None, inventory=None, env=None):
    """``ansible-playbook`` as an admin re-runs it: the scenario's inventory (or ``inventory``), its ansible.cfg,
    its log (every run of a scenario goes to one ansible.log, which the secret checks read), no colour. Extra
    vars go through a 0600 file in the scenario's ephemeral directory, never the command line; the caller removes
    it after the run. Returns (argv, environment, vars file or None)."""
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    run_env = dict(os.environ, ANSIBLE_LOG_PATH=str(ephemeral / "ansible.log"), ANSIBLE_NOCOLOR="1")
    if (ephemeral / "ansible.cfg").exists():
        run_env["ANSIBLE_CONFIG"] = str(ephemeral / "ansible.cfg")
    run_env.update(env or {})
    cmd = ["ansible-playbook", "-i", str(inventory or os.environ["MOLECULE_INVENTORY_FILE"]), str(playbook), *args]
    vars_file = None
    if extra_vars is not None:
        vars_file = ephemeral / ("extra-vars-%d-%d.json" % (os.getpid(), time.time_ns()))
        vars_file.touch(mode=0o600)
        vars_file.write_text(json.dumps(extra_vars))
        cmd += ["-e", "@%s" % vars_file]
    return cmd, run_env, vars_file


def run_playbook(playbook, *args, extra_vars=None, inventory=None, env=None):
    """Run playbook_command(...) to the end, its vars file removed afterwards; the CompletedProcess with
    ``seconds``."""
    cmd, run_env, vars_file = playbook_command(playbook, *args, extra_vars=extra_vars, inventory=inventory, env=env)
    start = time.monotonic()
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, env=run_env, check=False)
    finally:
        if vars_file:
            vars_file.unlink()
    result.seconds = round(time.monotonic() - start, 1)
    return result


def network_subnet(network):
    """The IPv4 range of a podman network (the scenario's own, which the stand-in's allowlist can name)."""
    info = json.loads(podman("network", "inspect", network, "--format", "json"))[0]
    return next(s["subnet"] for s in info["subnets"] if "." in s["subnet"])
