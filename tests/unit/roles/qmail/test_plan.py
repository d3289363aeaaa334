# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role's own plan (tasks/plan.yml, vars/main.yml) for a matrix of settings: every control file byte for byte,
which files change, which are written, and the restart command for each supervisor.

ansible-playbook runs the real task file on the controller (connection local, nothing on a host changes), with
relay_settings and the probe's findings (__qmail_current, __qmail_detected) given per case.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import sys

import pytest

from qmail_role_helpers import ROLE, ROOT, make_runner, role_defaults, role_vars_of

from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import check_profile
from ansible_collections.smarthost.relay.plugins.module_utils._relay.replies import retry_rules

HEADER = ("# Written by Ansible (smarthost.relay.qmail): internal domains first, the relay (catch-all) last.\n"
          "# qmail-remote tries the recipient's host, then its .suffixes (longest first), then the empty domain.\n")
OK = "root:qmail:644"


def relay(**changes):
    settings = {"host": "smtp-relay.gmail.com", "port": 587, "tls": "required", "tls_verify": True, "tls_ca_file": None,
                "auth": False, "helo_name": None, "customer_domain": "example.com", "throttles": None,
                "domains": ["example.com"], "allowed_senders": "domain_addresses",
                # the relay role's default decision for local accounts' mail (domain_addresses): the customer domain
                "local_senders": {"rewrite": "masquerade", "domain": "example.com", "address": None},
                "retry_replies": retry_rules()}
    settings.update(changes)
    return settings


def checked_relay(**profile):
    """relay_settings as the relay role publishes them: the rule engine's normalized profile."""
    base = {"host": "smtp-relay.gmail.com", "tls": "required", "domains": ["example.com", "example.org"],
            "allowlist": ["203.0.113.25/32"], "helo_name": "mail.example.com"}
    base.update(profile)
    report = check_profile(base)
    assert report.ok, report.format()
    return report.normalized


def found(files=None, **detected):
    """The probe's findings: control files (name -> content, all root:qmail 0644) and other detections."""
    files = files or {}
    result = {"control_dir": "/var/qmail/control", "group": "qmail"}
    for name in files:
        result["stat." + name] = detected.pop("stat_" + name, OK)
    result.update(detected)
    return {"__qmail_current": files, "__qmail_detected": result}


# The cases below are the routes without the relay guard (qmail_limit_replies_retry, qmail_relay_refusals_retry
# false); "relay-guard" is the role's default.
GUARD_OFF = {"qmail_limit_replies_retry": False, "qmail_relay_refusals_retry": False}

# control/defaulthost as the default (domain_addresses, qmail_rewrite_local_senders) writes it: the customer's domain.
DH = "example.com\n"

# case -> (variables, expected files (name -> bytes), changing, written)
CASES = {
    # the default: the catch-all goes to the relay guard on loopback, whatever the TLS setting; no stunnel
    "relay-guard": (
        dict(relay_settings=relay(helo_name="mail.example.com"), qmail_limit_replies_retry=True, **found()),
        {"smtproutes": HEADER + ":127.0.0.1:24\n", "timeoutremote": "1200\n", "helohost": "mail.example.com\n",
         "defaulthost": DH},
        ["smtproutes", "timeoutremote", "helohost", "defaulthost"],
        ["smtproutes", "timeoutremote", "helohost", "defaulthost"]),
    # the service document's line, nothing else: relay_tls none on port 25, no HELO rule to satisfy
    "catch-all-only": (
        dict(relay_settings=relay(port=25, tls="none", tls_verify=False), **found()),
        {"smtproutes": HEADER + ":smtp-relay.gmail.com:25\n", "timeoutremote": "1200\n", "defaulthost": DH},
        ["smtproutes", "timeoutremote", "defaulthost"], ["smtproutes", "timeoutremote", "defaulthost"]),
    # TLS required: the catch-all goes to the local STARTTLS client; HELO and concurrency from the relay settings
    "starttls-client": (
        dict(relay_settings=relay(helo_name="mail.example.com", throttles={"concurrency": 3}), **found()),
        {"smtproutes": HEADER + ":127.0.0.1:2525\n", "timeoutremote": "1200\n", "helohost": "mail.example.com\n",
         "concurrencyremote": "3\n", "defaulthost": DH},
        ["smtproutes", "timeoutremote", "helohost", "concurrencyremote", "defaulthost"],
        ["smtproutes", "timeoutremote", "helohost", "concurrencyremote", "defaulthost"]),
    "implicit-other-port": (
        dict(relay_settings=relay(port=465, tls="implicit", tls_ca_file="/etc/ssl/private-ca.pem"),
             qmail_stunnel_address="127.0.0.2", qmail_stunnel_port=4650, **found()),
        {"smtproutes": HEADER + ":127.0.0.2:4650\n", "timeoutremote": "1200\n", "defaulthost": DH}, None, None),
    "starttls-no-verify": (
        dict(relay_settings=relay(tls_verify=False), **found()),
        {"smtproutes": HEADER + ":127.0.0.1:2525\n", "timeoutremote": "1200\n", "defaulthost": DH}, None, None),
    # internal, .domain and MX routes first, kept routes next (as written), the catch-all last; me and
    # timeoutsmtpd (600, below the document's 900, raised to 1200); timeoutremote already right: not written
    "routes-kept": (
        dict(relay_settings=relay(port=25, tls="opportunistic", tls_verify=False, helo_name="mail.example.com"),
             qmail_internal_routes=["corp.example.com:mail.corp.example.com",
                                    {"domain": ".corp.example.com", "relay": "mail.corp.example.com", "port": 2526},
                                    {"domain": "legacy.example.com"}],
             qmail_keep_routes=["lists.example.com", ".Partner.example.org", "gone.example.com"],
             qmail_me="mx.example.com",
             **found({"smtproutes": "# by hand\nlists.example.com:lists-mx.example.com:2527\n"
                                    ".partner.example.org:gw.partner.example.org\nold.example.com:old\n:old-relay\n",
                      "timeoutremote": "1200\n", "timeoutsmtpd": "600\n", "helohost": "old.example.net\n",
                      "defaulthost": DH})),
        {"smtproutes": HEADER + "corp.example.com:mail.corp.example.com\n.corp.example.com:mail.corp.example.com:2526\n"
                                "legacy.example.com:\nlists.example.com:lists-mx.example.com:2527\n"
                                ".partner.example.org:gw.partner.example.org\n:smtp-relay.gmail.com:25\n",
         "timeoutremote": "1200\n", "helohost": "mail.example.com\n", "me": "mx.example.com\n", "timeoutsmtpd": "1200\n",
         "defaulthost": DH},
        ["smtproutes", "helohost", "me", "timeoutsmtpd"], ["smtproutes", "helohost", "me", "timeoutsmtpd"]),
    # timeoutsmtpd at 900 or more, or unreadable as a number (qmail then uses its default 1200): left alone
    "timeoutsmtpd-900-left": (
        dict(relay_settings=relay(port=25, tls="none"), **found({"timeoutsmtpd": "900\n"})),
        {"smtproutes": HEADER + ":smtp-relay.gmail.com:25\n", "timeoutremote": "1200\n", "defaulthost": DH},
        None, None),
    "timeoutsmtpd-garbage-left": (
        dict(relay_settings=relay(port=25, tls="none"), **found({"timeoutsmtpd": "soon\n"})),
        {"smtproutes": HEADER + ":smtp-relay.gmail.com:25\n", "timeoutremote": "1200\n", "defaulthost": DH},
        None, None),
    "timeoutsmtpd-explicit": (
        dict(relay_settings=relay(port=25, tls="none"), qmail_timeoutsmtpd=1800, qmail_timeoutremote=900,
             **found({"timeoutsmtpd": "900\n"})),
        {"smtproutes": HEADER + ":smtp-relay.gmail.com:25\n", "timeoutremote": "900\n", "timeoutsmtpd": "1800\n",
         "defaulthost": DH},
        None, None),
    # an explicit concurrency wins over the one derived from licences
    "concurrency-explicit": (
        dict(relay_settings=relay(port=25, tls="none", throttles={"concurrency": 2}), qmail_concurrencyremote=50, **found()),
        {"smtproutes": HEADER + ":smtp-relay.gmail.com:25\n", "timeoutremote": "1200\n", "concurrencyremote": "50\n",
         "defaulthost": DH},
        None, None),
    # everything already right: nothing changes, nothing is written (no round trip to the host)
    "idempotent": (
        dict(relay_settings=relay(port=25, tls="none"),
             **found({"smtproutes": HEADER + ":smtp-relay.gmail.com:25\n", "timeoutremote": "1200\n",
                      "defaulthost": DH})),
        {"smtproutes": HEADER + ":smtp-relay.gmail.com:25\n", "timeoutremote": "1200\n", "defaulthost": DH}, [], []),
    # right content, wrong owner or mode: written again, but nothing changes for qmail (no backup, no restart)
    "permissions-only": (
        dict(relay_settings=relay(port=25, tls="none"),
             **found({"smtproutes": HEADER + ":smtp-relay.gmail.com:25\n", "timeoutremote": "1200\n",
                      "defaulthost": DH}, stat_smtproutes="root:root:600", stat_defaulthost="root:root:644")),
        {"smtproutes": HEADER + ":smtp-relay.gmail.com:25\n", "timeoutremote": "1200\n", "defaulthost": DH},
        [], ["smtproutes", "defaulthost"]),
}

# --- mail from local accounts (qmail_rewrite_local_senders): control/defaulthost and the guard's local_senders ---
# The host as the facts describe it, and control/me as the probe found it.
MX1 = {"fqdn": "mx1.example.com", "hostname": "mx1"}
ME = {"me": "mx1.example.com\n"}
# The names the guard treats as local: the FQDN, the short name, control/me, localhost and (.name) every name below
# localhost and localdomain.
HOST_NAMES = ["mx1.example.com", "mx1", "localhost", "localhost.localdomain", ".localhost", "localdomain",
              ".localdomain"]
DOMAIN_MODE = {"domains": HOST_NAMES, "rewrite_to": "domain", "domain": "example.com"}
ADDRESS_MODE = {"domains": HOST_NAMES, "rewrite_to": "address", "address": "alerts@example.com"}


def _without_local_senders(**changes):
    """relay_settings of a relay role that does not publish local_senders: the qmail role reads relay_local_sender."""
    settings = relay(**changes)
    del settings["local_senders"]
    return settings


# case -> (variables, facts, control/defaulthost (None: not written), the guard's local_senders ("off": no guard))
LOCAL = {
    # domain_addresses (the default): qmail-inject makes root root@example.com; the guard moves the host's names there
    "domain-addresses": (dict(relay_settings=checked_relay(), **found(ME)), MX1, "example.com\n", DOMAIN_MODE),
    # registered_users with relay_local_sender: defaulthost stays a local name (qmail's me), which the guard maps to
    # the registered sender
    "registered-users": (
        dict(relay_settings=checked_relay(allowed_senders="registered_users", local_sender="alerts@example.com"),
             **found(ME)),
        MX1, "mx1.example.com\n", ADDRESS_MODE),
    "registered-users-from-variable": (
        dict(relay_settings=_without_local_senders(allowed_senders="registered_users"),
             relay_local_sender="alerts@example.com", **found(ME)),
        MX1, "mx1.example.com\n", ADDRESS_MODE),
    # control/me is one of the customer's domains: never a local name, so defaulthost is the FQDN
    "registered-users-me-in-customer-domain": (
        dict(relay_settings=checked_relay(allowed_senders="registered_users", local_sender="alerts@example.com"),
             **found({"me": "example.com\n"})),
        MX1, "mx1.example.com\n", dict(ADDRESS_MODE, domains=HOST_NAMES)),
    # any_address: the relay takes every sender; nothing to do
    "any-address": (dict(relay_settings=checked_relay(allowed_senders="any_address"), **found(ME)), MX1, None, None),
    # the switch off: defaulthost left as it is (here an earlier value), no rewriting in the guard
    "switch-off": (
        dict(relay_settings=checked_relay(), qmail_rewrite_local_senders=False,
             **found(dict(ME, defaulthost="mx1.example.com\n"))),
        MX1, None, None),
    # an earlier defaulthost (the host's name): replaced by the customer's domain
    "defaulthost-earlier": (
        dict(relay_settings=checked_relay(), **found(dict(ME, defaulthost="mx1.example.com\n"))),
        MX1, "example.com\n", DOMAIN_MODE),
    # an explicit defaulthost (keeps plain "root" recipients local); the guard still masquerades the senders
    "defaulthost-explicit": (
        dict(relay_settings=checked_relay(), qmail_defaulthost="mx1.example.com", **found(ME)),
        MX1, "mx1.example.com\n", DOMAIN_MODE),
    # further names; a host whose FQDN is one of the customer's domains: that name is never local
    "extra-names-customer-fqdn": (
        dict(relay_settings=checked_relay(), qmail_local_sender_domains=["WWW.mx1.example.net.", ".internal.test"],
             **found()),
        {"fqdn": "example.org", "hostname": "example"}, "example.com\n",
        dict(DOMAIN_MODE, domains=["example", "localhost", "localhost.localdomain", ".localhost", "localdomain",
                                   ".localdomain", "www.mx1.example.net", ".internal.test"])),
    # without the guard: qmail-inject's defaulthost only (relay_local_sender cannot be applied: not written)
    "domain-guard-off": (dict(GUARD_OFF, relay_settings=checked_relay(), **found(ME)), MX1, "example.com\n", "off"),
    "registered-guard-off": (
        dict(GUARD_OFF, relay_settings=checked_relay(allowed_senders="registered_users",
                                                     local_sender="alerts@example.com"), **found(ME)),
        MX1, None, "off"),
}

# case -> (variables, expected supervisor, expected argv)
RESTARTS = {
    "auto-daemontools": ({"__qmail_detected": {"svc": "/usr/local/bin/svc", "service_dir": "/etc/service",
                                               "qmailctl": "/var/qmail/bin/qmailctl", "systemd_unit": "qmail.service"}},
                         "daemontools", ["/usr/local/bin/svc", "-t", "/etc/service/qmail-send"]),
    "auto-svc-without-service": ({"__qmail_detected": {"svc": "/usr/bin/svc", "qmailctl": "/usr/bin/qmailctl"}},
                                 "qmailctl", ["/usr/bin/qmailctl", "restart"]),
    "auto-qmailctl": ({"__qmail_detected": {"qmailctl": "/var/qmail/bin/qmailctl"}},
                      "qmailctl", ["/var/qmail/bin/qmailctl", "restart"]),
    "auto-systemd": ({"__qmail_detected": {"systemd_unit": "qmail-send.service"}},
                     "systemd", ["systemctl", "restart", "qmail-send.service"]),
    "auto-nothing": ({"__qmail_detected": {}}, "none", []),
    "named-daemontools": ({"qmail_supervisor": "daemontools", "__qmail_detected": {}},
                          "daemontools", ["svc", "-t", "/service/qmail-send"]),
    "named-daemontools-dir": ({"qmail_supervisor": "daemontools", "qmail_service_dir": "/var/service",
                               "__qmail_detected": {"svc": "/command/svc"}},
                              "daemontools", ["/command/svc", "-t", "/var/service/qmail-send"]),
    "named-qmailctl": ({"qmail_supervisor": "qmailctl", "qmail_dir": "/opt/qmail", "__qmail_detected": {}},
                       "qmailctl", ["/opt/qmail/bin/qmailctl", "restart"]),
    "named-systemd-unit": ({"qmail_supervisor": "systemd", "qmail_systemd_unit": "notqmail.service",
                            "__qmail_detected": {}}, "systemd", ["systemctl", "restart", "notqmail.service"]),
    "command": ({"qmail_supervisor": "command", "qmail_restart_command": ["/usr/local/sbin/mail-restart", "--soft"],
                 "__qmail_detected": {"svc": "/usr/bin/svc", "service_dir": "/service"}},
                "command", ["/usr/local/sbin/mail-restart", "--soft"]),
    "none": ({"qmail_supervisor": "none", "__qmail_detected": {"svc": "/usr/bin/svc", "service_dir": "/service"}},
             "none", []),
}


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """Run the role's plan.yml for every case at once; case name -> what the role computed."""
    runner = make_runner(tmp_path_factory.mktemp("runner"))
    hosts = {}
    for name, (variables, dummy, dummy2, dummy3) in CASES.items():
        hosts["plan-" + name] = dict(role_defaults(), **dict(GUARD_OFF, **variables))
    for name, (variables, dummy, dummy2) in RESTARTS.items():
        base = dict(role_defaults(), relay_settings=relay(), **GUARD_OFF, **found())
        base.update(variables)
        hosts["restart-" + name] = base
    for name, (variables, facts, dummy, dummy2) in LOCAL.items():
        hosts["plan-local-" + name] = dict(role_defaults(), __test_facts=facts, **variables)
    for host in hosts.values():
        host.update(ansible_connection="local", ansible_python_interpreter=os.environ.get("PYTHON", "python3"))
    guard_role = os.path.join(ROOT, "roles", "relay_guard")
    playbook = [{
        "name": "The role's plan, per case",
        "hosts": "cases",
        "gather_facts": False,
        "vars_files": [os.path.join(ROLE, "vars", "main.yml"), os.path.join(ROLE, "vars", "Debian.yml"),
                       os.path.join(guard_role, "defaults", "main.yml")],
        "vars": {"role_templates": os.path.join(ROLE, "templates"),
                 "guard_templates": os.path.join(guard_role, "templates"),
                 # what the role hands the relay guard role (configure.yml), rendered with the guard's own template
                 "__test_guard_vars": role_vars_of("qmail", "configure.yml", "Run the relay guard that qmail sends through")},
        "tasks": [
            {"name": "The host's names", "qmail_test_facts": {"facts": "{{ __test_facts }}"},
             "when": "__test_facts is defined"},
            {"name": "Plan", "ansible.builtin.import_tasks": os.path.join(ROLE, "tasks", "plan.yml"),
             "when": "inventory_hostname is match('plan-')"},
            {"name": "Show what was planned",
             "ansible.builtin.debug": {
                 "msg": "PLANNED {{ inventory_hostname }} {{ {'files': __qmail_files | default(none),"
                        " 'changing': __qmail_changing | default(none), 'writes': __qmail_writes | default(none),"
                        " 'supervisor': __qmail_supervisor, 'argv': __qmail_restart_argv,"
                        " 'stunnel': lookup('ansible.builtin.template', role_templates ~ '/stunnel.conf.j2')"
                        " if __qmail_stunnel_on | bool else none,"
                        " 'guard': lookup('ansible.builtin.template', guard_templates ~ '/guard.json.j2',"
                        " template_vars=__test_guard_vars) if __qmail_guard_on | bool else none} | to_json | b64encode }}"}},
        ],
    }]
    result = runner(playbook, {"all": {"children": {"cases": {"hosts": hosts}}}})
    assert result.returncode == 0, "\n".join(line[:2000] for line in result.stdout.splitlines()
                                             if line.startswith(("fatal:", "[ERROR]", "ERROR!"))) or result.stdout[-5000:]
    planned = {host: json.loads(base64.b64decode(data)) for host, data in re.findall(r"PLANNED (\S+) ([A-Za-z0-9+/=]+)", result.stdout)}
    assert sorted(planned) == sorted(hosts)
    return planned


@pytest.mark.parametrize("case", sorted(CASES))
def test_control_files_byte_for_byte(planned, case):
    dummy, expected, changing, writes = CASES[case]
    got = planned["plan-" + case]
    assert {f["name"]: f["content"] for f in got["files"]} == expected
    assert got["files"][0]["name"] == "smtproutes"
    if changing is not None:
        assert sorted(got["changing"]) == sorted(changing)
        assert sorted(got["writes"]) == sorted(writes)


@pytest.mark.parametrize("case", sorted(RESTARTS))
def test_restart_command(planned, case):
    dummy, supervisor, argv = RESTARTS[case]
    got = planned["restart-" + case]
    assert (got["supervisor"], got["argv"]) == (supervisor, argv)


def _guard_module():
    path = os.path.join(ROOT, "roles", "relay_guard", "files", "smarthost_relay_guard.py")
    module = sys.modules.get("smarthost_relay_guard")
    if module is None:
        spec = importlib.util.spec_from_file_location("smarthost_relay_guard", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        try:
            spec.loader.exec_module(module)
        finally:
            sys.dont_write_bytecode = writes_bytecode
    return module


@pytest.mark.parametrize("case", sorted(LOCAL))
def test_local_senders_defaulthost_and_guard(planned, case):
    """control/defaulthost and the guard's local_senders, as the role plans them and the guard's template writes
    them; the guard's own configuration check takes what the template wrote."""
    dummy, dummy2, defaulthost, local_senders = LOCAL[case]
    got = planned["plan-local-" + case]
    files = {f["name"]: f["content"] for f in got["files"]}
    assert files.get("defaulthost") == defaulthost
    if local_senders == "off":
        assert got["guard"] is None
        return
    config = json.loads(got["guard"])
    assert config["local_senders"] == local_senders
    config["user"] = None  # the guard's system user does not exist here
    checked = _guard_module().validate_config(config)["local_senders"]
    if local_senders is not None:
        assert checked == dict({"domain": None, "address": None}, **local_senders)


def test_local_senders_defaulthost_is_a_managed_file(planned):
    """defaulthost changes like the other control files: new or different content is backed up (when it existed),
    written and makes qmail restart; with the switch off the current file is not touched."""
    assert "defaulthost" in planned["plan-local-domain-addresses"]["changing"]
    earlier = planned["plan-local-defaulthost-earlier"]
    assert "defaulthost" in earlier["changing"] and "defaulthost" in earlier["writes"]
    assert "defaulthost" not in planned["plan-local-switch-off"]["writes"]


STUNNEL_HEAD = """\
; Written by Ansible (smarthost.relay.qmail). The local STARTTLS client for qmail-remote, which speaks no TLS:
; control/smtproutes sends all remote mail to 127.0.0.1:2525; stunnel carries each
"""
STUNNEL_GLOBAL = """\
; Run by systemd as stunnel@smarthost-relay.service (Debian's per-config-file unit template).
foreground = yes
syslog = no
debug = info
setuid = stunnel4
setgid = stunnel4

[smarthost-relay]
client = yes
; Loopback only: anything that can connect here sends through this server's allowlisted address.
accept = 127.0.0.1:2525
"""
STUNNEL = {
    # relay_tls required: STARTTLS on 587, verified against the system bundle; qmail's HELO kept by the relay
    "starttls-client": STUNNEL_HEAD + """\
; connection to smtp-relay.gmail.com:587 with STARTTLS, verifying the relay's certificate and name.
""" + STUNNEL_GLOBAL + """\
connect = smtp-relay.gmail.com:587
; Resolve the relay's name for every connection (its addresses change), not once at start.
delay = yes
; STARTTLS (RFC 3207): stunnel passes the relay's greeting on, says EHLO and STARTTLS itself, and hands the
; TLS session to qmail-remote, whose HELO (mail.example.com) is the one the relay keeps.
protocol = smtp
protocolHost = mail.example.com
sni = smtp-relay.gmail.com
sslVersionMin = TLSv1.2
verifyChain = yes
checkHost = smtp-relay.gmail.com
CAfile = /etc/ssl/certs/ca-certificates.crt
; qmail-remote's own limits: timeoutconnect (60 s) and timeoutremote (1200 s).
TIMEOUTconnect = 60
TIMEOUTbusy = 1200
""",
}


def test_stunnel_configuration_byte_for_byte(planned):
    assert planned["plan-starttls-client"]["stunnel"] == STUNNEL["starttls-client"]
    assert planned["plan-catch-all-only"]["stunnel"] is None


def test_stunnel_implicit_tls_and_own_ca(planned):
    conf = planned["plan-implicit-other-port"]["stunnel"]
    assert "accept = 127.0.0.2:4650\nconnect = smtp-relay.gmail.com:465\n" in conf
    assert "protocol" not in conf and "with TLS from the first byte" in conf
    assert "CAfile = /etc/ssl/private-ca.pem\n" in conf and "verifyChain = yes\n" in conf


def test_stunnel_without_verification(planned):
    conf = planned["plan-starttls-no-verify"]["stunnel"]
    assert "verifyChain = no\n" in conf and "checkHost" not in conf and "CAfile" not in conf
    # no HELO name set: stunnel's own EHLO uses the host's name (here no facts: localhost)
    assert "protocolHost = localhost\n" in conf
