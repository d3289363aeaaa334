# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This file only documents the action plugin plugins/action/relay_allowlist_check.py.

from __future__ import annotations

DOCUMENTATION = r"""
module: relay_allowlist_check
short_description: Check the IP allowlist for Google's SMTP relay service
version_added: 0.1.0
description:
  - Checks the IP addresses and CIDR ranges an administrator will enter in the Admin console's SMTP relay
    allowlist ("Only accept mail from the specified IP addresses"), and optionally that they cover the mail
    servers' egress addresses.
  - Accepts IPv4 and IPv6, the latter in every text form the service document shows (full with leading zeros,
    leading zeros dropped, V(::) compressed), and returns each range in canonical CIDR form with its address count,
    and the total number of distinct addresses allowed.
  - Fails for malformed entries, ranges of more than 65,536 addresses (IPv4 wider than V(/16), IPv6 wider than
    V(/112)), host bits set (naming the network probably meant), duplicates and overlapping or contained ranges
    (naming both entries), and egress addresses no enabled range covers.
  - Warns for non-public space (private, loopback, link-local, CGNAT, documentation, ULA, multicast, reserved), and
    for ranges much wider than the egress addresses inside them, suggesting the narrowest covering range.
  - Every failure lists all violated rules at once, each naming the entry (for example V(allowlist[3])), the rule and
    the fix.
author: smarthost.relay maintainers (!UNKNOWN)
options:
  allowlist:
    description:
      - The allowlist entries. Each is an address or CIDR range, or a dictionary with the keys V(range),
        V(enabled) (default V(true)) and V(description), mirroring the Admin console's entries.
      - A single string is split at commas and whitespace.
      - Disabled entries are checked but allow nothing and cover no egress address.
    type: list
    elements: raw
    required: true
  egress_addresses:
    description:
      - The public addresses (or ranges) the mail servers send from, as the relay sees them.
      - When given, each must be covered by an enabled allowlist range, and ranges much wider than the egress
        addresses inside them are reported.
    type: list
    elements: str
  wide_factor:
    description:
      - Report a range as too wide when it holds at least this many times the addresses of the narrowest CIDR range
        covering the egress addresses inside it.
    type: int
    default: 16
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - smarthost.relay._attributes
  - smarthost.relay._attributes.controller_check
seealso:
  - module: smarthost.relay.relay_settings_check
  - plugin: smarthost.relay.relay_allowlist
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Check the allowlist before touching any mail server
  smarthost.relay.relay_allowlist_check:
    allowlist:
      - 198.51.100.16/29
      - 2001:db8:1050:0000:0000:0005:0600:0000/112
    egress_addresses: "{{ groups['mail'] | map('extract', hostvars, 'relay_egress_address') | list }}"
  run_once: true

- name: Entries as in the Admin console, with descriptions and a disabled one
  smarthost.relay.relay_allowlist_check:
    allowlist:
      - range: 198.51.100.16/29
        description: Office mail servers
      - range: 203.0.113.8/30
        description: Old data centre
        enabled: false
  register: allowlist

- name: Show the canonical ranges to enter in the Admin console
  ansible.builtin.debug:
    msg: "{{ allowlist.ranges | map(attribute='cidr') | list }}"
"""

RETURN = r"""
ranges:
  description: The valid entries, in input order.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: Position of the entry in O(allowlist).
      type: int
      sample: 0
    input:
      description: The entry as given.
      type: str
      sample: 2001:db8:1050:0000:0000:0005:0600:0000/112
    cidr:
      description: The canonical CIDR form (netaddr's compact form for IPv6).
      type: str
      sample: 2001:db8:1050::5:600:0/112
    version:
      description: IP version, V(4) or V(6).
      type: int
      sample: 6
    prefixlen:
      description: The prefix length.
      type: int
      sample: 112
    addresses:
      description: Number of addresses in the range.
      type: int
      sample: 65536
    first:
      description: First address of the range.
      type: str
      sample: 2001:db8:1050::5:600:0
    last:
      description: Last address of the range.
      type: str
      sample: 2001:db8:1050::5:600:ffff
    enabled:
      description: Whether the entry is enabled.
      type: bool
      sample: true
    description:
      description: The entry's description, if given.
      type: str
      sample: Office mail servers
total:
  description: Number of distinct addresses allowed by the enabled ranges.
  returned: always
  type: int
  sample: 65544
egress:
  description: The egress addresses, each with whether it is covered and the innermost enabled range covering it.
  returned: always
  type: list
  elements: dict
  sample: [{"index": 0, "input": "198.51.100.17", "cidr": "198.51.100.17/32", "covered": true, "covered_by": "198.51.100.16/29"}]
findings:
  description: Every error and warning, each with V(variable), V(rule), V(message), V(fix) and V(severity).
  returned: always
  type: list
  elements: dict
  sample: [{"variable": "allowlist[1]", "rule": "allowlist-max-addresses", "severity": "error",
            "message": "10.0.0.0/15 holds 131072 addresses; ...", "fix": "split it into /16 ranges ..."}]
msg:
  description: A summary, or on failure every violated rule, one per line.
  returned: always
  type: str
"""
