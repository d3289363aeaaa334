# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay settings check: a whole relay profile against every rule.

``check_profile(profile)`` never stops at the first problem: it returns a
``ProfileReport`` with every error, warning and note, each naming the profile
key it concerns, and the ``normalized`` settings (defaults filled in, derived
values added, the password masked).  See ``RULES`` for the rule ids.
"""

from __future__ import annotations

import difflib
import ipaddress
import re

from . import constants as C
from .allowlist import HAS_NETADDR, check_allowlist
from .domains import domain_matches, helo_identifies_customer, is_fqdn, is_hostname, normalize_domain
from .findings import Finding, RelayRuleError, format_findings
from .limits import sending_limits, suggested_throttles
from .replies import retry_rules
from .secrets import mask, mask_values, secret_texts

PROFILE_KEYS = (
    "host", "port", "tls", "tls_verify", "tls_ca_file", "auth", "auth_username", "auth_password",
    "allowed_senders", "domains", "helo_name", "foreign_senders", "null_sender", "allowlist",
    "egress_addresses", "licenses", "paid", "servers", "local_sender",
)

# rule id -> what it enforces (the service document is the source of each).
RULES = {
    "profile-unknown-key": "only the documented profile keys are accepted (catches typos)",
    "type-bool": "a yes/no setting must be a boolean",
    "type-int": "a number setting must be a whole number",
    "type-str": "a text setting must be a string",
    "type-list": "a list setting must be a list",
    "host-syntax": "the relay host must be a valid host name (no port, no brackets)",
    "host-not-google": "the relay host is not smtp-relay.gmail.com (note; fine for a stand-in)",
    "host-ip-literal": "with certificate verification on, the relay host is a name: the relay's certificate names "
                       "smtp-relay.gmail.com, never an address",
    "host-certificate-name": "with certificate verification on, a host in Google's domains must be one the relay's "
                             "certificate names (smtp-relay.gmail.com, smtp-relay.google.com)",
    "port-allowed": "the relay listens on port 25, 465 or 587 only; unset is null, not 0",
    "tls-mode": "tls is one of none, opportunistic, required, implicit",
    "tls-required-port-587": "if you require TLS encryption, you must point to the relay on port 587",
    "implicit-tls-port-465": "implicit TLS (TLS from the first byte) is port 465",
    "port-465-implicit-tls": "port 465 speaks implicit TLS only; none/opportunistic cannot use it",
    "tls-verify-needs-tls": "certificate verification needs TLS",
    "tls-verify-opportunistic": "opportunistic TLS does not verify certificates (warning)",
    "tls-verify-off": "certificate verification is off although TLS is mandatory (warning)",
    "tls-ca-file-unused": "tls_ca_file has no effect without certificate verification (warning)",
    "auth-requires-tls": "SMTP Authentication requires TLS encryption (Require TLS, port 587)",
    "auth-credentials": "SMTP AUTH needs auth_username and auth_password",
    "auth-username-address": "SMTP AUTH logs in a registered user by address (error); one outside your domains "
                             "is a warning",
    "auth-unused": "credentials are given but auth is off (warning)",
    "auth-user-limits": "mail authenticated as one user counts against that user's 10,000/24 h (note)",
    "sender-mode": "allowed_senders is registered_users, domain_addresses or any_address",
    "domains-required": "the customer's domains must be listed",
    "domain-syntax": "each domain must be a fully qualified domain name",
    "domain-duplicate": "a domain is listed twice (warning)",
    "helo-syntax": "the HELO name must be a fully qualified host name",
    "sender-identity": "any address, foreign sender domains and the null sender need SMTP AUTH "
                       "or a HELO name inside one of your domains",
    "any-address-not-recommended": "the service document's warning about Any addresses",
    "foreign-senders-need-any-address": "senders outside your domains are only accepted with Any addresses",
    "sender-rewrite": "a foreign envelope sender is rewritten to postmaster@your domain (note)",
    "null-sender-single-recipient": "null-sender mail must have one RCPT TO per transaction (note)",
    "local-sender-address": "local_sender is an address in one of your domains (the relay refuses others)",
    "local-sender-missing": "registered_users refuses local accounts' mail (root, cron, daemons) unless it is "
                            "sent as a registered user: local_sender, or SMTP AUTH's user (warning)",
    "local-sender-auth-user": "without local_sender, registered_users mode sends local accounts' mail as the "
                              "SMTP AUTH user (note)",
    "allowlist-or-auth": "with neither an IP allowlist nor SMTP AUTH the relay accepts nothing",
    "allowlist-syntax": "allowlist entries are IPv4/IPv6 addresses or CIDR ranges",
    "allowlist-host-bits": "a CIDR range starts at its network address",
    "allowlist-max-addresses": "at most 65,536 addresses per range (IPv4 /16, IPv6 /112)",
    "allowlist-duplicate": "an allowlist range is listed twice",
    "allowlist-overlap": "allowlist ranges overlap (one contains the other)",
    "allowlist-public": "use your own public IP address (warning)",
    "allowlist-narrow": "keep the allowed IP range as narrow as possible (warning)",
    "egress-covered": "every egress address must be inside an enabled allowlist range",
    "egress-public": "egress addresses are public addresses (warning)",
    "licenses-positive": "licenses is a positive whole number; unknown is null, not 0",
    "servers-positive": "servers is a positive whole number",
    "netaddr-missing": "the netaddr library is needed for allowlist checks",
}

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class ProfileReport:
    """``normalized`` settings plus ``errors``, ``warnings`` and ``notes``
    (lists of ``Finding``); ``ok`` is True when there are no errors."""

    def __init__(self, normalized=None, errors=None, warnings=None, notes=None):
        self.normalized = normalized if normalized is not None else {}
        self.errors = errors if errors is not None else []
        self.warnings = warnings if warnings is not None else []
        self.notes = notes if notes is not None else []

    @property
    def ok(self):
        return not self.errors

    @property
    def findings(self):
        return self.errors + self.warnings + self.notes

    def format(self):
        return format_findings(self.findings)

    def as_dict(self):
        return {
            "ok": self.ok,
            "normalized": self.normalized,
            "errors": [f.as_dict() for f in self.errors],
            "warnings": [f.as_dict() for f in self.warnings],
            "notes": [f.as_dict() for f in self.notes],
        }


# Keys of ProfileReport.normalized, in the order it publishes them: the profile keys, then the derived values.
_NORMALIZED_KEYS = PROFILE_KEYS + (
    "identity", "customer_domain", "sender_rewrite", "null_sender_recipient_limit", "allowlist_total", "limits",
    "throttles", "retry_replies", "local_senders",
)


class _Checker:
    """The profile being checked (``profile``, read through the typed getters, which report wrong types), the
    settings normalized so far (``normalized``, every key present from the start so that the published order is
    fixed) and the findings. The checks in ``_CHECKS`` run in order, each reading what earlier ones normalized;
    the few facts a later check needs that ``normalized`` does not publish are attributes."""

    def __init__(self, profile):
        self.profile = profile
        self.normalized = dict.fromkeys(_NORMALIZED_KEYS)
        self.findings = []
        self.host_is_ip = False
        self.auth_identifies = False
        self.helo_domain = None
        self.has_allowlist = False

    def add(self, variable, rule, message, fix="", severity="error"):
        self.findings.append(Finding(variable, rule, message, fix, severity))

    def present(self, key):
        return self.profile.get(key) is not None

    def boolean(self, key, default):
        value = self.profile.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        self.add(key, "type-bool", "%s must be true or false, got %r" % (key, value), "set %s: true or %s: false" % (key, key))
        return default

    def integer(self, key):
        value = self.profile.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.match(r"^\s*-?[0-9]+\s*$", value):
            return int(value)
        self.add(key, "type-int", "%s must be a whole number, got %r" % (key, value), "write %s as a number without quotes or units" % key)
        return None

    def string(self, key):
        value = self.profile.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            value = value.strip()
            return value or None
        self.add(key, "type-str", "%s must be a string, got %s" % (key, type(value).__name__), "quote %s" % key)
        return None

    def strlist(self, key):
        value = self.profile.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [p for p in re.split(r"[\s,;]+", value) if p]
        if isinstance(value, (list, tuple)):
            return list(value)
        self.add(key, "type-list", "%s must be a list, got %s" % (key, type(value).__name__), "write %s as a YAML list" % key)
        return []

    def report(self):
        """The ``ProfileReport``: findings by severity, the secret masked wherever a text quotes it (like no_log).
        The normalized settings of a profile that passes are data the roles configure from: a password that happens
        to be part of a host name or a retry pattern must not change them, so there only a value that is the
        password is masked (auth_password is already)."""
        hidden = secret_texts(self.profile.get("auth_password"))
        failed = any(f.severity == "error" for f in self.findings)
        report = ProfileReport(mask(self.normalized, hidden) if failed else mask_values(self.normalized, hidden))
        for f in self.findings:
            f.message = mask(f.message, hidden)
            f.fix = mask(f.fix, hidden)
            {"error": report.errors, "warning": report.warnings, "note": report.notes}[f.severity].append(f)
        return report


def check_profile(profile):
    """Check a relay profile (dict with the keys in ``PROFILE_KEYS``) against
    every rule; returns a ``ProfileReport``.  Never raises for bad values."""
    if profile is None:
        profile = {}
    if not isinstance(profile, dict):
        report = ProfileReport()
        report.errors.append(Finding("profile", "type-dict", "the relay profile must be a dict, got %s" % type(profile).__name__,
                                     "pass the settings as a mapping of profile keys"))
        return report
    ck = _Checker(profile)
    for check in _CHECKS:
        check(ck)
    return ck.report()


def _check_keys(ck):
    for key in ck.profile:
        if key not in PROFILE_KEYS:
            close = difflib.get_close_matches(str(key), PROFILE_KEYS, n=1)
            ck.add(str(key), "profile-unknown-key", "%r is not a relay profile setting" % (key,),
                   ("did you mean %r?" % close[0]) if close else "remove it; known settings: %s" % ", ".join(PROFILE_KEYS))


def _check_host(ck):
    """``host`` is normalized to None when it is not usable at all (brackets, a port, not a host name)."""
    host = ck.string("host") or C.DEFAULT_RELAY_HOST
    if host.startswith("[") or host.endswith("]") or (":" in host and not _looks_ipv6(host)):
        bare = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        ck.add("host", "host-syntax", "host %r must be the bare relay name, without brackets or a port" % host,
               "write host: %s and set the port with port:" % bare)
        return
    if _looks_ip(host):
        ck.host_is_ip = True
    elif not is_hostname(host):
        ck.add("host", "host-syntax", "host %r is not a valid host name" % host, "use %s" % C.DEFAULT_RELAY_HOST)
        return
    else:
        host = normalize_domain(host)
        if host not in C.KNOWN_RELAY_HOSTS and not _in_google_domains(host):
            ck.add("host", "host-not-google", "host %s is not Google's relay (%s); fine for a test stand-in" % (host, C.DEFAULT_RELAY_HOST),
                   "use %s in production" % C.DEFAULT_RELAY_HOST, "note")
    ck.normalized["host"] = host


def _check_port_and_tls(ck):
    """An unset (or unusable) ``tls`` follows from the port, and an unset port from ``tls``."""
    port = ck.integer("port")
    tls = ck.string("tls")
    if tls is not None:
        tls = tls.lower()
        if tls not in C.TLS_MODES:
            ck.add("tls", "tls-mode", "tls %r is not one of %s" % (tls, ", ".join(C.TLS_MODES)),
                   "use tls: required (STARTTLS on port 587) unless your server cannot do TLS")
            tls = None
    if port is not None and port not in C.RELAY_PORTS:
        ck.add("port", "port-allowed", "port %d is not a relay port; the relay listens on 25, 465 and 587 only%s"
               % (port, "; 0 or less does not mean unset" if port <= 0 else ""),
               "use port: 587 (with tls: required), or leave port unset (null) to derive it from tls")
    if tls is None:
        tls = {C.PORT_IMPLICIT_TLS: C.TLS_IMPLICIT, C.PORT_SMTP: C.TLS_OPPORTUNISTIC}.get(port, C.TLS_REQUIRED)
        if port == C.PORT_SMTP and "tls" not in ck.profile:
            ck.add("tls", "tls-mode", "tls is not set; with port 25 it defaults to opportunistic STARTTLS",
                   "set tls explicitly (required with port 587 is the safe choice)", "note")
    if port is None:
        port = C.PORT_IMPLICIT_TLS if tls == C.TLS_IMPLICIT else C.PORT_SUBMISSION
    ck.normalized.update(port=port, tls=tls)


def _check_port_fits_tls(ck):
    port, tls = ck.normalized["port"], ck.normalized["tls"]
    # Only a tls the profile names (even as null or a bad value) is held to the port; one derived from it is not.
    if "tls" in ck.profile:
        if tls == C.TLS_REQUIRED and port != C.PORT_SUBMISSION:
            ck.add("port", "tls-required-port-587",
                   "tls: required needs port 587, not %d; the document: if you require TLS encryption, "
                   "you must point your server to the relay on port 587" % port,
                   "set port: 587")
        if tls == C.TLS_IMPLICIT and port != C.PORT_IMPLICIT_TLS:
            ck.add("port", "implicit-tls-port-465", "tls: implicit (TLS from the first byte) is port 465, not %d" % port,
                   "set port: 465, or use tls: required with port 587")
    if port == C.PORT_IMPLICIT_TLS and tls in (C.TLS_NONE, C.TLS_OPPORTUNISTIC):
        ck.add("tls", "port-465-implicit-tls",
               "port 465 speaks TLS from the first byte (implicit TLS); tls: %s cannot talk to it" % tls,
               "set tls: implicit for port 465, or use port 587 (tls: required) or 25")


def _tls_on(ck):
    return ck.normalized["tls"] in (C.TLS_REQUIRED, C.TLS_IMPLICIT)


def _check_tls_verify(ck):
    tls = ck.normalized["tls"]
    tls_on = _tls_on(ck)
    tls_verify = ck.boolean("tls_verify", tls_on)
    if ck.present("tls_verify") and tls_verify and tls == C.TLS_NONE:
        ck.add("tls_verify", "tls-verify-needs-tls", "tls_verify: true needs TLS, but tls is none",
               "set tls: required (port 587), or drop tls_verify")
    elif ck.present("tls_verify") and tls_verify and tls == C.TLS_OPPORTUNISTIC:
        ck.add("tls_verify", "tls-verify-opportunistic",
               "tls_verify has no effect with tls: opportunistic (a server that may fall back to plain text cannot insist on a certificate)",
               "set tls: required (port 587) to verify the relay's certificate", "warning")
    elif tls_on and not tls_verify:
        # auth is read (and its type checked) later, by _check_auth; its raw value only picks the wording here.
        ck.add("tls_verify", "tls-verify-off",
               "certificate verification is off: anyone between you and the relay can impersonate it%s"
               % (" and capture the SMTP AUTH credentials" if ck.profile.get("auth") in (True, "true", "yes") else ""),
               "leave tls_verify: true (the default) and trust the relay's CA", "warning")
    ck.normalized["tls_verify"] = tls_verify


def _check_host_certificate(ck):
    """With verification on, the relay's certificate must be able to match ``host``: refuse an address and a
    Google name the certificate does not carry (names outside Google's domains are stand-ins or private relays,
    whose certificates the caller controls: ``host-not-google`` notes them)."""
    host = ck.normalized["host"]
    if host is None:
        return
    verify = ck.normalized["tls_verify"] and _tls_on(ck)
    if ck.host_is_ip:
        if verify:
            ck.add("host", "host-ip-literal",
                   "host %s is an address while certificate verification is on: the relay's certificate names %s, "
                   "so verification fails on every connection and mail stays queued" % (host, C.DEFAULT_RELAY_HOST),
                   "set host: %s (the relay's name)" % C.DEFAULT_RELAY_HOST)
        else:
            ck.add("host", "host-syntax", "host %r is an address; the relay's TLS certificate names %s"
                   % (host, C.DEFAULT_RELAY_HOST), "use the relay's host name (%s)" % C.DEFAULT_RELAY_HOST, "warning")
    elif verify and host not in C.KNOWN_RELAY_HOSTS and _in_google_domains(host):
        ck.add("host", "host-certificate-name",
               "host %s is not a name the relay's certificate carries (%s) while certificate verification is on, "
               "so verification fails on every connection and mail stays queued"
               % (host, ", ".join(C.KNOWN_RELAY_HOSTS)),
               "set host: %s" % C.DEFAULT_RELAY_HOST)
    elif not verify and host not in C.KNOWN_RELAY_HOSTS and _in_google_domains(host):
        ck.add("host", "host-not-google", "host %s is not Google's relay (%s)" % (host, C.DEFAULT_RELAY_HOST),
               "use %s" % C.DEFAULT_RELAY_HOST, "note")


def _check_tls_ca_file(ck):
    tls_ca_file = ck.string("tls_ca_file")
    if tls_ca_file and not (ck.normalized["tls_verify"] and ck.normalized["tls"] != C.TLS_NONE):
        ck.add("tls_ca_file", "tls-ca-file-unused", "tls_ca_file is set but certificates are not verified",
               "remove tls_ca_file, or set tls_verify: true with tls: required", "warning")
    ck.normalized["tls_ca_file"] = tls_ca_file


def _check_auth(ck):
    auth = ck.boolean("auth", False)
    auth_username = ck.string("auth_username")
    auth_password = ck.profile.get("auth_password")
    if auth_password is not None and not isinstance(auth_password, str):
        ck.add("auth_password", "type-str", "auth_password must be a string (value not shown)", "quote auth_password")
        auth_password = None
    if auth:
        if ck.normalized["tls"] != C.TLS_REQUIRED:
            ck.add("auth", "auth-requires-tls",
                   "SMTP AUTH needs tls: required (STARTTLS on port 587), not tls: %s; the document: "
                   "SMTP Authentication requires TLS encryption, and Require TLS means port 587" % ck.normalized["tls"],
                   "set tls: required and port: 587")
        if not auth_username:
            ck.add("auth_username", "auth-credentials", "auth is on but auth_username is not set",
                   "set auth_username to a registered user's address, e.g. relay@example.com")
        if not auth_password:
            ck.add("auth_password", "auth-credentials", "auth is on but auth_password is not set (value never shown)",
                   "set auth_password, ideally from Ansible Vault")
    elif auth_username or auth_password:
        ck.add("auth_username" if auth_username else "auth_password", "auth-unused",
               "auth_username/auth_password are set but auth is off, so they are not used",
               "set auth: true, or remove the credentials", "warning")
    ck.auth_identifies = bool(auth and auth_username and auth_password)
    ck.normalized.update(auth=auth, auth_username=auth_username,
                         auth_password=C.SECRET_MASK if auth_password else None)


def _check_domains(ck):
    domains = []
    for index, name in enumerate(ck.strlist("domains")):
        var = "domains[%d]" % index
        if not isinstance(name, str) or not is_fqdn(name):
            ck.add(var, "domain-syntax", "%r is not a fully qualified domain name" % (name,),
                   "list domain names such as example.com")
            continue
        norm = normalize_domain(name)
        if norm in domains:
            ck.add(var, "domain-duplicate", "%s is listed twice" % norm, "remove %s" % var, "warning")
            continue
        domains.append(norm)
    # Reads domains again, so a value of the wrong type gets its type-list finding twice: kept as it was.
    if not ck.strlist("domains"):
        ck.add("domains", "domains-required", "domains is empty; the relay's rules all refer to your domains",
               "list the customer's domains (primary, secondary, alias), e.g. [example.com]")
    ck.normalized["domains"] = domains


def _check_auth_username(ck):
    auth_username, domains = ck.normalized["auth_username"], ck.normalized["domains"]
    if not (ck.normalized["auth"] and auth_username):
        return
    user_domain = auth_username.rsplit("@", 1)[1] if "@" in auth_username else None
    if not user_domain or not is_fqdn(user_domain) or not auth_username.rsplit("@", 1)[0]:
        ck.add("auth_username", "auth-username-address",
               "auth_username %r is not an address; the relay logs in registered users by their address "
               "(user@domain), so every login fails and mail stays queued" % auth_username,
               "use the full address of a registered user, e.g. relay@%s" % (domains[0] if domains else "example.com"))
    elif domains and not domain_matches(user_domain, domains):
        ck.add("auth_username", "auth-username-address",
               "auth_username's domain %s is not one of domains; SMTP AUTH identifies the sending domain" % user_domain,
               "log in as a registered user of %s" % domains[0], "warning")


def _check_helo(ck):
    domains = ck.normalized["domains"]
    helo = ck.string("helo_name")
    if helo is not None:
        if not is_fqdn(helo):
            ck.add("helo_name", "helo-syntax", "helo_name %r is not a fully qualified host name" % helo,
                   "use the server's full name inside your domain, e.g. mail.%s" % (domains[0] if domains else "example.com"))
        else:
            helo = normalize_domain(helo)
    ck.helo_domain = helo_identifies_customer(helo, domains) if helo else None
    ck.normalized["helo_name"] = helo


def _check_sender_mode(ck):
    senders = ck.string("allowed_senders")
    if senders is None:
        senders = C.SENDERS_REGISTERED
    elif senders not in C.SENDER_MODES:
        ck.add("allowed_senders", "sender-mode", "allowed_senders %r is not one of %s" % (senders, ", ".join(C.SENDER_MODES)),
               "use registered_users or domain_addresses")
        senders = C.SENDERS_REGISTERED
    ck.normalized.update(allowed_senders=senders, foreign_senders=ck.boolean("foreign_senders", False),
                         null_sender=ck.boolean("null_sender", False))


def _derive_identity(ck):
    """How the relay knows the customer (``identity``: auth, helo or None) and which of the domains it takes as
    theirs (``customer_domain``: AUTH's, HELO's, else the first listed)."""
    n = ck.normalized
    customer_domain = None
    if ck.auth_identifies and "@" in n["auth_username"]:
        customer_domain = domain_matches(n["auth_username"].rsplit("@", 1)[1], n["domains"])
    n["customer_domain"] = customer_domain or ck.helo_domain or (n["domains"][0] if n["domains"] else None)
    n["identity"] = "auth" if n["auth"] else ("helo" if ck.helo_domain else None)


def _check_sender_identity(ck):
    """Any address, foreign senders and the null sender each need AUTH or a HELO name in the customer's domains."""
    n = ck.normalized
    if n["auth"]:
        return
    helo, domains = n["helo_name"], n["domains"]
    if helo is None:
        why = "helo_name is not set"
    elif ck.helo_domain is None:
        why = "helo_name %s is not a fully qualified name inside any of domains (%s)" % (helo, ", ".join(domains) or "none listed")
    else:
        return
    triggers = []
    if n["allowed_senders"] == C.SENDERS_ANY:
        triggers.append(("allowed_senders", "allowed_senders is any_address"))
    if n["foreign_senders"]:
        triggers.append(("foreign_senders", "the server sends mail from domains you do not own (foreign_senders)"))
    if n["null_sender"]:
        triggers.append(("null_sender", "the server sends mail with a null envelope sender (bounces, vacation replies)"))
    for var, what in triggers:
        ck.add(var, "sender-identity",
               "%s, so the relay must identify you by SMTP AUTH or by one of your domain names in HELO/EHLO; "
               "auth is off and %s" % (what, why),
               "set auth: true (tls: required, port: 587, auth_username, auth_password), or helo_name: "
               "mail.%s" % (domains[0] if domains else "example.com"))


def _check_any_address(ck):
    senders = ck.normalized["allowed_senders"]
    if senders == C.SENDERS_ANY:
        ck.add("allowed_senders", "any-address-not-recommended", C.ANY_ADDRESS_WARNING,
               "prefer registered_users or domain_addresses", "warning")
    if ck.normalized["foreign_senders"] and senders != C.SENDERS_ANY:
        ck.add("allowed_senders", "foreign-senders-need-any-address",
               "foreign_senders is true but allowed_senders is %s, which accepts only senders in your domains" % senders,
               "set allowed_senders: any_address, or stop sending from domains you do not own")


def _check_sender_rewrite(ck):
    if not ck.normalized["foreign_senders"]:
        return
    sender_rewrite = "postmaster@%s" % (ck.normalized["customer_domain"] or "[your domain]")
    ck.add("foreign_senders", "sender-rewrite",
           "the relay rewrites envelope senders outside your domains to %s. %s" % (sender_rewrite, C.REWRITE_NOTE),
           "expect bounces for such mail to go to %s" % sender_rewrite, "note")
    ck.normalized["sender_rewrite"] = sender_rewrite


def _check_null_sender(ck):
    if not ck.normalized["null_sender"]:
        return
    ck.add("null_sender", "null-sender-single-recipient",
           "The SMTP Relay service does not support multiple envelope recipients (RCPT TO) when specifying "
           "a null envelope sender (MAIL FROM: <>); the roles configure one recipient per null-sender transaction",
           "nothing to do when a smarthost.relay role configures the server", "note")
    ck.normalized["null_sender_recipient_limit"] = C.NULL_SENDER_MAX_RECIPIENTS


def _check_auth_user_limits(ck):
    if ck.auth_identifies:
        ck.add("auth_username", "auth-user-limits",
               "mail relayed with SMTP AUTH as %s may count against that user's limit of %s messages and %s unique "
               "recipients per 24 h" % (ck.normalized["auth_username"], "{:,}".format(C.USER_DAILY_MESSAGES),
                                        "{:,}".format(C.USER_DAILY_UNIQUE_RECIPIENTS)),
               "spread heavy senders over several users or rely on the IP allowlist", "note")


def _check_local_senders(ck):
    n = ck.normalized
    local_senders = _local_senders(ck, n["allowed_senders"], n["domains"], n["customer_domain"],
                                   n["auth_username"] if ck.auth_identifies else None)
    n["local_sender"] = local_senders["address"] if local_senders["source"] == "local_sender" else None
    n["local_senders"] = {key: local_senders[key] for key in ("rewrite", "domain", "address")}


def _local_senders(ck, senders, domains, customer_domain, auth_user):
    """How mail from the server's local accounts (root, cron, daemons: ``user@<host name>``, which is in none
    of the customer's domains) must leave so that the relay accepts it: ``rewrite`` is ``"masquerade"`` (keep
    the user, put ``domain`` in place of the host name), ``"address"`` (send it as ``address``, a registered
    user) or None (the relay takes any sender: ``any_address``). ``source`` says where ``address`` came from."""
    given = ck.string("local_sender")
    address = None
    if given is not None:
        local, _at, domain = given.rpartition("@")
        if not local or not is_fqdn(domain) or re.search(r"[\s<>@,;]", local):
            ck.add("local_sender", "local-sender-address",
                   "local_sender %r is not an address (user@domain)" % given,
                   "set local_sender: alerts@%s (a registered user's address)"
                   % (domains[0] if domains else "example.com"))
        elif senders != C.SENDERS_ANY and domains and not domain_matches(domain, domains):
            ck.add("local_sender", "local-sender-address",
                   "local_sender %s is not in one of domains (%s), so the relay would refuse local accounts' "
                   "mail sent as it (allowed_senders is %s)" % (given, ", ".join(domains), senders),
                   "set local_sender: to a registered user's address in %s" % domains[0])
        else:
            address = "%s@%s" % (local, normalize_domain(domain))
    if address:
        return {"rewrite": "address", "address": address, "domain": address.rpartition("@")[2],
                "source": "local_sender"}
    if senders == C.SENDERS_ANY:
        return {"rewrite": None, "address": None, "domain": None, "source": None}
    if senders == C.SENDERS_REGISTERED and auth_user and "@" in auth_user \
            and domain_matches(auth_user.rpartition("@")[2], domains):
        ck.add("local_sender", "local-sender-auth-user",
               "allowed_senders is registered_users and local_sender is not set: mail from local accounts "
               "(root, cron, daemons) is sent as the SMTP AUTH user %s, a registered user" % auth_user,
               "set local_sender: to send it as another registered user", "note")
        return {"rewrite": "address", "address": auth_user, "domain": auth_user.rpartition("@")[2],
                "source": "auth_username"}
    if senders == C.SENDERS_REGISTERED and given is None:
        ck.add("local_sender", "local-sender-missing",
               "allowed_senders is registered_users but local_sender is not set: mail from local accounts (root, "
               "cron, daemons) can only be masqueraded as <user>@%s, which the relay refuses unless that address "
               "is a registered user, so such mail stays queued" % (customer_domain or "[your domain]"),
               "set local_sender: alerts@%s (a registered user's address), or auth: true (local mail is then "
               "sent as the SMTP AUTH user)" % (customer_domain or "example.com"), "warning")
    return {"rewrite": "masquerade", "address": None, "domain": customer_domain, "source": None}


def _check_allowlist(ck):
    """The ranges (checked by ``check_allowlist``), normalized in the form each was given (text or dict)."""
    entries = ck.strlist("allowlist")
    egress = ck.strlist("egress_addresses")
    normalized_allowlist = []
    allowlist_total = 0
    # Counts entries the range check may yet refuse: a broken allowlist is its own error, not a missing one.
    ck.has_allowlist = any(not (isinstance(e, dict) and not e.get("enabled", True)) for e in entries)
    if (entries or egress) and not HAS_NETADDR:
        ck.add("allowlist", "netaddr-missing", "the Python library netaddr is required to check the allowlist",
               "install netaddr on the controller (pip install netaddr)")
    elif entries:
        report = check_allowlist(entries, egress if egress else None)
        ck.findings.extend(report.errors + report.warnings)
        by_index = {r["index"]: r for r in report.ranges}
        for index, entry in enumerate(entries):
            rng = by_index.get(index)
            if rng is None:
                continue
            if isinstance(entry, dict):
                normalized_allowlist.append({"range": rng["cidr"], "enabled": rng["enabled"], "description": rng["description"]})
            else:
                normalized_allowlist.append(rng["cidr"])
        allowlist_total = report.total
    ck.normalized.update(allowlist=normalized_allowlist, egress_addresses=[str(e) for e in egress],
                         allowlist_total=allowlist_total)


def _check_allowlist_or_auth(ck):
    if not ck.normalized["auth"] and not ck.has_allowlist:
        ck.add("allowlist", "allowlist-or-auth",
               "neither an IP allowlist nor SMTP AUTH is configured, so the relay would accept no mail from this server",
               "list the server's public egress address(es) in allowlist, or set auth: true with credentials")


def _check_limits(ck):
    """Licences and fleet size; the sending limits and per-server throttles follow when the licences are known."""
    licenses = ck.integer("licenses")
    paid = ck.boolean("paid", True)
    servers = ck.integer("servers")
    limits = throttles = None
    if licenses is not None and licenses < 1:
        ck.add("licenses", "licenses-positive",
               "licenses must be at least 1, got %d (0 or less does not mean unknown)" % licenses,
               "set licenses to the number of user licences in the account, or leave it unset (null) when unknown")
        licenses = None
    if servers is not None and servers < 1:
        ck.add("servers", "servers-positive", "servers must be at least 1, got %d" % servers,
               "set servers to the number of mail servers relaying through the service")
        servers = None
    if servers is None:
        servers = 1
    if licenses is not None:
        try:
            limits = sending_limits(licenses, paid)
            throttles = suggested_throttles(licenses, paid, servers)
        except RelayRuleError as exc:  # pragma: no cover - values checked above
            ck.findings.append(exc.to_finding("licenses"))
    ck.normalized.update(licenses=licenses, paid=paid, servers=servers, limits=limits, throttles=throttles)


def _publish_retry_rules(ck):
    ck.normalized["retry_replies"] = retry_rules()


# The checks in the order they run: each reads what the ones before it normalized, and the findings keep this
# order within each severity.
_CHECKS = (
    _check_keys,
    _check_host,
    _check_port_and_tls,
    _check_port_fits_tls,
    _check_tls_verify,
    _check_host_certificate,
    _check_tls_ca_file,
    _check_auth,
    _check_domains,
    _check_auth_username,
    _check_helo,
    _check_sender_mode,
    _derive_identity,
    _check_sender_identity,
    _check_any_address,
    _check_sender_rewrite,
    _check_null_sender,
    _check_auth_user_limits,
    _check_local_senders,
    _check_allowlist,
    _check_allowlist_or_auth,
    _check_limits,
    _publish_retry_rules,
)


def _looks_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _looks_ipv6(text):
    return bool(re.match(r"^[0-9a-fA-F:.]+$", text)) and text.count(":") >= 2


# Google's own mail domains: a host there that the relay's certificate does not name is another Google service.
_GOOGLE_DOMAINS = ("gmail.com", "google.com", "googlemail.com")


def _in_google_domains(host):
    return any(host == d or host.endswith("." + d) for d in _GOOGLE_DOMAINS)
