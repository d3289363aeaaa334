# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Relay replies that mean "later", not "never", and how an MTA turns them into retries.

Every rule is a ``pattern`` matched against one SMTP reply line (without CRLF)
and a ``replacement``, both in Postfix regexp-table syntax: the patterns are
POSIX extended regular expressions that Python's ``re`` reads the same way,
the replacements use ``${n}``.  Postfix uses them as its ``smtp_reply_filter``;
the relay guard (roles/relay_guard) applies them for Sendmail and qmail, which
bounce every 5xx of their smart host.
"""

from __future__ import annotations

import re

# The two daily limits of "Sending limits for the SMTP relay service"
# (constants.REPLY_USER_DAILY, REPLY_CUSTOMER_DAILY): the limit passes, the
# mail must wait for it instead of bouncing.
LIMIT_RULES = (
    {"pattern": r"^550([ -])5\.4\.5(.*)$", "replacement": "450${1}4.4.5${2}"},
    {"pattern": r"^550([ -])5\.7\.1( .*[Ll]imit exceeded.*)$", "replacement": "450${1}4.7.1${2}"},
)

# Refusals that say this server is not (yet) set up right with the relay
# (relay access, credentials, TLS or AUTH missing), not that the message is
# bad: deferring keeps the mail queued until the configuration is fixed.
REFUSAL_RULES = (
    {"pattern": r"^550([ -])5\.7\.([01]) (Mail relay denied|Invalid credentials for relay)(.*)$",
     "replacement": "450${1}4.7.${2} ${3}${4}"},
    {"pattern": r"^530([ -])5\.7\.0 (Must issue a STARTTLS command first|Authentication Required)(.*)$",
     "replacement": "450${1}4.7.0 ${2}${3}"},
)

_GROUP = re.compile(r"\$\{([0-9]+)\}")


def retry_rules():
    """The rules as published in ``relay_settings.retry_replies``."""
    return {"limits": [dict(rule) for rule in LIMIT_RULES],
            "refusals": [dict(rule) for rule in REFUSAL_RULES]}


def apply_rules(line, rules):
    """``line`` after the first rule of ``rules`` that matches it (unchanged if none)."""
    for rule in rules:
        match = re.match(rule["pattern"], line)
        if match:
            return match.expand(_GROUP.sub(r"\\g<\1>", rule["replacement"]))
    return line
