# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The HELO stage: denial-of-service protection (a burst of new connections from one address, a generic HELO
name) answered ``421 4.7.0 Try again later, closing connection``, a malformed HELO/EHLO argument answered
``501 5.5.4``; both close the connection, and the record says so."""

from __future__ import annotations

import json
import time

import pytest

from relay_standin import cli, records
from relay_standin.engine import replies
from relay_standin.testing import RawSession, message


def _standin(factory, **config):
    config.setdefault("allowlist", ["127.0.0.1"])
    return factory(**config)


def _hello(standin, name, verb="EHLO", port=25):
    """One connection: greeting, ``verb name``; (reply lines, closed by the relay afterwards)."""
    with RawSession(standin, port=port) as session:
        lines = session.command(("%s %s" % (verb, name)).rstrip())
        closed = lines[0].startswith(("421", "501")) and session.closed_by_peer()
        if not closed:
            session.command("QUIT")
    return lines, closed


def _refused(standin, count):
    return records.refused_connections(standin.wait_for_connections(count))


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST.", "localhost.localdomain", "ip6-localhost",
                                  "smtp-relay.gmail.com", "smtp-relay.google.com", "relay.smarthost.test",
                                  "[127.0.0.1]", "127.0.0.1", "[IPv6:::1]"])
@pytest.mark.parametrize("verb", ["EHLO", "HELO"])
def test_generic_helo_is_a_dos_421_and_the_connection_closes(relay_standin_factory, name, verb):
    standin = _standin(relay_standin_factory)
    lines, closed = _hello(standin, name, verb)
    assert replies.classify(lines).key == "dos_helo"
    assert lines[-1].startswith("421 4.7.0 Try again later, closing connection.") and lines[-1].endswith(" - gsmtp")
    assert closed
    [conn] = _refused(standin, 1)
    assert (conn["dos"], conn["end"], conn["helo"], conn["helo_verb"], conn["transactions"]) == (
        "generic_helo", "refused", name, verb, 0)
    assert conn["refusal"]["stage"] == "helo" and conn["refusal"]["reply_key"] == "dos_helo"
    assert conn["refusal"]["reply"] == "421 4.7.0 Try again later, closing connection."
    assert conn["refusal"]["reply_lines"] == lines
    assert standin.transactions() == []
    assert records.summarize(standin.records())["dos_refusals"] == {"generic_helo": 1}


@pytest.mark.parametrize("name", ["mta.example.com", "mailhost", "localhost.example.com", "[192.0.2.7]",
                                  "192.0.2.7"])
def test_ordinary_names_pass(relay_standin_factory, name):
    standin = _standin(relay_standin_factory)
    lines, closed = _hello(standin, name)
    assert lines[0].startswith("250") and not closed


def test_generic_helo_rule_can_be_turned_off_and_extended(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, dos={"generic_helo": False})
    client = relay_client.connect(standin, port=587, helo="localhost")
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    standin.reconfigure(dos={"generic_helo_names": ["Mail.Appliance.Test."]})
    assert replies.classify(_hello(standin, "mail.appliance.test")[0]).key == "dos_helo"
    assert replies.classify(_hello(standin, "localhost")[0]).key == "dos_helo"


def test_generic_helo_after_starttls_too(relay_standin_factory, relay_client):
    """The name is checked at every HELO/EHLO: an MTA that says EHLO localhost only after STARTTLS is refused
    there."""
    standin = _standin(relay_standin_factory)
    with RawSession(standin, port=587) as session:
        assert session.command("EHLO mta.example.com")[0].startswith("250")
        session.starttls(relay_client.context())
        lines = session.command("EHLO localhost")
        assert replies.classify(lines).key == "dos_helo" and session.closed_by_peer()
    [conn] = _refused(standin, 1)
    assert conn["tls"] and conn["dos"] == "generic_helo"


def test_burst_of_new_connections_is_refused_at_helo(relay_standin_factory):
    standin = _standin(relay_standin_factory, dos={"max_new_connections": 3, "window_seconds": 60})
    for dummy in range(3):
        assert _hello(standin, "mta.example.com")[0][0].startswith("250")
    with RawSession(standin, port=25) as session:
        assert session.greeting[0].startswith("220")          # the greeting still comes: refused at HELO
        lines = session.command("EHLO mta.example.com")
        assert replies.classify(lines).key == "dos_helo" and session.closed_by_peer()
    # every new connection counts, refused ones too: still over the limit
    assert replies.classify(_hello(standin, "mta.example.com", verb="HELO")[0]).key == "dos_helo"
    refused = _refused(standin, 5)
    assert [(c["dos"], c["end"]) for c in refused] == [("burst", "refused")] * 2
    summary = records.summarize(standin.records())
    assert (summary["dos_refusals"], summary["connections_refused"]) == ({"burst": 2}, 2)


def test_burst_window_slides(relay_standin_factory):
    standin = _standin(relay_standin_factory, dos={"max_new_connections": 2, "window_seconds": 3})
    started = time.monotonic()
    assert [_hello(standin, "mta.example.com")[0][0][:3] for dummy in range(3)] == ["250", "250", "421"]
    assert time.monotonic() - started < 3, "too slow to test the window"
    time.sleep(max(0.0, started + 3.2 - time.monotonic()))
    assert _hello(standin, "mta.example.com")[0][0].startswith("250")


def test_reused_connection_is_never_a_burst(relay_standin_factory, relay_client):
    """What the limit asks of an MTA: many messages over few connections pass."""
    standin = _standin(relay_standin_factory, dos={"max_new_connections": 2, "window_seconds": 60})
    for dummy in range(2):
        client = relay_client.connect(standin, port=587)
        for number in range(20):
            assert client.sendmail("alice@example.com", ["r%d@remote.test" % number], message()) == {}
        client.quit()
    standin.wait_for_connections(2)
    summary = records.summarize(standin.records())
    assert summary["verdicts"] == {"accepted": 40} and summary["dos_refusals"] == {}


def test_default_burst_limit_is_60_per_minute(relay_standin_factory):
    standin = _standin(relay_standin_factory)
    settings = standin.server.state.settings.dos
    assert (settings.max_new_connections, settings.window_seconds, settings.generic_helo) == (60, 60.0, True)
    codes = [_hello(standin, "mta.example.com")[0][0][:3] for dummy in range(61)]
    assert codes == ["250"] * 60 + ["421"]


def test_burst_limit_off(relay_standin_factory):
    standin = _standin(relay_standin_factory, dos={"max_new_connections": None})
    assert all(_hello(standin, "mta.example.com")[0][0].startswith("250") for dummy in range(70))


@pytest.mark.parametrize("argument, key", [
    ("", "helo_empty"),
    ("mta example.com", "helo_invalid"),
    ("mta_1.example.com", "helo_invalid"),
    ("mta..example.com", "helo_invalid"),
    ("[192.0.2.300]", "helo_invalid"),
    ("printer:25", "helo_invalid"),
])
@pytest.mark.parametrize("verb", ["EHLO", "HELO"])
def test_malformed_helo_is_501_and_closes(relay_standin_factory, argument, key, verb):
    standin = _standin(relay_standin_factory)
    lines, closed = _hello(standin, argument, verb)
    assert replies.classify(lines).key == key and closed
    assert lines[-1].startswith("501 5.5.4 ")
    if key == "helo_invalid":
        assert ('HELO/EHLO argument "%s" invalid, closing connection.' % argument) in \
            replies.normalise(lines)[2]
    else:
        assert replies.normalise(lines)[2].startswith("Empty HELO/EHLO argument not allowed, closing connection.")
    [conn] = _refused(standin, 1)
    assert (conn["dos"], conn["end"], conn["refusal"]["reply_key"], conn["refusal"]["code"]) == (
        None, "refused", key, 501)


def test_fqdn_required_refuses_single_label_names(relay_standin_factory):
    standin = _standin(relay_standin_factory, helo_fqdn_required=True)
    assert replies.classify(_hello(standin, "mailhost")[0]).key == "helo_invalid"
    assert _hello(standin, "mailhost.example.com")[0][0].startswith("250")


def test_helo_fault_comes_before_the_relays_own_checks(relay_standin_factory):
    standin = _standin(relay_standin_factory, faults=[{"stage": "helo", "reply": "451 4.3.0 Busy", "times": 1}])
    assert _hello(standin, "localhost")[0] == ["451 4.3.0 Busy"]
    assert replies.classify(_hello(standin, "localhost")[0]).key == "dos_helo"


def test_records_cli_shows_refused_connections(relay_standin_factory, capsys):
    standin = _standin(relay_standin_factory)
    _hello(standin, "localhost")
    standin.wait_for_connections(1)
    assert cli.main(["records", str(standin.record_path), "--all"]) == 0
    out = capsys.readouterr().out
    assert "end=refused helo (dos: generic_helo): 421 4.7.0 Try again later, closing connection." in out
    assert cli.main(["records", str(standin.record_path), "--summary", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["dos_refusals"], summary["connections_refused"]) == ({"generic_helo": 1}, 1)
