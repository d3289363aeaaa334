# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the Postfix, Sendmail and qmail roles derive alike from ``relay_settings`` and their own switches.

``retry_on(limits, refusals)``: whether the role retries any relay reply (Sendmail and qmail then send through
the relay guard, Postfix writes its delivery status filter); mta.py's rules ask the same question.
``retry_choice(relay, limits, refusals)``: that answer and the retry rules that go with it.
``mta_test_sender(relay, explicit, local_sender)``: the envelope sender of a role's post-change test delivery.
The filters ``retry_choice`` and ``mta_test_sender`` expose them to the roles.
"""

from __future__ import annotations


def retry_on(limits, refusals):
    """True when the relay's daily-limit replies (``limits``) or its refusals (``refusals``) are retried."""
    return bool(limits) or bool(refusals)


def retry_choice(relay, limits, refusals):
    """``{"enabled": retry_on(limits, refusals), "rules": [...]}``: the limit rules of
    ``relay["retry_replies"]`` when ``limits``, then its refusal rules when ``refusals`` (first match wins)."""
    rules = []
    for key, wanted in (("limits", limits), ("refusals", refusals)):
        if wanted:
            rules.extend(_retry_rules(relay, key))
    return {"enabled": retry_on(limits, refusals), "rules": rules}


def _retry_rules(relay, key):
    published = (relay or {}).get("retry_replies")
    if not isinstance(published, dict) or not isinstance(published.get(key), list):
        raise ValueError("relay_settings.retry_replies.%s is missing: relay_settings were not published by this "
                         "collection's smarthost.relay.relay role, which every MTA role runs first" % key)
    return list(published[key])


def mta_test_sender(relay, explicit="", local_sender=""):
    """The test delivery's envelope sender: ``explicit`` when set; else, with SMTP AUTH, the relay user
    (``relay["auth_username"]``); else ``local_sender`` (the address the role sends local accounts' mail as,
    empty for none); else postmaster at the customer's domain."""
    if explicit:
        return explicit
    relay = relay or {}
    if relay.get("auth"):
        return relay.get("auth_username") or ""
    return local_sender or "postmaster@%s" % (relay.get("customer_domain") or "")
