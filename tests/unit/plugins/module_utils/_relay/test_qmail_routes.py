# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""qmail smtproutes: reading, resolving (qmail-remote's lookup order) and planning the role's file."""

from __future__ import annotations

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay.findings import RelayRuleError
from ansible_collections.smarthost.relay.plugins.module_utils._relay.qmail_routes import (
    Route,
    catch_all_route,
    host_of,
    lookup_keys,
    parse_smtproutes,
    plan_smtproutes,
    render,
    resolve,
    route_from_entry,
    split_route,
)

# The example of qmail-remote(8), plus an exact route and a port.
MANUAL = ".af.mil:\n:heaven.af.mil\ninside.af.mil:firewall.af.mil:26\n"


def routes_of(text):
    return parse_smtproutes(text)[0]


def where(text, target):
    found = resolve(routes_of(text), target)
    return found["rule"], found["domain"], found["relay"], found["port"], found["mx"]


# --- reading the file as qmail does -------------------------------------------------------------

def test_parse_skips_comments_blank_lines_and_trailing_blanks():
    routes, ignored, problems = parse_smtproutes("# a comment\n\n   \nexample.com:mx.example.com \t\n#x:y\n")
    assert [r.line for r in routes] == ["example.com:mx.example.com"]
    assert routes[0].lineno == 4 and not ignored and not problems


def test_parse_ignores_lines_without_colon():
    routes, ignored, dummy = parse_smtproutes("example.com\n:relay.example.net\n")
    assert [r.domain for r in routes] == [""]
    assert ignored == [{"lineno": 1, "line": "example.com", "reason": "no colon: qmail-remote ignores the line"}]


def test_parse_splits_relay_port_and_extra():
    route = routes_of("corp.example.com:mail.corp.example.com:587 user secret\n")[0]
    assert (route.domain, route.relay, route.port, route.extra) == ("corp.example.com", "mail.corp.example.com", 587, " user secret")
    assert split_route("relay") == ("relay", None, "")
    assert split_route("") == ("", None, "")
    assert split_route("relay:") == ("relay", 0, "")


def test_parse_reports_what_qmail_reads_differently():
    dummy, dummy2, problems = parse_smtproutes("a.example.com:r.example.com\r\n b.example.com:r.example.com\nc.example.com:r:\n")
    reasons = [p["reason"] for p in problems]
    assert "carriage return" in reasons[0]
    assert "blank inside the domain" in reasons[1]
    assert "port 0" in reasons[2]


def test_parse_empty_and_none():
    assert parse_smtproutes("") == ([], [], [])
    assert parse_smtproutes(None) == ([], [], [])
    with pytest.raises(RelayRuleError):
        parse_smtproutes(42)


def test_leading_blank_is_part_of_the_key_so_it_never_matches():
    assert where(" example.com:r.example.net\n", "u@example.com")[0] == "none"


# --- qmail-remote's lookup order ----------------------------------------------------------------

def test_lookup_keys_order():
    assert lookup_keys("a.b.example.com") == ["a.b.example.com", ".b.example.com", ".example.com", ".com", ""]
    assert lookup_keys("localhost") == ["localhost", ""]


@pytest.mark.parametrize("target, expected", [
    # the manual's example: .af.mil routes by MX, but not af.mil itself; everything else goes to heaven
    ("user@foo.af.mil", ("suffix", ".af.mil", None, 25, True)),
    ("user@a.b.af.mil", ("suffix", ".af.mil", None, 25, True)),
    ("user@af.mil", ("catch-all", "", "heaven.af.mil", 25, False)),
    ("user@example.org", ("catch-all", "", "heaven.af.mil", 25, False)),
    # an exact route beats the suffix route, whatever the order of the lines
    ("user@inside.af.mil", ("exact", "inside.af.mil", "firewall.af.mil", 26, False)),
    ("user@x.inside.af.mil", ("suffix", ".af.mil", None, 25, True)),
    # case does not matter
    ("User@INSIDE.AF.MIL", ("exact", "inside.af.mil", "firewall.af.mil", 26, False)),
    # a bare domain works like an address
    ("inside.af.mil", ("exact", "inside.af.mil", "firewall.af.mil", 26, False)),
    ("<user@inside.af.mil>", ("exact", "inside.af.mil", "firewall.af.mil", 26, False)),
])
def test_resolve_manual_example(target, expected):
    assert where(MANUAL, target) == expected


def test_order_of_lines_does_not_matter():
    reordered = "inside.af.mil:firewall.af.mil:26\n:heaven.af.mil\n.af.mil:\n"
    for target in ("u@foo.af.mil", "u@af.mil", "u@inside.af.mil", "u@example.org"):
        assert where(MANUAL, target) == where(reordered, target)


def test_longest_suffix_wins():
    text = ".example.com:outer.example.net\n.eu.example.com:inner.example.net\n"
    assert where(text, "u@x.eu.example.com")[:3] == ("suffix", ".eu.example.com", "inner.example.net")
    assert where(text, "u@x.us.example.com")[:3] == ("suffix", ".example.com", "outer.example.net")
    assert where(text, "u@eu.example.com")[:3] == ("suffix", ".example.com", "outer.example.net")
    assert where(text, "u@example.com")[0] == "none"


def test_no_route_means_mx():
    assert where("corp.example.com:mail.corp.example.com\n", "u@example.org") == ("none", None, None, 25, True)
    assert where("", "u@example.org") == ("none", None, None, 25, True)


def test_later_of_two_equal_keys_is_found():
    text = "example.com:first.example.net\nEXAMPLE.com:second.example.net\n"
    found = resolve(routes_of(text), "u@example.com")
    assert found["relay"] == "second.example.net" and found["lineno"] == 2


def test_host_is_after_the_last_at():
    assert host_of('"a@b"@Example.COM') == "example.com"
    assert host_of("example.com") == "example.com"
    for bad in ("", "user@", 3):
        with pytest.raises(RelayRuleError):
            host_of(bad)


def test_address_literal_host():
    text = "[192.0.2.1]:gw.example.net\n"
    assert where(text, "u@[192.0.2.1]")[:3] == ("exact", "[192.0.2.1]", "gw.example.net")


def test_catch_all_with_port():
    assert where(":smtp-relay.gmail.com:25\n", "u@example.net") == ("catch-all", "", "smtp-relay.gmail.com", 25, False)
    assert where(":127.0.0.1:2525\n", "u@example.net") == ("catch-all", "", "127.0.0.1", 2525, False)


# --- validated routes -----------------------------------------------------------------------------

@pytest.mark.parametrize("entry, line", [
    ("corp.example.com:mail.corp.example.com", "corp.example.com:mail.corp.example.com"),
    ("Corp.Example.COM.:Mail.Corp.Example.com:2525", "corp.example.com:mail.corp.example.com:2525"),
    (".corp.example.com:mail.corp.example.com", ".corp.example.com:mail.corp.example.com"),
    ("legacy.example.com:", "legacy.example.com:"),
    ({"domain": "corp.example.com", "relay": "10.1.2.3", "port": "26"}, "corp.example.com:10.1.2.3:26"),
    ({"domain": "corp.example.com", "relay": "[10.1.2.3]"}, "corp.example.com:[10.1.2.3]"),
    ({"domain": "corp.example.com"}, "corp.example.com:"),
    ({"domain": "bücher.example", "relay": "mx.bücher.example"}, "xn--bcher-kva.example:mx.xn--bcher-kva.example"),
    ({"domain": "localdomain", "relay": "localhost"}, "localdomain:localhost"),
])
def test_route_from_entry(entry, line):
    assert route_from_entry(entry).line == line


@pytest.mark.parametrize("entry, message", [
    (":relay.example.net", "catch-all"),
    ({"domain": "", "relay": "r.example.net"}, "catch-all"),
    ("corp.example.com", "no colon"),
    ("corp.example.com:r.example.net:", "ends in a colon"),
    ("corp.example.com:r.example.net:0", "port must be"),
    ("corp.example.com:r.example.net:65536", "port must be"),
    ("corp.example.com:r.example.net:smtp", "port must be"),
    ({"domain": "corp.example.com", "relay": "r.example.net", "port": True}, "port must be"),
    ({"domain": "corp.example.com", "port": 25}, "port without a relay"),
    ("corp example.com:r.example.net", "is not a domain"),
    ("..corp.example.com:r.example.net", "is not a domain"),
    ("#corp.example.com:r.example.net", "is not a domain"),
    ({"domain": 5, "relay": "r"}, "domain must be text"),
    ({"relay": "r.example.net"}, "domain is missing"),
    ({"domain": "corp.example.com", "host": "r.example.net"}, "unknown key"),
    ({"domain": "corp.example.com", "relay": "mail_1.example.com"}, "not a host name"),
    ({"domain": "corp.example.com", "relay": "2001:db8::1"}, "contains a colon"),
    ({"domain": "corp.example.com", "relay": 7}, "relay must be text"),
    ("a.example.com:r.example.net\nb.example.com:r.example.net", "one line"),
    (["corp.example.com", "r"], "a route is"),
])
def test_route_from_entry_refuses(entry, message):
    with pytest.raises(RelayRuleError) as err:
        route_from_entry(entry, "qmail_internal_routes[3]")
    assert message in err.value.message
    assert err.value.message.startswith("qmail_internal_routes[3]") or message == "a route is"
    assert err.value.fix


def test_catch_all_route():
    assert catch_all_route("smtp-relay.gmail.com:25").line == ":smtp-relay.gmail.com:25"
    assert catch_all_route({"relay": "127.0.0.1", "port": 2525}).line == ":127.0.0.1:2525"
    assert catch_all_route("relay.example.net").line == ":relay.example.net"
    for bad in ("", ":25", {"relay": "r", "host": "x"}, 5):
        with pytest.raises(RelayRuleError):
            catch_all_route(bad)


def test_render_header_and_lines():
    routes = [route_from_entry("corp.example.com:mail.corp.example.com"), catch_all_route("relay.example.net:25")]
    assert render(routes, ["# first", "second"]) == (
        "# first\n# second\ncorp.example.com:mail.corp.example.com\n:relay.example.net:25\n")
    assert render([]) == ""
    with pytest.raises(RelayRuleError):
        render(routes, ["two\nlines"])


def test_route_dict():
    route = Route("", "relay.example.net", 25, source="catch-all")
    assert route.as_dict() == {"domain": "", "relay": "relay.example.net", "port": 25, "extra": "", "line": ":relay.example.net:25",
                               "lineno": None, "source": "catch-all", "catch_all": True, "mx": False}
    assert "relay.example.net" in repr(route)


# --- the file the role writes ---------------------------------------------------------------------

EXISTING = """# routes set up by hand
lists.example.com:lists-mx.example.com:2526
.legacy.example.com:
old.example.com:old-mx.example.com
:old-relay.example.net
garbage line
"""


def test_plan_catch_all_only():
    plan = plan_smtproutes([], catchall="smtp-relay.gmail.com:25")
    assert plan["text"] == ":smtp-relay.gmail.com:25\n"
    assert plan["kept"] == plan["dropped"] == plan["missing"] == []


def test_plan_internal_first_kept_next_catch_all_last():
    plan = plan_smtproutes(
        [{"domain": "corp.example.com", "relay": "mail.corp.example.com"}, ".corp.example.com:mail.corp.example.com"],
        catchall={"relay": "127.0.0.1", "port": 2525}, existing=EXISTING,
        keep=[".Legacy.example.com", "lists.example.com", "gone.example.com", "lists.example.com"],
        header=["# managed"])
    assert plan["text"] == (
        "# managed\n"
        "corp.example.com:mail.corp.example.com\n"
        ".corp.example.com:mail.corp.example.com\n"
        ".legacy.example.com:\n"
        "lists.example.com:lists-mx.example.com:2526\n"
        ":127.0.0.1:2525\n")
    assert plan["kept"] == [".legacy.example.com:", "lists.example.com:lists-mx.example.com:2526"]
    assert plan["dropped"] == ["old.example.com:old-mx.example.com", ":old-relay.example.net"]
    assert plan["missing"] == ["gone.example.com"]
    assert plan["ignored"][0]["line"] == "garbage line"
    assert [r["source"] for r in plan["routes"]] == ["entry", "entry", "kept", "kept", "catch-all"]
    # the planned file resolves as intended
    routes = parse_smtproutes(plan["text"])[0]
    assert resolve(routes, "a@corp.example.com")["relay"] == "mail.corp.example.com"
    assert resolve(routes, "a@x.corp.example.com")["rule"] == "suffix"
    assert resolve(routes, "a@x.legacy.example.com")["mx"] is True
    assert resolve(routes, "a@lists.example.com")["port"] == 2526
    assert resolve(routes, "a@example.net")[("relay")] == "127.0.0.1"


def test_plan_keeps_the_line_qmail_uses_for_a_duplicated_key():
    plan = plan_smtproutes([], existing="a.example.com:first\nA.example.com:second\n", keep=["a.example.com"])
    assert plan["kept"] == ["A.example.com:second"]
    assert plan["dropped"] == ["a.example.com:first"]


def test_plan_refuses_two_routes_for_one_domain():
    with pytest.raises(RelayRuleError) as err:
        plan_smtproutes(["corp.example.com:a.example.net", "CORP.example.com:b.example.net"])
    assert err.value.rule == "smtproutes-duplicate"
    with pytest.raises(RelayRuleError) as err:
        plan_smtproutes(["lists.example.com:a.example.net"], existing=EXISTING, keep=["lists.example.com"])
    assert "kept" in err.value.message and "entry" in err.value.message


def test_plan_refuses_keeping_the_catch_all_or_a_malformed_line():
    with pytest.raises(RelayRuleError) as err:
        plan_smtproutes([], existing=EXISTING, keep=[""], keep_variable="qmail_keep_routes")
    assert err.value.message.startswith("qmail_keep_routes[0]") and "catch-all" in err.value.message
    with pytest.raises(RelayRuleError) as err:
        plan_smtproutes([], existing="a.example.com:r.example.net\r\n", keep=["a.example.com"])
    assert err.value.rule == "smtproutes-keep"


def test_plan_names_the_variable_and_index():
    with pytest.raises(RelayRuleError) as err:
        plan_smtproutes(["ok.example.com:r.example.net", "bad"], variable="qmail_internal_routes")
    assert err.value.message.startswith("qmail_internal_routes[1]")
    with pytest.raises(RelayRuleError):
        plan_smtproutes("corp.example.com:r.example.net")
    assert plan_smtproutes(None)["text"] == ""
