# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smarthost.relay.plugins.filter.qmail_route import FilterModule, qmail_route

# The table docs/qmail.md gives for this file; keep both in step.
SMTPROUTES = """# internal domains first, the relay last
corp.example.com:mail.corp.example.com
.corp.example.com:mail.corp.example.com
.legacy.example.com:
lists.example.com:lists.corp.example.com:2526
:127.0.0.1:2525
"""
TABLE = [
    ("alice@corp.example.com", "exact", "corp.example.com", "mail.corp.example.com", 25),
    ("bob@eu.corp.example.com", "suffix", ".corp.example.com", "mail.corp.example.com", 25),
    ("carol@a.b.corp.example.com", "suffix", ".corp.example.com", "mail.corp.example.com", 25),
    ("dave@legacy.example.com", "catch-all", "", "127.0.0.1", 2525),
    ("erin@old.legacy.example.com", "suffix", ".legacy.example.com", None, 25),
    ("frank@Lists.Example.COM", "exact", "lists.example.com", "lists.corp.example.com", 2526),
    ("grace@example.com", "catch-all", "", "127.0.0.1", 2525),
    ("heidi@example.net", "catch-all", "", "127.0.0.1", 2525),
]


def test_registered():
    assert FilterModule().filters() == {"qmail_route": qmail_route}


def test_resolve_text_table():
    out = qmail_route(SMTPROUTES, addresses=[row[0] for row in TABLE])
    assert out["text"] == SMTPROUTES
    got = [(r["input"], r["rule"], r["domain"], r["relay"], r["port"]) for r in out["resolved"]]
    assert got == TABLE
    assert out["resolved"][4]["mx"] is True
    assert len(out["routes"]) == 5 and out["routes"][-1]["catch_all"] is True


def test_plan_from_list():
    out = qmail_route(["corp.example.com:mail.corp.example.com", {"domain": ".corp.example.com", "relay": "mail.corp.example.com"}],
                      catchall={"relay": "127.0.0.1", "port": 2525},
                      existing="lists.example.com:lists.corp.example.com:2526\n:smtp-relay.gmail.com:25\n",
                      keep=["lists.example.com"], header=["managed"], addresses=["x@example.net", "y@corp.example.com"])
    assert out["text"] == ("# managed\ncorp.example.com:mail.corp.example.com\n.corp.example.com:mail.corp.example.com\n"
                           "lists.example.com:lists.corp.example.com:2526\n:127.0.0.1:2525\n")
    assert out["dropped"] == [":smtp-relay.gmail.com:25"]
    assert [r["rule"] for r in out["resolved"]] == ["catch-all", "exact"]


def test_errors_name_the_variable():
    with pytest.raises(AnsibleFilterError,
                       match=r"^qmail_route: \[smtproutes-domain\] qmail_internal_routes\[0\]: .* is not a domain .*fix:"):
        qmail_route(["bad domain:r.example.net"], variable="qmail_internal_routes")
    with pytest.raises(AnsibleFilterError, match=r"qmail_keep_routes\[0\]"):
        qmail_route([], existing=":x\n", keep=[""], keep_variable="qmail_keep_routes")


@pytest.mark.parametrize("value, kwargs, match", [
    (42, {}, "smtproutes text or a list"),
    ("x:y\n", {"keep": ["x"]}, "only apply when the input is a list"),
    ("x:y\n", {"catchall": "r:25"}, "only apply when the input is a list"),
    ([], {"addresses": ["user@"]}, "no domain"),
    ([], {"addresses": "not-a-list"}, None),
])
def test_bad_arguments(value, kwargs, match):
    if match is None:
        # a string is accepted as a one-element list by the argument spec
        assert qmail_route(value, **kwargs)["resolved"][0]["rule"] == "none"
        return
    with pytest.raises(AnsibleFilterError, match=match):
        qmail_route(value, **kwargs)
