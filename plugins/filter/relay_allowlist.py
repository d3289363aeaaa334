# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: relay_allowlist
short_description: Check an SMTP relay IP allowlist and return the report
version_added: 0.1.0
author: smarthost.relay maintainers (!UNKNOWN)
description:
  - Checks allowlist entries for Google's SMTP relay service exactly like
    M(smarthost.relay.relay_allowlist_check), but as a filter that returns the report instead of failing.
  - Rule violations are in the report's RV(_value.errors); only unusable input (wrong types, netaddr missing) raises
    an error.
positional: _input
options:
  _input:
    description:
      - Allowlist entries (addresses, CIDR ranges, or dictionaries with V(range), V(enabled), V(description)).
    type: list
    elements: raw
    required: true
  egress:
    description:
      - The mail servers' public egress addresses; each must be covered by an enabled range.
    type: list
    elements: str
  wide_factor:
    description:
      - Warn when a range holds at least this many times the addresses of the narrowest range covering the egress
        addresses inside it.
    type: int
    default: 16
requirements:
  - netaddr (Python library on the controller)
"""

EXAMPLES = r"""
- name: Canonical ranges and the total number of addresses
  ansible.builtin.debug:
    msg: "{{ report.ranges | map(attribute='cidr') | list }} = {{ report.total }} addresses"
  vars:
    report: "{{ ['1050:0000:0000:0000:0005:0600:300c:0000/112', '198.51.100.16/29'] | smarthost.relay.relay_allowlist }}"

- name: Fail early when an egress address is not covered
  ansible.builtin.assert:
    that: report.ok
    fail_msg: "{{ report.errors | map(attribute='message') | join('; ') }}"
  vars:
    report: "{{ relay_allowlist | smarthost.relay.relay_allowlist(egress=[ansible_default_ipv4.address]) }}"
"""

RETURN = r"""
_value:
  description: The allowlist report.
  type: dict
  contains:
    ok:
      description: V(true) when there are no errors.
      type: bool
    ranges:
      description: The valid entries with V(index), V(input), V(cidr) (canonical), V(version), V(prefixlen),
        V(addresses), V(first), V(last), V(enabled), V(description).
      type: list
      elements: dict
    total:
      description: Distinct addresses allowed by the enabled ranges.
      type: int
    egress:
      description: The egress addresses with V(covered) and V(covered_by).
      type: list
      elements: dict
    errors:
      description: Rule violations, each with V(variable), V(rule), V(message), V(fix), V(severity).
      type: list
      elements: dict
    warnings:
      description: Warnings, in the same form.
      type: list
      elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smarthost.relay.plugins.module_utils._relay.allowlist import (
    HAS_NETADDR,
    NETADDR_IMPORT_ERROR,
    check_allowlist,
)
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import validate_from_doc


def relay_allowlist(value, egress=None, wide_factor=16):
    """The allowlist report for ``value`` (see DOCUMENTATION)."""
    args, errors, _no_log = validate_from_doc(
        DOCUMENTATION, {"_input": value, "egress": egress, "wide_factor": wide_factor})
    if errors:
        raise AnsibleFilterError("relay_allowlist: " + "; ".join(errors))
    if not HAS_NETADDR:
        raise AnsibleFilterError("relay_allowlist needs the Python library netaddr on the controller: %s" % NETADDR_IMPORT_ERROR)
    return check_allowlist(args["_input"], egress=args["egress"], wide_factor=args["wide_factor"]).as_dict()


class FilterModule(object):
    def filters(self):
        return {"relay_allowlist": relay_allowlist}
