# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Facts taken from the service document (smtp-relay-service.txt).

Every number and reply text here is quoted from the document; change them
only when the document changes.
"""

from __future__ import annotations

# Step 12: "point to smtp-relay.gmail.com".
DEFAULT_RELAY_HOST = "smtp-relay.gmail.com"
# The DoS section names this second spelling of the same service.
KNOWN_RELAY_HOSTS = ("smtp-relay.gmail.com", "smtp-relay.google.com")

# Step 12: "port 25, port 465, or port 587"; TLS required => 587.
RELAY_PORTS = (25, 465, 587)
PORT_SMTP = 25
PORT_IMPLICIT_TLS = 465
PORT_SUBMISSION = 587

# Step 8.3: "The maximum number of IP addresses that you can specify in the
# range is 65,536."  => IPv4 /16, IPv6 /112 at the widest.
MAX_RANGE_ADDRESSES = 65536
MIN_PREFIXLEN = {4: 16, 6: 112}
ADDRESS_BITS = {4: 32, 6: 128}

# Replies quoted from "Sending limits for the SMTP relay service".
REPLY_USER_DAILY = "550 5.4.5 Daily SMTP relay limit exceeded for user."
REPLY_CUSTOMER_DAILY = "550 5.7.1 Daily SMTP relay limit exceeded for customer."
REPLY_CUSTOMER_PEAK = "450 4.2.1 Peak SMTP relay limit exceeded for customer."

# TLS modes of a sending MTA.
TLS_NONE, TLS_OPPORTUNISTIC, TLS_REQUIRED, TLS_IMPLICIT = "none", "opportunistic", "required", "implicit"
TLS_MODES = (TLS_NONE, TLS_OPPORTUNISTIC, TLS_REQUIRED, TLS_IMPLICIT)

# Step 6, "Allowed senders".
SENDERS_REGISTERED, SENDERS_DOMAINS, SENDERS_ANY = "registered_users", "domain_addresses", "any_address"
SENDER_MODES = (SENDERS_REGISTERED, SENDERS_DOMAINS, SENDERS_ANY)

# Limits per user (24 h).
USER_DAILY_MESSAGES = 10000
USER_DAILY_UNIQUE_RECIPIENTS = 10000
# Limits per customer: "approximately 130 times the number of user licenses"
# per 24 h, "upper bound of 4,600,000"; "approximately 9 times" per 10 min,
# "upper bound of 319,444".
CUSTOMER_DAILY_PER_LICENSE = 130
CUSTOMER_DAILY_CAP = 4600000
CUSTOMER_PEAK_PER_LICENSE = 9
CUSTOMER_PEAK_CAP = 319444
# "customers who have not yet paid a bill: 100 total recipients per day, 50
# total recipients in a 10-minute window".
UNPAID_DAILY_RECIPIENTS = 100
UNPAID_PEAK_RECIPIENTS = 50
PEAK_WINDOW_SECONDS = 600
DAILY_WINDOW_SECONDS = 86400

# "The SMTP Relay service does not support multiple envelope recipients
# (RCPT TO) when specifying a null envelope sender (MAIL FROM: <>)."
NULL_SENDER_MAX_RECIPIENTS = 1

# Text quoted from step 6 (the "Any addresses" option).
ANY_ADDRESS_WARNING = (
    "The Any addresses option makes you more vulnerable to abuse, either through "
    "malware on your user's machines or by misconfiguration of your SMTP "
    "infrastructure. Therefore, we don't recommend this option."
)
# Text quoted from step 6 about foreign envelope senders.
REWRITE_NOTE = (
    "If the envelope sender is not in one of your domains, the system changes the "
    "envelope sender from user@[domain you don't own] to postmaster@[your domain], "
    "where [your domain] is the domain the system receives from SMTP AUTH or from "
    "the HELO or EHLO command."
)

# Mask shown instead of a secret in any output.
SECRET_MASK = "********"
