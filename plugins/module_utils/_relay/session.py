# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-session and per-transaction acceptance rules of the relay service.

Used by the relay stand-in for every session, and by anything that wants to
predict what the relay will answer.  Every refusal's text comes from the reply
catalogue (``replies.render``); a ``Verdict`` names its catalogue entry
(``key``) so that the stand-in can wrap it over several lines as Google does.

Rules (service document, steps 6, 7 and 9, and the null-sender note):

* Authentication (step 7, "check one or both boxes"): with "Only accept mail
  from the specified IP addresses" checked, a client outside the allowlist is
  refused (``550 5.7.0 Mail relay denied``) even when it authenticated: the box
  says the system *only* accepts mail from these addresses.  With "Require SMTP
  Authentication" checked, a client that did not log in is refused (``530 5.5.1
  Authentication Required``).  Both boxes: both must hold.  Neither box (the
  Admin console does not save that): SMTP AUTH is the only way to tie a client
  to the customer.  SMTP AUTH implies TLS.
* Allowed senders (step 6): "Only registered Apps users" refuses every sender
  that is not a listed user, inside the domains or not (``550 5.7.0 Mail
  Sending denied``); "Only addresses in my domains" refuses senders outside
  them (``550 5.7.1 Invalid credentials for relay``); "Any addresses".
* The HELO rule: with "any address", with a sender outside the customer's
  domains, and with the null sender, the session must have used SMTP AUTH or
  presented one of the customer's domains in HELO/EHLO (``550 5.7.1 Invalid
  credentials for relay``).
* The rewrite (step 6): a sender outside the customer's domains (and the null
  sender) is passed on as ``postmaster@<domain>``, the domain taken from SMTP
  AUTH, else from HELO/EHLO; a sender inside the domains is kept.
* The null sender supports one RCPT TO only.
* HELO/EHLO names (Google's "HELO/EHLO email error" article): the argument must
  be the host's fully qualified name or, failing that, its IP address;
  ``helo_problem`` names an empty or malformed one (``501 5.5.4``, Google then
  closes the connection).  ``generic_helo`` names a name every host or the relay
  itself has (``localhost``, the relay's name), which Google's denial-of-service
  protection answers with ``421 4.7.0 Try again later, closing connection``.
"""

from __future__ import annotations

import ipaddress
from collections import namedtuple

from . import constants as C
from .domains import address_domain, domain_matches, helo_identifies_customer, is_fqdn, is_hostname
from .replies import render

Verdict = namedtuple("Verdict", ["accepted", "code", "text", "rewritten_sender", "customer_domain", "key"],
                     defaults=(None,))
Verdict.__doc__ = """Outcome of one acceptance rule.

``accepted``: bool; ``code``: SMTP reply code (int); ``text``: the logical reply
(one line: code, enhanced status code, text; no token); ``rewritten_sender``: the
envelope sender as the relay passes it on (None when refused);
``customer_domain``: the customer domain that identified the transaction (None
if none did); ``key``: the reply catalogue entry of a refusal (None when
accepted)."""

REPLY_STARTTLS_FIRST = render("starttls_first")
REPLY_AUTH_REQUIRED = render("auth_required")
REPLY_BAD_CREDENTIALS = render("bad_credentials")
REPLY_NULL_SENDER_RECIPIENTS = render("null_sender_recipients")
REPLY_SENDER_OK = "250 2.1.0 OK"
REPLY_RECIPIENT_OK = "250 2.1.5 OK"

_NULL_SENDERS = ("", "<>")

# Names every host answers to (Debian's and Red Hat's /etc/hosts), and the relay's own public names: a HELO with
# one of them tells the relay nothing about the client, and Google's relay answers it with its DoS reply.
GENERIC_HELO_NAMES = (
    "localhost", "localhost.localdomain", "localhost4", "localhost4.localdomain4", "localhost6",
    "localhost6.localdomain6", "ip6-localhost", "ip6-loopback",
) + tuple(C.KNOWN_RELAY_HOSTS)


def is_null_sender(sender):
    """True for the null reverse-path (``""`` or ``"<>"``)."""
    return sender is None or str(sender).strip() in _NULL_SENDERS


def _refused(key, **values):
    text = render(key, **values)
    return Verdict(False, int(text[:3]), text, None, None, key)


def domains_seen(helo, sender):
    """The domains of the session "as obtained from HELO and MAIL FROM": the sender's domain, then the HELO name
    when it is a name (not an address)."""
    seen = []
    domain = address_domain(sender) if sender and not is_null_sender(sender) else None
    if domain:
        seen.append(domain)
    if helo and is_hostname(helo):
        name = helo.strip().rstrip(".").lower()
        if name not in seen:
            seen.append(name)
    return ", ".join(seen) or "(none)"


def relay_access_verdict(client_ip, allowlisted, auth_user, auth_required, allowlist_enabled, helo=None,
                         sender=None):
    """May this client relay at all?  Checked at MAIL FROM.

    ``allowlisted``: the client address lies in the IP allowlist;
    ``auth_user``: the SMTP AUTH user name, or None; ``auth_required``: the
    "Require SMTP Authentication" box; ``allowlist_enabled``: the "Only accept
    mail from the specified IP addresses" box (a non-empty allowlist);
    ``helo``/``sender``: only for the refusal's text.

    The allowlist box refuses every client outside it, authenticated or not;
    the AUTH box refuses every client that did not log in; with both boxes both
    must hold; with neither, SMTP AUTH is the only way the relay can tie the
    client to the customer.
    """
    if allowlist_enabled and not allowlisted:
        return _refused("relay_denied", ip=client_ip, domains=domains_seen(helo, sender))
    if auth_required and not auth_user:
        return _refused("auth_required")
    if not allowlist_enabled and not auth_user:
        return _refused("relay_denied", ip=client_ip, domains=domains_seen(helo, sender))
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

    Decisions: with "any address" every transaction must be identified by SMTP
    AUTH or HELO (the document: "For the Any address option to work properly,
    you must configure your mail server either to use SMTP AUTH ... or to
    present one of your domain names in the HELO or EHLO command").  The null
    sender needs the same identification in every mode (the document asks it
    for "an empty envelope-from") and is passed on as ``postmaster@<domain>``;
    "registered users only" does not refuse it (there is no user to compare).
    """
    if mode not in C.SENDER_MODES:
        raise ValueError("allowed senders mode must be one of %s, not %r" % (", ".join(C.SENDER_MODES), mode))
    identified = identifying_domain(domains, auth_user, helo)
    if is_null_sender(sender):
        if not identified:
            return _refused("invalid_credentials", ip=client_ip)
        return Verdict(True, 250, REPLY_SENDER_OK, "postmaster@" + identified, identified)
    sender = str(sender).strip().strip("<>")
    if mode == C.SENDERS_REGISTERED and not _is_registered(sender, registered_users):
        return _refused("sending_denied", ip=client_ip)
    own_domain = domain_matches(address_domain(sender), domains)
    if own_domain:
        if mode == C.SENDERS_ANY and not identified:
            return _refused("invalid_credentials", ip=client_ip)
        return Verdict(True, 250, REPLY_SENDER_OK, sender, identified or own_domain)
    if mode != C.SENDERS_ANY or not identified:
        return _refused("invalid_credentials", ip=client_ip)
    return Verdict(True, 250, REPLY_SENDER_OK, "postmaster@" + identified, identified)


def null_sender_rcpt_verdict(sender, rcpt_count):
    """RCPT TO rule for the null sender: ``rcpt_count`` is the number of
    recipients the transaction would have with this one (1 for the first)."""
    if is_null_sender(sender) and rcpt_count > C.NULL_SENDER_MAX_RECIPIENTS:
        return _refused("null_sender_recipients")
    return Verdict(True, 250, REPLY_RECIPIENT_OK, None, None)


# ---- HELO / EHLO -----------------------------------------------------------------------------------

def _address(text):
    """The IP address a HELO argument names (bare or as an RFC 5321 address literal), else None."""
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1]
        if inner[:5].lower() == "ipv6:":
            candidate, version = inner[5:], 6
        else:
            candidate, version = inner, 4
    else:
        candidate, version = text, None
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if version is not None and address.version != version:
        return None
    return address


def helo_problem(name, fqdn_required=False):
    """What is wrong with a HELO/EHLO argument, as a reply catalogue key (``helo_empty``,
    ``helo_invalid``), or None when it is acceptable.

    Acceptable: a host name (letters, digits and hyphens in dot-separated labels of 1-63 characters, at most 253
    in all; one trailing dot allowed; internationalised names in IDNA form or as U-labels), an address literal
    (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``) or a bare IP address (Google's HELO article asks for the sending
    host's fully qualified name, or its IP address when it has none).  ``fqdn_required``: a name of a single
    label (``mailhost``) is malformed too (the article's strict reading).  Malformed: empty, white space inside,
    any other character (``_``, ``:``, ``/``), empty labels, a broken literal.
    """
    text = "" if name is None else str(name).strip()
    if not text:
        return "helo_empty"
    if any(char.isspace() for char in text):
        return "helo_invalid"
    if text.startswith("["):
        return None if _address(text) is not None else "helo_invalid"
    if _address(text) is not None:
        return None
    if not is_hostname(text):
        return "helo_invalid"
    if fqdn_required and not is_fqdn(text):
        return "helo_invalid"
    return None


def generic_helo(name, own_names=()):
    """True when a HELO/EHLO argument is a generic name: one of ``GENERIC_HELO_NAMES``, one of ``own_names``
    (the relay's own host names), or a loopback address (bare or literal).  Case and a trailing dot do not
    matter."""
    text = "" if name is None else str(name).strip().rstrip(".").lower()
    if not text:
        return False
    address = _address(text)
    if address is not None:
        return address.is_loopback
    names = set(GENERIC_HELO_NAMES) | {str(own).strip().rstrip(".").lower() for own in own_names or () if own}
    return text in names
