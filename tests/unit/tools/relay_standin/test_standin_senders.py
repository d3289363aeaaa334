# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Allowed senders, the HELO rule, the sender rewrite and the null sender."""

from __future__ import annotations

import pytest

from relay_standin.testing import catalogue_key, message

USERS = {"alice@example.com": "alice-pw", "ops@example.com": "ops-pw"}
LOGIN = ("alice@example.com", "alice-pw")


def _standin(factory, mode, **extra):
    return factory(allowed_senders=mode, allowlist=["127.0.0.1"], users=USERS,
                   domains=["example.com", "example.org"], **extra)


@pytest.mark.parametrize("sender, code", [
    ("alice@example.com", 250),       # registered user
    ("ops@example.com", 250),         # registered user
    ("nobody@example.com", 550),      # in the domains, not registered
    ("alice@foreign.test", 550),      # outside the domains
    ("root@mx1.example.com", 550),    # a local account under a customer subdomain: not a user
])
@pytest.mark.parametrize("login", [None, LOGIN])
def test_registered_users_mode(relay_standin_factory, relay_client, sender, code, login):
    """Only registered users: any sender that is not a listed user gets 550 5.7.0 Mail Sending denied, with or
    without SMTP AUTH."""
    standin = _standin(relay_standin_factory, "registered_users")
    client = relay_client.connect(standin, port=587, helo="mta.example.com", login=login)
    reply = client.mail(sender)
    assert reply[0] == code
    if code == 550:
        assert catalogue_key(reply) == "sending_denied" and reply[1].startswith(b"5.7.0 Mail Sending denied")
    client.quit()


@pytest.mark.parametrize("sender, code", [
    ("anyone@example.com", 250),
    ("app@mail.example.org", 250),    # subdomain of a customer domain
    ("someone@foreign.test", 550),
    ("someone@notexample.com", 550),
])
def test_domain_addresses_mode(relay_standin_factory, relay_client, sender, code):
    standin = _standin(relay_standin_factory, "domain_addresses")
    client = relay_client.connect(standin, port=587, helo="mta.elsewhere.test")
    reply = client.mail(sender)
    assert reply[0] == code
    if code == 550:
        assert catalogue_key(reply) == "invalid_credentials"
        assert reply[1].startswith(b"5.7.1 Invalid credentials for relay [127.0.0.1]")
    client.quit()


def test_any_address_with_customer_helo_accepts_foreign_sender_and_rewrites(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, "any_address")
    client = relay_client.connect(standin, port=587, helo="mta.example.org")
    assert client.sendmail("someone@yahoo.test", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = standin.transactions()
    assert record["sender"] == "someone@yahoo.test"
    assert record["sender_rewritten"] == "postmaster@example.org"
    assert record["customer_domain"] == "example.org"


def test_any_address_with_auth_rewrites_to_auth_domain(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, "any_address")
    client = relay_client.connect(standin, port=587, helo="mta.elsewhere.test", login=LOGIN)
    assert client.sendmail("someone@yahoo.test", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = standin.transactions()
    assert record["sender_rewritten"] == "postmaster@example.com"


def test_any_address_without_auth_or_customer_helo_is_refused(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, "any_address")
    client = relay_client.connect(standin, port=587, helo="mta.elsewhere.test")
    code, text = client.mail("someone@yahoo.test")
    assert code == 550 and catalogue_key((code, text)) == "invalid_credentials" and b"HELO" in text
    # even a sender inside the domains: "any address" needs AUTH or HELO
    assert client.mail("alice@example.com")[0] == 550
    client.quit()


def test_any_address_in_domain_sender_with_customer_helo_is_kept(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, "any_address")
    client = relay_client.connect(standin, port=587, helo="mta.example.com")
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = standin.transactions()
    assert record["sender_rewritten"] == "alice@example.com"


@pytest.mark.parametrize("helo", ["localhost", "[127.0.0.1]", "example", "mta.example.com.evil.test"])
def test_helo_that_is_not_a_customer_name_does_not_identify(relay_standin_factory, relay_client, helo):
    # generic names are refused at EHLO by default (test_standin_dos.py); here only the HELO rule is looked at
    standin = _standin(relay_standin_factory, "any_address", dos={"generic_helo": False})
    client = relay_client.connect(standin, port=587, helo=helo)
    assert client.mail("someone@yahoo.test")[0] == 550
    client.quit()


def test_null_sender_with_customer_helo_is_accepted_and_rewritten(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, "domain_addresses")
    client = relay_client.connect(standin, port=587, helo="mta.example.com")
    assert client.sendmail("", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = standin.transactions()
    assert (record["sender"], record["sender_rewritten"]) == ("", "postmaster@example.com")


def test_null_sender_with_auth_is_accepted(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, "registered_users")
    client = relay_client.connect(standin, port=465, helo="mta.elsewhere.test", login=LOGIN)
    assert client.mail("")[0] == 250
    client.quit()


def test_null_sender_without_auth_or_helo_is_refused(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, "domain_addresses")
    client = relay_client.connect(standin, port=587, helo="mta.elsewhere.test")
    assert client.mail("")[0] == 550
    client.quit()


def test_null_sender_with_one_recipient_passes_second_recipient_refused(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, "domain_addresses")
    client = relay_client.connect(standin, port=587, helo="mta.example.com")
    assert client.mail("")[0] == 250
    assert client.rcpt("bob@remote.test")[0] == 250
    code, text = client.rcpt("carol@remote.test")
    assert code == 550 and catalogue_key((code, text)) == "null_sender_recipients"
    assert client.data(message())[0] == 250
    client.quit()
    [record] = standin.transactions()
    assert record["recipients"] == ["bob@remote.test"]
    assert record["refused_recipients"][0]["address"] == "carol@remote.test"


def test_ordinary_sender_may_have_many_recipients(relay_standin_factory, relay_client):
    standin = _standin(relay_standin_factory, "domain_addresses")
    client = relay_client.connect(standin, port=587)
    recipients = ["r%d@remote.test" % n for n in range(5)]
    assert client.sendmail("alice@example.com", recipients, message()) == {}
    client.quit()


@pytest.mark.parametrize("mode", ["registered_users", "domain_addresses", "any_address"])
def test_sender_inside_the_domains_is_passed_on_unchanged(relay_standin_factory, relay_client, mode):
    """Step 6: the postmaster@<domain> rewrite is for senders outside the customer's domains only."""
    standin = _standin(relay_standin_factory, mode)
    client = relay_client.connect(standin, port=587, helo="mta.example.org", login=LOGIN)
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = standin.transactions()
    assert (record["sender_rewritten"], record["customer_domain"]) == ("alice@example.com", "example.com")
