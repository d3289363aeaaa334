# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-transaction acceptance rules (session.py): each rule passes and refuses."""

from __future__ import annotations

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import constants as C
from ansible_collections.smarthost.relay.plugins.module_utils._relay.session import (
    REPLY_NULL_SENDER_RECIPIENTS,
    REPLY_STARTTLS_FIRST,
    Verdict,
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

@pytest.mark.parametrize("allowlisted, auth_user, auth_required, allowlist_enabled, code", [
    (True, None, False, True, 250),                 # allowlist only
    (False, None, False, True, 550),                # not in the allowlist, no AUTH
    (False, "alice@example.com", False, True, 250),  # AUTH instead of the allowlist
    (False, None, False, False, 550),               # neither box: AUTH is the only way
    (False, "alice@example.com", False, False, 250),
    (True, None, True, True, 530),                  # AUTH required
    (True, "alice@example.com", True, True, 250),   # both boxes: both hold
    (False, "alice@example.com", True, True, 550),  # both boxes: not in the allowlist
    (False, "alice@example.com", True, False, 250),  # AUTH required, no allowlist
])
def test_relay_access(allowlisted, auth_user, auth_required, allowlist_enabled, code):
    result = relay_access_verdict("192.0.2.7", allowlisted, auth_user, auth_required, allowlist_enabled)
    assert result.code == code
    assert result.accepted is (code == 250)
    if code == 550:
        assert "[192.0.2.7]" in result.text and result.text.startswith("550 5.7.0 ")


# --- allowed senders ----------------------------------------------------------

@pytest.mark.parametrize("sender, accepted", [
    ("alice@example.com", True),
    ("ops@example.com", True),          # registered users compare case-insensitively
    ("<alice@example.com>", True),
    ("bob@example.com", False),         # in the domains but not registered
    ("alice@foreign.test", False),
])
def test_registered_users(sender, accepted):
    result = verdict(C.SENDERS_REGISTERED, sender)
    assert result.accepted is accepted
    if accepted:
        assert result.rewritten_sender == sender.strip("<>")
    else:
        assert result.code == 550 and result.rewritten_sender is None


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
    for mode in (C.SENDERS_REGISTERED, C.SENDERS_DOMAINS):
        result = verdict(mode, "someone@yahoo.test", auth_user="alice@example.com", helo="mta.example.com")
        assert not result.accepted and result.text.startswith("550 5.7.1 ")


# --- the HELO rule and the rewrite ----------------------------------------------

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
    assert not refused.accepted and refused.code == 550
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


def test_reply_lines_are_well_formed():
    for text in (REPLY_STARTTLS_FIRST, REPLY_NULL_SENDER_RECIPIENTS, verdict(C.SENDERS_DOMAINS, "x@y.test").text):
        code, status = text.split(" ")[:2]
        assert code[0] in "45" and status[0] == code[0] and status.count(".") == 2
