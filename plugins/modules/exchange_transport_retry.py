# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This file only documents the PowerShell module plugins/modules/exchange_transport_retry.ps1.

from __future__ import annotations

DOCUMENTATION = r"""
module: exchange_transport_retry
short_description: Set the outbound retry intervals of an Exchange transport server
version_added: 0.1.0
description:
  - Sets how soon an Exchange transport server retries a smart host it could not reach, with
    C(Set-TransportService) (Exchange 2013 and later) or C(Set-TransportServer) (Exchange 2010), whichever the
    session has.
  - Only the options given are managed; each is compared with C(Get-TransportService) / C(Get-TransportServer) and
    set only when it differs. Check mode and diff mode are supported.
  - Google's SMTP relay document gives retry intervals for Exchange 2000/2003 only (first and second retry after 1
    minute, third after 3, then every 5) and says the defaults of later versions are appropriate. The
    C(smarthost.relay.exchange) role maps those values onto these options when asked to.
author: smarthost.relay maintainers (!UNKNOWN)
options:
  server:
    description:
      - The Mailbox (Hub Transport) server to configure. Defaults to the host the module runs on; on an Edge Transport
        server, the local server is always the one configured.
    type: str
  transient_failure_retry_interval:
    description:
      - Time between the quick connection retries (C(TransientFailureRetryInterval)), V([d.]hh:mm:ss) from
        V(00:00:01) to V(12:00:00).
    type: str
  transient_failure_retry_count:
    description:
      - Number of quick connection retries (C(TransientFailureRetryCount)), 0 to 15.
    type: int
  outbound_connection_failure_retry_interval:
    description:
      - Time between later connection attempts, after the quick retries failed
        (C(OutboundConnectionFailureRetryInterval)), from V(00:00:01) to V(20.00:00:00).
    type: str
  message_retry_interval:
    description:
      - Retry interval of individual messages (C(MessageRetryInterval)), from V(00:00:01) to V(1.00:00:00).
    type: str
  domain_controller:
    description:
      - Domain controller to read from and write to (not on an Edge Transport server).
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smarthost.relay._attributes
  - smarthost.relay.exchange_session
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
  platform:
    platforms: windows
seealso:
  - module: smarthost.relay.exchange_send_connector
"""

EXAMPLES = r"""
- name: Retry the relay after one minute twice, then every five minutes
  smarthost.relay.exchange_transport_retry:
    server: EX01
    transient_failure_retry_interval: "00:01:00"
    transient_failure_retry_count: 2
    outbound_connection_failure_retry_interval: "00:05:00"
"""

RETURN = r"""
server:
  description: The transport server's name.
  returned: success
  type: str
  sample: EX01
cmdlet:
  description: The cmdlet used, C(Set-TransportService) or C(Set-TransportServer).
  returned: success
  type: str
  sample: Set-TransportService
changes:
  description: The parameters that differed.
  returned: success
  type: list
  elements: str
  sample: [TransientFailureRetryInterval]
retry:
  description: The managed settings after the run (in check mode, as they would be).
  returned: success
  type: dict
  sample: {"TransientFailureRetryInterval": "00:01:00", "TransientFailureRetryCount": "2"}
"""
