# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain names, HELO names and envelope addresses.

Decision (documented in docs and tests): a HELO name *identifies the customer*
when it is a syntactically valid, fully qualified name (at least two labels,
non-numeric top label) that equals one of the customer's domains or is a
subdomain of one.  The bare domain counts: the service document asks to
"present one of your domain names in the HELO or EHLO command", and
``example.com`` is one of the domain names of the customer ``example.com``.
"""

from __future__ import annotations

import re

from .findings import RelayRuleError

_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_RE = re.compile(r"^[0-9]+$")


def normalize_domain(name):
    """Lower-case, strip one trailing dot, encode IDNA (A-labels).

    Raises ``RelayRuleError`` (a ``ValueError``) for a value that cannot be a
    domain name at all (not a string, empty, not IDNA-encodable).  Use
    ``is_hostname``/``is_fqdn`` for the syntax rules.
    """
    if not isinstance(name, str):
        raise RelayRuleError("%r is not a domain name (expected a string)" % (name,), rule="domain-syntax")
    text = name.strip()
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    if not text:
        raise RelayRuleError("empty domain name", rule="domain-syntax", fix="give a name such as example.com")
    try:
        labels = []
        for label in text.split("."):
            if label and not label.isascii():
                label = label.encode("idna").decode("ascii")
            labels.append(label.lower())
    except UnicodeError as exc:
        raise RelayRuleError("%r is not a valid internationalised domain name (%s)" % (name, exc), rule="domain-syntax")
    return ".".join(labels)


def _safe_normalize(name):
    try:
        return normalize_domain(name)
    except RelayRuleError:
        return None


def is_hostname(name):
    """True for a syntactically valid host name (LDH labels, 1-63 octets each,
    at most 253 in total); a single label such as ``localhost`` is allowed."""
    norm = _safe_normalize(name)
    if norm is None or len(norm) > 253:
        return False
    labels = norm.split(".")
    if not all(_LABEL_RE.match(label) for label in labels):
        return False
    # a dotted quad is an address, not a name
    return not _NUMERIC_RE.match(labels[-1])


def is_fqdn(name):
    """True for a valid host name of at least two labels (``mail.example.com``,
    ``example.com``), never an address literal."""
    return is_hostname(name) and "." in normalize_domain(name)


def address_domain(address):
    """The normalized domain of an envelope address, or None.

    None for the null sender (``""`` or ``"<>"``) and for an address without
    a domain part.  Angle brackets and an RFC 5321 source route
    (``<@a,@b:user@example.com>``) are stripped.
    """
    if address is None:
        return None
    text = str(address).strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if text.startswith("@") and ":" in text:
        text = text.split(":", 1)[1]
    if not text or "@" not in text:
        return None
    domain = text.rsplit("@", 1)[1]
    if not domain:
        return None
    if domain.startswith("[") and domain.endswith("]"):
        return domain.lower()  # address literal, kept as is
    return _safe_normalize(domain)


def domain_matches(name, domains):
    """The customer domain that ``name`` equals or is a subdomain of, else None.

    The most specific (longest) matching domain wins.  ``domains`` entries
    that are not valid names are ignored.
    """
    norm = _safe_normalize(name) if name is not None else None
    if not norm:
        return None
    best = None
    for domain in domains or ():
        dnorm = _safe_normalize(domain) if domain is not None else None
        if not dnorm:
            continue
        if norm == dnorm or norm.endswith("." + dnorm):
            if best is None or len(dnorm) > len(best):
                best = dnorm
    return best


def helo_identifies_customer(helo, domains):
    """The customer domain a HELO/EHLO name identifies, else None.

    The name must be a fully qualified name (see ``is_fqdn``) equal to one of
    ``domains`` or inside one of them; address literals never identify.
    """
    if helo is None or not is_fqdn(helo):
        return None
    return domain_matches(helo, domains)
