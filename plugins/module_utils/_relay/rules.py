# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rule table: every rule id of the engine (profile.py, mta.py, variables.py) with the usual fix.

Each finding carries its own fix, worded for the values it saw; ``FIXES`` is the general one, which
docs/troubleshooting.md lists (scripts/gen_reference.py generates that section from the RULES tables and FIXES;
a unit test keeps both complete and the page current).
"""

from __future__ import annotations

FIXES = {
    # --- the relay profile (profile.py) ---
    "profile-unknown-key": "use the documented setting name the finding suggests",
    "type-bool": "write true or false",
    "type-int": "write a whole number",
    "type-str": "quote the value",
    "type-list": "write a YAML list",
    "host-syntax": "write the bare host name (no brackets, no port; set the port with relay_port), smtp-relay.gmail.com",
    "host-not-google": "nothing for a test stand-in or private relay; use smtp-relay.gmail.com in production",
    "host-ip-literal": "set relay_host: smtp-relay.gmail.com",
    "host-certificate-name": "set relay_host: smtp-relay.gmail.com",
    "port-allowed": "use relay_port 587 (with relay_tls: required), 465 or 25, or leave it unset (null) to derive it",
    "tls-mode": "use relay_tls: required (STARTTLS on 587) unless the server cannot do TLS",
    "tls-required-port-587": "set relay_port: 587 (or leave it unset)",
    "implicit-tls-port-465": "set relay_port: 465, or use relay_tls: required with port 587",
    "port-465-implicit-tls": "set relay_tls: implicit for port 465, or use port 587 (required) or 25",
    "tls-verify-needs-tls": "set relay_tls: required (port 587), or drop relay_tls_verify",
    "tls-verify-opportunistic": "set relay_tls: required (port 587) to verify the relay's certificate",
    "tls-verify-off": "leave relay_tls_verify unset or true and trust the relay's CA",
    "tls-ca-file-unused": "remove relay_tls_ca_file, or verify certificates (relay_tls: required)",
    "auth-requires-tls": "set relay_tls: required and relay_port: 587",
    "auth-credentials": "set relay_auth_username (a registered user's address) and relay_auth_password (from Vault)",
    "auth-username-address": "use the full address of a registered user in one of relay_domains",
    "auth-unused": "set relay_auth: true, or remove the credentials",
    "auth-user-limits": "spread heavy senders over several users, or rely on the IP allowlist",
    "sender-mode": "use registered_users or domain_addresses",
    "domains-required": "list the customer's domains in relay_domains",
    "domain-syntax": "list domain names such as example.com",
    "domain-duplicate": "remove the duplicate",
    "helo-syntax": "use the server's full name inside one of relay_domains, e.g. mail.example.com",
    "sender-identity": "set relay_auth: true with credentials, or relay_helo_name inside one of relay_domains",
    "any-address-not-recommended": "prefer registered_users or domain_addresses",
    "foreign-senders-need-any-address": "set relay_allowed_senders: any_address, or stop sending from foreign domains",
    "sender-rewrite": "expect bounces of such mail to go to postmaster@<your domain>",
    "null-sender-single-recipient": "nothing to do when a role of this collection configures the server",
    "local-sender-address": "set relay_local_sender to a registered user's address in one of relay_domains",
    "local-sender-missing": "set relay_local_sender (a registered user's address), or relay_auth: true",
    "local-sender-auth-user": "set relay_local_sender to send local accounts' mail as another registered user",
    "allowlist-or-auth": "list the servers' public egress addresses in relay_allowlist, or use SMTP AUTH",
    "allowlist-syntax": "write an IPv4/IPv6 address or CIDR range",
    "allowlist-host-bits": "start the range at its network address",
    "allowlist-max-addresses": "split the range (at most IPv4 /16, IPv6 /112)",
    "allowlist-duplicate": "remove the duplicate range",
    "allowlist-overlap": "keep the wider range only",
    "allowlist-public": "list your own public addresses",
    "allowlist-narrow": "narrow the range to the addresses the servers send from",
    "egress-covered": "add the egress address to relay_allowlist",
    "egress-public": "list the public addresses the relay sees",
    "licenses-positive": "set relay_licenses to the number of user licences, or leave it unset (null) when unknown",
    "servers-positive": "set relay_servers to the number of servers relaying through the service",
    "netaddr-missing": "install netaddr on the controller (pip install netaddr)",
    # --- variable names (variables.py) ---
    "variable-unknown": "rename the variable to the known one the finding names",
    # --- the MTA roles (mta.py) ---
    "mta-positive": "set the count or timeout to 1 or more",
    "mta-unset-is-null": "leave the variable unset (null) for the role's derived value, or set 1 or more",
    "mta-guard-port": "set the guard port to 24 (the default) or another port below 1024",
    "postfix-sasl-mechanisms": "set postfix_sasl_mechanism_filter: [plain, login] (the default)",
    "postfix-null-sender-transport": "set postfix_null_sender_transport: relay-null (the default)",
    "postfix-main-cf-relay-settings": "remove those settings from postfix_main_cf; set the relay_* variables instead",
    "postfix-address-map": "remove the white space from the map's keys and values",
    "postfix-local-sender-domains": "list host or domain names",
    "postfix-inet-interfaces": "set postfix_inet_interfaces: loopback-only (the default)",
    "sendmail-implicit-tls": "use relay_tls: required (587), or leave the relay guard on (sendmail_limit_replies_retry)",
    "sendmail-auth-username-quoting": "use the registered user's plain address",
    "sendmail-fqdn": "give the host a fully qualified name (hostname, or /etc/hosts) before running the role",
    "sendmail-timeout-datafinal": "set sendmail_timeout_datafinal: 1h (the default) or longer",
    "sendmail-time-value": "write a Sendmail time value such as 5m or 1h30m (queue interval: p15s)",
    "sendmail-listen-addresses": "list IP addresses such as 127.0.0.1",
    "sendmail-relay-clients": "list IPv4 addresses or leading octets such as 10.1.2",
    "sendmail-masquerade-domain": "use fully qualified names such as example.com",
    "sendmail-m4-quoting": "remove quotes and white space from the value",
    "qmail-auth": "set relay_auth: false and use the IP allowlist (relay_allowlist) with relay_helo_name",
    "qmail-starttls-client": "set qmail_starttls_client: true, or relay_tls: none on port 25 with the IP allowlist",
    "qmail-timeoutremote": "set qmail_timeoutremote to 900 or more (default 1200)",
    "qmail-timeoutsmtpd": "leave qmail_timeoutsmtpd unset (null), or set 900 or more",
    "qmail-stunnel-address": "set qmail_stunnel_address: 127.0.0.1 and a port number",
    "qmail-restart-command": "give qmail_restart_command as an argv list, e.g. [svc, -t, /service/qmail-send]",
    "qmail-absolute-path": "write the path from the root",
    "qmail-local-sender-domains": "list only this host's own names, none of relay_domains",
    "qmail-defaulthost": "set a host or domain name, or leave it empty",
    "qmail-routes": "write each route as domain:relay[:port], one per domain; the catch-all is the role's",
    "qmail-local-sender-guard": "turn the relay guard on (qmail_limit_replies_retry or qmail_relay_refusals_retry)",
    "qmail-plain-text": "leave Require TLS encryption unchecked in the Admin console and rely on the IP allowlist",
}
