# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor's probe (doctor_probe.py) without a relay: settings follow the roles' rules, every failure is
worded so the doctor names it, a stopped probe raises the host's verdict, the password is never shown. The probe
against the relay stand-in: tests/unit/plugins/modules/test_relay_doctor_probe.py."""

from __future__ import annotations

import smtplib
import socket
import ssl

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor as D
from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_probe as P

PARAMS = {"probe_recipient": "check@example.net", "probe_sender": "app@example.com", "relay_tls": "required"}


def settings(**changes):
    return P.settings_from(dict(PARAMS, **changes), fqdn=lambda: "mta1.example.com")


@pytest.mark.parametrize("tls,port,verify", [
    ("required", 587, True), ("implicit", 465, True), ("opportunistic", 587, False), ("none", 587, False)])
def test_port_and_verification_follow_tls_as_in_the_roles(tls, port, verify):
    derived = settings(relay_tls=tls)
    assert (derived.port, derived.verify, derived.tls) == (port, verify, tls)
    assert settings(relay_tls=tls, relay_port=25, relay_tls_verify=not verify)[1:4:2] == (25, not verify)


def test_defaults():
    derived = settings()
    assert (derived.host, derived.helo, derived.auth, derived.ca_file, derived.timeout) == (
        "smtp-relay.gmail.com", "mta1.example.com", False, None, 30)
    assert settings(relay_helo_name="mx.example.com", relay_tls_ca_file="").helo == "mx.example.com"


def test_the_sender_defaults_to_the_auth_user_and_the_null_sender_is_kept():
    auth = {"relay_auth": True, "relay_auth_username": "mta1@example.com", "probe_sender": None}
    assert settings(**auth).sender == "mta1@example.com"
    assert settings(probe_sender="<>").sender == "<>"


@pytest.mark.parametrize("changes,option", [
    ({"probe_recipient": None}, "probe_recipient"),
    ({"probe_sender": None}, "probe_sender"),
    ({"relay_auth": True, "relay_auth_username": ""}, "relay_auth_username"),
])
def test_missing_settings_name_the_option(changes, option):
    with pytest.raises(ValueError, match=option):
        settings(**changes)


def test_the_description_has_no_password():
    shown = P.describe(settings(relay_auth=True, relay_auth_username="u@example.com", relay_auth_password="s3cr3t"))
    assert "s3cr3t" not in repr(shown) and shown["auth_username"] == "u@example.com"
    assert P.describe(settings())["auth_username"] is None


def test_reply_lines_are_the_lines_on_the_wire():
    assert P.reply_lines(550, b"5.7.1 Daily SMTP relay limit exceeded\n5.7.1 for customer. x1 - gsmtp") == [
        "550-5.7.1 Daily SMTP relay limit exceeded", "550 5.7.1 for customer. x1 - gsmtp"]
    assert P.reply_lines(250, "2.1.0 OK") == ["250 2.1.0 OK"]


def certificate_error():
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    return error


@pytest.mark.parametrize("exc,stage,expected", [
    (certificate_error(), "STARTTLS", "tls_failure"),
    (ssl.SSLError(1, "wrong version number"), "CONNECT", "tls_failure"),
    (socket.gaierror(-2, "Name or service not known"), "CONNECT", "unreachable"),
    (ConnectionRefusedError(111, "Connection refused"), "CONNECT", "unreachable"),
    (TimeoutError("timed out"), "CONNECT", "unreachable"),
    (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), "MAIL", "unreachable"),
    (OSError(113, "No route to host"), "CONNECT", "unreachable"),
], ids=["certificate", "ssl", "dns", "refused", "timeout", "disconnected", "no-route"])
def test_every_failure_is_worded_so_the_doctor_names_it(exc, stage, expected):
    text = P.failure_text(exc, stage)
    assert D.diagnose(local=text, stage=stage)["class"] == expected, text


def test_a_relay_that_offers_no_starttls_is_a_tls_failure():
    assert D.diagnose(local="TLS is required, but the relay does not offer STARTTLS")["class"] == "tls_failure"


def test_auth_without_tls_is_tls_required():
    assert D.diagnose(local=P.CLEAR_TEXT_AUTH, stage="AUTH")["class"] == "tls_required"


def test_scrub():
    assert P.scrub("535 5.7.8 bad s3cr3t", "s3cr3t") == "535 5.7.8 bad " + P.HIDDEN
    assert P.scrub("250 OK", "") == "250 OK"


def report(verdict, reasons=()):
    return {"verdict": verdict, "reasons": list(reasons)}


def stopped(verdict, stage="MAIL", title="address not in the relay's allowlist"):
    return {"verdict": verdict, "stopped_at": stage, "diagnosis": {"title": title}}


@pytest.mark.parametrize("host,probe,merged", [
    ("healthy", "blocked", "blocked"), ("healthy", "degraded", "degraded"), ("degraded", "blocked", "blocked"),
    ("blocked", "degraded", "blocked"), ("degraded", "degraded", "degraded")])
def test_a_stopped_probe_raises_the_verdict_to_its_severity(host, probe, merged):
    result = P.merge(report(host, ["1 message(s) queued: x"] if host != "healthy" else ()), stopped(probe))
    assert result["verdict"] == merged
    assert result["reasons"][-1] == "probe stopped at MAIL: address not in the relay's allowlist"


def test_an_ok_probe_changes_nothing():
    ok = {"verdict": "ok", "stopped_at": None, "diagnosis": None}
    assert P.merge(report("degraded", ["q"]), ok) == {"verdict": "degraded", "reasons": ["q"], "probe": ok}


def test_unreachable_relay_without_a_session():
    """A loopback port nothing listens on: stopped at CONNECT, no RSET or QUIT attempted."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = P.run(settings(relay_host="127.0.0.1", relay_port=port, probe_timeout=5), "postfix")
    assert (result["verdict"], result["stopped_at"]) == ("blocked", "CONNECT")
    assert result["diagnosis"]["class"] == "unreachable"
    assert [step["step"] for step in result["steps"]] == ["CONNECT"]
    assert result["diagnosis"]["fixes"][0]["variable"] == "relay_host"
