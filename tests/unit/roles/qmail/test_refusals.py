# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad settings are refused before the host is touched, with a message that says why and what to use.

Every case is a host at 127.0.0.1 on a loopback port where nothing listens: a task that contacted it would make it
UNREACHABLE instead of being rescued. The "good" case proves the point: valid settings go on to the host and it is unreachable.
"""

from __future__ import annotations

import re
import socket

import pytest


def closed_loopback_port():
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


BASE = {
    "ansible_host": "127.0.0.1",
    "ansible_port": closed_loopback_port(),
    "ansible_connection": "ssh",
    "ansible_ssh_timeout": 3,
    "ansible_python_interpreter": "/usr/bin/python3",
    "relay_host": "relay.example.com",
    "relay_domains": ["example.com"],
    "relay_helo_name": "mail.example.com",
    "relay_allowlist": ["198.51.100.0/24"],
}

# TLS without stunnel is refused only with the relay guard (which speaks TLS itself) off.
GUARD_OFF = {"qmail_limit_replies_retry": False, "qmail_relay_refusals_retry": False}

CASES = {
    "tls-without-client": (dict(GUARD_OFF, relay_tls="required", qmail_starttls_client=False),
                           ["relay_tls=required needs TLS", "qmail_starttls_client is false",
                            "relay_tls: none (or opportunistic) on port 25", "relay_helo_name"]),
    "implicit-without-client": (dict(GUARD_OFF, relay_tls="implicit", qmail_starttls_client=False),
                                ["relay_tls=implicit needs TLS", "qmail_starttls_client: true", "TLS to the relay on 465"]),
    "auth": ({"relay_auth": True, "relay_auth_username": "relay@example.com", "relay_auth_password": "Secret-pw-1"},
             ["relay_auth=true cannot work with qmail", "no SMTP AUTH", "relay_allowlist", "relay_helo_name"]),
    "timeoutremote-low": ({"qmail_timeoutremote": 600}, ["qmail_timeoutremote is 600", "at least 900 seconds"]),
    "timeoutsmtpd-low": ({"qmail_timeoutsmtpd": 300}, ["qmail_timeoutsmtpd is 300", "at least 900 seconds"]),
    "malformed-route": ({"qmail_internal_routes": ["corp.example.com:mail.corp.example.com", "bad domain:x.example.com"]},
                        ["qmail_internal_routes[1]", "is not a domain"]),
    "route-without-colon": ({"qmail_internal_routes": ["corp.example.com"]},
                            ["qmail_internal_routes[0]", "has no colon"]),
    "duplicate-route": ({"qmail_internal_routes": ["corp.example.com:a.example.net", {"domain": "CORP.example.com",
                                                                                      "relay": "b.example.net"}]},
                        ["two routes for", "qmail-remote would use only one"]),
    "keep-catch-all": ({"qmail_keep_routes": [""]}, ["qmail_keep_routes[0]", "catch-all"]),
    "public-stunnel": ({"qmail_stunnel_address": "0.0.0.0"}, ["qmail_stunnel_address (0.0.0.0)", "IPv4 loopback address"]),
    "command-without-argv": ({"qmail_supervisor": "command"}, ["qmail_supervisor is command", "qmail_restart_command must be given"]),
    "relative-dir": ({"qmail_dir": "var/qmail"}, ["qmail_dir (var/qmail)", "absolute paths"]),
    "unknown-supervisor": ({"qmail_supervisor": "runit"}, ["qmail_supervisor", "must be one of"]),
    "local-name-is-customer-domain": ({"qmail_local_sender_domains": ["mx1.corp.test", "Example.com."]},
                                      ["qmail_local_sender_domains", "never one of relay_domains",
                                       "these are or cover one: example.com"]),
    "local-name-covers-customer-domain": ({"qmail_local_sender_domains": [".com"]},
                                          ["these are or cover one: .com"]),
    "local-name-malformed": ({"qmail_local_sender_domains": ["bad name"]}, ["qmail_local_sender_domains", "host names"]),
    "defaulthost-malformed": ({"qmail_defaulthost": "root@example.com"},
                              ["qmail_defaulthost (\"root@example.com\")", "host or domain name"]),
    "relay-rule": ({"relay_tls": "none", "relay_port": 587, "relay_allowlist": [], "relay_null_sender": True},
                   ["relay_allowlist"]),
}

PLAYBOOK = [{
    "name": "Each case in its own host",
    "hosts": "cases",
    "gather_facts": False,
    "tasks": [{
        "name": "Run the role",
        "block": [{"name": "Include smarthost.relay.qmail", "ansible.builtin.include_role": {"name": "smarthost.relay.qmail"}}],
        "rescue": [{"name": "Report the refusal",
                    "ansible.builtin.debug": {"msg": "REFUSED {{ inventory_hostname }}: {{ ansible_failed_result.msg }}"}}],
    }],
}]


def refusals(output):
    """host -> its refusal message (whitespace folded, JSON escapes of the default callback undone)."""
    found = {}
    for match in re.finditer(r'"msg": "REFUSED ([a-z-]+): (.*?)"\n', output, re.S):
        found[match.group(1)] = " ".join(match.group(2).replace('\\"', '"').replace("\\n", " ").split())
    return found


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_refused_before_the_host_is_touched(playbook_runner, check_mode):
    hosts = {name: dict(BASE, **values) for name, (values, dummy) in CASES.items()}
    hosts["good"] = dict(BASE)
    result = playbook_runner(PLAYBOOK, {"all": {"children": {"cases": {"hosts": hosts}}}}, check=check_mode)
    out = result.stdout
    found = refusals(out)
    for name, (dummy, expected) in CASES.items():
        assert name in found, "%s was not refused:\n%s" % (name, out[-4000:])
        for text in expected:
            assert text in found[name], "%s: %r not in %r" % (name, text, found[name])
        assert re.search(r"^%s\s+: .*unreachable=0 " % re.escape(name), out, re.M), name
    # valid settings pass every check and only then reach for the host, which never answers
    assert "good" not in found
    assert re.search(r"^good\s+: .*unreachable=1 ", out, re.M), out[-3000:]
    assert "Secret-pw-1" not in out
