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

from relay_standin.testing import message

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
])
def test_registered_users_mode(relay_standin_factory, relay_client, sender, code):
    standin = _standin(relay_standin_factory, "registered_users")
    client = relay_client.connect(standin, port=587)
    assert client.mail(sender)[0] == code
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
    assert client.mail(sender)[0] == code
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
    assert code == 550 and b"HELO" in text
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
    standin = _standin(relay_standin_factory, "any_address")
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
    assert code == 550 and b"null envelope sender" in text
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
