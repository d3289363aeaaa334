# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This file only documents the PowerShell module plugins/modules/exchange_edge_facts.ps1.

from __future__ import annotations

DOCUMENTATION = r"""
module: exchange_edge_facts
short_description: Check an Exchange Edge Transport server against the hub's relay settings
version_added: 0.1.0
description:
  - Runs on an Edge Transport server and reports, as the fact C(exchange_edge), the Edge side of the service
    document's steps 10 and 11 for Exchange with an Edge server. It never changes anything.
  - Step 10, the replicated send connector. Reads the Edge's copy of the EdgeSync connector O(connector_name) and,
    when O(expected) is given (the C(connector) that M(smarthost.relay.exchange_send_connector) returned on the hub),
    compares the replicated settings (address spaces, smart hosts, DNS routing, port, TLS, certificate validation,
    smart host authentication and its user, HELO name, domain security, message size, inactivity timeout).
  - Step 11, the receive connectors. For each address in O(hub_addresses), finds the enabled receive connector on
    port 25 (or O(receive_connector)) whose C(RemoteIPRanges) match it most specifically, as Exchange does, and checks
    that it allows Exchange Server authentication (C(AuthMechanism) has C(ExchangeServer)) and the Exchange Servers
    permission group (C(PermissionGroups) has C(ExchangeServers)).
  - Fails, listing every failed check, when a check fails and O(fail_on_mismatch=true); the facts are returned
    either way.
author: smarthost.relay maintainers (!UNKNOWN)
options:
  connector_name:
    description:
      - The EdgeSync send connector, C(EdgeSync - <Active Directory site> to Internet).
    type: str
    required: true
  expected:
    description:
      - The hub's settings of the connector, as M(smarthost.relay.exchange_send_connector) returns them in
        C(connector). Not given, the connector is only looked for.
    type: dict
  hub_addresses:
    description:
      - IP addresses the Mailbox (Hub Transport) servers connect to the Edge server from.
    type: list
    elements: str
    required: true
  receive_connector:
    description:
      - Check only this receive connector. Defaults to the enabled receive connectors bound to port 25.
    type: str
  fail_on_mismatch:
    description:
      - Fail when a check fails. V(false) only reports.
    type: bool
    default: true
  session:
    description:
      - How the Exchange Management Shell is loaded, see O(smarthost.relay.exchange_send_connector#module:session). An
        Edge Transport server has no remote PowerShell endpoint, so V(snapin) is the default.
    default: snapin
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
  - smarthost.relay._attributes
  - smarthost.relay.exchange_session
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  idempotent:
    support: full
  platform:
    platforms: windows
notes:
  - EdgeSync replicates a change within minutes; run this module with retries after C(Start-EdgeSynchronization).
  - Receive connector ranges are matched in the forms Exchange accepts (address, CIDR, address with subnet mask,
    first-last range), IPv4 and IPv6. This matching is tested statically only; confirm it with the operator checklist
    in the collection's Exchange documentation.
seealso:
  - module: smarthost.relay.exchange_send_connector
"""

EXAMPLES = r"""
- name: Check the Edge server after pointing the EdgeSync connector at the relay
  smarthost.relay.exchange_edge_facts:
    connector_name: EdgeSync - Default-First-Site-Name to Internet
    expected: "{{ hub_connector.connector }}"
    hub_addresses: [10.0.1.11, 10.0.1.12]
  register: edge
  retries: 10
  delay: 30
  until: edge is not failed
"""

RETURN = r"""
ansible_facts:
  description: The facts.
  returned: always
  type: complex
  contains:
    exchange_edge:
      description: What the Edge server has, and the result of every check.
      returned: always
      type: complex
      contains:
        server:
          description: The Edge server's Exchange name.
          type: str
          sample: EDGE01
        version:
          description: Its C(AdminDisplayVersion).
          type: str
          sample: Version 15.2 (Build 1544.4)
        is_edge:
          description: Whether the server reports the Edge Transport role.
          type: bool
        connector:
          description: The Edge's copy of the connector, in the form of M(smarthost.relay.exchange_send_connector)'s
            C(connector); V(null) when it is missing.
          type: dict
        connector_differences:
          description: Each replicated setting that differs from O(expected), with the C(hub) and C(edge) values.
          type: list
          elements: dict
          sample: [{"setting": "SmartHosts", "hub": ["smtp-relay.gmail.com"], "edge": []}]
        receive_connectors:
          description: Every receive connector with its C(bindings), C(remote_ip_ranges), C(auth_mechanism) and
            C(permission_groups).
          type: list
          elements: dict
        checks:
          description: Each check with its C(name), C(ok) and C(detail).
          type: list
          elements: dict
          sample: [{"name": "exchange_server_authentication", "ok": true,
                    "detail": "Receive connector 'Default internal receive connector EDGE01' authentication: Tls, ExchangeServer"}]
        ok:
          description: Whether every check passed.
          type: bool
"""
