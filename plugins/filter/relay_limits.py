# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: relay_limits
short_description: Sending limits of Google's SMTP relay service, and MTA throttles that respect them
version_added: 0.1.0
author: smarthost.relay maintainers (!UNKNOWN)
description:
  - From the number of user licences, returns the per-user and per-customer limits of the SMTP relay service per
    24 hours and per 10 minutes, with the documented caps (4,600,000 and 319,444) and the lower limits for customers
    who have not paid a bill yet (100 per day, 50 per 10 minutes).
  - Also returns suggested throttles for each of O(servers) mail servers that keep the whole fleet under the peak
    (10-minute) and daily limits with O(margin) held back.
  - "Formula: fleet budget = floor(limit * (1 - margin)); per server = fleet budget // servers;
    recipients_per_minute = per-server 10-minute budget // 10; messages_per_minute = recipients_per_minute //
    recipients_per_message; rate_delay_seconds = ceil(600 * recipients_per_message / per-server 10-minute budget)
    (0 at 60 messages per minute or more); sustained_messages_per_minute = per-server daily budget / 1440 /
    recipients_per_message; concurrency = clamp(ceil(messages_per_minute / 60), 1, 20)."
  - Values outside these rules raise an error naming the rule id (C([margin-range]), C([servers-positive]), ...), the
    option and how to fix it.
positional: _input
options:
  _input:
    description: Number of user licences in the Google account.
    type: int
    required: true
  paid:
    description: Whether the customer has paid a bill.
    type: bool
    default: true
  servers:
    description: Number of mail servers relaying through the service.
    type: int
    default: 1
  margin:
    description: Share of each limit held back as a safety margin, from V(0) up to (not including) V(1).
    type: float
    default: 0.2
  recipients_per_message:
    description: Average recipients per message (the limits count recipients, the throttles messages).
    type: int
    default: 1
"""

EXAMPLES = r"""
- name: Limits and throttles for 250 licences and two mail servers
  ansible.builtin.debug:
    msg: "{{ 250 | smarthost.relay.relay_limits(servers=2) }}"

- name: An account that has not paid a bill yet
  ansible.builtin.set_fact:
    relay_throttles: "{{ (25 | smarthost.relay.relay_limits(paid=false)).throttles }}"
"""

RETURN = r"""
_value:
  description: The limits and the throttles.
  type: dict
  contains:
    limits:
      description:
        - V(user_daily_messages), V(user_daily_unique_recipients), V(customer_daily_recipients),
          V(customer_peak_recipients) (per 10 minutes), V(peak_window_seconds), V(daily_window_seconds),
          V(capped_daily), V(capped_peak), V(licenses), V(paid) and the relay's V(replies) for each limit.
      type: dict
      sample: {"customer_daily_recipients": 32500, "customer_peak_recipients": 2250, "user_daily_messages": 10000}
    throttles:
      description:
        - Per-server V(messages_per_minute), V(recipients_per_minute), V(rate_delay_seconds),
          V(sustained_messages_per_minute), V(minutes_at_peak_rate), V(concurrency), the budgets, and V(feasible)
          (V(false) when the fleet is too large for every server to get one recipient per window).
      type: dict
      sample: {"messages_per_minute": 90, "concurrency": 2, "rate_delay_seconds": 1, "feasible": true}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smarthost.relay.plugins.module_utils._relay.findings import RelayRuleError
from ansible_collections.smarthost.relay.plugins.module_utils._relay.limits import sending_limits, suggested_throttles
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import validate_from_doc


def relay_limits(value, paid=True, servers=1, margin=0.2, recipients_per_message=1):
    """Limits and throttles for ``value`` licences (see DOCUMENTATION)."""
    args, errors, _no_log = validate_from_doc(DOCUMENTATION, {
        "_input": value, "paid": paid, "servers": servers, "margin": margin,
        "recipients_per_message": recipients_per_message})
    if errors:
        raise AnsibleFilterError("relay_limits: " + "; ".join(errors))
    try:
        return {
            "limits": sending_limits(args["_input"], args["paid"]),
            "throttles": suggested_throttles(args["_input"], args["paid"], args["servers"], args["margin"],
                                             args["recipients_per_message"]),
        }
    except RelayRuleError as exc:
        raise AnsibleFilterError("relay_limits: [%s] %s (%s)" % (exc.rule, exc.message, exc.fix))


class FilterModule(object):
    def filters(self):
        return {"relay_limits": relay_limits}
