# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules of the relay guard, on the relay_guard role's variables (``relay_guard_*``).

``check_guard(relay, guard_vars)`` returns a list of ``Finding`` for ``guard_vars`` (as the role sees them, after
the MTA role that includes it has set its own values) against ``relay``, the relay settings as the relay check
normalized them (``relay_settings``; no rule reads them yet). Where the guard listens is checked in every state;
the pool and the local senders' rewrite only with ``relay_guard_state: present`` (``absent`` removes the guard).
They are the configuration checks of the guard's own ``--check``, made here on the controller, where they can name
the role's variable: the guard runs its check under ``no_log``, because the configuration holds the password.
Each rule reads like a row of ``RULES``: one small function per rule, in ``_RULE_CHECKS``.
"""

from __future__ import annotations

import re

from .role_vars import RoleVars

# rule id -> what it enforces.
RULES = {
    "guard-address": "the relay guard listens on loopback only: relay_guard_address is 127.0.0.1 or ::1",
    "guard-port": "the relay guard listens on a port from 1 to 1023, which only root can bind",
    "guard-timeout": "relay_guard_connect_timeout and relay_guard_reply_timeout are 1 to 86400 seconds",
    "guard-pool-range": "each relay_guard_pool_* setting is a whole number within its range",
    "guard-pool-max-idle": "relay_guard_pool_max_idle is at most relay_guard_pool_max_connections",
    "guard-local-sender-rewrite": "relay_guard_local_sender_rewrite is none, domain or address",
    "guard-local-sender-domains": "rewriting local senders needs relay_guard_local_sender_domains: host names "
                                  "or .name, at least one",
    "guard-local-sender-domain": "the domain rewrite needs relay_guard_local_sender_domain, the customer's domain",
    "guard-local-sender-address": "the address rewrite needs relay_guard_local_sender_address, one user@domain",
    "guard-local-sender-target": "the domain local senders are rewritten to is not one of "
                                 "relay_guard_local_sender_domains",
}

LOOPBACK = ("127.0.0.1", "::1")
LOCAL_REWRITES = ("none", "domain", "address")
# name -> (lowest, highest, what the bounds mean): as the guard's --check takes them.
POOL_RANGES = {
    "relay_guard_pool_max_connections": (1, 1000, "1 to 1000"),
    "relay_guard_pool_max_idle": (0, 1000, "0 (no reuse) to relay_guard_pool_max_connections"),
    "relay_guard_pool_idle_timeout": (1, 3600, "1 to 3600 seconds"),
    "relay_guard_pool_max_messages": (0, 10 ** 9, "0 (no limit) to 1000000000"),
    "relay_guard_pool_max_age": (0, 7 * 86400, "0 (no limit) to 604800 seconds"),
    "relay_guard_pool_wait": (1, 3600, "1 to 3600 seconds"),
}
TIMEOUTS = ("relay_guard_connect_timeout", "relay_guard_reply_timeout")
_MAX_TIMEOUT = 86400
_LABELS = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?([.][A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)"
_DOMAIN_RE = re.compile(r"^%s+[.]?$" % _LABELS)
_ADDRESS_RE = re.compile(r"^[^@\s<>,;\"]+@%s+[.]?$" % _LABELS)
_LOCAL_NAME_RE = re.compile(r"^[.]?%s*[.]?$" % _LABELS)


class _Check(RoleVars):
    """What a rule sees: the relay settings, the role's variables, and where findings go. A null number is no
    whole number here (``whole_number``): the role's templates would turn it into 0, which is not what a null means."""

    def text(self, name):
        return super().text(name).strip()

    @property
    def present(self):
        return self.text("relay_guard_state") != "absent"

    @property
    def rewrite(self):
        """none, domain or address: what the guard does with local senders (another value counts as none here;
        guard-local-sender-rewrite reports it)."""
        rewrite = self.text("relay_guard_local_sender_rewrite") or "none"
        return rewrite if rewrite in LOCAL_REWRITES else "none"

    def local_names(self):
        value = self.v.get("relay_guard_local_sender_domains")
        if value is None or isinstance(value, str):
            return [] if not value else [value]
        return [str(name) for name in value]


def _local_name(name):
    """A local name as the guard compares it: lower case, without a trailing dot (``.name``: every name below)."""
    return name.strip().lower().rstrip(".")


def _is_local(domain, names):
    """Whether the sender domain ``domain`` is one of the local ``names``, as the guard decides it."""
    domain = _local_name(domain)
    return any(domain == name or (name.startswith(".") and domain.endswith(name))
               for name in (_local_name(n) for n in names))


# --- where the guard listens -----------------------------------------------------------------------------------

def _address(ck):
    address = ck.text("relay_guard_address")
    if address not in LOOPBACK:
        ck.add("relay_guard_address", "guard-address",
               "relay_guard_address must be 127.0.0.1 or ::1 (loopback only), got %r: the guard sends with this "
               "host's relay identity, so listening anywhere else would make it an open relay" % address,
               "set relay_guard_address: 127.0.0.1 (the default) or ::1")


def _port(ck):
    port = ck.whole_number("relay_guard_port")
    if port is None or not 1 <= port <= 1023:
        ck.add("relay_guard_port", "guard-port",
               "relay_guard_port (sendmail_guard_port, qmail_guard_port) must be 1 to 1023, got %r: a port only root "
               "can bind, so that no local user can listen there in the guard's place while it restarts"
               % ck.v.get("relay_guard_port"),
               "set relay_guard_port (with the MTA roles: sendmail_guard_port, qmail_guard_port) to 24, the default")


# --- how long the guard waits for the relay --------------------------------------------------------------------

def _timeouts(ck):
    for name in TIMEOUTS:
        seconds = ck.whole_number(name)
        if seconds is None or not 1 <= seconds <= _MAX_TIMEOUT:
            ck.add(name, "guard-timeout",
                   "%s must be a whole number of seconds from 1 to %d, got %r" % (name, _MAX_TIMEOUT, ck.v.get(name)),
                   "set %s: %d (the default)" % (name, 30 if name == "relay_guard_connect_timeout" else 300))


# --- the pool of relay connections -----------------------------------------------------------------------------

def _pool_ranges(ck):
    for name, (lowest, highest, bounds) in POOL_RANGES.items():
        value = ck.whole_number(name)
        if value is None or not lowest <= value <= highest:
            ck.add(name, "guard-pool-range", "%s must be a whole number from %s, got %r" % (name, bounds, ck.v.get(name)),
                   "set %s within %s, or leave it unset for the role's default" % (name, bounds))


def _pool_max_idle(ck):
    idle, connections = ck.whole_number("relay_guard_pool_max_idle"), ck.whole_number("relay_guard_pool_max_connections")
    if idle is not None and connections is not None and idle > connections:
        ck.add("relay_guard_pool_max_idle", "guard-pool-max-idle",
               "relay_guard_pool_max_idle (%d) must not exceed relay_guard_pool_max_connections (%d): idle "
               "connections count among those open" % (idle, connections),
               "set relay_guard_pool_max_idle to %d or less (0: no reuse)" % connections)


# --- the local senders' rewrite --------------------------------------------------------------------------------

def _local_rewrite(ck):
    rewrite = ck.text("relay_guard_local_sender_rewrite")
    if rewrite not in LOCAL_REWRITES:
        ck.add("relay_guard_local_sender_rewrite", "guard-local-sender-rewrite",
               "relay_guard_local_sender_rewrite must be none, domain or address, got %r" % rewrite,
               "set relay_guard_local_sender_rewrite: none (the default), domain or address")


def _local_domains(ck):
    if ck.rewrite == "none":
        return
    names = ck.local_names()
    bad = [name for name in names if not _LOCAL_NAME_RE.match(name.strip())]
    if not names or bad:
        ck.add("relay_guard_local_sender_domains", "guard-local-sender-domains",
               "relay_guard_local_sender_domains lists the host's names whose senders are rewritten (host names, or "
               ".name for every name below it), at least one with relay_guard_local_sender_rewrite: %s; %s"
               % (ck.rewrite, "got %s" % ", ".join(repr(name) for name in bad) if bad else "it is empty"),
               "list this host's names, e.g. [mx1.example.net, mx1, localhost, .localdomain]")


def _local_domain(ck):
    domain = ck.text("relay_guard_local_sender_domain")
    if ck.rewrite == "domain" and not _DOMAIN_RE.match(domain):
        ck.add("relay_guard_local_sender_domain", "guard-local-sender-domain",
               "relay_guard_local_sender_domain must be the customer's domain (a domain name such as example.com) "
               "with relay_guard_local_sender_rewrite: domain, got %r" % domain,
               "set relay_guard_local_sender_domain to the customer's domain, e.g. example.com")


def _local_address(ck):
    address = ck.text("relay_guard_local_sender_address")
    if ck.rewrite == "address" and not _ADDRESS_RE.match(address):
        ck.add("relay_guard_local_sender_address", "guard-local-sender-address",
               "relay_guard_local_sender_address must be one registered user's address, user@domain, with "
               "relay_guard_local_sender_rewrite: address, got %r" % address,
               "set relay_guard_local_sender_address to a registered user's address (relay_local_sender)")


def _local_target(ck):
    if ck.rewrite == "domain":
        name, target = "relay_guard_local_sender_domain", ck.text("relay_guard_local_sender_domain")
    elif ck.rewrite == "address":
        name, target = "relay_guard_local_sender_address", ck.text("relay_guard_local_sender_address").rpartition("@")[2]
    else:
        return
    if target and _is_local(target, ck.local_names()):
        ck.add(name, "guard-local-sender-target",
               "%s (%s) is in one of relay_guard_local_sender_domains (%s), so the rewritten sender would be a local "
               "one too" % (name, _local_name(target), ", ".join(ck.local_names())),
               "list only the host's own names in relay_guard_local_sender_domains, never the customer's domain")


_LISTEN_CHECKS = (_address, _port)
_PRESENT_CHECKS = (_timeouts, _pool_ranges, _pool_max_idle, _local_rewrite, _local_domains, _local_domain,
                   _local_address, _local_target)


def check_guard(relay, guard_vars):
    """Every finding of the relay guard's rules (see the module docstring)."""
    ck = _Check(relay, guard_vars)
    for rule_check in _LISTEN_CHECKS + (_PRESENT_CHECKS if ck.present else ()):
        rule_check(ck)
    return ck.findings
