# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Acceptance rules (session.py): each rule passes and refuses, with the catalogue's reply."""

from __future__ import annotations

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import constants as C
from ansible_collections.smarthost.relay.plugins.module_utils._relay.replies import BY_KEY, classify, render
from ansible_collections.smarthost.relay.plugins.module_utils._relay.session import (
    REPLY_NULL_SENDER_RECIPIENTS,
    REPLY_STARTTLS_FIRST,
    Verdict,
    domains_seen,
    generic_helo,
    helo_problem,
    identifying_domain,
    is_null_sender,
    null_sender_rcpt_verdict,
    relay_access_verdict,
    sender_verdict,
)

DOMAINS = ["example.com", "example.org"]
USERS = ["alice@example.com", "Ops@Example.com"]


def verdict(mode, sender, auth_user=None, helo="mta.elsewhere.test"):
    return sender_verdict(mode, sender, DOMAINS, USERS, auth_user, helo, client_ip="192.0.2.7")


# --- relay access -----------------------------------------------------------

@pytest.mark.parametrize("allowlisted, auth_user, auth_required, allowlist_enabled, key", [
    (True, None, False, True, None),                          # allowlist box only: the address suffices
    (False, None, False, True, "relay_denied"),               # not in the allowlist, no AUTH
    (False, "alice@example.com", False, True, "relay_denied"),  # allowlist box: AUTH does not replace it
    (True, "alice@example.com", False, True, None),
    (False, None, False, False, "relay_denied"),              # neither box: AUTH is the only way
    (False, "alice@example.com", False, False, None),
    (True, None, True, True, "auth_required"),                # both boxes: AUTH missing
    (True, "alice@example.com", True, True, None),            # both boxes: both hold
    (False, "alice@example.com", True, True, "relay_denied"),  # both boxes: not in the allowlist
    (False, None, True, True, "relay_denied"),                # both boxes: neither holds, the address first
    (False, "alice@example.com", True, False, None),          # AUTH box only
    (False, None, True, False, "auth_required"),
])
def test_relay_access(allowlisted, auth_user, auth_required, allowlist_enabled, key):
    result = relay_access_verdict("192.0.2.7", allowlisted, auth_user, auth_required, allowlist_enabled,
                                  helo="mta.example.net", sender="app@example.com")
    assert result.accepted is (key is None)
    assert result.key == key
    if key is None:
        assert (result.code, result.text) == (250, "250 2.1.0 OK")
        return
    assert (result.code, result.text.split(" ")[1]) == (BY_KEY[key].code, BY_KEY[key].status)
    assert classify(result.text).key == key
    if key == "relay_denied":
        assert result.text.startswith("550 5.7.0 Mail relay denied [192.0.2.7]. Invalid credentials for relay for "
                                      "one of the domains in: example.com, mta.example.net (as obtained from HELO "
                                      "and MAIL FROM)")
    else:
        assert result.text.startswith("530 5.5.1 Authentication Required")


@pytest.mark.parametrize("helo, sender, seen", [
    ("mta.example.net", "app@example.com", "example.com, mta.example.net"),
    ("Example.COM.", "app@example.com", "example.com"),
    ("[192.0.2.7]", "", "(none)"),
    (None, "<a@b.example>", "b.example"),
])
def test_domains_seen(helo, sender, seen):
    assert domains_seen(helo, sender) == seen


# --- allowed senders ----------------------------------------------------------

@pytest.mark.parametrize("sender, accepted", [
    ("alice@example.com", True),
    ("ops@example.com", True),          # registered users compare case-insensitively
    ("<alice@example.com>", True),
    ("bob@example.com", False),         # in the domains but not registered
    ("alice@foreign.test", False),      # outside the domains: not a user either
])
@pytest.mark.parametrize("auth_user, helo", [(None, "mta.elsewhere.test"), ("alice@example.com", "mta.example.com")])
def test_registered_users(sender, accepted, auth_user, helo):
    """Registered users only: every sender that is not a listed user gets 550 5.7.0 Mail Sending denied, whatever
    the session's AUTH and HELO."""
    result = verdict(C.SENDERS_REGISTERED, sender, auth_user=auth_user, helo=helo)
    assert result.accepted is accepted
    if accepted:
        assert result.rewritten_sender == sender.strip("<>") and result.key is None
    else:
        assert (result.code, result.key, result.rewritten_sender) == (550, "sending_denied", None)
        assert result.text.startswith("550 5.7.0 Mail Sending denied")


@pytest.mark.parametrize("sender, accepted, domain", [
    ("anyone@example.com", True, "example.com"),
    ("app@mail.example.org", True, "example.org"),
    ("x@EXAMPLE.COM", True, "example.com"),
    ("x@notexample.com", False, None),
    ("x@example.com.evil.test", False, None),
])
def test_domain_addresses(sender, accepted, domain):
    result = verdict(C.SENDERS_DOMAINS, sender)
    assert (result.accepted, result.customer_domain) == (accepted, domain)


def test_foreign_sender_refused_outside_any_address():
    result = verdict(C.SENDERS_DOMAINS, "someone@yahoo.test", auth_user="alice@example.com", helo="mta.example.com")
    assert not result.accepted and result.key == "invalid_credentials"
    assert result.text.startswith("550 5.7.1 Invalid credentials for relay [192.0.2.7]")
    result = verdict(C.SENDERS_REGISTERED, "someone@yahoo.test", auth_user="alice@example.com", helo="mta.example.com")
    assert not result.accepted and result.key == "sending_denied"


# --- the HELO rule and the rewrite ----------------------------------------------

@pytest.mark.parametrize("mode", C.SENDER_MODES)
def test_sender_inside_the_domains_is_never_rewritten(mode):
    """Step 6: only a sender outside the customer's domains becomes postmaster@<domain>."""
    result = verdict(mode, "alice@example.com", auth_user="alice@example.com", helo="mta.example.org")
    assert result.accepted and result.rewritten_sender == "alice@example.com"


def test_any_address_foreign_sender_with_helo_is_rewritten():
    result = verdict(C.SENDERS_ANY, "someone@yahoo.test", helo="mta.example.org")
    assert result == Verdict(True, 250, "250 2.1.0 OK", "postmaster@example.org", "example.org")


def test_any_address_foreign_sender_with_auth_uses_auth_domain():
    result = verdict(C.SENDERS_ANY, "someone@yahoo.test", auth_user="alice@example.com", helo="mta.example.org")
    assert result.rewritten_sender == "postmaster@example.com"


def test_any_address_needs_auth_or_helo_even_for_own_domain():
    assert not verdict(C.SENDERS_ANY, "someone@yahoo.test").accepted
    assert not verdict(C.SENDERS_ANY, "alice@example.com").accepted
    assert verdict(C.SENDERS_ANY, "alice@example.com", helo="example.com").rewritten_sender == "alice@example.com"


@pytest.mark.parametrize("helo", ["localhost", "[192.0.2.7]", "192.0.2.7", "example", "", None,
                                  "mta.example.com.evil.test", "-bad-.example.com"])
def test_helo_names_that_do_not_identify(helo):
    assert identifying_domain(DOMAINS, None, helo) is None
    assert not verdict(C.SENDERS_ANY, "someone@yahoo.test", helo=helo).accepted


def test_auth_user_outside_domains_falls_back_to_helo():
    assert identifying_domain(DOMAINS, "partner@partner.test", "mta.example.org") == "example.org"
    assert identifying_domain(DOMAINS, "partner@partner.test", "mta.partner.test") is None


@pytest.mark.parametrize("mode", C.SENDER_MODES)
@pytest.mark.parametrize("null", ["", "<>"])
def test_null_sender_needs_auth_or_helo_and_is_rewritten(mode, null):
    assert is_null_sender(null)
    refused = verdict(mode, null)
    assert not refused.accepted and (refused.code, refused.key) == (550, "invalid_credentials")
    by_helo = verdict(mode, null, helo="mx1.example.com")
    assert by_helo.accepted and by_helo.rewritten_sender == "postmaster@example.com"
    by_auth = verdict(mode, null, auth_user="alice@example.com")
    assert by_auth.accepted and by_auth.rewritten_sender == "postmaster@example.com"


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError):
        verdict("everyone", "alice@example.com")


# --- null sender recipients ---------------------------------------------------

@pytest.mark.parametrize("sender, count, accepted", [
    ("", 1, True), ("<>", 1, True), ("", 2, False), ("<>", 5, False),
    ("alice@example.com", 2, True), ("alice@example.com", 500, True),
])
def test_null_sender_recipients(sender, count, accepted):
    result = null_sender_rcpt_verdict(sender, count)
    assert result.accepted is accepted
    assert result.text == ("250 2.1.5 OK" if accepted else REPLY_NULL_SENDER_RECIPIENTS)
    assert result.key == (None if accepted else "null_sender_recipients")


def test_reply_texts_come_from_the_catalogue():
    assert REPLY_STARTTLS_FIRST == render("starttls_first") == "530 5.7.0 Must issue a STARTTLS command first."
    assert REPLY_NULL_SENDER_RECIPIENTS == render("null_sender_recipients")
    assert REPLY_NULL_SENDER_RECIPIENTS.startswith("550 5.5.3 Multiple recipients (RCPT TO) are not supported "
                                                   "with a null envelope sender")
    for text in (REPLY_STARTTLS_FIRST, REPLY_NULL_SENDER_RECIPIENTS, verdict(C.SENDERS_DOMAINS, "x@y.test").text):
        code, status = text.split(" ")[:2]
        assert code[0] in "45" and status[0] == code[0] and status.count(".") == 2
        assert classify(text) is not None


# --- HELO / EHLO ----------------------------------------------------------------

@pytest.mark.parametrize("name, problem", [
    ("mta.example.com", None),
    ("MTA.Example.COM.", None),                    # case and one trailing dot do not matter
    ("mailhost", None),                            # a single label is a host name (see fqdn_required)
    ("xn--bcher-kva.example", None),
    ("bücher.example", None),                      # U-labels (SMTPUTF8)
    ("[192.0.2.7]", None),
    ("[IPv6:2001:db8::7]", None),
    ("192.0.2.7", None),                           # Google: "or ... its IP address"
    ("2001:db8::7", None),
    ("", "helo_empty"),
    (None, "helo_empty"),
    ("   ", "helo_empty"),
    ("mta example.com", "helo_invalid"),           # white space inside
    ("mta_1.example.com", "helo_invalid"),         # underscore: not a letter, digit or hyphen
    ("mta.example.com:25", "helo_invalid"),
    ("printer/1", "helo_invalid"),
    ("mta..example.com", "helo_invalid"),          # empty label
    (".example.com", "helo_invalid"),
    ("-mta.example.com", "helo_invalid"),          # hyphen at a label's edge
    ("a" * 64 + ".example.com", "helo_invalid"),   # label over 63
    ("1.2.3", "helo_invalid"),                     # numeric top label, not an address
    ("[192.0.2.300]", "helo_invalid"),
    ("[2001:db8::7]", "helo_invalid"),             # IPv6 literal without its tag
    ("[IPv6:192.0.2.7]", "helo_invalid"),
    ("[192.0.2.7", "helo_invalid"),
])
def test_helo_problem(name, problem):
    assert helo_problem(name) == problem


def test_helo_fqdn_required_refuses_single_labels_only():
    assert helo_problem("mailhost", fqdn_required=True) == "helo_invalid"
    for name in ("mta.example.com", "[192.0.2.7]", "192.0.2.7"):
        assert helo_problem(name, fqdn_required=True) is None


@pytest.mark.parametrize("name, generic", [
    ("localhost", True), ("LOCALHOST.", True), ("localhost.localdomain", True), ("ip6-localhost", True),
    ("smtp-relay.gmail.com", True), ("smtp-relay.google.com", True),
    ("relay.smarthost.test", True),                # the relay's own name (own_names)
    ("[127.0.0.1]", True), ("127.0.0.5", True), ("[IPv6:::1]", True), ("::1", True),
    ("mta.example.com", False), ("localhost.example.com", False), ("[192.0.2.7]", False), ("192.0.2.7", False),
    ("mailhost", False), ("", False), (None, False),
])
def test_generic_helo(name, generic):
    assert generic_helo(name, own_names=["Relay.Smarthost.Test."]) is generic
