# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/preflight.yml checks the example fleet on the controller and never contacts a host."""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

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


# --- the catalogue of broken profiles, through site.yml and preflight.yml, against hosts that cannot be reached ---

CATALOGUE = yaml.safe_load((Path(__file__).parent / "files" / "preflight_profiles.yml").read_text())
GROUPS = ("postfix", "sendmail", "qmail", "exchange", "detect")
INVENTORY_GROUP = {"detect": "smarthost_detect"}


def closed_loopback_port():
    """A port on 127.0.0.1 where nothing listens (bound, then closed): a connection attempt is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def expand(entries):
    """(host, group, entry) for every group each entry applies to."""
    for entry in entries:
        for group in GROUPS if entry["groups"] == "all" else entry["groups"]:
            yield "%s-%s" % (group, entry["id"]), group, entry


def inventory(path, hosts):
    port = closed_loopback_port()
    groups = {INVENTORY_GROUP.get(g, g): {"hosts": {}} for g in GROUPS}
    for host, group, entry in hosts:
        host_vars = dict(CATALOGUE["base"], ansible_host="127.0.0.1", ansible_port=port, ansible_connection="ssh",
                         ansible_user="nobody", ansible_ssh_timeout=3, ansible_python_interpreter="/usr/bin/python3")
        host_vars.update(entry["vars"])
        groups[INVENTORY_GROUP.get(group, group)]["hosts"][host] = host_vars
    path.write_text(yaml.safe_dump({"all": {"children": groups}}))
    return path


def run_json(playbook, inventory_path, tmp, *extra):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_HOST_KEY_CHECKING="0",
               ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_FORKS="20", ANSIBLE_LOCAL_TEMP=str(tmp / "tmp"),
               ANSIBLE_HOME=str(tmp / "home"))
    run = subprocess.run([Path(sys.executable).parent / "ansible-playbook", "-i", inventory_path,
                          ROOT / "playbooks" / playbook, *extra], capture_output=True, text=True, env=env, check=False,
                         timeout=900)
    report = json.loads(run.stdout)
    per_host = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                per_host.setdefault(host, []).append((task["task"]["name"], result))
    return run, per_host, report["stats"]


def failures(per_host, host):
    return [(name, result) for name, result in per_host.get(host, []) if result.get("failed")]


@pytest.fixture(scope="module")
def catalogue_runs(tmp_path_factory):
    """site.yml on the broken profiles, preflight.yml on all, and site.yml on the good ones, one run per group:
    once every host of a play is unreachable, ansible-playbook ends the run, so one group's play would end it
    before the next group's hosts were tried."""
    tmp = tmp_path_factory.mktemp("preflight-catalogue")
    broken = list(expand(CATALOGUE["broken"]))
    good = list(expand(CATALOGUE["good"]))
    good_inventory = inventory(tmp / "good.yml", good)
    jobs = {"site-broken": ("site.yml", inventory(tmp / "broken.yml", broken)),
            "preflight-all": ("preflight.yml", inventory(tmp / "all.yml", broken + good))}
    # The Exchange role configures one send connector for all its hosts (run_once): one run per Exchange host.
    limits = [INVENTORY_GROUP.get(g, g) for g in GROUPS if g != "exchange"] + [h for h, g, dummy in good if g == "exchange"]
    jobs.update({"site-good-" + limit: ("site.yml", good_inventory, "--limit", limit) for limit in limits})
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_json, job[0], job[1], tmp / name, *job[2:]) for name, job in jobs.items()}
        runs = {name: future.result() for name, future in futures.items()}
    per_host, stats = {}, {}
    for limit in limits:
        run, group_hosts, group_stats = runs.pop("site-good-" + limit)
        assert "correct-horse-battery" not in run.stdout + run.stderr
        per_host.update(group_hosts)
        stats.update(group_stats)
    return {"broken": broken, "good": good, "site-good": (None, per_host, stats), **runs}


def test_catalogue_covers_every_group_and_rule():
    broken = list(expand(CATALOGUE["broken"]))
    assert {group for dummy, group, dummy2 in broken} == set(GROUPS)
    ids = [entry["id"] for entry in CATALOGUE["broken"] + CATALOGUE["good"]]
    assert len(ids) == len(set(ids))
    # every MTA rule of the engine and every "unset is null" rule has a broken profile
    covered = {entry["rule"] for entry in CATALOGUE["broken"]}
    notes = {"qmail-local-sender-guard", "qmail-plain-text", "sendmail-fqdn", "sendmail-auth-username-quoting",
             "postfix-inet-interfaces",  # warnings, notes, host facts, values an argument spec refuses first
             "exchange-auth-requires-tls",  # the relay check refuses it first (auth-requires-tls)
             # the relay guard's values the Sendmail and qmail roles set themselves: the guard's argument spec
             # (address, rewrite), mta-guard-port (port) and the relay rules (the local senders, which the qmail
             # role derives from relay_settings) refuse a bad one first
             "guard-address", "guard-port", "guard-local-sender-rewrite", "guard-local-sender-domains",
             "guard-local-sender-domain", "guard-local-sender-address", "guard-local-sender-target"}
    rules = {**engine_rules("mta.py"), **engine_rules("exchange.py"), **engine_rules("guard.py")}
    assert set(rules) - notes <= covered, set(rules) - notes - covered
    assert {"port-allowed", "licenses-positive", "servers-positive", "variable-unknown", "host-ip-literal",
            "host-certificate-name", "auth-username-address"} <= covered


def engine_rules(name):
    """The RULES table of plugins/module_utils/_relay/<name>, read without importing the collection."""
    tree = ast.parse((ROOT / "plugins" / "module_utils" / "_relay" / name).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["RULES"]:
            return ast.literal_eval(node.value)
    raise AssertionError("no RULES in %s" % name)


def check_refused(per_host, stats, host, entry):
    found = failures(per_host, host)
    assert found, "%s was not refused" % host
    name, result = found[0]
    text = result.get("msg", "")
    assert entry["variable"] in text, (host, text)
    if entry["rule"] == "argument-spec":
        assert "Validating arguments against arg spec" in name, (host, name)
    else:
        assert "%s [%s]" % (entry["variable"], entry["rule"]) in text, (host, text)
    assert stats[host]["unreachable"] == 0, host
    assert not [r for dummy, r in per_host[host] if r.get("unreachable")], host


def test_site_refuses_every_broken_profile_before_any_connection(catalogue_runs, capsys):
    run, per_host, stats = catalogue_runs["site-broken"]
    broken = catalogue_runs["broken"]
    with capsys.disabled():
        print("\npreflight catalogue: %d broken profiles (%d hosts), %d good profiles (%d hosts)"
              % (len(CATALOGUE["broken"]), len(broken), len(CATALOGUE["good"]), len(catalogue_runs["good"])))
    assert run.returncode != 0
    for host, dummy, entry in broken:
        check_refused(per_host, stats, host, entry)
    # the MTA plays never started: no task ran after the preflight play
    assert all(play["play"]["name"] in ("Check the relay settings of every mail server",)
               for play in json.loads(run.stdout)["plays"]), [p["play"]["name"] for p in json.loads(run.stdout)["plays"]]
    assert "correct-horse-battery" not in run.stdout + run.stderr


def test_site_takes_every_good_profile_as_far_as_the_connection(catalogue_runs):
    dummy, per_host, stats = catalogue_runs["site-good"]
    for host, dummy2, dummy3 in catalogue_runs["good"]:
        assert not failures(per_host, host), (host, failures(per_host, host))
        assert stats[host]["unreachable"] == 1, (host, stats[host])


def test_preflight_refuses_the_broken_profiles_and_contacts_no_host(catalogue_runs):
    run, per_host, stats = catalogue_runs["preflight-all"]
    assert run.returncode != 0
    for host, dummy, entry in catalogue_runs["broken"]:
        check_refused(per_host, stats, host, entry)
    for host, dummy, dummy2 in catalogue_runs["good"]:
        assert stats[host]["unreachable"] == 0 and stats[host]["failures"] <= 1, (host, stats[host])
        assert [name for name, dummy3 in failures(per_host, host)] in (
            [], ["Stop the whole run when any host's settings are bad"]), host
    assert "host(s) have settings that break a rule" in run.stdout
