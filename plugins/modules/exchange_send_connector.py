# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This file only documents the PowerShell module plugins/modules/exchange_send_connector.ps1.

from __future__ import annotations

DOCUMENTATION = r"""
module: exchange_send_connector
short_description: Route Exchange's outbound mail through a smart host such as Google's SMTP relay
version_added: 0.1.0
description:
  - Creates or updates the Exchange send connector that sends all outbound mail (address space V(*)) through a smart
    host, as the Exchange 2007/2010 sections of Google's SMTP relay service document describe, for Exchange 2010, 2013,
    2016, 2019 and Subscription Edition.
  - O(mode=connector) (no Edge server) manages a connector of its own (default name V(Outbound)) with usage type
    Internet on the Mailbox (Hub Transport) servers listed in O(source_servers). The connector is marked as managed
    through its Comment; a connector of the same name without the mark is left alone unless O(take_over=true).
  - O(mode=edge) switches the existing C(EdgeSync - <site> to Internet) connector of an Edge subscription to the smart
    host and turns domain security (mutual TLS) off, after checking that it has the address space V(*) and source
    servers; then, when something changed, runs C(Start-EdgeSynchronization) so the Edge servers receive it. Check the
    Edge side with M(smarthost.relay.exchange_edge_facts).
  - Reads the connector with C(Get-SendConnector), compares every managed setting and calls C(New-SendConnector) or
    C(Set-SendConnector) only with what differs. In check mode it reports what would change without changing
    anything; in diff mode it shows the connector's settings before and after (the authentication credential only as
    its user name, never the password).
  - Loads the Exchange Management Shell in the module's session, either from the snap-in (O(session=snapin), on an
    Exchange server) or through an implicit remote session to C(http://<server>/PowerShell/) with the
    C(Microsoft.Exchange) configuration (O(session=remote)).
  - Every option reaches PowerShell as data and is passed to the Exchange cmdlets as a parameter value; the module
    never builds command text from it.
author: smarthost.relay maintainers (!UNKNOWN)
options:
  name:
    description:
      - Name of the send connector.
      - With O(mode=edge), the Edge subscription's connector, C(EdgeSync - <Active Directory site> to Internet).
    type: str
    default: Outbound
  mode:
    description:
      - V(connector) manages a connector of its own for organizations without an Edge Transport server.
      - V(edge) points the existing EdgeSync connector of an Edge subscription at the smart host.
    type: str
    choices: [connector, edge]
    default: connector
  smart_hosts:
    description:
      - The smart hosts, by name (the relay, V(smtp-relay.gmail.com)). DNS routing is turned off.
    type: list
    elements: str
    required: true
  port:
    description:
      - Port of the smart host. The relay takes 25 and 587; 587 when TLS is required. Exchange speaks STARTTLS only,
        so port 465 (implicit TLS) does not work.
    type: int
    default: 587
  require_tls:
    description:
      - Send only over TLS (C(RequireTLS)).
    type: bool
    default: true
  ignore_starttls:
    description:
      - Never use TLS even when offered (C(IgnoreSTARTTLS)); for a relay setting without encryption only.
    type: bool
    default: false
  tls_auth_level:
    description:
      - How the smart host's certificate is checked (C(TlsAuthLevel)). V(DomainValidation) checks the chain and that
        the certificate names O(tls_domain); V(CertificateValidation) checks the chain only; V(EncryptionOnly) checks
        nothing.
      - Needs O(require_tls=true). Not set leaves the connector's level as it is.
    type: str
    choices: [EncryptionOnly, CertificateValidation, DomainValidation]
  tls_domain:
    description:
      - The name the smart host's certificate must carry with O(tls_auth_level=DomainValidation) (C(TlsDomain)),
        normally the relay host name.
    type: str
  smart_host_auth:
    description:
      - Smart host authentication (C(SmartHostAuthMechanism)). V(None) relies on the relay's IP allowlist;
        V(BasicAuthRequireTLS) authenticates with O(auth_username) and O(auth_password) (SMTP AUTH) after STARTTLS.
    type: str
    choices: ["None", BasicAuthRequireTLS]
    default: "None"
  auth_username:
    description:
      - SMTP AUTH user (a registered user of the Google Workspace account). Required with
        O(smart_host_auth=BasicAuthRequireTLS).
    type: str
  auth_password:
    description:
      - SMTP AUTH password, passed to Exchange as a credential object. Never returned or shown in a diff.
    type: str
  auth_password_update:
    description:
      - Exchange does not reveal the stored password, so it cannot be compared.
      - V(on_change) sets the credential when the connector is created, when the authentication mechanism or the user
        name changes. V(always) sets it on every run (the task then always reports a change).
    type: str
    choices: [always, on_change]
    default: on_change
  fqdn:
    description:
      - Name the connector presents in EHLO/HELO (C(Fqdn)); the relay needs one of the customer's domains there when
        it identifies the customer by the HELO name.
      - Not set leaves it as it is; an empty string resets it to the server's own name.
    type: str
  source_servers:
    description:
      - Mailbox (Hub Transport) servers that send through the connector, by Exchange server name. Each must be a
        transport server that C(Get-ExchangeServer) knows. Required with O(mode=connector); not allowed with
        O(mode=edge), where the Edge subscriptions are the source.
    type: list
    elements: str
    default: []
  max_message_size:
    description:
      - Largest message the connector sends (C(MaxMessageSize)), a whole number of V(KB), V(MB) or V(GB), or
        V(unlimited). Not set leaves it as it is.
    type: str
  connection_inactivity_timeout:
    description:
      - How long an idle connection stays open (C(ConnectionInactivityTimeOut)), V([d.]hh:mm:ss) from V(00:00:01) to
        V(1.00:00:00). Not set leaves it as it is.
    type: str
  take_over:
    description:
      - Manage an existing connector named O(name) that this module did not create, replacing its settings.
      - Only with O(mode=connector).
    type: bool
    default: false
  edge_sync:
    description:
      - With O(mode=edge), run C(Start-EdgeSynchronization) after a change.
    type: bool
    default: true
  edge_sync_server:
    description:
      - Mailbox server to run C(Start-EdgeSynchronization) on (its C(-Server)); defaults to the local server.
    type: str
  domain_controller:
    description:
      - Domain controller the cmdlets read from and write to (C(-DomainController)), so a change is read back from
        where it was made.
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
    details: The connector's settings before and after; the credential only as its user name.
  idempotent:
    support: full
    details: Except with O(auth_password_update=always), which sets the credential on every run.
  platform:
    platforms: windows
notes:
  - Needs an account with the Exchange permissions for send connectors (Organization Management, or the Send
    connectors entry of the transport permissions).
  - The cmdlets and parameters this module uses are checked in the collection's tests against Microsoft's documentation
    for Exchange 2010, 2013, 2016, 2019 and Subscription Edition; the module itself has not been run against a live
    Exchange server by those tests.
seealso:
  - module: smarthost.relay.exchange_edge_facts
  - module: smarthost.relay.exchange_transport_retry
  - name: Set-SendConnector
    description: Microsoft's reference for the cmdlet this module calls.
    link: https://learn.microsoft.com/powershell/module/exchangepowershell/set-sendconnector
"""

EXAMPLES = r"""
- name: Send all outbound mail through Google's relay (no Edge server), allowlisted by IP address
  smarthost.relay.exchange_send_connector:
    name: Outbound
    smart_hosts: [smtp-relay.gmail.com]
    port: 587
    require_tls: true
    tls_auth_level: DomainValidation
    tls_domain: smtp-relay.gmail.com
    source_servers: [EX01, EX02]

- name: The same with SMTP AUTH and a HELO name in the customer's domain
  smarthost.relay.exchange_send_connector:
    smart_hosts: [smtp-relay.gmail.com]
    tls_auth_level: DomainValidation
    tls_domain: smtp-relay.gmail.com
    smart_host_auth: BasicAuthRequireTLS
    auth_username: relay@example.com
    auth_password: "{{ vault_relay_password }}"
    fqdn: mail.example.com
    source_servers: [EX01]
    session: remote
    session_uri: http://ex01.corp.example.com/PowerShell/
  no_log: true

- name: Point the Edge subscription's connector at the relay and synchronize the Edge servers
  smarthost.relay.exchange_send_connector:
    mode: edge
    name: EdgeSync - Default-First-Site-Name to Internet
    smart_hosts: [smtp-relay.gmail.com]
    tls_auth_level: DomainValidation
    tls_domain: smtp-relay.gmail.com
  register: hub_connector
"""

RETURN = r"""
changed:
  description: Whether the connector was (or, in check mode, would be) created or changed.
  returned: always
  type: bool
created:
  description: Whether the connector did not exist (and was, or would be, created).
  returned: success
  type: bool
changes:
  description: Names of the settings that differed (C(AuthenticationCredential) for the credential).
  returned: success
  type: list
  elements: str
  sample: [SmartHosts, DNSRoutingEnabled, Port, RequireTLS]
connector:
  description:
    - The connector's settings after the run (in check mode, as they would be), in the form the module compares them
      in; lists sorted, names lower-case, sizes in bytes. The credential appears only as C(AuthenticationUser).
  returned: success
  type: dict
  sample: {"Name": "Outbound", "AddressSpaces": ["smtp:*;1"], "SmartHosts": ["smtp-relay.gmail.com"],
           "DNSRoutingEnabled": false, "Port": 587, "RequireTLS": true, "TlsAuthLevel": "domainvalidation",
           "TlsDomain": "smtp-relay.gmail.com", "SmartHostAuthMechanism": "none", "AuthenticationUser": ""}
mode:
  description: The O(mode) the module ran in.
  returned: success
  type: str
  sample: connector
source_servers:
  description: The source servers as Exchange knows them, with their versions (O(mode=connector)).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "EX01", "version": "Version 15.2 (Build 1544.4)"}]
edge_sync:
  description: The results of C(Start-EdgeSynchronization), one per Edge server and type of data.
  returned: when O(mode=edge), something changed, O(edge_sync=true) and not in check mode
  type: list
  elements: dict
  sample: [{"name": "EDGE01", "result": "Success", "type": "Configuration", "failure_details": ""}]
"""
