# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules each MTA imposes on top of the relay's: Postfix, Sendmail and qmail (and Exchange, in exchange.py).

``check_mta(mta, relay, mta_vars, facts=None, inventory=None)`` returns a list of ``Finding``
for the role variables ``mta_vars`` (``<mta>_*``, as the role sees them)
against ``relay``, the relay settings as the relay check normalized them
(``relay_settings``). ``mta="detect"`` checks the own variables of Postfix,
Sendmail and qmail that are given, and no rule that needs to know which MTA
the host runs. ``facts`` (the host's ``fqdn``) is used only when given. ``mta="exchange"`` runs the Exchange
connector rules (exchange.py), which read ``inventory`` (the Exchange names and WinRM settings of the inventory's
hosts) when given; ``mta="relay_guard"`` the relay guard's rules (guard.py) on its ``relay_guard_*`` variables.
Each rule reads like a row of ``RULES``: one small function per rule.
"""

from __future__ import annotations

import ipaddress
import re

from .domains import normalize_domain
from .exchange import check_exchange
from .findings import Finding, RelayRuleError
from .guard import check_guard
from .mta_choices import retry_on
from .qmail_routes import plan_smtproutes
from .role_vars import RoleVars

MTAS = ("postfix", "sendmail", "qmail")

# rule id -> what it enforces.
RULES = {
    "mta-positive": "a count or number of seconds of an MTA role is a positive whole number",
    "mta-unset-is-null": "an MTA role's optional number is unset with null; 0 or a negative value is refused",
    "mta-guard-port": "the relay guard listens on a port below 1024 (only root can bind it)",
    "postfix-sasl-mechanisms": "SMTP AUTH needs at least one SASL mechanism in postfix_sasl_mechanism_filter",
    "postfix-null-sender-transport": "postfix_null_sender_transport is a new master.cf service name",
    "postfix-main-cf-relay-settings": "postfix_main_cf leaves the relay settings to the relay_* variables",
    "postfix-address-map": "address map keys and values are addresses or @domains without white space",
    "postfix-local-sender-domains": "postfix_local_sender_domains are domain names",
    "postfix-inet-interfaces": "postfix_inet_interfaces is not empty",
    "sendmail-implicit-tls": "Sendmail cannot speak implicit TLS (port 465) to the relay without the relay guard",
    "sendmail-auth-username-quoting": "relay_auth_username goes into the authinfo map: no white space or quotes",
    "sendmail-fqdn": "Sendmail needs a fully qualified host name",
    "sendmail-timeout-datafinal": "Timeout.datafinal is at least one hour (the relay service asks for it)",
    "sendmail-time-value": "Sendmail time values are written like 5m, 1h30m (queue interval: optionally p15s)",
    "sendmail-listen-addresses": "sendmail_listen_addresses are IPv4 or IPv6 addresses",
    "sendmail-relay-clients": "sendmail_relay_clients are IPv4 addresses or leading octets",
    "sendmail-masquerade-domain": "sendmail_masquerade_as and sendmail_masquerade_domains are fully qualified",
    "sendmail-m4-quoting": "values written into sendmail.mc contain no m4 quotes or white space",
    "qmail-auth": "stock qmail-remote has no SMTP AUTH: qmail uses the IP allowlist",
    "qmail-starttls-client": "TLS to the relay needs the local STARTTLS client (or the relay guard) with qmail",
    "qmail-timeoutremote": "control/timeoutremote is at least 900 seconds (the relay service asks for it)",
    "qmail-timeoutsmtpd": "control/timeoutsmtpd is unset (null) or at least 900 seconds",
    "qmail-stunnel-address": "the STARTTLS client listens on IPv4 loopback, on a valid port",
    "qmail-restart-command": "qmail_supervisor: command needs qmail_restart_command",
    "qmail-absolute-path": "qmail_dir and qmail_backup_dir are absolute paths",
    "qmail-local-sender-domains": "qmail_local_sender_domains are host names of this host, none of relay_domains",
    "qmail-defaulthost": "qmail_defaulthost is a host or domain name, or empty",
    "qmail-routes": "qmail_internal_routes / qmail_keep_routes follow qmail-remote's smtproutes rules",
    "qmail-local-sender-guard": "relay_local_sender on qmail needs the relay guard (warning)",
    "qmail-plain-text": "without TLS, qmail-remote sends in plain text (note)",
}

_FQDN_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\.?$")
_QMAIL_NAME_RE = re.compile(r"^[.]?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?([.][A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*[.]?$")
_SERVICE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_TIME_RE = re.compile(r"^([0-9]+[smhdw])+$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TLS_ON = ("required", "implicit")
POSTFIX_RESERVED_SERVICES = (
    "smtp", "smtps", "submission", "submissions", "relay", "local", "virtual", "lmtp", "error", "retry", "discard",
    "pickup", "cleanup", "qmgr", "tlsmgr", "rewrite", "bounce", "defer", "trace", "verify", "flush", "proxymap",
    "proxywrite", "showq", "anvil", "scache", "tlsproxy", "postlog", "dnsblog")
POSTFIX_RELAY_RULE_SETTINGS = (
    "relayhost", "smtp_tls_security_level", "smtp_tls_wrappermode", "smtp_sasl_auth_enable", "smtp_sasl_password_maps",
    "sender_dependent_default_transport_maps", "smtp_tls_secure_cert_match", "smtp_helo_name")


class _Context(RoleVars):
    """What a rule sees: the relay settings, the role's variables, the facts, and where findings go."""

    def __init__(self, relay, mta_vars, facts, cross):
        super().__init__(relay, mta_vars)
        self.facts = facts or {}
        self.cross = cross

    def integer(self, name):
        """The value as an int, None when unset; a value that is no whole number is reported (mta-positive)."""
        value = self.v.get(name)
        if value is None or isinstance(value, bool):
            return None
        number = self.whole_number(name)
        if number is None:
            self.add(name, "mta-positive", "%s must be a whole number, got %r" % (name, value),
                     "set %s to a number" % name)
        return number


def _positive(ctx, *names):
    for name in names:
        value = ctx.integer(name)
        if value is not None and value < 1:
            ctx.add(name, "mta-positive", "%s must be a positive whole number, got %d" % (name, value),
                    "set %s to 1 or more" % name)


def _guard_port(ctx, mta):
    name = "%s_guard_port" % mta
    value = ctx.integer(name)
    if value is not None and not 1 <= value <= 1023:
        ctx.add(name, "mta-guard-port",
                "%s must be 1 to 1023, got %d: a port only root can bind, so that no local user can listen there in "
                "the relay guard's place while it restarts" % (name, value), "set %s: 24 (the default)" % name)


# --- Postfix -----------------------------------------------------------------------------------------------------

def _postfix(ctx):
    if ctx.cross and ctx.relay.get("auth") and ctx.given("postfix_sasl_mechanism_filter") \
            and not ctx.get("postfix_sasl_mechanism_filter"):
        ctx.add("postfix_sasl_mechanism_filter", "postfix-sasl-mechanisms",
                "relay_auth is on but postfix_sasl_mechanism_filter is empty, so Postfix may offer no mechanism the "
                "relay accepts", "set postfix_sasl_mechanism_filter: [plain, login] (the default)")
    if ctx.given("postfix_null_sender_transport"):
        name = str(ctx.get("postfix_null_sender_transport"))
        if not _SERVICE_RE.match(name) or name in POSTFIX_RESERVED_SERVICES:
            ctx.add("postfix_null_sender_transport", "postfix-null-sender-transport",
                    "postfix_null_sender_transport must be a new master.cf service name (letters, digits, '_', '.', "
                    "'-') and not one of %s; got %r" % (", ".join(POSTFIX_RESERVED_SERVICES), name),
                    "set postfix_null_sender_transport: relay-null (the default)")
    main_cf = ctx.get("postfix_main_cf", {})
    clash = sorted(set(main_cf) & set(POSTFIX_RELAY_RULE_SETTINGS)) if isinstance(main_cf, dict) else []
    if clash:
        ctx.add("postfix_main_cf", "postfix-main-cf-relay-settings",
                "postfix_main_cf must not set %s: the role derives them from the relay_* variables so that they stay "
                "consistent (relayhost, SASL map key, TLS level and wrapper mode, HELO name)" % ", ".join(clash),
                "remove them from postfix_main_cf; set relay_host, relay_port, relay_tls, relay_auth, relay_helo_name")
    for name in ("postfix_sender_canonical_map", "postfix_generic_map"):
        table = ctx.get(name, {})
        bad = [str(k) for k, val in (table.items() if isinstance(table, dict) else [])
               if re.search(r"\s", str(k)) or re.search(r"\s", str(val))]
        if bad:
            ctx.add(name, "postfix-address-map", "%s: keys and values are addresses or @domains without white space; "
                    "got %s" % (name, ", ".join(repr(b) for b in bad)), "remove the white space from those entries")
    bad = [d for d in ctx.get("postfix_local_sender_domains", []) if not _DOMAIN_RE.match(str(d))]
    if bad:
        ctx.add("postfix_local_sender_domains", "postfix-local-sender-domains",
                "postfix_local_sender_domains are domain names (letters, digits, '.', '-'); got %s" % bad,
                "list host or domain names such as host.example.net")
    if ctx.given("postfix_inet_interfaces") and not ctx.get("postfix_inet_interfaces"):
        ctx.add("postfix_inet_interfaces", "postfix-inet-interfaces", "postfix_inet_interfaces is empty",
                "set postfix_inet_interfaces: loopback-only (the default)")
    _positive(ctx, "postfix_test_timeout", "postfix_connection_cache_time_limit")


# --- Sendmail ----------------------------------------------------------------------------------------------------

def _seconds(spec):
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"([0-9]+)([smhdw])", spec))


def _sendmail(ctx):
    guard = retry_on(ctx.boolean("sendmail_limit_replies_retry", True), ctx.boolean("sendmail_relay_refusals_retry", True))
    relay = ctx.relay
    if ctx.cross and not guard and (relay.get("tls") == "implicit" or relay.get("port") == 465):
        ctx.add("relay_tls", "sendmail-implicit-tls",
                "relay_tls=implicit (port 465) is not possible with Sendmail: Sendmail (8.15 to 8.18) has no "
                "client-side implicit TLS (SMTPS); it only speaks STARTTLS, so it would wait on port 465 for a greeting "
                "that never comes and keep the mail queued",
                "use relay_tls: required (port 587 with STARTTLS), or leave the relay guard on "
                "(sendmail_limit_replies_retry), which speaks implicit TLS for Sendmail; see docs/sendmail.md")
    user = relay.get("auth_username") or ""
    if ctx.cross and relay.get("auth") and re.search(r"[\s\"`']", user):
        ctx.add("relay_auth_username", "sendmail-auth-username-quoting",
                "relay_auth_username must not contain white space or quotes (it goes into Sendmail's authinfo map)",
                "use the registered user's plain address")
    fqdn = ctx.facts.get("fqdn")
    if fqdn is not None and "." not in str(fqdn):
        ctx.add("ansible_fqdn", "sendmail-fqdn",
                "the host name resolves to %r, which is not fully qualified: Sendmail then sleeps 60 seconds at every "
                "start and every submission and names itself with the short name" % (fqdn,),
                "give the host a fully qualified name first (hostname, or /etc/hosts: "
                "\"<address> host.example.com host\")")
    if ctx.given("sendmail_timeout_datafinal"):
        spec = str(ctx.get("sendmail_timeout_datafinal"))
        if not _TIME_RE.match(spec) or _seconds(spec) < 3600:
            ctx.add("sendmail_timeout_datafinal", "sendmail-timeout-datafinal",
                    "sendmail_timeout_datafinal must be a Sendmail time value of at least one hour: the relay service "
                    "asks for a Timeout.datafinal of one hour or more; got %r" % spec,
                    "set sendmail_timeout_datafinal: 1h (the default), or 90m, 2h")
    for name, pattern, example in (("sendmail_connection_cache_timeout", _TIME_RE, "5m"),
                                   ("sendmail_queue_interval", re.compile(r"^p?([0-9]+[smhdw])+$"), "p15s"),
                                   ("sendmail_min_queue_age", re.compile(r"^(0|([0-9]+[smhdw])+)$"), "5m")):
        if ctx.given(name) and not pattern.match(str(ctx.get(name))):
            ctx.add(name, "sendmail-time-value", "%s must be a Sendmail time value such as %s, got %r"
                    % (name, example, ctx.get(name)), "set %s: %s" % (name, example))
    _positive(ctx, "sendmail_connection_cache_size", "sendmail_test_timeout")
    _guard_port(ctx, "sendmail")
    bad = [a for a in ctx.get("sendmail_listen_addresses", []) if not _is_ip(a)]
    if bad:
        ctx.add("sendmail_listen_addresses", "sendmail-listen-addresses",
                "sendmail_listen_addresses are IPv4 or IPv6 addresses, got %s" % bad, "list addresses such as 127.0.0.1")
    bad = [c for c in ctx.get("sendmail_relay_clients", [])
           if not re.match(r"^[0-9]{1,3}(\.[0-9]{1,3}){0,3}$", str(c))]
    if bad:
        ctx.add("sendmail_relay_clients", "sendmail-relay-clients",
                "sendmail_relay_clients are IPv4 addresses or leading octets such as \"10.1.2\" for 10.1.2.0/24, "
                "got %s" % bad, "list addresses or leading octets")
    masquerade = ctx.get("sendmail_masquerade_as")
    names = ([masquerade] if isinstance(masquerade, str) and masquerade else []) \
        + list(ctx.get("sendmail_masquerade_domains", []))
    bad = [n for n in names if not _FQDN_RE.match(str(n))]
    if bad:
        ctx.add("sendmail_masquerade_as" if masquerade in bad else "sendmail_masquerade_domains",
                "sendmail-masquerade-domain",
                "sendmail_masquerade_as and sendmail_masquerade_domains are fully qualified domain names, got %s" % bad,
                "use names such as example.com")
    if ctx.cross:
        values = {"relay_host": relay.get("host"), "relay_helo_name": relay.get("helo_name"),
                  "relay_tls_ca_file": relay.get("tls_ca_file"), "sendmail_test_sender": ctx.get("sendmail_test_sender"),
                  "relay_local_sender": (relay.get("local_senders") or {}).get("address")}
        for name, value in values.items():
            if isinstance(value, str) and re.search(r"[`'\s]", value):
                ctx.add(name, "sendmail-m4-quoting",
                        "%s goes into sendmail.mc (or the genericstable) between m4 quotes and must not contain quotes "
                        "or white space: %r" % (name, value), "remove the quotes and white space")


def _is_ip(text):
    try:
        ipaddress.ip_address(str(text))
    except ValueError:
        return False
    return True


# --- qmail -------------------------------------------------------------------------------------------------------

def _qmail(ctx):
    relay = ctx.relay
    guard = retry_on(ctx.boolean("qmail_limit_replies_retry", True), ctx.boolean("qmail_relay_refusals_retry", True))
    starttls = ctx.boolean("qmail_starttls_client", True)
    tls = relay.get("tls")
    if ctx.cross and relay.get("auth"):
        ctx.add("relay_auth", "qmail-auth",
                "relay_auth=true cannot work with qmail: stock qmail-remote has no SMTP AUTH, and the local STARTTLS "
                "client this role sets up only adds TLS (stunnel's own SMTP login would come before qmail-remote's "
                "HELO, a session the relay service does not document)",
                "use the IP allowlist instead: relay_auth: false, the server's public address in relay_allowlist "
                "(Admin console: Only accept mail from the specified IP addresses) and relay_helo_name set to a name "
                "inside one of relay_domains, so bounces and foreign senders are accepted")
    if ctx.cross and tls in _TLS_ON and not starttls and not guard:
        ctx.add("qmail_starttls_client", "qmail-starttls-client",
                "relay_tls=%s needs TLS, which stock qmail-remote cannot speak (no STARTTLS, no TLS on 465), and "
                "qmail_starttls_client is false" % tls,
                "set qmail_starttls_client: true (the role then runs stunnel on %s:%s, which speaks %s and verifies its "
                "certificate), or send without TLS: relay_tls: none (or opportunistic) on port 25, with the IP "
                "allowlist (relay_allowlist) and relay_helo_name inside one of relay_domains, and Require TLS "
                "encryption left unchecked in the Admin console"
                % (ctx.get("qmail_stunnel_address", "127.0.0.1"), ctx.get("qmail_stunnel_port", 2525),
                   "STARTTLS to the relay on 587" if tls == "required" else "TLS to the relay on 465"))
    remote = ctx.integer("qmail_timeoutremote")
    if remote is not None and remote < 900:
        ctx.add("qmail_timeoutremote", "qmail-timeoutremote",
                "qmail_timeoutremote is %d: the relay service asks for a server timeout of at least 900 seconds "
                "(qmail's default, 1200, is long enough)" % remote, "set qmail_timeoutremote to 900 or more")
    smtpd = ctx.integer("qmail_timeoutsmtpd")
    if smtpd is not None and smtpd < 900:
        ctx.add("qmail_timeoutsmtpd", "qmail-timeoutsmtpd",
                "qmail_timeoutsmtpd is %d: the relay service asks for at least 900 seconds%s"
                % (smtpd, "; 0 or less does not mean unset" if smtpd <= 0 else ""),
                "leave qmail_timeoutsmtpd unset (null: control/timeoutsmtpd is raised to 1200 only when below 900), "
                "or set 900 or more")
    concurrency = ctx.integer("qmail_concurrencyremote")
    if concurrency is not None and concurrency < 1:
        ctx.add("qmail_concurrencyremote", "mta-unset-is-null",
                "qmail_concurrencyremote is %d: 0 or less does not mean unset" % concurrency,
                "leave qmail_concurrencyremote unset (null: derived from relay_licenses) or set 1 or more")
    _positive(ctx, "qmail_test_timeout")
    _guard_port(ctx, "qmail")
    address = ctx.get("qmail_stunnel_address")
    port = ctx.integer("qmail_stunnel_port")
    if (address is not None and not re.match(r"^127([.][0-9]{1,3}){3}$", str(address))) \
            or (port is not None and not 1 <= port <= 65535):
        ctx.add("qmail_stunnel_address" if address is not None and not re.match(r"^127([.][0-9]{1,3}){3}$", str(address))
                else "qmail_stunnel_port", "qmail-stunnel-address",
                "qmail_stunnel_address (%s) must be an IPv4 loopback address, 127.x.x.x (stock qmail-remote has no "
                "IPv6, and a STARTTLS client listening on another address would let anyone who reaches it send "
                "through this server's allowlisted address); qmail_stunnel_port (%s) a port number" % (address, port),
                "set qmail_stunnel_address: 127.0.0.1 and a free port such as 2525")
    if ctx.get("qmail_supervisor") == "command" and not ctx.get("qmail_restart_command"):
        ctx.add("qmail_restart_command", "qmail-restart-command",
                "qmail_supervisor is command, so qmail_restart_command must be given",
                "give an argv list, e.g. [svc, -t, /service/qmail-send]")
    for name in ("qmail_dir", "qmail_backup_dir"):
        if ctx.given(name) and not str(ctx.get(name)).startswith("/"):
            ctx.add(name, "qmail-absolute-path", "%s (%s) must be absolute paths" % (name, ctx.get(name)),
                    "write %s from the root, e.g. /%s" % (name, str(ctx.get(name)).lstrip("./")))
    _qmail_local_names(ctx)
    _qmail_routes(ctx, guard, starttls)
    if ctx.cross:
        local = relay.get("local_senders") or {}
        if ctx.boolean("qmail_rewrite_local_senders", True) and local.get("rewrite") == "address" and not guard:
            ctx.add("relay_local_sender", "qmail-local-sender-guard",
                    "relay_local_sender (%s): qmail itself can only change the host part of a local account's address "
                    "(control/defaulthost); sending root's or a daemon's mail as it is done by the relay guard, which "
                    "is off" % local.get("address"),
                    "turn qmail_limit_replies_retry or qmail_relay_refusals_retry on, or the relay refuses such mail "
                    "in registered_users mode and qmail keeps it queued", "warning")
        if tls in ("none", "opportunistic") and not guard:
            ctx.add("relay_tls", "qmail-plain-text",
                    "relay_tls=%s: qmail-remote sends to %s:%s in plain text" % (tls, relay.get("host"), relay.get("port")),
                    "leave Require TLS encryption unchecked in the Admin console and rely on the IP allowlist", "note")


def _qmail_local_names(ctx):
    names = [str(n) for n in ctx.get("qmail_local_sender_domains", [])]
    bad = [n for n in names if not _QMAIL_NAME_RE.match(n)]
    domains = [normalize_domain(d) for d in ctx.relay.get("domains") or [] if isinstance(d, str)]
    overlap = []
    for entry in (n.lower().rstrip(".") for n in names):
        for domain in domains:
            if entry == domain or (entry.startswith(".") and domain.endswith(entry)):
                overlap.append(entry)
    if bad or overlap:
        ctx.add("qmail_local_sender_domains", "qmail-local-sender-domains",
                "qmail_local_sender_domains (%s) lists further names of this host whose senders are local accounts' "
                "(host names, or .name for every name below it), never one of relay_domains (the customer's own "
                "addresses are sent as they are%s)" % (names, "; these are or cover one: " + " ".join(overlap)
                                                       if overlap else ""),
                "remove %s" % ", ".join(repr(n) for n in bad + overlap))
    defaulthost = ctx.get("qmail_defaulthost", "")
    if defaulthost and not _QMAIL_NAME_RE.match(str(defaulthost)):
        ctx.add("qmail_defaulthost", "qmail-defaulthost",
                "qmail_defaulthost (\"%s\") is a host or domain name, or empty" % defaulthost,
                "set a name such as example.com, or leave it empty")


def _qmail_routes(ctx, guard, starttls):
    catchall = None
    if ctx.cross and ctx.relay.get("host"):
        if guard:
            catchall = {"relay": "127.0.0.1", "port": ctx.integer("qmail_guard_port") or 24}
        elif starttls and ctx.relay.get("tls") in _TLS_ON:
            catchall = {"relay": str(ctx.get("qmail_stunnel_address", "127.0.0.1")),
                        "port": ctx.integer("qmail_stunnel_port") or 2525}
        else:
            catchall = {"relay": ctx.relay["host"], "port": ctx.relay.get("port")}
    try:
        plan_smtproutes(ctx.get("qmail_internal_routes", []), catchall=catchall, keep=ctx.get("qmail_keep_routes", []),
                        variable="qmail_internal_routes", keep_variable="qmail_keep_routes")
    except RelayRuleError as exc:
        match = re.match(r"^(qmail_(?:internal|keep)_routes(?:\[\d+\])?)", exc.message)
        ctx.findings.append(Finding(match.group(1) if match else "qmail_internal_routes", "qmail-routes",
                                    "%s [%s]" % (exc.message, exc.rule), exc.fix or "fix the route as the message says"))


_CHECKS = {"postfix": _postfix, "sendmail": _sendmail, "qmail": _qmail}


def check_mta(mta, relay, mta_vars, facts=None, inventory=None):
    """Every finding of ``mta``'s rules (see the module docstring); ``mta`` is one of ``MTAS``, ``exchange``,
    ``relay_guard`` or ``detect``."""
    if mta == "exchange":
        return check_exchange(relay, mta_vars, inventory)
    if mta == "relay_guard":
        return check_guard(relay, mta_vars)
    if mta == "detect":
        findings = []
        for name in MTAS:
            prefix = name + "_"
            ctx = _Context(relay, {k: v for k, v in (mta_vars or {}).items() if k.startswith(prefix)}, facts, cross=False)
            _CHECKS[name](ctx)
            findings.extend(ctx.findings)
        return findings
    if mta not in _CHECKS:
        raise ValueError("mta must be one of %s, exchange, relay_guard or detect, not %r" % (", ".join(MTAS), mta))
    ctx = _Context(relay, mta_vars, facts, cross=True)
    _CHECKS[mta](ctx)
    return ctx.findings
