# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: retry_choice
short_description: Which relay replies an MTA role defers and retries instead of bouncing
version_added: 0.1.0
author: smarthost.relay maintainers (!UNKNOWN)
description:
  - From the relay settings as the P(smarthost.relay.relay#role) role publishes them (C(relay_settings)) and an MTA
    role's two switches (C(<mta>_limit_replies_retry), C(<mta>_relay_refusals_retry)), returns whether any reply is
    retried and the retry rules to apply, in order, first match wins.
  - The rules are C(relay_settings.retry_replies.limits) (the relay's daily-limit replies) when O(limits) is true,
    followed by C(relay_settings.retry_replies.refusals) (the relay's refusals of a server not yet set up right) when
    O(refusals) is true.
  - The Postfix role writes the rules into its C(smtp_delivery_status_filter) table; the Sendmail and qmail roles
    send through the relay guard (P(smarthost.relay.relay_guard#role)) when RV(_value.enabled) is true and pass it
    the rules.
  - The switches are read as Ansible reads a boolean (V(yes), V(no), V(true), V(false), V(1), V(0), ...); anything
    else is an error naming the option.
positional: _input
options:
  _input:
    description:
      - The relay settings as the P(smarthost.relay.relay#role) role publishes them (C(relay_settings)); only
        C(retry_replies) is read, and only for a switch that is on.
    type: dict
    required: true
  limits:
    description: Retry the relay's daily-limit replies (the MTA role's C(<mta>_limit_replies_retry)).
    type: bool
    required: true
  refusals:
    description: Retry the relay's refusals (the MTA role's C(<mta>_relay_refusals_retry)).
    type: bool
    required: true
"""

EXAMPLES = r"""
- name: The rules a Postfix status filter applies
  ansible.builtin.debug:
    msg: "{{ (relay_settings | smarthost.relay.retry_choice(limits=true, refusals=false)).rules }}"

- name: Whether Sendmail sends through the relay guard
  ansible.builtin.set_fact:
    sendmail_through_guard: >-
      {{ (relay_settings | smarthost.relay.retry_choice(limits=sendmail_limit_replies_retry,
                                                        refusals=sendmail_relay_refusals_retry)).enabled }}
"""

RETURN = r"""
_value:
  description: Whether any relay reply is retried, and the rules.
  type: dict
  contains:
    enabled:
      description: V(true) when O(limits) or O(refusals) is true.
      type: bool
      sample: true
    rules:
      description:
        - The retry rules, each with V(cause), V(code), V(status), V(retry_code), V(retry_status), V(pattern) and
          V(replacement), as C(relay_settings.retry_replies) publishes them; empty when neither switch is on.
      type: list
      elements: dict
      sample: [{"cause": "user_daily", "code": 550, "status": "5.4.5", "retry_code": 450, "retry_status": "4.4.5"}]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smarthost.relay.plugins.module_utils._relay.mta_choices import retry_choice as _retry_choice
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import validate_from_doc


def retry_choice(value, limits=None, refusals=None):
    """Whether ``value`` (relay_settings) is used to retry replies, and the rules (see DOCUMENTATION)."""
    given = {name: switch for name, switch in (("limits", limits), ("refusals", refusals)) if switch is not None}
    args, errors, _no_log = validate_from_doc(DOCUMENTATION, dict(given, _input=value))
    if errors:
        raise AnsibleFilterError("retry_choice: " + "; ".join(errors))
    try:
        return _retry_choice(args["_input"], args["limits"], args["refusals"])
    except ValueError as exc:
        raise AnsibleFilterError("retry_choice: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"retry_choice": retry_choice}
