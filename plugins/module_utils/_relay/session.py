# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-transaction acceptance rules of the relay service.

Used by the relay stand-in for every transaction, and by anything that wants
to predict what the relay will answer for an envelope.

Rules (service document, steps 6, 7 and 9, and the null-sender note):

* Authentication: the relay only accepts mail from a client it can tie to
  the customer, by the IP allowlist ("Only accept mail from the specified IP
  addresses") and/or SMTP AUTH ("Require SMTP Authentication").  With both
  boxes checked both must hold.  SMTP AUTH implies TLS.
* Allowed senders: registered users only, addresses in the customer's
  domains, or any address.
* The HELO rule: with "any address", with a sender outside the customer's
  domains, and with the null sender, the session must have used SMTP AUTH or
  presented one of the customer's domains in HELO/EHLO.
* A sender outside the customer's domains (and the null sender) is rewritten
  to ``postmaster@<domain>``, the domain taken from SMTP AUTH, else HELO.
* The null sender supports one RCPT TO only.

Decision: the reply texts for refusals the document does not quote are
modelled on Google's published error list (``550 5.7.0 Mail relay denied``,
``550 5.7.1 Invalid credentials for relay``); the null-sender refusal uses
the RFC 3463 code for "too many recipients" (5.5.3).
"""

from __future__ import annotations

from collections import namedtuple

from . import constants as C
from .domains import address_domain, domain_matches, helo_identifies_customer

Verdict = namedtuple("Verdict", ["accepted", "code", "text", "rewritten_sender", "customer_domain"])
Verdict.__doc__ = """Outcome of one acceptance rule.

``accepted``: bool; ``code``: SMTP reply code (int); ``text``: the full reply
line (code, enhanced status code, text); ``rewritten_sender``: the envelope
sender as the relay passes it on (None when refused); ``customer_domain``:
the customer domain that identified the transaction (None if none did)."""

REPLY_STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first."
REPLY_RELAY_DENIED = (
    "550 5.7.0 Mail relay denied [%s]. Invalid credentials for relay: the client "
    "is neither in the SMTP relay IP allowlist nor authenticated with SMTP AUTH."
)
REPLY_AUTH_REQUIRED = "530 5.7.0 Authentication Required. SMTP relay requires SMTP AUTH for this customer."
REPLY_IP_NOT_ALLOWED = (
    "550 5.7.0 Mail relay denied [%s]. The IP address is not registered in the SMTP relay IP allowlist."
)
REPLY_SENDER_NOT_REGISTERED = (
    "550 5.7.1 Invalid credentials for relay [%s]. The envelope sender <%s> is not a "
    "registered user of the customer."
)
REPLY_SENDER_NOT_IN_DOMAINS = (
    "550 5.7.1 Invalid credentials for relay [%s]. The envelope sender <%s> is not in "
    "one of the customer's domains."
)
REPLY_SENDER_UNIDENTIFIED = (
    "550 5.7.1 Invalid credentials for relay [%s]. To relay mail for <%s> the mail "
    "server must use SMTP AUTH or present one of the customer's domain names in HELO or EHLO."
)
REPLY_NULL_SENDER_RECIPIENTS = (
    "550 5.5.3 Multiple recipients (RCPT TO) are not supported with a null envelope sender (MAIL FROM:<>)."
)
REPLY_SENDER_OK = "250 2.1.0 OK"
REPLY_RECIPIENT_OK = "250 2.1.5 OK"

_NULL_SENDERS = ("", "<>")


def is_null_sender(sender):
    """True for the null reverse-path (``""`` or ``"<>"``)."""
    return sender is None or str(sender).strip() in _NULL_SENDERS


def _refused(reply):
    return Verdict(False, int(reply[:3]), reply, None, None)


def relay_access_verdict(client_ip, allowlisted, auth_user, auth_required, allowlist_enabled):
    """May this client relay at all?  Checked at MAIL FROM.

    ``allowlisted``: the client address lies in the IP allowlist;
    ``auth_user``: the SMTP AUTH user name, or None; ``auth_required``: the
    "Require SMTP Authentication" box; ``allowlist_enabled``: the "Only accept
    mail from the specified IP addresses" box (a non-empty allowlist).
    With both boxes checked both must hold; with one, that one; with neither,
    SMTP AUTH is the only way the relay can tie the client to the customer.
    """
    if auth_required and not auth_user:
        return _refused(REPLY_AUTH_REQUIRED)
    if auth_required and allowlist_enabled and not allowlisted:
        return _refused(REPLY_IP_NOT_ALLOWED % client_ip)
    if not auth_user and not allowlisted:
        return _refused(REPLY_RELAY_DENIED % client_ip)
    return Verdict(True, 250, REPLY_SENDER_OK, None, None)


def identifying_domain(domains, auth_user, helo):
    """The customer domain the session identifies: from SMTP AUTH (the
    user's domain), else from HELO/EHLO; None when neither does."""
    if auth_user:
        found = domain_matches(address_domain(auth_user), domains)
        if found:
            return found
    return helo_identifies_customer(helo, domains)


def _is_registered(sender, registered_users):
    wanted = str(sender).strip().strip("<>").lower()
    return any(str(user).strip().lower() == wanted for user in registered_users or ())


def sender_verdict(mode, sender, domains, registered_users, auth_user, helo, client_ip="unknown"):
    """Allowed-senders rule, HELO rule and sender rewrite for one MAIL FROM.

    ``mode``: one of ``constants.SENDER_MODES``; ``sender``: the envelope
    sender as sent (``""``/``"<>"`` for the null sender); ``domains``: the
    customer's domains; ``registered_users``: addresses of registered users;
    ``auth_user``: the SMTP AUTH user or None; ``helo``: the HELO/EHLO name.

    Decision: with "any address" every transaction must be identified by SMTP
    AUTH or HELO (the document: "For the Any address option to work properly,
    you must configure your mail server either to use SMTP AUTH ... or to
    present one of your domain names in the HELO or EHLO command").
    """
    if mode not in C.SENDER_MODES:
        raise ValueError("allowed senders mode must be one of %s, not %r" % (", ".join(C.SENDER_MODES), mode))
    identified = identifying_domain(domains, auth_user, helo)
    if is_null_sender(sender):
        if not identified:
            return _refused(REPLY_SENDER_UNIDENTIFIED % (client_ip, ""))
        return Verdict(True, 250, REPLY_SENDER_OK, "postmaster@" + identified, identified)
    sender = str(sender).strip().strip("<>")
    own_domain = domain_matches(address_domain(sender), domains)
    if own_domain:
        if mode == C.SENDERS_REGISTERED and not _is_registered(sender, registered_users):
            return _refused(REPLY_SENDER_NOT_REGISTERED % (client_ip, sender))
        if mode == C.SENDERS_ANY and not identified:
            return _refused(REPLY_SENDER_UNIDENTIFIED % (client_ip, sender))
        return Verdict(True, 250, REPLY_SENDER_OK, sender, identified or own_domain)
    if mode != C.SENDERS_ANY:
        return _refused(REPLY_SENDER_NOT_IN_DOMAINS % (client_ip, sender))
    if not identified:
        return _refused(REPLY_SENDER_UNIDENTIFIED % (client_ip, sender))
    return Verdict(True, 250, REPLY_SENDER_OK, "postmaster@" + identified, identified)


def null_sender_rcpt_verdict(sender, rcpt_count):
    """RCPT TO rule for the null sender: ``rcpt_count`` is the number of
    recipients the transaction would have with this one (1 for the first)."""
    if is_null_sender(sender) and rcpt_count > C.NULL_SENDER_MAX_RECIPIENTS:
        return _refused(REPLY_NULL_SENDER_RECIPIENTS)
    return Verdict(True, 250, REPLY_RECIPIENT_OK, None, None)
