# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sending limits of the relay service, and MTA throttles that respect them.

Limits (service document, "Sending limits for the SMTP relay service"):

* per user, 24 h: 10,000 messages and 10,000 unique recipients;
* per customer, 24 h: ~130 x licenses total recipients, at most 4,600,000;
* per customer, 10 min: ~9 x licenses total recipients, at most 319,444;
* customers who have not paid a bill yet: 100 per day, 50 per 10 minutes.
  The document calls these "lower" limits, so an unpaid customer gets the
  smaller of the licence-based value and the unpaid value.

Throttle formula (``suggested_throttles``), for a fleet of ``servers`` MTAs
that share one customer limit, with ``margin`` (default 0.2) held back:

* ``fleet_peak_budget  = floor(peak  * (1 - margin))``  recipients / 10 min
* ``fleet_daily_budget = floor(daily * (1 - margin))``  recipients / 24 h
* ``peak_recipients_per_server  = fleet_peak_budget  // servers``
* ``daily_recipients_per_server = fleet_daily_budget // servers``
* ``recipients_per_minute = peak_recipients_per_server // 10`` (a server that
  never exceeds this rate can never put more than its share into any
  10-minute window);
* ``rate_delay_seconds = ceil(600 * recipients_per_message /
  peak_recipients_per_server)``, the pause between deliveries that enforces
  the same bound with one connection (Postfix ``smtp_destination_rate_delay``);
  0 when ``messages_per_minute`` is 60 or more (a whole-second delay would
  throttle harder than needed: use the rate and concurrency instead), None
  when the server's share is below one message per window;
* ``messages_per_minute = recipients_per_minute // recipients_per_message``
  (the limits count recipients, not messages);
* ``sustained_messages_per_minute = daily_recipients_per_server / 1440 /
  recipients_per_message``: the constant rate that also keeps the day under
  the daily limit (the daily limit binds long before the peak limit does when
  sending non-stop: 144 peak windows per day);
* ``minutes_at_peak_rate``: how long a server can send at
  ``recipients_per_minute`` before it has used its daily share;
* ``concurrency = clamp(ceil(messages_per_minute / 60), 1, 20)``: parallel,
  cached connections needed at about one message per second each, capped at
  20 (the usual MTA default) to stay clear of the relay's DoS protections,
  which ask for connection reuse rather than many connections.
"""

from __future__ import annotations

import math

from . import constants as C
from .findings import RelayRuleError

MAX_CONCURRENCY = 20
DEFAULT_MARGIN = 0.2


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        else:
            raise RelayRuleError(
                "%s must be a positive integer, got %r" % (name, value),
                rule="%s-positive" % name,
                fix="set %s to a whole number of at least 1" % name,
            )
    if value < 1:
        raise RelayRuleError(
            "%s must be a positive integer, got %r" % (name, value),
            rule="%s-positive" % name,
            fix="set %s to a whole number of at least 1" % name,
        )
    return value


def sending_limits(licenses, paid=True):
    """Per-user and per-customer limits for ``licenses`` user licences.

    Returns a dict with ``user_daily_messages``,
    ``user_daily_unique_recipients``, ``customer_daily_recipients``,
    ``customer_peak_recipients`` (per 10 minutes), ``peak_window_seconds``
    (600), ``daily_window_seconds`` (86400), plus ``licenses``, ``paid``,
    ``capped_daily``/``capped_peak`` (the documented upper bound applies) and
    the relay's ``replies`` for each limit.  Raises ``RelayRuleError`` unless
    ``licenses`` is a positive integer.
    """
    licenses = _positive_int(licenses, "licenses")
    paid = bool(paid)
    daily = licenses * C.CUSTOMER_DAILY_PER_LICENSE
    peak = licenses * C.CUSTOMER_PEAK_PER_LICENSE
    capped_daily = daily > C.CUSTOMER_DAILY_CAP
    capped_peak = peak > C.CUSTOMER_PEAK_CAP
    daily = min(daily, C.CUSTOMER_DAILY_CAP)
    peak = min(peak, C.CUSTOMER_PEAK_CAP)
    if not paid:
        daily = min(daily, C.UNPAID_DAILY_RECIPIENTS)
        peak = min(peak, C.UNPAID_PEAK_RECIPIENTS)
    return {
        "licenses": licenses,
        "paid": paid,
        "user_daily_messages": C.USER_DAILY_MESSAGES,
        "user_daily_unique_recipients": C.USER_DAILY_UNIQUE_RECIPIENTS,
        "customer_daily_recipients": daily,
        "customer_peak_recipients": peak,
        "capped_daily": capped_daily and paid,
        "capped_peak": capped_peak and paid,
        "peak_window_seconds": C.PEAK_WINDOW_SECONDS,
        "daily_window_seconds": C.DAILY_WINDOW_SECONDS,
        "replies": {
            "user_daily": C.REPLY_USER_DAILY,
            "customer_daily": C.REPLY_CUSTOMER_DAILY,
            "customer_peak": C.REPLY_CUSTOMER_PEAK,
        },
    }


def suggested_throttles(licenses, paid=True, servers=1, margin=DEFAULT_MARGIN, recipients_per_message=1):
    """Per-server MTA throttles that keep ``servers`` MTAs under the customer
    limits with ``margin`` held back (see the module docstring for the
    formula).  ``feasible`` is False when the fleet is too large for every
    server to get even one recipient per 10-minute window."""
    servers = _positive_int(servers, "servers")
    recipients_per_message = _positive_int(recipients_per_message, "recipients_per_message")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise RelayRuleError(
            "margin must be a number from 0 up to (not including) 1, got %r" % (margin,),
            rule="margin-range",
            fix="use e.g. 0.2 to keep 20% of each limit in reserve",
        )
    limits = sending_limits(licenses, paid)
    fleet_peak = int(math.floor(limits["customer_peak_recipients"] * (1 - margin)))
    fleet_daily = int(math.floor(limits["customer_daily_recipients"] * (1 - margin)))
    peak_per_server = fleet_peak // servers
    daily_per_server = fleet_daily // servers
    windows_per_minute = C.PEAK_WINDOW_SECONDS // 60
    recipients_per_minute = peak_per_server // windows_per_minute
    messages_per_minute = recipients_per_minute // recipients_per_message
    feasible = peak_per_server >= 1 and daily_per_server >= 1
    if messages_per_minute >= 60:
        rate_delay = 0
    elif peak_per_server >= recipients_per_message:
        rate_delay = int(math.ceil(C.PEAK_WINDOW_SECONDS * recipients_per_message / float(peak_per_server)))
    else:
        rate_delay = None
    sustained = daily_per_server / (C.DAILY_WINDOW_SECONDS / 60.0) / recipients_per_message
    if recipients_per_minute:
        minutes_at_peak = daily_per_server // recipients_per_minute
    else:
        minutes_at_peak = None
    concurrency = min(MAX_CONCURRENCY, max(1, int(math.ceil(messages_per_minute / 60.0))))
    return {
        "servers": servers,
        "margin": margin,
        "recipients_per_message": recipients_per_message,
        "fleet_peak_budget": fleet_peak,
        "fleet_daily_budget": fleet_daily,
        "peak_recipients_per_server": peak_per_server,
        "daily_recipients_per_server": daily_per_server,
        "recipients_per_minute": recipients_per_minute,
        "messages_per_minute": messages_per_minute,
        "rate_delay_seconds": rate_delay,
        "sustained_messages_per_minute": round(sustained, 3),
        "minutes_at_peak_rate": minutes_at_peak,
        "concurrency": concurrency,
        "feasible": feasible,
    }
