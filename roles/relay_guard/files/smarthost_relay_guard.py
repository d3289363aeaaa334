# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SMTP relay guard for smarthost.relay: a loopback proxy between an MTA and its smart host.

The MTA (Sendmail, qmail) talks plain SMTP to this guard. The guard greets it itself and, at its
EHLO/HELO, hands it a connection to the relay (TLS with certificate verification, optional SMTP AUTH,
the MTA's own EHLO/HELO name) from a small pool: a connection that an earlier MTA session with the same
EHLO name left behind (checked with RSET first), or a new one. Commands go to the relay as they come
(PIPELINING kept); the relay's replies come back whole, and a reply that matches one of the retry rules
(the rule engine's, matched on the whole reply) reaches the MTA with every line turned into the rule's
4xx, so that a 550 the relay means as "try again tomorrow" (Google's daily sending limits) makes the MTA
defer and retry instead of bouncing. The MTA's QUIT ends its session, not the relay connection: that
goes back to the pool for the next session (qmail-remote opens one session per message). With
``local_senders`` configured, a MAIL FROM address of a local account (root@<this host>, www-data@localhost)
goes to the relay as an address the relay accepts: the same user at the customer's domain, or one
registered sender; the null sender and every other address pass unchanged.

    python3 smarthost_relay_guard.py --config /etc/smarthost-relay-guard/guard.json
    python3 smarthost_relay_guard.py --check --config /etc/smarthost-relay-guard/guard.json

Python 3.8+, standard library only. Logs one line per event to stderr.

The file is one program (the role installs it alone), in sections headed ``# ---- <name>``, in this order:
errors; configuration (validate_config); reply rules (the retry rules, matched as the rule engine does); local
senders; line reading (LineReader, and ReplyCollector on top of it for the relay's replies); logging and sockets;
relay connection (RelayConnection: connect, greeting, EHLO, STARTTLS with verification, AUTH, its side of the
pass-through, the check before reuse); pool (Pool: lending, the hold-off, the idle connections); client session
(ClientSession: the MTA-facing dialogue and the pass-through); server (Guard); main (the command line).
"""

import argparse
import base64
import collections
# socket imports this on first use; after the drop to `user` the standard library may be out of reach
import encodings.idna  # noqa: F401  pylint: disable=unused-import
import ipaddress
import itertools
import json
import logging
import os
import pwd
import re
import select
import selectors
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time

LOG = logging.getLogger("smarthost_relay_guard")
LOG.setLevel(logging.INFO)

TLS_MODES = ("required", "implicit", "opportunistic", "none")
DEFAULT_TIMEOUTS = {"connect": 30, "reply": 300}
# The pool of relay connections; see validate_config and docs/relay_guard.md.
DEFAULT_POOL = {"max_connections": 4, "max_idle": 4, "idle_timeout": 60, "max_messages": 0, "max_age": 3600,
                "wait": 120}
TOP_KEYS = ("listen", "relay", "auth", "rewrites", "timeouts", "pool", "local_senders", "user")
LISTEN_KEYS = ("address", "port")
RELAY_KEYS = ("host", "port", "tls", "verify", "ca_file", "address")
AUTH_KEYS = ("username", "password")
# A retry rule as the rule engine publishes it (relay_settings.retry_replies): the guard reads pattern, status,
# retry_code and retry_status; cause names it in the log; code and replacement (Postfix's) are checked only.
RULE_KEYS = ("cause", "code", "status", "retry_code", "retry_status", "pattern", "replacement")
RULE_REQUIRED = ("pattern", "status", "retry_code", "retry_status")
# Senders of local accounts (see _local_senders): whose addresses count as local, and what they become.
LOCAL_SENDER_KEYS = ("domains", "rewrite_to", "domain", "address")
LOCAL_REWRITES = ("domain", "address")
# STARTTLS and AUTH are the guard's business with the relay; CHUNKING (BDAT) and BINARYMIME (needs BDAT) carry
# message data the guard could not tell from commands.
HIDDEN_CAPABILITIES = ("STARTTLS", "AUTH", "CHUNKING", "BINARYMIME")

CRLF = b"\r\n"
MAX_LINE = 65536
MAX_REPLY_LINES = 200
MAX_REPLY_TEXT = 400
# What a client may send ahead while the guard waits for a reply it must see first (DATA's).
MAX_CLIENT_BACKLOG = 1048576
# Linux only; elsewhere the delayed ACK stays.
TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
# After the relay refused a new connection or closed one with a 421 ("Try again later", its answer to a burst of new
# connections), no new relay connection is opened for this long, whether or not others are open: sessions wait for
# one in use, or for the end of the hold-off. Reconnecting at once would keep the relay's DoS window full.
HOLD_OFF = 10.0
# A session finds no idle connection while one with its key is in use: it waits this long for that one to come back
# (qmail-remote's next session may start before the last one's connection is back) before it opens a new one.
REUSE_WAIT = 0.25
HOSTNAME = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
REPLY_LINE = re.compile(r"^[1-5][0-9][0-9](?:[ -]|$)")
# The enhanced status code of a reply's last line, as replies.delivery_status (and Postfix) read it.
REPLY_STATUS = re.compile(r"^[2-5][0-9]{2}[ -]([2-5]\.[0-9]{1,3}\.[0-9]{1,3})")
RULE_STATUS = re.compile(r"^[245]\.[0-9]{1,3}\.[0-9]{1,3}$")
RETRY_STATUS = re.compile(r"^4\.[0-9]{1,3}\.[0-9]{1,3}$")
# MAIL FROM:<path> [parameters], or a bare path (not RFC 5321, but some clients send it).
MAIL_FROM = re.compile(r"^\s*MAIL\s+FROM:\s*(<[^>]*>|[^\s<>]*)(.*)$", re.IGNORECASE | re.DOTALL)
LOCAL_PART_BAD = re.compile(r"[\s<>@,;\"]")


# ---- errors ------------------------------------------------------------------------------------

class ConfigError(ValueError):
    """The configuration cannot be used; the message starts with the key at fault."""


class Refusal(Exception):
    """End the session: tell the client ``lines``, log ``message``; ``quit_relay``: say QUIT to the relay
    first (not after a failed TLS handshake: such a relay gets nothing but the handshake)."""

    def __init__(self, lines, message, quit_relay=True):
        super().__init__(message)
        self.lines = lines
        self.message = message
        self.quit_relay = quit_relay

    @classmethod
    def because(cls, status, problem, quit_relay=True):
        """The client gets ``status`` (e.g. "421 4.4.2") and the ``problem`` that is logged."""
        return cls(["%s %s" % (status, problem)], problem, quit_relay)


# ---- configuration -----------------------------------------------------------------------------

def _key(parent, name):
    return "%s.%s" % (parent, name) if parent else name


def _kind(value):
    return "null" if value is None else type(value).__name__


def _mapping(value, key, known, required=()):
    if not isinstance(value, dict):
        raise ConfigError("%s: must be a mapping, got %s" % (key or "config", _kind(value)))
    for name in sorted(value, key=str):
        if name not in known:
            raise ConfigError("%s: unknown key (known: %s)" % (_key(key, name), ", ".join(known)))
    for name in required:
        if value.get(name) is None:
            raise ConfigError("%s: missing" % _key(key, name))
    return value


def _text(value, key, allow_empty=False):
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ConfigError("%s: must be a non-empty string, got %s" % (key, _kind(value)))
    if any(char in value for char in "\r\n\0"):
        raise ConfigError("%s: must not contain CR, LF or NUL" % key)
    return value


def _integer(value, key, lowest, highest):
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise ConfigError("%s: must be a whole number from %d to %d, got %r" % (key, lowest, highest, value))
    return value


def _seconds(value, key, highest=86400, allow_zero=False):
    lowest_ok = (lambda number: number >= 0) if allow_zero else (lambda number: number > 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (lowest_ok(value) and value <= highest):
        raise ConfigError("%s: must be a number of seconds %s %d, got %r"
                          % (key, "from 0 (no limit) to" if allow_zero else "above 0 and at most", highest, value))
    return value


def _boolean(value, key):
    if not isinstance(value, bool):
        raise ConfigError("%s: must be true or false, got %r" % (key, value))
    return value


def _ip_address(value, key):
    try:
        return str(ipaddress.ip_address(_text(value, key)))
    except ValueError:
        raise ConfigError("%s: must be an IPv4 or IPv6 address, got %r" % (key, value)) from None


def _listen(value):
    _mapping(value, "listen", LISTEN_KEYS, required=LISTEN_KEYS)
    return {"address": _ip_address(value["address"], "listen.address"),
            "port": _integer(value["port"], "listen.port", 0, 65535)}


def _relay(value):
    _mapping(value, "relay", RELAY_KEYS, required=("host",))
    host = _text(value["host"], "relay.host")
    if not HOSTNAME.match(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError("relay.host: not a host name or IP address: %r" % host) from None
    tls = value.get("tls", "required")
    if tls not in TLS_MODES:
        raise ConfigError("relay.tls: must be one of %s, got %r" % (", ".join(TLS_MODES), tls))
    port = value.get("port")
    if port is None:
        port = 465 if tls == "implicit" else 587
    ca_file = value.get("ca_file")
    if ca_file is not None and not os.path.isfile(_text(ca_file, "relay.ca_file")):
        raise ConfigError("relay.ca_file: no such file: %s" % ca_file)
    address = value.get("address")
    return {"host": host,
            "port": _integer(port, "relay.port", 1, 65535),
            "tls": tls,
            "verify": _boolean(value.get("verify", True), "relay.verify"),
            "ca_file": ca_file,
            "address": None if address is None else _ip_address(address, "relay.address")}


def _auth(value):
    if value is None:
        return None
    _mapping(value, "auth", AUTH_KEYS, required=AUTH_KEYS)
    return {"username": _text(value["username"], "auth.username"),
            "password": _text(value["password"], "auth.password")}


def _timeouts(value):
    if value is None:
        return dict(DEFAULT_TIMEOUTS)
    _mapping(value, "timeouts", tuple(DEFAULT_TIMEOUTS))
    return {name: _seconds(value.get(name, default), "timeouts." + name)
            for name, default in DEFAULT_TIMEOUTS.items()}


def _pool(value):
    """max_connections: relay connections open at once (in use and idle); a session beyond waits up to ``wait``
    seconds for one. max_idle: idle connections kept for later sessions (0: none, one connection per session).
    idle_timeout: an idle connection is closed after this (keep it below the relay's own). max_messages, max_age:
    a connection is not reused after this many transactions or seconds (0: no limit)."""
    if value is None:
        value = {}
    _mapping(value, "pool", tuple(DEFAULT_POOL))
    merged = dict(DEFAULT_POOL, **{name: item for name, item in value.items() if item is not None})
    pool = {"max_connections": _integer(merged["max_connections"], "pool.max_connections", 1, 1000),
            "max_idle": _integer(merged["max_idle"], "pool.max_idle", 0, 1000),
            "idle_timeout": _seconds(merged["idle_timeout"], "pool.idle_timeout", highest=3600),
            "max_messages": _integer(merged["max_messages"], "pool.max_messages", 0, 10 ** 9),
            "max_age": _seconds(merged["max_age"], "pool.max_age", highest=7 * 86400, allow_zero=True),
            "wait": _seconds(merged["wait"], "pool.wait", highest=3600)}
    if pool["max_idle"] > pool["max_connections"]:
        raise ConfigError("pool.max_idle: must not exceed pool.max_connections (%d), got %d"
                          % (pool["max_connections"], pool["max_idle"]))
    return pool


def _local_name(value, key):
    """A local name as the configuration gives it: a host name (matches itself), or ``.name`` (matches every name
    below ``name``, not ``name`` itself, as in qmail's smtproutes); lower case, without a trailing dot."""
    name = _text(value, key).strip().lower()
    below = name.startswith(".")
    bare = name[1:] if below else name
    if bare.endswith("."):
        bare = bare[:-1]
    if not bare or not HOSTNAME.match(bare):
        raise ConfigError("%s: must be a host name (mx1.example.com, localhost) or .domain for every name below it "
                          "(.localdomain), got %r" % (key, value))
    return "." + bare if below else bare


def _customer_domain(value, key):
    domain = _text(value, key).strip().lower().rstrip(".")
    if "." not in domain or not HOSTNAME.match(domain):
        raise ConfigError("%s: must be the customer's domain (a domain name such as example.com), got %r"
                          % (key, value))
    return domain


def _local_senders(value):
    """How MAIL FROM addresses of local accounts are rewritten, or None (no rewriting).

    ``domains``: the names that make a sender local (the host's FQDN and short name, localhost ...; ``.name`` for
    every name below ``name``); a sender without a domain is local too. ``rewrite_to``: ``domain`` (the same user
    at ``domain``, the customer's domain) or ``address`` (``address``, one registered sender). The null sender and
    every other address are never rewritten, so the target must not be local itself."""
    if value is None:
        return None
    _mapping(value, "local_senders", LOCAL_SENDER_KEYS, required=("domains", "rewrite_to"))
    rewrite_to = value["rewrite_to"]
    if rewrite_to not in LOCAL_REWRITES:
        raise ConfigError('local_senders.rewrite_to: must be "domain" (the same user at local_senders.domain) or '
                          '"address" (local_senders.address, one registered sender), got %r' % (rewrite_to,))
    names = _local_names(value["domains"])
    _local_target_keys(value, rewrite_to)
    config = {"domains": names, "rewrite_to": rewrite_to, "domain": None, "address": None}
    if rewrite_to == "domain":
        config["domain"] = target = _customer_domain(value["domain"], "local_senders.domain")
    else:
        config["address"] = _registered_address(value["address"])
        target = config["address"].rpartition("@")[2]
    if is_local_domain(target, names):
        raise ConfigError("local_senders.%s: %s is one of local_senders.domains, so the rewritten sender would be a "
                          "local one too; list the host's own names there, never the customer's domain"
                          % (rewrite_to, target))
    return config


def _local_names(domains):
    if not isinstance(domains, list) or not domains:
        raise ConfigError("local_senders.domains: must be a non-empty list of the host's names (its FQDN, short name, "
                          "localhost ...), got %s" % (_kind(domains) if not isinstance(domains, list) else "[]"))
    names = []
    for index, item in enumerate(domains):
        name = _local_name(item, "local_senders.domains[%d]" % index)
        if name not in names:
            names.append(name)
    return names


def _local_target_keys(value, rewrite_to):
    """The key ``rewrite_to`` names is given, the other one is not."""
    other = "address" if rewrite_to == "domain" else "domain"
    if value.get(other) is not None:
        raise ConfigError('local_senders.%s: only used with rewrite_to "%s" (rewrite_to is "%s")'
                          % (other, other, rewrite_to))
    if value.get(rewrite_to) is None:
        raise ConfigError('local_senders.%s: missing; rewrite_to "%s" needs %s' % (
            rewrite_to, rewrite_to, "the customer's domain" if rewrite_to == "domain"
            else "the registered sender's address (user@domain)"))


def _registered_address(value):
    address = _text(value, "local_senders.address").strip()
    local, _at, domain = address.rpartition("@")
    if not local or LOCAL_PART_BAD.search(local):
        raise ConfigError("local_senders.address: must be one address, user@domain, of a registered user, got %r"
                          % (value,))
    return "%s@%s" % (local, _customer_domain(domain, "local_senders.address"))


def _user(value):
    if value is None:
        return None
    try:
        pwd.getpwnam(_text(value, "user"))
    except KeyError:
        raise ConfigError("user: no such user: %s" % value) from None
    return value


def validate_config(data):
    """The configuration with its defaults filled in; raises ConfigError. Idempotent."""
    _mapping(data, "", TOP_KEYS, required=("listen", "relay"))
    rewrites = [] if data.get("rewrites") is None else data["rewrites"]
    compile_rewrites(rewrites)
    return {"listen": _listen(data["listen"]),
            "relay": _relay(data["relay"]),
            "auth": _auth(data.get("auth")),
            "rewrites": [dict(rule) for rule in rewrites],
            "timeouts": _timeouts(data.get("timeouts")),
            "pool": _pool(data.get("pool")),
            "local_senders": _local_senders(data.get("local_senders")),
            "user": _user(data.get("user"))}


def load_config(path):
    """Read and validate the JSON configuration at ``path``; raises ConfigError."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ConfigError("config: cannot read %s: %s" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise ConfigError("config: not valid JSON: %s" % exc) from None
    return validate_config(data)


# ---- reply rules (the retry rules) -------------------------------------------------------------

class RetryRule:
    """One compiled retry rule (a rule of relay_settings.retry_replies)."""

    def __init__(self, rule, regex):
        self.cause = rule.get("cause") or "rule"
        self.status = rule["status"]
        self.retry_code = rule["retry_code"]
        self.retry_status = rule["retry_status"]
        self.pattern = rule["pattern"]
        self.regex = regex

    def __repr__(self):
        return "RetryRule(%s: %s -> %d %s)" % (self.cause, self.status, self.retry_code, self.retry_status)


def ere_problem(pattern):
    """Why ``pattern`` is not a POSIX extended regular expression that Python's ``re`` reads the same way
    (Postfix reads the same rules with regcomp), or None. Catches Python-only syntax: ``(?``, lazy or possessive
    quantifiers, escapes such as ``\\d`` or back-references, and backslashes in bracket expressions."""
    index, length = 0, len(pattern)
    previous_quantifier = False
    while index < length:
        char = pattern[index]
        if char == "\\":
            problem = _escape_problem(pattern[index + 1:index + 2])
            if problem:
                return problem
            index += 2
            previous_quantifier = False
            continue
        if char == "[":
            problem, index = _bracket_expression(pattern, index)
            if problem:
                return problem
            previous_quantifier = False
            continue
        if char == "(" and pattern[index + 1:index + 2] == "?":
            return "'(?' is not POSIX ERE syntax"
        if char in "*+?}":
            if previous_quantifier and char in "?+":
                return "lazy or possessive quantifiers ('%s' after a quantifier) are not POSIX ERE syntax" % char
            previous_quantifier = True
            index += 1
            continue
        previous_quantifier = False
        index += 1
    return None


def _escape_problem(following):
    """Why a backslash followed by ``following`` is not POSIX ERE as Python reads it, or None."""
    if not following:
        return "ends with a backslash"
    if following.isalnum() or following == "_":
        return "'\\%s' is not POSIX ERE syntax (write a bracket expression such as [0-9])" % following
    return None


def _bracket_expression(pattern, index):
    """(problem, None) for the bracket expression at ``index``, or (None, the index just past its end)."""
    length = len(pattern)
    end = index + 1
    if pattern[end:end + 1] == "^":
        end += 1
    if pattern[end:end + 1] == "]":
        end += 1
    while end < length and pattern[end] != "]":
        if pattern[end] == "\\":
            return "a backslash in a bracket expression is literal in POSIX, an escape in Python: %r" % (
                pattern[index:end + 2]), None
        if pattern[end:end + 2] == "[:":
            return "character classes such as [:digit:] are POSIX-only: %r" % pattern[index:], None
        end += 1
    return None, end + 1


def _rule_integer(rule, name, key, lowest, highest):
    value = rule.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise ConfigError("%s.%s: must be a reply code from %d to %d, got %r" % (key, name, lowest, highest, value))
    return value


def compile_rewrites(rules):
    """Compile the ``rewrites`` list (retry rules); raises ConfigError naming the rule's key.

    The pattern is matched, ignoring case, from the start of the reply's delivery status (``delivery_status``),
    as the rule engine does (replies.matching_rule)."""
    if not isinstance(rules, list):
        raise ConfigError("rewrites: must be a list, got %s" % _kind(rules))
    return [_compile_rule(rule, "rewrites[%d]" % index) for index, rule in enumerate(rules)]


def _compile_rule(rule, key):
    _rule_keys(rule, key)
    pattern = _text(rule["pattern"], key + ".pattern")
    _rule_codes(rule, key)
    if rule.get("cause") is not None:
        _text(rule["cause"], key + ".cause")
    if rule.get("replacement") is not None:
        _text(rule["replacement"], key + ".replacement", allow_empty=True)
    problem = ere_problem(pattern)
    if problem:
        raise ConfigError("%s.pattern: not a POSIX extended regular expression: %s" % (key, problem))
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError("%s.pattern: not a valid regular expression: %s" % (key, exc)) from None
    return RetryRule(rule, regex)


def _rule_keys(rule, key):
    if not isinstance(rule, dict):
        raise ConfigError("%s: must be a mapping, got %s" % (key, _kind(rule)))
    for name in sorted(rule, key=str):
        if name not in RULE_KEYS:
            raise ConfigError("%s: unknown key (known: %s)" % (_key(key, name), ", ".join(RULE_KEYS)))
    for name in RULE_REQUIRED:
        if rule.get(name) is None:
            hint = ""
            if set(rule) <= {"pattern", "replacement"}:
                hint = (" (a pattern/replacement pair applied line by line is no longer read: pass the rule "
                        "engine's rules, relay_settings.retry_replies.limits and .refusals)")
            raise ConfigError("%s: missing; a retry rule needs %s%s"
                              % (_key(key, name), ", ".join(RULE_REQUIRED), hint))


def _rule_codes(rule, key):
    status = _text(rule["status"], key + ".status")
    if not RULE_STATUS.match(status):
        raise ConfigError("%s.status: must be an enhanced status code such as 5.7.1, got %r" % (key, status))
    retry_status = _text(rule["retry_status"], key + ".retry_status")
    if not RETRY_STATUS.match(retry_status):
        raise ConfigError("%s.retry_status: must be a 4.X.X enhanced status code, got %r" % (key, retry_status))
    _rule_integer(rule, "retry_code", key, 400, 499)
    if rule.get("code") is not None:
        code = _rule_integer(rule, "code", key, 200, 599)
        if str(code)[0] != status[0]:
            raise ConfigError("%s.code: %d does not go with status %s" % (key, code, status))


def delivery_status(lines):
    """What the rules are matched against: the last line's enhanced status code, then every line of the reply
    joined with single spaces (replies.delivery_status; what Postfix hands its smtp_delivery_status_filter)."""
    last = lines[-1]
    match = REPLY_STATUS.match(last)
    status = match.group(1) if match else "%s.0.0" % last[:1]
    return "%s %s" % (status, " ".join(lines))


def matching_rule(lines, compiled):
    """The first rule that matches the reply ``lines``, or None."""
    query = delivery_status(lines)
    for rule in compiled:
        if rule.regex.match(query):
            return rule
    return None


def retry_reply(lines, rule):
    """Every line with the rule's retry code, and its retry status where the line has the rule's status."""
    out = []
    for line in lines:
        mark, rest = line[3:4], line[4:]
        if rest.startswith(rule.status):
            rest = rule.retry_status + rest[len(rule.status):]
        out.append("%d%s%s" % (rule.retry_code, mark, rest))
    return out


def rewrite_reply(lines, compiled):
    """The reply ``lines`` as the client gets them: rewritten by the first matching rule (replies.apply_retry),
    unchanged when none matches."""
    rule = matching_rule(lines, compiled)
    return list(lines) if rule is None else retry_reply(lines, rule)


# ---- local senders -----------------------------------------------------------------------------

def is_local_domain(domain, names):
    """Whether the sender domain ``domain`` is one of the local ``names`` (see _local_name)."""
    domain = domain.strip().lower().rstrip(".")
    for name in names:
        if name.startswith(".") and domain.endswith(name) or domain == name:
            return True
    return False


def local_sender_rewrite(sender, local):
    """The address a MAIL FROM ``sender`` (without angle brackets) goes to the relay as, or None when it stays:
    the null sender, and every address whose domain is not local, stay as they are."""
    if local is None or not sender:
        return None
    path = sender
    if path.startswith("@") and ":" in path:
        path = path.split(":", 1)[1]  # a source route (RFC 5321 C): the address is what follows it
    user, at, domain = path.rpartition("@")
    if not at:
        user, domain = path, ""  # no domain at all: a local account's name
    if not user or (domain and not is_local_domain(domain, local["domains"])):
        return None
    if local["rewrite_to"] == "address":
        return local["address"]
    return "%s@%s" % (user, local["domain"])


# ---- line reading ------------------------------------------------------------------------------

class LineTooLong(Exception):
    """A peer sent a line longer than MAX_LINE."""


class LineReader:
    """Lines (CRLF or bare LF) from a socket; bytes read past the last line stay in ``buffer``. Blocking
    (``read_line``) while a relay connection is set up and a client says EHLO; during the pass-through the
    session's selector reads, ``feed``s what came, and takes the whole lines with ``next_line``."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()

    def read_line(self, deadline=None):
        """The next line without its line end, or None at end of stream. Past ``deadline`` (a
        time.monotonic() value; None: wait forever) raises socket.timeout."""
        while True:
            line = self.next_line()
            if line is not None:
                return line
            if self.overlong():
                raise LineTooLong()
            self.sock.settimeout(_remaining(deadline))
            data = self.sock.recv(16384)
            if not data:
                return None
            self.buffer += data

    def feed(self, data):
        self.buffer += data

    def next_line(self):
        """The next whole line in the buffer without its line end, or None."""
        end = self.buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def overlong(self):
        """The bytes after the last whole line are already more than a line may hold."""
        return len(self.buffer) > MAX_LINE

    def take(self):
        """The rest of the buffer (part of a line), taken out."""
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _remaining(deadline):
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout("timed out")
    return remaining


def decode(data):
    return data.decode("utf-8", "surrogateescape")


def encode(text):
    return text.encode("utf-8", "surrogateescape")


class Reply:
    """A relay reply: its lines (str, without line ends) and the code of its last line."""

    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])

    def summary(self):
        texts = " ".join(line[4:].strip() for line in self.lines)
        return ("%d %s" % (self.code, texts)).strip()[:MAX_REPLY_TEXT]

    def capabilities(self):
        """EHLO keywords (upper case) with their parameters, from the lines after the first."""
        found = []
        for line in self.lines[1:]:
            words = line[4:].split()
            if words:
                found.append([words[0].upper()] + words[1:])
        return found


def is_final_line(line):
    return line[3:4] != "-"


class ReplyCollector:
    """Whole relay replies (lists of lines) from the lines in a relay connection's LineReader: what the relay
    sends during the pass-through."""

    def __init__(self, reader, where):
        self.reader = reader
        self.where = where
        self.lines = []

    def replies(self):
        """The replies whose last line is in the reader; a line longer than MAX_LINE ends as a reply of its own."""
        replies = []
        while True:
            raw = self.reader.next_line()
            if raw is None:
                break
            replies.extend(self.add(decode(raw)))
        if self.reader.overlong():
            replies.extend(self.flush())
        return replies

    def add(self, line):
        if not REPLY_LINE.match(line):
            # Handed on, it could read as a 5xx to the MTA (qmail-remote computes the code from any three bytes)
            # and bounce a message the relay may have taken: the session ends with a 421 instead.
            raise Refusal.because("421 4.4.2", "relay %s sent a line that is not an SMTP reply: %r"
                                  % (self.where, line[:80]), quit_relay=False)
        self.lines.append(line)
        if is_final_line(line) or len(self.lines) >= MAX_REPLY_LINES:
            lines, self.lines = self.lines, []
            return [lines]
        return []

    def flush(self):
        """Whatever is left, as a reply of its own (a relay that closes or sends an endless line)."""
        replies = []
        rest = self.reader.take()
        if rest:
            replies.extend(self.add(decode(rest)))
        if self.lines:
            lines, self.lines = self.lines, []
            replies.append(lines)
        return replies


# ---- logging and sockets -----------------------------------------------------------------------

def b64(text):
    return base64.b64encode(encode(text)).decode("ascii")


def describe_error(exc):
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate verification failed: %s" % (exc.verify_message or exc.reason or exc)
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class Redactor:
    """Takes the password (plain and in its AUTH encodings) out of log lines and replies."""

    def __init__(self, auth):
        self.secrets = []
        if auth:
            password = auth["password"]
            candidates = [password, repr(password)[1:-1], b64(password),
                          b64("\0%s\0%s" % (auth["username"], password))]
            self.secrets = sorted(set(candidates), key=len, reverse=True)

    def __call__(self, text):
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text


def _no_delay(sock):
    """Each command and reply goes out at once. With Nagle's algorithm a small write waits for the peer's
    (delayed) ACK of the one before: measured, Sendmail through the guard sent 6.4 messages a second instead of 20."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def _quick_ack(sock):
    """ACK what the client sent now, not after Linux's delayed-ACK wait (40 ms on loopback). Sendmail writes a
    message's text and its final dot apart with Nagle's algorithm on: the dot waits for the ACK of the text, and
    the guard, which has nothing to answer before the dot, would delay that ACK. The flag does not stay set, so
    it is set again after each read."""
    if TCP_QUICKACK is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)
    except OSError:
        pass


def _close(sock):
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def _format_address(address):
    host, port = address[0], address[1]
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


# ---- relay connection --------------------------------------------------------------------------

def tls_context(relay, verify):
    """A client context for the relay: TLS 1.2 or later; ``verify``: certificate and host name checked
    against ``ca_file`` (or the system's store)."""
    if verify:
        try:
            context = ssl.create_default_context(cafile=relay["ca_file"])
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("relay.ca_file: cannot load %s: %s" % (relay["ca_file"], exc)) from None
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def auth_mechanisms(reply):
    mechanisms = set()
    for words in reply.capabilities():
        if words[0] == "AUTH":
            mechanisms.update(word.upper() for word in words[1:])
        elif words[0].startswith("AUTH="):
            mechanisms.update(word.upper() for word in [words[0][5:]] + words[1:])
    return mechanisms


class RelayConnection:
    """One connection to the relay, set up (TLS, EHLO with the MTA's name, AUTH) for one session and then
    kept by the pool for later sessions with the same EHLO name. Used by one thread at a time."""

    def __init__(self, guard, number, name):
        self.guard = guard
        self.config = guard.config["relay"]
        self.timeouts = guard.config["timeouts"]
        self.auth = guard.config["auth"]
        self.where = guard.where
        self.number = number
        self.label = "relay#%d" % number
        self.name = name
        self.sock = None
        self.reader = None
        self.tls = False
        self.ehlo = None
        self.opened = time.monotonic()
        self.idle_since = None
        self.messages = 0
        self.in_transaction = False
        self.broken = False  # closed without QUIT, never reused
        self.retired = False  # closed with QUIT, not reused
        self.pool_key = None  # the key it was handed out under, while a session has it
        self.log = self.pool_log

    def pool_log(self, message, *args, level=logging.INFO):
        text = self.guard.redact(message % args if args else message)
        LOG.log(level, "[pool] %s", text.replace("\r", "\\r").replace("\n", "\\n"))

    @property
    def key(self):
        """What identifies the session to the relay: the EHLO name and the AUTH user."""
        return (self.name.lower(), self.auth["username"] if self.auth else None)

    def age(self, now=None):
        return (time.monotonic() if now is None else now) - self.opened

    # -- setting up --

    def open(self):
        """Connect, greeting, EHLO, STARTTLS, EHLO, AUTH; raises Refusal (the client's reply in it)."""
        config = self.config
        deadline = time.monotonic() + self.timeouts["connect"]
        target = (config["address"] or config["host"], config["port"])
        try:
            self.sock = socket.create_connection(target, timeout=self.timeouts["connect"])
            _no_delay(self.sock)
        except OSError as exc:
            raise Refusal.because("421 4.4.1", "relay %s unreachable: %s" % (self.where, describe_error(exc)),
                                  quit_relay=False) from None
        self.log("%s connected to %s", self.label, self.where)
        if config["tls"] == "implicit":
            self.start_tls(deadline)
        self.reader = LineReader(self.sock)
        greeting = self.read_reply(deadline)
        if greeting.code != 220:
            raise Refusal(self.guard.relay_lines_for_client(greeting.lines, self.log),
                          "relay %s greeted with %s" % (self.where, greeting.summary()))
        ehlo = self.send_ehlo(self.name)
        mode = config["tls"]
        if mode in ("required", "opportunistic"):
            ehlo = self.starttls(ehlo, required=mode == "required")
        if self.auth:
            self.authenticate(ehlo)
        self.ehlo = ehlo

    def start_tls(self, deadline):
        """TLS on the relay socket; any failure ends the session without another byte to the relay."""
        config = self.config
        verify = config["verify"] and config["tls"] != "opportunistic"
        context = self.guard.verifying_context if verify else self.guard.trusting_context
        try:
            self.sock.settimeout(_remaining(deadline))
            self.sock = context.wrap_socket(self.sock, server_hostname=config["host"])
        except (OSError, ValueError) as exc:
            problem = describe_error(exc)
            if not problem.startswith("certificate"):
                problem = "TLS handshake failed: " + problem
            raise Refusal.because("421 4.7.0", "relay %s %s" % (self.where, problem), quit_relay=False) from None
        self.tls = True
        version, cipher = self.sock.version(), (self.sock.cipher() or ("?",))[0]
        checked = "certificate verified for %s" % config["host"] if verify else "certificate NOT verified"
        self.log("%s TLS %s %s, %s", self.label, version, cipher, checked)

    def send_ehlo(self, name):
        # always EHLO upstream, also for a HELO client: STARTTLS and AUTH need it
        reply = self.command("EHLO " + name)
        if not 200 <= reply.code < 300:
            raise Refusal(self.guard.relay_lines_for_client(reply.lines, self.log),
                          "relay %s answered EHLO with %s" % (self.where, reply.summary()))
        return reply

    def starttls(self, ehlo, required):
        offered = any(words[0] == "STARTTLS" for words in ehlo.capabilities())
        if not offered:
            if required:
                raise Refusal.because("421 4.7.0", "relay %s does not offer STARTTLS" % self.where)
            self.log("relay %s does not offer STARTTLS: going on without TLS", self.where)
            return ehlo
        reply = self.command("STARTTLS")
        if reply.code != 220:
            if required:
                raise Refusal.because("421 4.7.0", "relay %s refused STARTTLS: %s" % (self.where, reply.summary()))
            self.log("relay %s refused STARTTLS (%s): going on without TLS", self.where, reply.summary())
            return ehlo
        if self.reader.buffer:
            # bytes sent before the handshake would count as sent inside TLS (CVE-2011-0411 style)
            raise Refusal.because("421 4.7.0", "relay %s sent data after its STARTTLS reply" % self.where,
                                  quit_relay=False)
        self.start_tls(time.monotonic() + self.timeouts["connect"])
        self.reader = LineReader(self.sock)
        return self.send_ehlo(self.name)

    def authenticate(self, ehlo):
        username = self.auth["username"]
        if not self.tls:
            raise Refusal.because("421 4.7.0",
                                  "refusing to send SMTP AUTH credentials to relay %s without TLS" % self.where)
        mechanisms = auth_mechanisms(ehlo)
        if "PLAIN" in mechanisms:
            mechanism = "PLAIN"
            reply = self.command("AUTH PLAIN " + b64("\0%s\0%s" % (username, self.auth["password"])))
        elif "LOGIN" in mechanisms:
            mechanism = "LOGIN"
            reply = self.command("AUTH LOGIN")
            if reply.code == 334:
                reply = self.command(b64(username))
            if reply.code == 334:
                reply = self.command(b64(self.auth["password"]))
        else:
            raise Refusal(["421 4.7.0 relay %s offers neither AUTH PLAIN nor AUTH LOGIN" % self.where],
                          "relay %s offers neither AUTH PLAIN nor AUTH LOGIN (offered: %s)"
                          % (self.where, " ".join(sorted(mechanisms)) or "none"))
        if reply.code != 235:
            self.log("AUTH %s failed for %s: %s", mechanism, username, reply.summary(), level=logging.WARNING)
            raise Refusal([self.guard.redact("421 4.7.0 relay refused SMTP AUTH: %s" % reply.summary())],
                          "relay %s refused SMTP AUTH" % self.where)
        self.log("AUTH %s ok for %s", mechanism, username)

    # -- commands outside a session's pass-through --

    def read_reply(self, deadline):
        lines = []
        while True:
            try:
                raw = self.reader.read_line(deadline)
            except socket.timeout:
                raise Refusal.because("421 4.4.2", "relay %s did not answer in time" % self.where) from None
            except LineTooLong:
                raise Refusal.because("421 4.4.2", "relay %s sent an overlong line" % self.where) from None
            except OSError as exc:
                raise self.connection_failed(exc) from None
            if raw is None:
                raise Refusal.because("421 4.4.2", "relay %s closed the connection" % self.where, quit_relay=False)
            line = decode(raw)
            if not REPLY_LINE.match(line):
                raise Refusal(["421 4.4.2 relay %s sent a malformed reply" % self.where],
                              "relay %s sent a malformed reply: %r" % (self.where, line[:100]))
            lines.append(line)
            if is_final_line(line) or len(lines) >= MAX_REPLY_LINES:
                return Reply(lines)

    def command(self, command, timeout=None):
        """Send one command line to the relay and return its reply."""
        timeout = self.timeouts["reply"] if timeout is None else timeout
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(encode(command) + CRLF)
        except OSError as exc:
            raise self.connection_failed(exc) from None
        return self.read_reply(time.monotonic() + timeout)

    def connection_failed(self, exc):
        return Refusal.because("421 4.4.2", "connection to relay %s failed: %s" % (self.where, describe_error(exc)),
                               quit_relay=False)

    # -- lent to a session: the pass-through --

    def send(self, data):
        """Commands from the session (bytes, as many as its client pipelined)."""
        try:
            self.sock.settimeout(self.timeouts["reply"])
            self.sock.sendall(data)
        except OSError as exc:
            raise self.connection_failed(exc) from None

    def has_pending(self):
        """Decrypted TLS data already read from the socket, which the session's selector does not see."""
        return self.tls and self.sock.pending()

    def receive(self):
        """What the relay sent, into ``reader``, without waiting: True when bytes came, None when nothing did but
        TLS records (a session ticket), False at the end of the connection (a failed read is logged)."""
        self.sock.settimeout(0.0)  # non-blocking: a readable TLS socket may carry only a session ticket, no data
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return None
        except OSError as exc:
            self.log("%s: %s", self.label, describe_error(exc), level=logging.WARNING)
            return False
        self.reader.feed(data)
        return bool(data)

    def forwarded(self, kind):
        """A command of ``kind`` went to the relay (see replied): MAIL begins a transaction, which max_messages
        counts."""
        if kind == "mail":
            self.messages += 1

    def replied(self, kind, lines, name):
        """What the relay's reply ``lines`` to a command of ``kind`` means for this connection: the EHLO name
        (``name``) whose session it now holds, whether a transaction is open, whether it may be reused."""
        code = int(lines[-1][:3])
        accepted = 200 <= code < 300
        if kind in ("ehlo", "helo"):
            if accepted:
                self.ehlo, self.name, self.in_transaction = Reply(lines), name, False
            else:
                self.broken = True  # which name the relay now holds the session under is unclear: not reused
        elif kind == "mail" and accepted:
            self.in_transaction = True
        elif kind == "rset" and accepted:
            self.in_transaction = False
        elif kind == "message":
            self.in_transaction = False
        if code == 421:
            self.broken = True

    # -- between sessions: the pooled reuse --

    def gone_while_idle(self):
        """Whether the relay sent something (a 421, say) or closed while nobody was waiting for a reply. Reads
        without waiting; TLS records without data (a session ticket) do not count."""
        if self.sock is None or (self.reader is not None and self.reader.buffer):
            return True
        try:
            ready = (self.tls and self.sock.pending()) or select.select([self.sock], [], [], 0)[0]
        except (OSError, ValueError):
            return True
        if not ready:
            return False
        self.sock.settimeout(0.0)
        try:
            self.sock.recv(4096)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return False
        except OSError:
            return True
        return True

    def probe(self):
        """The check before reuse: nothing arrived while idle (a relay's 421 or its close) and RSET gets 250.
        None when the connection is good, else why not."""
        if self.broken:
            return "broken"
        if self.gone_while_idle():
            return "closed by the relay while idle"
        try:
            reply = self.command("RSET", timeout=self.timeouts["connect"])
        except Refusal as refusal:
            return refusal.message
        if reply.code != 250:
            return "RSET answered with %s" % reply.summary()
        self.in_transaction = False
        return None

    def reset(self):
        """RSET after a session that ended in a transaction; False when the relay did not take it."""
        try:
            reply = self.command("RSET", timeout=self.timeouts["connect"])
        except Refusal:
            return False
        if reply.code != 250:
            return False
        self.in_transaction = False
        return True

    def close(self, say_quit=True):
        """QUIT (best effort, unless the connection is broken or in the middle of a message) and close."""
        if self.sock is None:
            return
        if say_quit and not self.broken:
            try:
                self.sock.settimeout(2)
                self.sock.sendall(b"QUIT" + CRLF)
            except OSError:
                pass
        _close(self.sock)
        self.sock = None


# ---- pool --------------------------------------------------------------------------------------

class _Request:
    """One session's wait for a relay connection in Pool.acquire."""

    def __init__(self, key, wait):
        self.key = key
        self.deadline = time.monotonic() + wait
        self.reuse_until = None  # while a connection with its key is in use: wait until then for it

    def awaiting_reuse(self, now, in_use):
        return self.reuse_until is not None and now < self.reuse_until and in_use > 0


class Pool:
    """Relay connections: at most ``max_connections`` open (in use, being set up, idle); idle ones are kept, most
    recently used first, for later sessions with the same EHLO name and AUTH user."""

    def __init__(self, guard):
        self.guard = guard
        self.settings = guard.config["pool"]
        self.condition = threading.Condition()
        self.idle = []
        self.total = 0
        self.in_use = collections.Counter()  # key -> connections handed out (or being opened) for it
        self.opening = 0  # connections being set up: one at a time
        self.stopping = False
        self.hold_off_until = 0.0
        self._numbers = itertools.count(1)
        self._last_reap = 0.0
        self.counts = collections.Counter()

    # -- lending --

    def acquire(self, name, log):
        """A relay connection for a session whose client said EHLO/HELO ``name``: an idle one with the same key
        that passes the probe, else a new one (in place of the oldest idle one of another key when the pool is
        full); waits up to ``wait`` seconds while every connection is in use, or while the relay refuses new
        ones and some are in use. Raises Refusal."""
        auth = self.guard.config["auth"]
        request = _Request((name.lower(), auth["username"] if auth else None), self.settings["wait"])
        while True:
            candidate, retired = self._claim(request)
            self._close_all(retired)
            if candidate is not None:
                if self._passes_probe(candidate, log):
                    return candidate
                continue
            try:
                return self._open(name, log)
            except Refusal as refusal:
                if not self._hold_off(refusal, log, request.deadline):
                    raise

    def _claim(self, request):
        """(an idle connection with the request's key, or None: this session opens a new one, its place taken)
        and the idle connections to close (expired, or making room); waits while neither may be had."""
        retired = []
        with self.condition:
            while True:
                if self.stopping:
                    raise Refusal.because("421 4.3.2", "the relay guard is stopping", quit_relay=False)
                now = time.monotonic()
                retired.extend(self._expire_locked(now))
                candidate = self._take_idle_locked(request.key)
                if candidate is not None:
                    self.in_use[request.key] += 1
                    candidate.pool_key = request.key
                    return candidate, retired
                may_open = self._may_open_locked(request, now)
                if may_open and self._make_place_locked(retired):
                    self.in_use[request.key] += 1
                    self.opening += 1
                    return None, retired
                self._wait_locked(request, now, may_open)

    def _may_open_locked(self, request, now):
        """One new connection at a time (no burst of them), none while the relay refuses them, none while one with
        the request's key may come back (for REUSE_WAIT)."""
        if request.reuse_until is None and self.in_use[request.key]:
            request.reuse_until = now + REUSE_WAIT
        return (not request.awaiting_reuse(now, self.in_use[request.key]) and self.opening == 0
                and now >= self.hold_off_until)

    def _make_place_locked(self, retired):
        """A place for a new connection: a free one, or the oldest idle connection's (added to ``retired``)."""
        if self.total < self.settings["max_connections"]:
            self.total += 1
            return True
        if self.idle:
            retired.append((self.idle.pop(0), "pool full, making room"))
            return True
        return False

    def _wait_locked(self, request, now, may_open):
        """Wait for a change (a connection back, closed, or opened; the reuse wait or the hold-off over); past the
        request's deadline the session is refused."""
        remaining = request.deadline - now
        if remaining <= 0:
            self.counts["busy"] += 1
            raise Refusal.because("421 4.4.5", "all %d relay connections are busy; try again later"
                                  % self.total, quit_relay=False)
        if request.awaiting_reuse(now, self.in_use[request.key]):
            remaining = min(remaining, max(request.reuse_until - now, 0.01))
        elif not may_open and not self.opening:
            remaining = min(remaining, max(self.hold_off_until - now, 0.01))
        self.condition.wait(remaining)

    def _passes_probe(self, candidate, log):
        """An idle connection taken for reuse: checked first (RelayConnection.probe); one that fails is closed."""
        candidate.log = log
        problem = candidate.probe()
        if problem is None:
            self._count("reused")
            log("%s reused (idle %.1f s, %d transaction(s) before)", candidate.label,
                time.monotonic() - candidate.idle_since, candidate.messages)
            return True
        candidate.broken = True
        self._count("dead")
        log("%s not reused: %s", candidate.label, problem)
        self.discard(candidate)
        return False

    def _open(self, name, log):
        connection = RelayConnection(self.guard, next(self._numbers), name)
        connection.pool_key = connection.key
        connection.log = log
        try:
            connection.open()
        except BaseException as exc:
            connection.broken = not getattr(exc, "quit_relay", False)
            self.discard(connection)
            if isinstance(exc, Refusal) and exc.lines and exc.lines[-1].startswith("4"):
                # before the next session may open one (opening is still counted)
                self.hold_off("refused")
            raise
        finally:
            with self.condition:
                self.opening -= 1
                self.condition.notify_all()
        self._count("opened")
        return connection

    # -- the hold-off --

    def hold_off(self, why):
        """No new relay connection for HOLD_OFF seconds: the relay refused one, or closed one with a 421."""
        with self.condition:
            self.counts[why] += 1
            self.hold_off_until = time.monotonic() + HOLD_OFF

    def _hold_off(self, refusal, log, deadline):
        """The relay refused a new connection with a 4xx (a burst of new connections gets "421 4.7.0 Try again
        later"): no new ones for HOLD_OFF seconds (see _open), and while others are open this session waits for one
        of those (True). False: nothing to wait for, the client gets the refusal (and defers; the sessions that
        come during the hold-off wait for its end in acquire, they do not reconnect)."""
        if not refusal.lines or not refusal.lines[-1].startswith("4"):
            return False
        with self.condition:
            open_now = self.total
        if open_now == 0 or time.monotonic() >= deadline:
            return False
        log("%s; waiting for one of the %d open relay connection(s), no new ones for %d s",
            refusal.message, open_now, HOLD_OFF)
        return True

    # -- the idle connections --

    def _returned_locked(self, connection):
        key, connection.pool_key = connection.pool_key, None
        if key is not None:
            self.in_use[key] -= 1
            if self.in_use[key] <= 0:
                del self.in_use[key]

    def _take_idle_locked(self, key):
        for index in range(len(self.idle) - 1, -1, -1):
            if self.idle[index].key == key:
                return self.idle.pop(index)
        return None

    def _expire_locked(self, now):
        """Idle connections past idle_timeout or max_age, taken out of the pool (the caller closes them)."""
        expired = []
        for connection in list(self.idle):
            reason = self._expiry(connection, now)
            if reason:
                self.idle.remove(connection)
                self.total -= 1
                expired.append((connection, reason))
        if expired:
            self.condition.notify_all()
        return expired

    def _expiry(self, connection, now):
        """Why an idle connection is closed now, or None."""
        if now - connection.idle_since >= self.settings["idle_timeout"]:
            return "idle for %d s" % self.settings["idle_timeout"]
        if self.settings["max_age"] and connection.age(now) >= self.settings["max_age"]:
            return "older than %d s" % self.settings["max_age"]
        if connection.gone_while_idle():
            # the relay closed it (its idle timeout) or said 421: gone now rather than at the next session
            return "closed by the relay while idle"
        return None

    def release(self, connection):
        """Back into the pool after a session (RSET first if it ended in a transaction), or closed."""
        if connection.broken or connection.retired:
            self.discard(connection)
            return
        if connection.in_transaction and not connection.reset():
            connection.broken = True
            connection.log("%s not reused: RSET after the session failed", connection.label)
            self.discard(connection)
            return
        connection.log = connection.pool_log
        reason = self._not_kept(connection)
        retired = None
        with self.condition:
            self._returned_locked(connection)
            if reason is None and self.stopping:
                reason = "the guard is stopping"
            if reason is None:
                retired = self._keep_idle_locked(connection)
            else:
                self.total -= 1
            self.condition.notify_all()
        if retired is not None:
            self._close(retired, "more than %d idle" % self.settings["max_idle"])
        if reason is not None:
            self._close(connection, reason)

    def _not_kept(self, connection):
        """Why a connection back from its session is closed rather than kept idle, or None."""
        settings = self.settings
        if settings["max_idle"] == 0:
            return "reuse off (pool.max_idle 0)"
        if settings["max_messages"] and connection.messages >= settings["max_messages"]:
            return "%d transactions" % connection.messages
        if settings["max_age"] and connection.age() >= settings["max_age"]:
            return "older than %d s" % settings["max_age"]
        return None

    def _keep_idle_locked(self, connection):
        """Into the idle list, newest last; the oldest idle one taken out (returned) when max_idle are kept."""
        retired = None
        if len(self.idle) >= self.settings["max_idle"]:
            retired = self.idle.pop(0)
            self.total -= 1
        connection.idle_since = time.monotonic()
        self.idle.append(connection)
        return retired

    def discard(self, connection):
        """A connection that is not coming back (broken, or its session failed): closed, its place freed."""
        with self.condition:
            self._returned_locked(connection)
            self.total -= 1
            self.condition.notify_all()
        connection.close(say_quit=not connection.broken)

    def _count(self, name):
        with self.condition:
            self.counts[name] += 1

    def _close(self, connection, reason):
        self._count("closed")
        connection.log("%s closed: %s", connection.label, reason)
        connection.close()

    def reap(self):
        """Close idle connections past their time (called from the listener's loop, at most once a second)."""
        now = time.monotonic()
        if now - self._last_reap < 1:
            return
        self._last_reap = now
        with self.condition:
            expired = self._expire_locked(now)
        if expired:
            # QUIT to the relay may take a moment: not in the listener's thread
            threading.Thread(target=self._close_all, args=(expired,), name="relay-guard-reaper", daemon=True).start()

    def _close_all(self, connections):
        for connection, reason in connections:
            self._close(connection, reason)

    def stop(self):
        """No more connections; the idle ones closed (those in use close when their sessions end)."""
        with self.condition:
            self.stopping = True
            idle, self.idle = self.idle, []
            self.total -= len(idle)
            self.condition.notify_all()
        self._close_all([(connection, "the guard is stopping") for connection in idle])

    def snapshot(self):
        with self.condition:
            return {"open": self.total, "idle": len(self.idle), **self.counts}


# ---- client session ----------------------------------------------------------------------------

def hides_capability(text):
    """STARTTLS and AUTH are the guard's business with the relay, not the client's; BDAT's data is not
    passed on (the client sends DATA)."""
    words = text.split()
    keyword = words[0].upper() if words else ""
    return keyword in HIDDEN_CAPABILITIES or keyword.startswith("AUTH=")


def client_ehlo_lines(lines):
    """The relay's EHLO reply for the client: the first line kept, STARTTLS, AUTH, CHUNKING and BINARYMIME left
    out, the continuation marks set again so that only the last line has a space."""
    code = lines[0][:3]
    texts = [lines[0][4:]] + [line[4:] for line in lines[1:] if not hides_capability(line[4:])]
    last = len(texts) - 1
    return ["%s%s%s" % (code, " " if index == last else "-", text) for index, text in enumerate(texts)]


def client_hello_lines(verb, ehlo):
    """The answer to the client's EHLO or HELO, from the relay's EHLO reply."""
    if verb == "EHLO":
        return client_ehlo_lines(ehlo.lines)
    return ["250 %s" % ehlo.lines[0][4:]]


class _SessionEnd(Exception):
    """The session is over (``outcome`` for the log)."""

    def __init__(self, outcome):
        super().__init__(outcome)
        self.outcome = outcome


# What the client waits for, in order: a relay reply (RELAY, kind) or one of the guard's own (LOCAL, lines, action).
RELAY, LOCAL = "relay", "local"
# The commands whose replies change what the session or its relay connection is in; the others are "other".
TRACKED_COMMANDS = ("EHLO", "HELO", "MAIL", "RSET", "DATA")


class ClientSession:
    """One MTA connection, in the thread socketserver gives it: the guard's greeting and the SMTP dialogue up to
    EHLO/HELO, then the pass-through over the relay connection the pool lends it until its QUIT."""

    def __init__(self, guard, client, peer, number):
        self.guard = guard
        self.timeouts = guard.config["timeouts"]
        self.client = client
        _no_delay(client)
        self.client_reader = LineReader(client)
        self.peer = peer
        self.prefix = "[%d]" % number
        self.where = guard.where
        self.name = None
        self.conn = None
        self.selector = None
        self.replies = None
        self.expected = collections.deque()
        self.data_mode = False
        self.at_line_start = True
        self.awaiting_data_reply = False
        self.quitting = False

    def log(self, message, *args, level=logging.INFO):
        text = self.guard.redact(message % args if args else message)
        LOG.log(level, "%s %s", self.prefix, text.replace("\r", "\\r").replace("\n", "\\n"))

    # -- start and end --

    def run(self):
        self.log("connect from %s", _format_address(self.peer))
        outcome = "done"
        try:
            outcome = self.serve()
        except Refusal as refusal:
            outcome = "refused"
            self.refused(refusal)
        except Exception as exc:  # pylint: disable=broad-except  # one session's trouble, not the guard's
            outcome = "error"
            self.log("error: %s: %s", type(exc).__name__, describe_error(exc), level=logging.WARNING)
            if self.conn is not None:
                self.conn.broken = True
        finally:
            _close(self.client)
            if self.selector is not None:
                self.selector.close()
            self.give_back()
            self.log("close (%s)", outcome)

    def serve(self):
        """Greeting, EHLO/HELO, the relay connection, the pass-through; the outcome for the log."""
        self.send_client([self.guard.greeting])
        hello = self.wait_for_hello()
        if hello is None:
            return "client quit before EHLO/HELO"
        verb, self.name = hello
        self.conn = self.guard.pool.acquire(self.name, self.log)
        try:
            self.send_client(client_hello_lines(verb, self.conn.ehlo))
        except OSError:
            return "client gone"
        return self.pass_through()

    def refused(self, refusal):
        self.log("%s", refusal.message, level=logging.WARNING)
        if self.conn is not None:
            # not reused; QUIT unless the refusal says the relay gets nothing more
            self.conn.retired = True
            self.conn.broken = self.conn.broken or not refusal.quit_relay
        self.tell_client(refusal.lines)

    def give_back(self):
        """The relay connection back to the pool (after the client is gone: the MTA does not wait for this)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        conn.log = self.log
        if not self.idle_between_sessions():
            # the relay is inside a message or owes replies nobody will read: never reused, never completed
            conn.broken = True
        self.guard.pool.release(conn)

    # -- talking to the client --

    def send_client(self, lines):
        self.client.settimeout(self.timeouts["reply"])
        self.client.sendall(b"".join(encode(self.guard.redact(line)) + CRLF for line in lines))

    def to_client(self, lines):
        """During the pass-through: a client that is gone ends the session, and the relay connection goes back
        to the pool if nothing is in flight."""
        try:
            self.send_client(lines)
        except OSError:
            raise _SessionEnd("client gone") from None

    def tell_client(self, lines):
        # a 421 is allowed at any time and makes the MTA defer whatever it was waiting for
        try:
            self.send_client(lines)
        except OSError:
            pass

    # -- before EHLO/HELO --

    def wait_for_hello(self):
        """Answer the client until it says EHLO or HELO: (verb, name), or None when it leaves."""
        while True:
            try:
                raw = self.client_reader.read_line(time.monotonic() + self.timeouts["reply"])
            except socket.timeout:
                raise Refusal.because("421 4.4.2", "timeout waiting for EHLO or HELO") from None
            except LineTooLong:
                raise Refusal(["500 5.5.2 Line too long"], "client sent an overlong line") from None
            if raw is None:
                return None
            verb, _space, argument = decode(raw).strip().partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO") and argument.split():
                return verb, argument.split()[0]
            if verb == "QUIT":
                self.send_client(["221 2.0.0 Bye"])
                return None
            self.send_client([self.before_hello_answer(verb)])

    @staticmethod
    def before_hello_answer(verb):
        if verb in ("EHLO", "HELO"):
            return "501 5.5.4 Syntax: %s hostname" % verb
        if verb in ("NOOP", "RSET"):
            return "250 2.0.0 OK"
        return "503 5.5.1 Send EHLO or HELO first"

    # -- the pass-through --

    def relay_replies_owed(self):
        return any(entry[0] == RELAY for entry in self.expected)

    def idle_between_sessions(self):
        """Not inside a message and no relay reply owed: the relay connection can serve another session."""
        return not (self.data_mode or self.awaiting_data_reply or self.relay_replies_owed())

    def idle_between_transactions(self):
        """Nothing in flight: the relay connection can be replaced without the client noticing."""
        return self.idle_between_sessions() and not (self.conn is not None and self.conn.in_transaction)

    def pass_through(self):
        """Client commands to the relay as they come (pipelined ones together); the relay's replies to the client
        whole, after the rewrites, in order with the guard's own (QUIT's 221). One thread serves both directions
        with a selector: an SSL socket must not be read and written by two threads at once."""
        self.client.settimeout(None)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.client, selectors.EVENT_READ, "client")
        self.attach(self.conn)
        try:
            self.client_input()
            while True:
                for side in self.ready_sides():
                    if side == "client":
                        self.client_readable()
                    elif self.conn is not None:
                        self.relay_input()
        except _SessionEnd as end:
            return end.outcome

    def ready_sides(self):
        """Which sides ("client", "relay") have something to read; a relay connection idle too long is lent back."""
        if self.conn is not None and self.conn.has_pending():
            return ["relay"]
        # a client idle between transactions (Sendmail keeps its sessions a while) does not keep a relay connection
        # from other sessions longer than an idle one would be kept
        lending = self.conn is not None and self.idle_between_transactions()
        idle_timeout = self.guard.config["pool"]["idle_timeout"]
        ready = [key.data for key, _events in self.selector.select(idle_timeout if lending else None)]
        if lending and not ready:
            self.lend_back()
        return ready

    def attach(self, conn):
        """Take part in the pass-through with relay connection ``conn`` (replies it holds already come first)."""
        self.conn = conn
        self.replies = ReplyCollector(conn.reader, self.where)
        self.selector.register(conn.sock, selectors.EVENT_READ, "relay")
        self.on_replies(self.replies.replies())

    def lend_back(self):
        """The relay connection back to the pool while the client idles between transactions; its next command
        gets one again."""
        conn, self.conn = self.conn, None
        self.selector.unregister(conn.sock)
        self.log("%s back to the pool: this session idle for %s s", conn.label,
                 self.guard.config["pool"]["idle_timeout"])
        self.guard.pool.release(conn)

    def detach(self, reason):
        """Give up a relay connection that died between transactions; the next command gets a new one."""
        conn, self.conn = self.conn, None
        self.selector.unregister(conn.sock)
        conn.broken = True
        self.log("%s %s between transactions: replaced at the next command", conn.label, reason)
        self.guard.pool.discard(conn)

    def reconnect(self):
        """A new relay connection for the next command after the old one was lent back or died between
        transactions; False (the client told) when none comes."""
        try:
            conn = self.guard.pool.acquire(self.name, self.log)
        except Refusal as refusal:
            self.log("%s", refusal.message, level=logging.WARNING)
            self.quitting = True
            self.expected.append((LOCAL, refusal.lines, "close"))
            return False
        self.attach(conn)
        return True

    # -- client -> relay --

    def client_readable(self):
        data = self.client.recv(65536)
        if not data:
            raise _SessionEnd(self.client_closed())
        _quick_ack(self.client)
        self.client_reader.feed(data)
        if self.awaiting_data_reply and len(self.client_reader.buffer) > MAX_CLIENT_BACKLOG:
            raise Refusal.because("421 4.5.0", "client sent too much before the reply to DATA")
        self.client_input()

    def client_input(self):
        """Parse what the client sent: commands (forwarded, or answered by the guard), message data."""
        out = bytearray()
        while not self.awaiting_data_reply and not self.quitting:
            if self.data_mode:
                if not self.message_data(out):
                    break
                continue
            line = self.client_reader.next_line()
            if line is None:
                if self.client_reader.overlong():
                    self.expected.append((LOCAL, ["500 5.5.2 Line too long"], "close"))
                    self.quitting = True
                break
            self.client_command(line, out)
        if out:
            self.conn.send(bytes(out))
        self.answer_locally()

    def client_command(self, line, out):
        """One command: answered by the guard (in its turn), or added to ``out`` for the relay."""
        text = decode(line).strip()
        verb, _space, argument = text.partition(" ")
        verb = verb.upper()
        if self.answered_here(text, verb, argument):
            return
        if self.conn is None:
            assert not out, "commands for a relay connection that is gone"
            if not self.reconnect():
                return
        kind = verb.lower() if verb in TRACKED_COMMANDS else "other"
        if kind in ("ehlo", "helo"):
            # always EHLO upstream; the connection now belongs to this name
            self.name = argument.split()[0]
            line = encode("EHLO " + self.name)
        elif kind == "mail":
            line = self.guard.local_sender_line(line, self.log)
        elif kind == "data":
            self.awaiting_data_reply = True
        self.conn.forwarded(kind)
        self.expected.append((RELAY, kind))
        out += line + CRLF

    def answered_here(self, text, verb, argument):
        """Commands the guard answers itself (queued in their turn); False for those the relay gets."""
        if verb == "QUIT":
            self.quitting = True
            self.expected.append((LOCAL, ["221 2.0.0 closing connection"], "quit"))
        elif verb == "BDAT":
            # its data follows at once and could not be told from commands
            self.quitting = True
            self.expected.append((LOCAL, ["421 4.5.0 BDAT is not offered here (no CHUNKING); closing"], "close"))
        elif not text:
            self.expected.append((LOCAL, ["500 5.5.2 Error: bad syntax"], None))
        elif verb in ("STARTTLS", "AUTH"):
            self.expected.append((LOCAL, ["502 5.5.1 %s is not offered here: the relay guard speaks TLS and AUTH "
                                          "to the relay" % verb], None))
        elif verb in ("EHLO", "HELO") and not argument.split():
            self.expected.append((LOCAL, ["501 5.5.4 Syntax: %s hostname" % verb], None))
        else:
            return False
        return True

    def message_data(self, out):
        """Message lines up to the lone dot, passed on as they are (bare LF ends made CRLF); False: more needed."""
        buffer = self.client_reader.buffer
        if not buffer:
            return False
        end = buffer.find(b"\n")
        if self.at_line_start and buffer[:1] == b".":
            if end < 0:
                if bytes(buffer) in (b".", b".\r"):
                    return False
            elif bytes(buffer[:end + 1]) in (b".\r\n", b".\n"):
                del buffer[:end + 1]
                out += b"." + CRLF
                self.data_mode = False
                self.expected.append((RELAY, "message"))
                return True
        if end >= 0:
            line = bytes(buffer[:end + 1])
            del buffer[:end + 1]
            out += line if line.endswith(CRLF) else line[:-1] + CRLF
            self.at_line_start = True
            return True
        out += buffer
        buffer.clear()
        self.at_line_start = False
        return False

    def client_closed(self):
        """The client left without QUIT: a connection with replies owed or inside a message is not reused."""
        if not self.idle_between_sessions():
            if self.conn is not None:
                self.conn.broken = True
            return "client closed in the middle of a %s" % ("message" if self.data_mode else "command")
        return "client closed"

    # -- relay -> client --

    def relay_input(self):
        """The relay's replies to the client; its end of the connection ends the session unless nothing was in
        flight (the next command gets a new connection)."""
        received = self.conn.receive()
        if received is None:
            return
        if received:
            self.on_replies(self.replies.replies())
            return
        self.on_replies(self.replies.flush())
        if self.conn is None:
            return
        if self.idle_between_transactions():
            self.detach("closed by the relay")
            return
        self.conn.broken = True
        self.tell_client(["421 4.4.2 relay %s closed the connection" % self.where])
        raise _SessionEnd("relay closed")

    def on_replies(self, replies):
        for lines in replies:
            self.on_reply(lines)

    def on_reply(self, lines):
        code = int(lines[-1][:3])
        if not self.expected or self.expected[0][0] != RELAY:
            self.unsolicited(lines, code)
            return
        _relay, kind = self.expected.popleft()
        self.conn.replied(kind, lines, self.name)
        if kind in ("ehlo", "helo"):
            if 200 <= code < 300:
                lines = client_hello_lines(kind.upper(), self.conn.ehlo)
        else:
            lines = self.guard.relay_lines_for_client(lines, self.log)
        if kind == "data":
            self.awaiting_data_reply = False
            if code == 354:
                self.data_mode, self.at_line_start = True, True
        if code == 421:
            self.guard.pool.hold_off("closed_by_421")
            self.tell_client(lines)
            raise _SessionEnd("relay said %s" % Reply(lines).summary())
        self.to_client(lines)
        if kind == "data":
            self.client_input()  # what the client sent after DATA: its message, or commands again
        else:
            self.answer_locally()

    def unsolicited(self, lines, code):
        """A reply nobody asked for: between transactions (the relay's idle timeout, "421 … closing") the
        connection is replaced unseen; otherwise the client gets it (a 421 may come at any time) and the
        session ends."""
        summary = Reply(lines).summary()
        if self.idle_between_transactions():
            self.detach("said %s" % summary)
            return
        self.conn.broken = True
        if code == 421:
            self.guard.pool.hold_off("closed_by_421")
        self.tell_client(self.guard.relay_lines_for_client(lines, self.log) if code == 421
                         else ["421 4.4.2 relay %s sent an unexpected reply" % self.where])
        raise _SessionEnd("relay sent an unexpected reply: %s" % summary)

    def answer_locally(self):
        """The guard's own replies whose turn has come (all relay replies before them are in)."""
        while self.expected and self.expected[0][0] == LOCAL:
            _local, lines, action = self.expected.popleft()
            if action == "quit":
                # back in the pool before the client hears 221: its next session (or the MTA's next process)
                # finds it there
                if self.conn is not None:
                    self.selector.unregister(self.conn.sock)
                self.give_back()
            if action:
                self.tell_client(lines)
            else:
                self.to_client(lines)
            if action == "quit":
                raise _SessionEnd("quit")
            if action == "close":
                raise _SessionEnd("closed: %s" % lines[-1])


# ---- server ------------------------------------------------------------------------------------

class _Listener(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, guard):
        self.guard = guard
        self.address_family = socket.AF_INET6 if ipaddress.ip_address(address[0]).version == 6 else socket.AF_INET
        socketserver.TCPServer.__init__(self, address, socketserver.BaseRequestHandler)

    def finish_request(self, request, client_address):
        self.guard.serve_client(request, client_address)

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        LOG.error("unexpected error with %s: %s", client_address, self.guard.redact(describe_error(error)))

    def service_actions(self):
        self.guard.pool.reap()


class Guard:
    """The relay guard: binds its listener at creation; ``serve_forever()`` until ``shutdown()``."""

    def __init__(self, config):
        self.config = validate_config(config)
        self.rewrites = compile_rewrites(self.config["rewrites"])
        self.verifying_context = tls_context(self.config["relay"], verify=True) \
            if self.config["relay"]["verify"] and self.config["relay"]["tls"] in ("required", "implicit") else None
        self.trusting_context = tls_context(self.config["relay"], verify=False)
        self.redact = Redactor(self.config["auth"])
        relay = self.config["relay"]
        self.where = "%s:%d" % (relay["host"], relay["port"]) + (" (%s)" % relay["address"] if relay["address"] else "")
        # The guard greets the client itself: the relay connection comes at its EHLO/HELO (from the pool).
        self.greeting = "220 %s ESMTP smarthost relay guard" % relay["host"]
        self.pool = Pool(self)
        self._numbers = itertools.count(1)
        self._clients = set()
        self._lock = threading.Lock()
        self._serving = False
        listen = self.config["listen"]
        self._server = _Listener((listen["address"], listen["port"]), self)

    @property
    def server_address(self):
        return self._server.server_address[:2]

    def serve_forever(self, poll_interval=0.5):
        self._serving = True
        try:
            self._server.serve_forever(poll_interval)
        finally:
            self._serving = False

    def shutdown(self):
        """Stop accepting and close the listener; open sessions are cut (their client sockets shut) and the idle
        relay connections closed."""
        if self._serving:
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.pool.stop()

    def serve_client(self, client, peer):
        with self._lock:
            self._clients.add(client)
            number = next(self._numbers)
        try:
            ClientSession(self, client, peer, number).run()
        finally:
            with self._lock:
                self._clients.discard(client)

    def local_sender_line(self, line, log):
        """The MAIL command ``line`` (bytes, without its line end) as the relay gets it: with a local account's
        sender rewritten (logged, original -> new), else unchanged."""
        local = self.config["local_senders"]
        if local is None:
            return line
        match = MAIL_FROM.match(decode(line))
        if match is None:
            return line  # the relay answers a malformed MAIL itself
        path, parameters = match.group(1), match.group(2)
        sender = path[1:-1] if path.startswith("<") else path
        new = local_sender_rewrite(sender.strip(), local)
        if new is None:
            return line
        log("local sender rewritten (%s): %s -> %s", local["rewrite_to"], sender.strip(), new)
        return encode("MAIL FROM:<%s>%s" % (new, parameters))

    def relay_lines_for_client(self, lines, log):
        """Relay reply lines after the retry rules; a rewrite is logged with the original lines."""
        rule = matching_rule(lines, self.rewrites)
        if rule is None:
            return list(lines)
        rewritten = retry_reply(lines, rule)
        for line, new in zip(lines, rewritten):
            log("rewrite (%s): %r -> %r", rule.cause, line, new)
        return rewritten


# ---- main (the command line) -------------------------------------------------------------------

class _Terminated(Exception):
    """SIGTERM arrived."""


def _terminate(signum, frame):  # pylint: disable=unused-argument
    raise _Terminated()


def log_handler(stream=None):
    """The handler main() logs with: one line per event, no decoration (the journal adds it)."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def drop_privileges(user):
    """Become ``user`` (its primary group, no supplementary groups) when running as root."""
    if not user or os.geteuid() != 0:
        return False
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    return True


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the JSON configuration file")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit (0 good, 2 bad)")
    return parser.parse_args(argv)


def start(config):
    """The guard, listening and running as its user; None (logged) when it cannot do either."""
    try:
        guard = Guard(config)
    except OSError as exc:
        LOG.error("cannot listen on %s: %s", _format_address((config["listen"]["address"], config["listen"]["port"])),
                  describe_error(exc))
        return None
    try:
        if drop_privileges(config["user"]):
            LOG.info("running as user %s", config["user"])
    except (OSError, KeyError) as exc:
        LOG.error("cannot become user %s: %s", config["user"], describe_error(exc))
        return None
    return guard


def log_start(guard, config):
    relay, pool = config["relay"], config["pool"]
    LOG.info("listening on %s, relay %s:%d (tls %s%s), %d retry rule(s), pool of %d connection(s) (%d idle at most, "
             "%s s idle timeout)", _format_address(guard.server_address), relay["host"], relay["port"], relay["tls"],
             "" if relay["verify"] or relay["tls"] in ("none", "opportunistic") else ", not verified",
             len(guard.rewrites), pool["max_connections"], pool["max_idle"], pool["idle_timeout"])
    local = config["local_senders"]
    if local is not None:
        LOG.info("senders at %s are sent as %s", ", ".join(local["domains"]),
                 local["address"] if local["rewrite_to"] == "address" else "<user>@" + local["domain"])


def main(argv=None):
    args = parse_args(argv)
    try:
        config = load_config(args.config)
        tls_context(config["relay"], verify=config["relay"]["verify"])
    except ConfigError as exc:
        sys.stderr.write("smarthost_relay_guard: %s: %s\n" % (args.config, exc))
        return 2
    if args.check:
        return 0
    LOG.addHandler(log_handler())
    LOG.propagate = False
    guard = start(config)
    if guard is None:
        return 1
    log_start(guard, config)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        guard.serve_forever()
    except (_Terminated, KeyboardInterrupt):
        LOG.info("stopping")
    finally:
        guard.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
