# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: mta_test_sender
short_description: The envelope sender of an MTA role's post-change test delivery
version_added: 0.1.0
author: smarthost.relay maintainers (!UNKNOWN)
description:
  - The sender the Postfix, Sendmail and qmail roles give the test message they send after a change
    (C(relay_test_message), C(relay_test_recipient)).
  - "The first that applies: O(explicit) (the role's C(<mta>_test_sender)) when not empty; with SMTP AUTH
    (C(relay_settings.auth)), the relay user (C(relay_settings.auth_username)); O(local_sender) when not empty;
    else postmaster at the customer's domain (C(relay_settings.customer_domain))."
positional: _input
options:
  _input:
    description:
      - The relay settings as the P(smarthost.relay.relay#role) role publishes them (C(relay_settings)); C(auth),
        C(auth_username) and C(customer_domain) are read.
    type: dict
    required: true
  explicit:
    description: The sender the user asked for (the role's C(<mta>_test_sender)); empty for none.
    type: str
    default: ""
  local_sender:
    description:
      - The registered address the role sends local accounts' mail as (C(relay_settings.local_senders.address)
        as the role applies it); empty for none.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: The sender of Postfix's test delivery
  ansible.builtin.debug:
    msg: >-
      {{ relay_settings | smarthost.relay.mta_test_sender(explicit=postfix_test_sender,
                                                          local_sender=relay_settings.local_senders.address | default('', true)) }}
"""

RETURN = r"""
_value:
  description: The envelope sender address.
  type: str
  sample: postmaster@example.com
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smarthost.relay.plugins.module_utils._relay.mta_choices import mta_test_sender as _test_sender
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import validate_from_doc


def mta_test_sender(value, explicit="", local_sender=""):
    """The test delivery's sender for ``value`` (relay_settings) (see DOCUMENTATION)."""
    args, errors, _no_log = validate_from_doc(DOCUMENTATION, {
        "_input": value, "explicit": explicit if explicit is not None else "",
        "local_sender": local_sender if local_sender is not None else ""})
    if errors:
        raise AnsibleFilterError("mta_test_sender: " + "; ".join(errors))
    return _test_sender(args["_input"], args["explicit"], args["local_sender"])


class FilterModule(object):
    def filters(self):
        return {"mta_test_sender": mta_test_sender}
