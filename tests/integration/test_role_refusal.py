# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A playbook of the caller's own that applies an MTA role directly (``roles:`` or ``include_role``, with
``gather_facts: false``) is refused before the role's first task that contacts the host: a bad setting fails at the
role's controller-side check, naming the variable and the rule, with no connection attempt. Each run has one host
with a bad setting and one with good settings per role, all on 127.0.0.1 at a loopback port where nothing listens
(test_preflight.py's harness): a connection attempt makes the host unreachable at once, which is how the good host
shows where the role first contacts it. A play's own ``gather_facts: true`` contacts the host before any role task
(docs/quickstart.md says so): the last run shows that cost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from test_preflight import CATALOGUE, closed_loopback_port, failures, run_json

# Per role: a bad setting the role's own rules refuse (not its argument spec), the finding that names it, and the
# role's first task that contacts the host.
ROLES = {
    "postfix": ({"postfix_null_sender_transport": "smtp"},
                "postfix_null_sender_transport [postfix-null-sender-transport]",
                "smarthost.relay.postfix : Gather the facts that select the platform's variables"),
    "sendmail": ({"sendmail_timeout_datafinal": "30m"}, "sendmail_timeout_datafinal [sendmail-timeout-datafinal]",
                 "smarthost.relay.sendmail : Gather the facts that select the platform's variables"),
    "qmail": ({"qmail_timeoutremote": 600}, "qmail_timeoutremote [qmail-timeoutremote]",
              "smarthost.relay.qmail : Gather the facts that select the platform's variables"),
    "exchange": ({"exchange_max_message_size": "35 megabytes"}, "exchange_max_message_size [exchange-max-message-size]",
                 "smarthost.relay.exchange : Point the send connector at the relay"),
}
ROLES_PLAY = """
- name: A play of the caller's own that applies the role
  hosts: all
  gather_facts: {gather_facts}
  roles:
    - role: smarthost.relay.{mta}
"""
INCLUDE_ROLE_PLAY = """
- name: A play of the caller's own that includes each host's MTA role among its tasks
  hosts: all
  gather_facts: false
  tasks:
""" + "".join("""
    - name: Point the {mta} hosts at the relay
      ansible.builtin.include_role:
        name: smarthost.relay.{mta}
      when: caller_mta == '{mta}'
""".format(mta=mta) for mta in ROLES)


def write_run(tmp, name, play, mtas):
    """A playbook and an inventory of a bad and a good host per role in ``mtas``, on a closed loopback port."""
    port = closed_loopback_port()
    hosts = {}
    for mta in mtas:
        for kind, extra in (("bad", ROLES[mta][0]), ("good", {})):
            hosts["%s-%s" % (mta, kind)] = dict(
                CATALOGUE["base"], caller_mta=mta, ansible_host="127.0.0.1", ansible_port=port,
                ansible_connection="ssh", ansible_user="nobody", ansible_ssh_timeout=3,
                ansible_python_interpreter="/usr/bin/python3", **extra)
    (tmp / ("%s.yml" % name)).write_text(play)
    (tmp / ("%s-hosts.yml" % name)).write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return tmp / ("%s.yml" % name), tmp / ("%s-hosts.yml" % name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{run name: (run, per_host, stats)}: the roles: form per role (a play whose every host fails ends the
    playbook, so one run each), the include_role form for all roles at once, and one play gathering facts."""
    tmp = tmp_path_factory.mktemp("role-refusal")
    jobs = {"roles-" + mta: (ROLES_PLAY.format(gather_facts="false", mta=mta), [mta]) for mta in ROLES}
    jobs["include_role"] = (INCLUDE_ROLE_PLAY, list(ROLES))
    jobs["gather-facts"] = (ROLES_PLAY.format(gather_facts="true", mta="postfix"), ["postfix"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_playbook, tmp, name, *job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def run_playbook(tmp, name, play, mtas):
    playbook, inventory = write_run(tmp, name, play, mtas)
    return run_json(playbook, inventory, tmp / name)


def first_stop(per_host, host):
    """(task name, result) of the host's first failed or unreachable task, and the names of the tasks before it."""
    before = []
    for name, result in per_host[host]:
        if result.get("failed") or result.get("unreachable"):
            return (name, result), before
        before.append(name)
    raise AssertionError("%s never stopped" % host)


def check_refused_without_contact(per_host, stats, mta):
    host = "%s-bad" % mta
    (name, result), dummy = first_stop(per_host, host)
    assert "smarthost.relay.%s : Check the" % mta in name, (host, name)
    assert "- %s: " % ROLES[mta][1] in result["msg"], (host, result["msg"])
    assert stats[host]["unreachable"] == 0 and stats[host]["failures"] == 1, (host, stats[host])
    assert not [r for dummy2, r in per_host[host] if r.get("unreachable")], host


def check_reaches_the_host_after_the_checks(per_host, stats, mta):
    host = "%s-good" % mta
    (name, result), before = first_stop(per_host, host)
    assert name == ROLES[mta][2] and result.get("unreachable"), (host, name, result.get("msg"))
    assert any(task.startswith("smarthost.relay.%s : Check the" % mta) for task in before), (host, before)
    assert "smarthost.relay.relay : Check the relay settings against the relay service's rules" in before, host
    assert stats[host]["unreachable"] == 1, (host, stats[host])


@pytest.mark.parametrize("mta", list(ROLES))
def test_roles_form_refuses_before_contacting_the_host(runs, mta):
    run, per_host, stats = runs["roles-" + mta]
    assert run.returncode != 0
    check_refused_without_contact(per_host, stats, mta)
    check_reaches_the_host_after_the_checks(per_host, stats, mta)
    assert "correct-horse-battery" not in run.stdout + run.stderr


@pytest.mark.parametrize("mta", list(ROLES))
def test_include_role_form_refuses_before_contacting_the_host(runs, mta):
    run, per_host, stats = runs["include_role"]
    assert run.returncode != 0
    check_refused_without_contact(per_host, stats, mta)
    check_reaches_the_host_after_the_checks(per_host, stats, mta)


def test_the_callers_own_gather_facts_contacts_the_host_before_the_role(runs):
    dummy, per_host, stats = runs["gather-facts"]
    for host in ("postfix-bad", "postfix-good"):
        (name, result), before = first_stop(per_host, host)
        assert name == "Gathering Facts" and result.get("unreachable") and before == [], (host, name)
        assert not failures(per_host, host), host  # the bad setting was never checked
        assert stats[host]["unreachable"] == 1, (host, stats[host])


def test_docs_name_the_cost_of_gather_facts():
    quickstart = (Path(__file__).resolve().parents[2] / "docs" / "quickstart.md").read_text(encoding="utf-8")
    assert "gather_facts: true" in quickstart and "gather_facts: false" in quickstart
