# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role through ansible-playbook --syntax-check and --check, against Windows
hosts that cannot be reached (WinRM on a closed loopback port;
inventory/hosts.yml).

Bad settings stop on the controller, at the relay role's check or at the
role's own checks, and no task that needs the host ever starts for them. Good
settings get through every controller-side task and stop only at the first
task that needs the host. The runs start in the background when collection
finishes (conftest.py)."""

from __future__ import annotations

import json

import pytest

HOST_TASK = "smarthost.relay.exchange_"


def results(output):
    """{host: [(task name, action, result)]} in play order, and the run's stats."""
    report = json.loads(output)
    per_host = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                per_host.setdefault(host, []).append((task["task"]["name"], result.get("action", ""), result))
    return per_host, report["stats"]


def outcome(result):
    if result.get("unreachable"):
        return "unreachable"
    if result.get("failed"):
        return "failed"
    if result.get("skipped"):
        return "skipped"
    return "ok"


def stopped_at(per_host, host):
    """The first failed task of the host, the tasks before it, and whether a task that needs the host ran."""
    before = []
    for name, action, result in per_host[host]:
        if outcome(result) in ("failed", "unreachable"):
            return (name, action, result), before
        before.append((name, action, result))
    return None, before


@pytest.fixture(scope="module")
def run(playbook_runs):
    rc, out, err = playbook_runs["check"]
    assert rc == 2, err[-2000:]
    return results(out) + (out + err,)


def test_check_mode(run):
    per_host, dummy, dummy2 = run
    assert sorted(per_host) == ["ex-bad-argument", "ex-bad-edge", "ex-bad-exchange", "ex-bad-relay", "ex-edge-good",
                                "ex-good"]
    for host, entries in per_host.items():
        assert entries[0][0] == "Report the mode" and entries[0][2]["msg"] == "check mode: True", host
        assert all(result.get("changed") is not True for dummy3, dummy4, result in entries), host


def test_syntax_check(playbook_runs):
    rc, out, err = playbook_runs["syntax"]
    assert rc == 0, out + err
    assert "site.yml" in out


@pytest.mark.parametrize("host, task, action, message", [
    # A relay rule: the relay role's controller-side check stops it; the exchange role never starts.
    ("ex-bad-relay", "smarthost.relay.relay : Check the relay settings against the relay service's rules", "smarthost.relay.relay_settings_check",
     "relay_port [tls-required-port-587]"),
    ("ex-bad-argument", "smarthost.relay.exchange : Validating arguments against arg spec 'main'", "ansible.builtin.validate_argument_spec",
     "value of exchange_session must be one of: remote, snapin, got: telnet"),
    ("ex-bad-exchange", "smarthost.relay.exchange : Check the Exchange settings against the rules of an Exchange send connector",
     "smarthost.relay.relay_settings_check", "The exchange settings break 4 rule(s)"),
    ("ex-bad-edge", "smarthost.relay.exchange : Check the Exchange settings against the rules of an Exchange send connector",
     "smarthost.relay.relay_settings_check", "The exchange settings break 5 rule(s)"),
])
def test_bad_settings_stop_before_any_host_task(run, host, task, action, message):
    per_host, stats, dummy = run
    (name, failed_action, result), before = stopped_at(per_host, host)
    assert name.startswith(task) and failed_action == action, (name, failed_action)
    assert message in result["msg"]
    assert all(outcome(result) in ("ok", "skipped") for dummy2, dummy3, result in before)
    assert not [entry for entry in per_host[host] if entry[1].startswith(HOST_TASK)], "a task that needs the host ran"
    assert stats[host]["unreachable"] == 0 and stats[host]["failures"] == 1
    if host == "ex-bad-relay":
        assert not [entry for entry in per_host[host] if "smarthost.relay.exchange :" in entry[0]]


def test_every_broken_rule_is_listed(run):
    per_host, dummy, dummy2 = run
    messages = {host: stopped_at(per_host, host)[0][2]["msg"] for host in ("ex-bad-exchange", "ex-bad-edge")}
    for finding in ("relay_tls [exchange-implicit-tls]", "exchange_connector_name [exchange-connector-name]",
                    "exchange_source_servers [exchange-source-servers]: exchange_source_servers names EX99,",
                    "ansible_winrm_server_cert_validation [exchange-winrm-https]: ex-bad-exchange: the SMTP AUTH"):
        assert "\n- " + finding in messages["ex-bad-exchange"], finding
    for finding in ("exchange_max_message_size [exchange-max-message-size]", "exchange_edge_site [exchange-edge-site]",
                    "exchange_edge_servers [exchange-edge-servers]: exchange_edge_servers names edge02.dmz.example.test,",
                    "exchange_edge_hub_addresses [exchange-edge-hub-addresses]",
                    "exchange_retry [exchange-retry]: exchange_retry has wrong keys or values (message_retry_interval, "
                    "transient_failure_retry_count)"):
        assert "\n- " + finding in messages["ex-bad-edge"], finding


def assert_reaches_host(per_host, host, module):
    (name, action, result), before = stopped_at(per_host, host)
    # Every task before is a controller-side one, and passed.
    assert before and all(not entry[1].startswith(HOST_TASK) for entry in before)
    assert all(outcome(entry[2]) in ("ok", "skipped") for entry in before)
    controller_checks = [entry[0] for entry in before if entry[1] in ("smarthost.relay.relay_settings_check", "ansible.builtin.assert")]
    assert len(controller_checks) == 3, controller_checks  # the relay rules, relay_settings published, the Exchange rules
    # The first failure is the first task that needs the host: the connection, not a rule.
    assert action == module, (name, action)
    if result.get("censored"):
        # SMTP AUTH: the task carries the password, so its result is hidden.
        assert result["_ansible_no_log"] is True
    else:
        assert "winrm" in result.get("msg", "").lower() or result.get("unreachable"), result


def test_good_settings_reach_the_first_host_task(run):
    per_host, stats, output = run
    assert_reaches_host(per_host, "ex-good", "smarthost.relay.exchange_send_connector")
    assert_reaches_host(per_host, "ex-edge-good", "smarthost.relay.exchange_send_connector")
    assert "correct-horse-battery" not in output
    assert "not-a-real-password" not in output
