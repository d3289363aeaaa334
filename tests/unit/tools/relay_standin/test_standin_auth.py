# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Authentication: IP allowlist (IPv4, IPv6) and/or SMTP AUTH PLAIN and
LOGIN against the configured users; anything else is refused at MAIL FROM.
With the allowlist box checked, AUTH does not replace the address."""

from __future__ import annotations

import smtplib

import pytest

from relay_standin.testing import catalogue_key, ipv6_loopback_available, message

USERS = {"alice@example.com": "alice-pw"}


def _mail(client, sender="alice@example.com"):
    return client.mail(sender)


def test_allowlisted_client_relays_without_auth(relay_standin_factory, relay_client):
    standin = relay_standin_factory(allowlist=["127.0.0.0/24"], users=USERS)
    client = relay_client.connect(standin, port=587)
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = standin.transactions()
    assert (record["auth_user"], record["verdict"]) == (None, "accepted")


def test_allowlist_box_refuses_an_authenticated_client_outside_it(relay_standin_factory, relay_client):
    """Only accept mail from the specified IP addresses: SMTP AUTH does not stand in for the address."""
    standin = relay_standin_factory(allowlist=["192.0.2.0/24"], users=USERS)
    client = relay_client.connect(standin, port=587, login=("alice@example.com", "alice-pw"))
    reply = _mail(client)
    assert reply[0] == 550 and catalogue_key(reply) == "relay_denied"
    client.quit()
    [record] = standin.transactions()
    assert (record["auth_user"], record["verdict"], record["reply_key"]) == (
        "alice@example.com", "refused", "relay_denied")
    assert record["reply"].startswith("550 5.7.0 Mail relay denied [127.0.0.1]. Invalid credentials for relay for "
                                      "one of the domains in: example.com, mta.example.com (as obtained from HELO "
                                      "and MAIL FROM)")


def test_client_neither_allowlisted_nor_authenticated_is_refused(relay_standin_factory, relay_client):
    standin = relay_standin_factory(allowlist=["192.0.2.0/24"], users=USERS)
    client = relay_client.connect(standin, port=587)
    code, text = _mail(client)
    assert code == 550 and text.startswith(b"5.7.0 Mail relay denied [127.0.0.1]")
    assert catalogue_key((code, text)) == "relay_denied"
    client.quit()
    [record] = standin.transactions()
    assert (record["verdict"], record["code"], record["stage"]) == ("refused", 550, "mail")


def test_no_allowlist_and_no_auth_is_refused(relay_standin_factory, relay_client):
    standin = relay_standin_factory(users=USERS)
    client = relay_client.connect(standin, port=587)
    assert _mail(client)[0] == 550
    client.quit()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtp_auth_mechanisms_accept_configured_user(relay_standin_factory, relay_client, mechanism):
    standin = relay_standin_factory(users=USERS)
    client = relay_client.connect(standin, port=587)
    client.user, client.password = "alice@example.com", "alice-pw"
    code, dummy = client.auth(mechanism, getattr(client, "auth_" + mechanism.lower()), initial_response_ok=True)
    assert code == 235
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = standin.transactions()
    assert record["auth_user"] == "alice@example.com"
    assert "alice-pw" not in str(standin.records())


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtp_auth_refuses_wrong_password(relay_standin_factory, relay_client, mechanism):
    standin = relay_standin_factory(users=USERS)
    client = relay_client.connect(standin, port=587)
    client.user, client.password = "alice@example.com", "wrong"
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        client.auth(mechanism, getattr(client, "auth_" + mechanism.lower()), initial_response_ok=True)
    assert refused.value.smtp_code == 535
    assert catalogue_key((535, refused.value.smtp_error)) == "bad_credentials"
    assert _mail(client)[0] == 550
    client.quit()
    [conn] = standin.wait_for_connections(1)
    assert conn["auth_failures"] == 1


def test_unknown_user_is_refused(relay_standin_factory, relay_client):
    standin = relay_standin_factory(users=USERS)
    client = relay_client.connect(standin, port=465)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        client.login("mallory@example.com", "alice-pw")
    client.quit()


def test_auth_required_refuses_allowlisted_client_without_auth(relay_standin_factory, relay_client):
    standin = relay_standin_factory(auth_required=True, users=USERS)
    client = relay_client.connect(standin, port=587)
    code, text = _mail(client)
    assert code == 530 and text.startswith(b"5.5.1 Authentication Required")
    assert catalogue_key((code, text)) == "auth_required"
    client.quit()


def test_auth_required_accepts_authenticated_client(relay_standin_factory, relay_client):
    standin = relay_standin_factory(auth_required=True, users=USERS)
    client = relay_client.connect(standin, port=587, login=("alice@example.com", "alice-pw"))
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()


def test_auth_required_with_allowlist_needs_both(relay_standin_factory, relay_client):
    standin = relay_standin_factory(auth_required=True, allowlist=["192.0.2.0/24"], users=USERS)
    client = relay_client.connect(standin, port=587, login=("alice@example.com", "alice-pw"))
    reply = _mail(client)
    assert reply[0] == 550 and catalogue_key(reply) == "relay_denied"
    client.quit()
    standin.reconfigure(allowlist=["127.0.0.1"])
    client = relay_client.connect(standin, port=587, login=("alice@example.com", "alice-pw"))
    assert _mail(client)[0] == 250
    client.quit()


def test_auth_required_implies_tls(relay_standin_factory, relay_client):
    standin = relay_standin_factory(auth_required=True, users=USERS)
    client = relay_client.connect(standin, port=25, starttls=False)
    assert _mail(client)[0] == 530
    client.quit()


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_ipv6_allowlist_entry_allows_ipv6_client(relay_standin_factory, relay_client):
    standin = relay_standin_factory(listen=["::1"], allowlist=["::1/128"])
    client = relay_client.connect(standin, port=587, host="::1")
    assert _mail(client)[0] == 250
    client.quit()


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_ipv6_client_outside_allowlist_is_refused(relay_standin_factory, relay_client):
    standin = relay_standin_factory(listen=["::1"], allowlist=["2001:db8::/112", "127.0.0.1"])
    client = relay_client.connect(standin, port=587, host="::1")
    assert _mail(client)[0] == 550
    client.quit()
