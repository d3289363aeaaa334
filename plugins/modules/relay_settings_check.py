# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This file only documents the action plugin plugins/action/relay_settings_check.py.

from __future__ import annotations

DOCUMENTATION = r"""
module: relay_settings_check
short_description: Check a whole relay profile against the rules of Google's SMTP relay service
version_added: 0.1.0
description:
  - Checks the settings a mail server will use to relay through Google's SMTP relay service (relay host, port, TLS,
    SMTP AUTH, allowed senders, domains, HELO name, foreign and null senders, IP allowlist, licences) against every
    rule of the service document, and returns them normalized, with defaults filled in and derived values added.
  - Fails listing B(every) violated rule at once, each naming the variable it concerns (for example V(port) or
    V(allowlist[3])), the rule id and how to fix it. Warnings are shown as Ansible warnings.
  - "Rules: only ports 25, 465 and 587; O(tls=required) means port 587; O(tls=implicit) means port 465 and port 465
    means implicit TLS; SMTP AUTH needs O(tls=required) and so port 587; certificate verification is on by default
    whenever TLS is mandatory; O(allowed_senders=any_address), O(foreign_senders) or O(null_sender) need SMTP AUTH or
    a HELO name that is a fully qualified name inside one of O(domains) (the bare domain counts); senders outside
    the domains need O(allowed_senders=any_address); neither an allowlist nor SMTP AUTH means the relay accepts
    nothing; allowlist rules as in M(smarthost.relay.relay_allowlist_check)."
  - Notes (not failures) report that the relay rewrites foreign envelope senders to V(postmaster@<your domain>),
    and that null-sender mail needs single-recipient transactions, which the roles configure.
  - A warning reports O(allowed_senders=registered_users) without a registered user for the server's local
    accounts' mail (O(local_sender), or O(auth_username) with SMTP AUTH), since the relay would refuse that mail.
  - The same rules, with the same names prefixed V(relay_), are the roles' variables.
  - With O(mta), the MTA roles' own rules instead (each role's C(tasks_from=check) entry point and its
    C(assert.yml) call it so), the Exchange role's and the relay guard's included; with O(variable_names), mistyped
    variable names too.
    docs/troubleshooting.md lists every rule with its fix.
author: smarthost.relay maintainers (!UNKNOWN)
options:
  host:
    description:
      - The relay host name, without brackets or port.
    type: str
    default: smtp-relay.gmail.com
  port:
    description:
      - The relay port, V(25), V(465) or V(587).
      - Defaults to V(465) for O(tls=implicit) and to V(587) otherwise.
    type: int
  tls:
    description:
      - V(required) is STARTTLS that must succeed (the Admin console's "Require TLS encryption"), on port 587.
      - V(implicit) is TLS from the first byte, on port 465.
      - V(opportunistic) uses STARTTLS when offered; V(none) never encrypts.
      - Defaults to what O(port) implies (V(465) implicit, V(25) opportunistic, V(587) required), and to
        V(required) when neither is set.
    type: str
    choices: [none, opportunistic, required, implicit]
  tls_verify:
    description:
      - Verify the relay's certificate and name.
      - Defaults to V(true) when O(tls) is V(required) or V(implicit), V(false) otherwise.
    type: bool
  tls_ca_file:
    description:
      - CA bundle to verify the relay with, on the managed host. Defaults to the system trust store.
    type: str
  auth:
    description:
      - Use SMTP AUTH (the Admin console's "Require SMTP Authentication"). Needs O(tls=required) and port 587.
    type: bool
    default: false
  auth_username:
    description:
      - The registered user to authenticate as (full address). Required when O(auth=true).
    type: str
  auth_password:
    description:
      - The user's password (or app password). Required when O(auth=true). Never shown in any output.
    type: str
  allowed_senders:
    description:
      - The Admin console's "Allowed senders" choice.
    type: str
    choices: [registered_users, domain_addresses, any_address]
    default: registered_users
  domains:
    description:
      - The customer's domains (primary, secondary, alias). At least one is required.
    type: list
    elements: str
  helo_name:
    description:
      - The HELO/EHLO name the mail server presents. To identify the customer it must be a fully qualified name equal
        to one of O(domains) or inside one.
    type: str
  foreign_senders:
    description:
      - The server sends mail with envelope senders in domains the customer does not own.
    type: bool
    default: false
  null_sender:
    description:
      - The server sends mail with a null envelope sender (non-delivery reports, vacation replies).
    type: bool
    default: false
  allowlist:
    description:
      - The IP allowlist (addresses or CIDR ranges, or dictionaries with V(range), V(enabled), V(description)).
    type: list
    elements: raw
  egress_addresses:
    description:
      - The public addresses the mail servers send from; each must be covered by O(allowlist) when that is set.
    type: list
    elements: str
  licenses:
    description:
      - Number of user licences; when given, the sending limits and suggested throttles are returned.
    type: int
  paid:
    description:
      - Whether the customer has paid a bill; unpaid customers have lower limits.
    type: bool
    default: true
  servers:
    description:
      - Number of mail servers relaying through the service (for the throttles).
    type: int
    default: 1
  local_sender:
    description:
      - The address that mail from the server's local accounts (root, cron, daemons, whose addresses name the host,
        not one of O(domains)) is sent as. It must be in one of O(domains) unless O(allowed_senders=any_address).
      - With O(allowed_senders=registered_users) it must be a registered user; without it, local accounts' mail is
        sent as O(auth_username) when SMTP AUTH is on (a note says so), else masqueraded to the customer domain,
        which the relay refuses unless that address is a registered user (a warning says so).
      - With O(allowed_senders=domain_addresses) local accounts' mail is masqueraded to the customer domain
        (C(root@host.example.net) leaves as C(root@example.com)) unless O(local_sender) is set.
    type: str
  variable_names:
    description:
      - The names of the variables defined for the host. Each name with one of the prefixes V(relay_), V(postfix_),
        V(sendmail_), V(qmail_), V(exchange_) that no role of this collection declares but that is close to one that
        does (a typo such as V(relay_prot)) is an error naming the nearest known variable (rule V(variable-unknown)).
        Names far from every known one are left alone.
      - Defaults to the names of the task's variables when O(variable_prefix) is set (as the roles call it), and to
        none otherwise.
    type: list
    elements: str
  mta:
    description:
      - Check the rules of this MTA role instead of a relay profile, on O(mta_vars) against O(settings) (the relay
        options are then not used). V(detect) checks the given variables of the Postfix, Sendmail and qmail roles on
        their own, without the rules that depend on which MTA the host runs.
      - "Rules: qmail's answer timeout (C(qmail_timeoutremote)) is at least 900 s and C(qmail_timeoutsmtpd) unset or
        at least 900 s; Sendmail's C(sendmail_timeout_datafinal) at least one hour; qmail cannot use SMTP AUTH and
        needs its STARTTLS client (or the relay guard) for TLS; Sendmail cannot use implicit TLS without the relay
        guard; unset optional numbers are null, never 0; and the syntax of each role's own settings."
      - "Exchange (V(exchange)): a send connector speaks STARTTLS only (no implicit TLS on 465), takes its CA from the
        Windows certificate store (no C(relay_tls_ca_file)), and needs C(relay_tls=required) for SMTP AUTH; the source
        servers and Edge servers are inventory hosts (read from O(inventory)); the Edge settings go together; the
        connector's size, time span and retry values are in Exchange's formats; WinRM to the hosts the passwords
        travel to is HTTPS with certificate validation."
      - "Relay guard (V(relay_guard), on the C(smarthost.relay.relay_guard) role's C(relay_guard_*) variables, which
        the Sendmail and qmail roles set): it listens on loopback only (C(127.0.0.1) or C(::1)) on a port from 1 to
        1023; its timeouts are 1 to 86400 seconds; each pool setting is within its range, and no more connections are
        kept idle than may be open; the local senders' rewrite is V(none), V(domain) or V(address), with the host's
        names to rewrite and a target (the customer's domain, or one C(user@domain)) that is not one of them."
    type: str
    choices: [postfix, sendmail, qmail, exchange, relay_guard, detect]
  mta_vars:
    description:
      - The MTA role's variables (C(<mta>_*); C(relay_guard_*) for V(relay_guard)) as the role sees them. Used with
        O(mta).
    type: dict
  settings:
    description:
      - The relay settings as the relay check normalized them (the C(relay_settings) fact). Required with O(mta),
        except V(detect).
    type: dict
  facts:
    description:
      - Host facts some rules read when given (C(fqdn) for Sendmail). Used with O(mta).
    type: dict
  inventory:
    description:
      - What the Exchange rules read from the inventory, with O(mta=exchange); without it those rules are not checked.
      - V(host) is the inventory host checked, V(play_hosts) the hosts of its play (the default source servers), and
        V(hosts) maps every inventory host to the variables the rules read (C(exchange_server_name),
        C(ansible_connection), C(ansible_port), C(ansible_winrm_scheme), C(ansible_winrm_server_cert_validation)).
        The Exchange role's C(tasks_from=check) entry point passes it so.
    type: dict
  variable_prefix:
    description:
      - Name the settings in findings with this prefix, as the caller's variables are named (the roles pass
        V(relay_), so a finding names V(relay_tls) rather than V(tls)).
    type: str
    default: ""
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - smarthost.relay._attributes
  - smarthost.relay._attributes.controller_check
seealso:
  - module: smarthost.relay.relay_allowlist_check
  - plugin: smarthost.relay.relay_limits
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Check the relay settings before configuring any mail server
  smarthost.relay.relay_settings_check:
    tls: required
    port: 587
    auth: true
    auth_username: relay@example.com
    auth_password: "{{ vault_relay_password }}"
    domains: [example.com, example.org]
    helo_name: mail.example.com
    null_sender: true
    licenses: 250
    servers: 2
  register: relay_settings

- name: Allowlist instead of SMTP AUTH, checked against the servers' egress addresses
  smarthost.relay.relay_settings_check:
    domains: [example.com]
    allowlist: [198.51.100.16/29]
    egress_addresses: [198.51.100.17, 198.51.100.18]

- name: Use the normalized settings
  ansible.builtin.debug:
    msg: "Relay via {{ relay_settings.normalized.host }}:{{ relay_settings.normalized.port }}"
"""

RETURN = r"""
normalized:
  description:
    - The settings with defaults filled in (same keys as the options), plus derived values. O(auth_password) is
      masked.
  returned: always
  type: dict
  contains:
    identity:
      description: How the relay identifies the customer, V(auth), V(helo) or V(null) (by IP address only).
      type: str
      sample: auth
    customer_domain:
      description: The customer domain identified by SMTP AUTH or the HELO name (else the first domain).
      type: str
      sample: example.com
    sender_rewrite:
      description: The address the relay rewrites foreign envelope senders to, when O(foreign_senders=true).
      type: str
      sample: postmaster@example.com
    null_sender_recipient_limit:
      description: V(1) when O(null_sender=true), the number of recipients per null-sender transaction.
      type: int
      sample: 1
    allowlist_total:
      description: Distinct addresses in the enabled allowlist ranges.
      type: int
      sample: 8
    limits:
      description: The sending limits (see the P(smarthost.relay.relay_limits#filter) filter), when O(licenses) is set.
      type: dict
    throttles:
      description: Suggested per-server throttles, when O(licenses) is set.
      type: dict
    retry_replies:
      description:
        - Rules that turn relay replies meaning "later" into 4xx, so that an MTA defers instead of bouncing.
        - V(limits) for the daily sending limits (C(550 5.4.5), C(550 5.7.1 ... limit exceeded)), V(refusals) for refusals
          that mean this server is not set up right with the relay yet.
        - Each rule has V(cause), V(code), V(status), V(retry_code), V(retry_status), and a V(pattern) (POSIX
          extended regular expression, matched ignoring case) with its V(replacement) in Postfix regexp-table syntax,
          applied to the delivery status C(<enhanced status> <text>) whose text holds every line of the relay's
          reply joined with spaces (Postfix's C(smtp_delivery_status_filter)).
      type: dict
    local_senders:
      description:
        - How mail from the server's local accounts must leave so that the relay accepts it.
        - V(rewrite) is V(masquerade) (keep the user, replace the host name with V(domain)), V(address) (send it as
          V(address)) or V(null) (with O(allowed_senders=any_address) the relay takes any sender).
      type: dict
      sample: {"rewrite": "address", "address": "alerts@example.com", "domain": "example.com"}
  sample: {"host": "smtp-relay.gmail.com", "port": 587, "tls": "required", "tls_verify": true, "auth": true,
           "auth_password": "********", "identity": "auth"}
findings:
  description: Every error, warning and note, each with V(variable), V(rule), V(message), V(fix) and V(severity).
  returned: always
  type: list
  elements: dict
  sample: [{"variable": "port", "rule": "tls-required-port-587", "severity": "error",
            "message": "tls: required needs port 587, not 465; ...", "fix": "set port: 587"}]
notes:
  description: The notes, formatted one per entry.
  returned: always
  type: list
  elements: str
msg:
  description: A summary, or on failure every violated rule, one per line, with the variable and the fix.
  returned: always
  type: str
"""
