# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules of an Exchange send connector, on the exchange role's variables (``exchange_*``).

``check_exchange(relay, exchange_vars, inventory=None)`` returns a list of ``Finding`` for ``exchange_vars`` (as the
role sees them) against ``relay``, the relay settings as the relay check normalized them (``relay_settings``).
``inventory`` is what some rules read from the inventory: ``host`` (the inventory host checked), ``play_hosts``
(the hosts of its play: the default source servers) and ``hosts`` (every inventory host, each with the variables
the rules read: ``exchange_server_name``, ``ansible_connection``, ``ansible_port``, ``ansible_winrm_scheme``,
``ansible_winrm_server_cert_validation``). Without it, the rules that read the inventory are not checked.
Each rule reads like a row of ``RULES``: one small function per rule, in ``_RULE_CHECKS``.
"""

from __future__ import annotations

import ipaddress
import re

from .role_vars import RoleVars

# rule id -> what it enforces.
RULES = {
    "exchange-implicit-tls": "an Exchange send connector speaks STARTTLS only: no implicit TLS, no port 465",
    "exchange-tls-ca-file": "Exchange validates the relay's certificate against the Windows certificate store, "
                            "not a CA file",
    "exchange-auth-requires-tls": "SMTP AUTH on a send connector (BasicAuthRequireTLS) needs relay_tls: required",
    "exchange-connector-name": "exchange_connector_name is set and, without an Edge, no Edge subscription's connector",
    "exchange-max-message-size": "exchange_max_message_size is a whole number of KB, MB or GB, or unlimited",
    "exchange-timespan": "exchange_connection_inactivity_timeout is a [d.]hh:mm:ss time span",
    "exchange-session-password": "exchange_session_username comes with exchange_session_password",
    "exchange-source-servers": "without an Edge, every source server is an inventory host, by its Exchange name",
    "exchange-edge-site": "with an Edge, exchange_edge_site names the Active Directory site of the subscription",
    "exchange-edge-source-servers": "with an Edge, exchange_source_servers is empty (the subscriptions are the source)",
    "exchange-edge-servers": "with an Edge, exchange_edge_servers are inventory hosts, and listed when checked",
    "exchange-edge-hub-addresses": "with an Edge checked, exchange_edge_hub_addresses are single IP addresses",
    "exchange-retry": "exchange_retry has only the four known keys, [d.]hh:mm:ss intervals and a count of 0 to 15",
    "exchange-winrm-https": "the passwords travel to the Exchange hosts only over WinRM HTTPS with certificate "
                            "validation",
}

RETRY_KEYS = ("transient_failure_retry_interval", "transient_failure_retry_count",
              "outbound_connection_failure_retry_interval", "message_retry_interval")
_RETRY_COUNT = "transient_failure_retry_count"
_TIMESPAN_RE = re.compile(r"^([0-9]+\.)?[0-9]{1,2}:[0-5][0-9]:[0-5][0-9]$")
_SIZE_RE = re.compile(r"^(unlimited|[0-9]+ ?(KB|MB|GB))$", re.IGNORECASE)
_EDGE_CONNECTOR_RE = re.compile(r"^EdgeSync - .+ to Internet$")
_RETRY_COUNT_RE = re.compile(r"^([0-9]|1[0-5])$")
_WINRM_HTTP_PORT = 5985
_WINRM_HTTPS_PORT = 5986


class _Inventory:
    """The hosts the rules know of: their Exchange names and WinRM settings, and the play's hosts."""

    def __init__(self, inventory):
        inventory = inventory or {}
        self.hosts = dict(inventory.get("hosts") or {})
        self.host = inventory.get("host")
        self.play_hosts = list(inventory.get("play_hosts") or ([self.host] if self.host else []))

    def host_vars(self, host):
        return self.hosts.get(host) or {}

    def server_name(self, host):
        """The name Exchange knows ``host`` by: exchange_server_name, else the inventory name up to the first dot."""
        name = self.host_vars(host).get("exchange_server_name")
        return str(host).partition(".")[0] if name is None else str(name)

    def known_servers(self):
        """Every inventory host's Exchange name, upper case (Exchange compares them so), in inventory order."""
        return list(dict.fromkeys(self.server_name(host).upper() for host in self.hosts))

    def play_servers(self):
        return [self.server_name(host) for host in self.play_hosts]


class _Check(RoleVars):
    """What a rule sees: the relay settings, the role's variables, the inventory, and where findings go."""

    def __init__(self, relay, exchange_vars, inventory):
        super().__init__(relay, exchange_vars)
        self.inventory = _Inventory(inventory) if inventory is not None else None

    @property
    def edge(self):
        return self.boolean("exchange_edge")

    @property
    def edge_verified(self):
        return self.edge and self.boolean("exchange_edge_verify", True)


# --- the relay settings an Exchange send connector can carry out --------------------------------------------------

def _implicit_tls(ck):
    tls, port = ck.relay.get("tls"), ck.relay.get("port")
    if tls == "implicit" or port == 465:
        ck.add("relay_tls" if tls == "implicit" else "relay_port", "exchange-implicit-tls",
               "relay_tls=%s on port %s: an Exchange send connector speaks STARTTLS only and cannot use implicit TLS "
               "(TLS from the first byte) on port 465" % (tls, port),
               "set relay_tls: required (port 587, STARTTLS)")


def _tls_ca_file(ck):
    if ck.relay.get("tls_ca_file"):
        ck.add("relay_tls_ca_file", "exchange-tls-ca-file",
               "relay_tls_ca_file (%s) is not used: Exchange validates the relay's certificate against the Windows "
               "certificate store" % ck.relay["tls_ca_file"],
               "import the CA into the computer's Trusted Root store (for example with "
               "ansible.windows.win_certificate_store) and leave relay_tls_ca_file empty")


def _auth_requires_tls(ck):
    if ck.relay.get("auth") and ck.relay.get("tls") != "required":
        ck.add("relay_auth", "exchange-auth-requires-tls",
               "SMTP AUTH on a send connector (BasicAuthRequireTLS) needs relay_tls: required, not %s"
               % ck.relay.get("tls"), "set relay_tls: required (port 587)")


# --- the connector's own settings ----------------------------------------------------------------------------------

def _connector_name(ck):
    name = ck.text("exchange_connector_name")
    if ck.v.get("exchange_connector_name") is not None and not name.strip():
        ck.add("exchange_connector_name", "exchange-connector-name", "exchange_connector_name is empty",
               "set exchange_connector_name: Outbound (the default)")
    elif not ck.edge and _EDGE_CONNECTOR_RE.match(name):
        ck.add("exchange_connector_name", "exchange-connector-name",
               "exchange_connector_name (%r) is an Edge subscription's connector, which the role manages only with "
               "exchange_edge: true" % name,
               "set exchange_edge: true and exchange_edge_site instead, or name a connector of the role's own")


def _max_message_size(ck):
    size = ck.text("exchange_max_message_size")
    if size and not _SIZE_RE.match(size):
        ck.add("exchange_max_message_size", "exchange-max-message-size",
               "exchange_max_message_size must be a whole number of KB, MB or GB, or unlimited; got %r" % size,
               "write it like 35MB, or leave it empty to keep Exchange's value")


def _inactivity_timeout(ck):
    timeout = ck.text("exchange_connection_inactivity_timeout")
    if timeout and not _TIMESPAN_RE.match(timeout):
        ck.add("exchange_connection_inactivity_timeout", "exchange-timespan",
               "exchange_connection_inactivity_timeout must be a [d.]hh:mm:ss time span; got %r" % timeout,
               "write it like 00:15:00, or leave it empty to keep Exchange's value")


def _session_password(ck):
    if ck.text("exchange_session_username") and not ck.text("exchange_session_password"):
        ck.add("exchange_session_username", "exchange-session-password",
               "exchange_session_username is set but exchange_session_password is not (value never shown)",
               "set exchange_session_password (from Ansible Vault), or leave exchange_session_username empty")


def _retry(ck):
    retry = ck.v.get("exchange_retry") or {}
    bad = sorted(set(key for key, value in retry.items() if not _retry_value_ok(key, value)))
    if bad:
        ck.add("exchange_retry", "exchange-retry",
               "exchange_retry has wrong keys or values (%s): the keys are %s; intervals are [d.]hh:mm:ss strings "
               "and %s is 0 to 15"
               % (", ".join(str(key) for key in bad), ", ".join(RETRY_KEYS), _RETRY_COUNT),
               "fix those keys, e.g. {transient_failure_retry_count: 2, message_retry_interval: \"00:05:00\"}")


def _retry_value_ok(key, value):
    if key == _RETRY_COUNT:
        return bool(_RETRY_COUNT_RE.match(str(value)))
    return key in RETRY_KEYS and isinstance(value, str) and bool(_TIMESPAN_RE.match(value))


# --- topology: source servers without an Edge, the Edge subscription with one --------------------------------------

def _source_servers(ck):
    if ck.edge or ck.inventory is None:
        return
    given = [str(server) for server in ck.items("exchange_source_servers")]
    if not (given or ck.inventory.play_servers()):
        ck.add("exchange_source_servers", "exchange-source-servers",
               "exchange_source_servers is empty and the play has no hosts to default to",
               "list the Mailbox (Hub Transport) servers that send through the connector")
        return
    known = ck.inventory.known_servers()
    unknown = [name for name in (s.strip().partition(".")[0].upper() for s in given) if name not in known]
    if unknown:
        ck.add("exchange_source_servers", "exchange-source-servers",
               "exchange_source_servers names %s, which no inventory host is (known: %s)"
               % (", ".join(unknown), ", ".join(known)),
               "name the Mailbox (Hub Transport) servers that send through the connector by their Exchange names and "
               "add each to the inventory (with exchange_server_name when its inventory name differs)")


def _edge_site(ck):
    if ck.edge and not ck.text("exchange_edge_site").strip():
        ck.add("exchange_edge_site", "exchange-edge-site",
               "exchange_edge_site is empty: the Active Directory site of the Edge subscription "
               "('EdgeSync - <site> to Internet') is required with exchange_edge: true",
               "set exchange_edge_site, e.g. Default-First-Site-Name")


def _edge_source_servers(ck):
    if ck.edge and ck.items("exchange_source_servers"):
        ck.add("exchange_source_servers", "exchange-edge-source-servers",
               "exchange_source_servers does not apply with exchange_edge: true (the Edge subscriptions are the "
               "source)", "leave exchange_source_servers empty")


def _edge_servers_listed(ck):
    if ck.edge_verified and not ck.items("exchange_edge_servers"):
        ck.add("exchange_edge_servers", "exchange-edge-servers",
               "exchange_edge_servers is empty: the role checks the Edge servers after the change",
               "list the Edge servers (inventory hosts), or set exchange_edge_verify: false")


def _edge_servers_in_inventory(ck):
    if not ck.edge or ck.inventory is None:
        return
    missing = [str(server) for server in ck.items("exchange_edge_servers") if server not in ck.inventory.hosts]
    if missing:
        ck.add("exchange_edge_servers", "exchange-edge-servers",
               "exchange_edge_servers names %s, not in the inventory" % ", ".join(missing),
               "add the Edge servers to the inventory (any group) under the names listed")


def _edge_hub_addresses(ck):
    if not ck.edge_verified:
        return
    addresses = [str(address) for address in ck.items("exchange_edge_hub_addresses")]
    bad = [address for address in addresses if not _single_address(address)]
    if not addresses or bad:
        ck.add("exchange_edge_hub_addresses", "exchange-edge-hub-addresses",
               "exchange_edge_hub_addresses must list the single IPv4 or IPv6 addresses the hub servers connect to "
               "the Edge servers from; %s" % ("got %s" % ", ".join(bad) if bad else "it is empty"),
               "list addresses such as 10.0.1.11, one per hub server")


def _single_address(text):
    try:
        return ipaddress.ip_network(text.strip(), strict=True).num_addresses == 1
    except ValueError:
        return False


# --- WinRM: the SMTP AUTH and session passwords travel to the Exchange hosts ---------------------------------------

def _winrm_https(ck):
    if ck.inventory is None or ck.boolean("exchange_winrm_allow_insecure"):
        return
    hosts = [ck.inventory.host] + (ck.items("exchange_edge_servers") if ck.edge else [])
    for host in dict.fromkeys(h for h in hosts if h):
        variable = _winrm_insecure_setting(ck.inventory.host_vars(host))
        if variable:
            ck.add(variable, "exchange-winrm-https",
                   "%s: the SMTP AUTH and session passwords travel to this host, but WinRM goes over HTTP or without "
                   "certificate validation" % host,
                   "use HTTPS (port 5986) with ansible_winrm_server_cert_validation: validate for %s, or set "
                   "exchange_winrm_allow_insecure: true" % host)


def _winrm_insecure_setting(host_vars):
    """The inventory variable that makes the host's WinRM insecure, or None when it is WinRM over verified HTTPS
    (or no WinRM at all)."""
    if host_vars.get("ansible_connection") != "winrm":
        return None
    port = _port(host_vars.get("ansible_port"))
    scheme = host_vars.get("ansible_winrm_scheme") or ("http" if port == _WINRM_HTTP_PORT else "https")
    if scheme != "https":
        return "ansible_winrm_scheme" if host_vars.get("ansible_winrm_scheme") else "ansible_port"
    if (host_vars.get("ansible_winrm_server_cert_validation") or "validate") != "validate":
        return "ansible_winrm_server_cert_validation"
    return None


def _port(value):
    try:
        return _WINRM_HTTPS_PORT if value is None else int(value)
    except (TypeError, ValueError):
        return 0


_RULE_CHECKS = (_implicit_tls, _tls_ca_file, _auth_requires_tls, _connector_name, _max_message_size,
                _inactivity_timeout, _session_password, _retry, _source_servers, _edge_site, _edge_source_servers,
                _edge_servers_listed, _edge_servers_in_inventory, _edge_hub_addresses, _winrm_https)


def check_exchange(relay, exchange_vars, inventory=None):
    """Every finding of the Exchange rules (see the module docstring)."""
    ck = _Check(relay, exchange_vars, inventory)
    for rule_check in _RULE_CHECKS:
        rule_check(ck)
    return ck.findings
