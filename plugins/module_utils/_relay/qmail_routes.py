# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""qmail's ``control/smtproutes``: read it as qmail-remote does, tell which
route a recipient domain takes, and write one.

The rules, from qmail-remote(8) and qmail's control-file reader (facts only):

* The file is read line by line. Trailing spaces and tabs are removed; empty
  lines and lines that start with ``#`` are skipped. Nothing else is trimmed:
  a leading blank is part of the domain. A carriage return is not white space
  to qmail (a CRLF file leaves ``\\r`` at the end of every route).
* A line without a colon is ignored. The text before the first colon is the
  *domain* key, the text after it the *route*; keys compare case-insensitively.
* For a recipient host ``H`` qmail-remote tries the keys ``H`` itself, then
  every suffix of ``H`` that starts at a dot, longest first (for
  ``a.b.example.com``: ``.b.example.com``, ``.example.com``, ``.com``), then
  the empty key (the catch-all). The first key present wins, so the order of
  the lines never matters; ``.example.com`` matches ``x.example.com`` but not
  ``example.com`` itself. A key listed twice: the later line is the one found.
* The route is ``relay[:port]``: the relay ends at the next colon, the port is
  the number after it (default 25). An empty relay means "look up the MX
  records of ``H`` as usual". Some patched builds read more after the port
  (e.g. `` user password`` for SMTP AUTH); stock qmail ignores it.

``resolve`` applies these rules, ``parse_smtproutes`` reads a file,
``plan_smtproutes`` builds the file the qmail role writes (validated routes,
routes kept from the current file, the catch-all last) and ``render``
writes it.
"""

from __future__ import annotations

import re

from .domains import is_hostname, normalize_domain
from .findings import RelayRuleError

DEFAULT_PORT = 25
_DIGITS_RE = re.compile(r"^[0-9]*")
_IPV4_RE = re.compile(r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$")
_ENTRY_KEYS = ("domain", "relay", "port")


class Route:
    """One smtproutes line: ``domain`` (the key, as written), ``relay`` (empty:
    MX lookup), ``port`` (None when the line gives none), ``extra`` (text after
    the port that stock qmail ignores), ``line`` (the line as written),
    ``lineno`` (in the file it came from, else None) and ``source``."""

    __slots__ = ("domain", "relay", "port", "extra", "line", "lineno", "source")

    def __init__(self, domain, relay, port=None, extra="", line=None, lineno=None, source="file"):
        self.domain = domain
        self.relay = relay
        self.port = port
        self.extra = extra
        self.line = line if line is not None else render_route(domain, relay, port)
        self.lineno = lineno
        self.source = source

    @property
    def key(self):
        """The lookup key: qmail compares domains case-insensitively."""
        return self.domain.lower()

    @property
    def catch_all(self):
        return self.domain == ""

    def as_dict(self):
        return {
            "domain": self.domain,
            "relay": self.relay,
            "port": self.port,
            "extra": self.extra,
            "line": self.line,
            "lineno": self.lineno,
            "source": self.source,
            "catch_all": self.catch_all,
            "mx": self.relay == "",
        }

    def __repr__(self):
        return "Route(%r)" % self.line


def render_route(domain, relay, port=None):
    """``domain:relay`` or ``domain:relay:port``."""
    return "%s:%s" % (domain, relay) + (":%d" % port if port is not None else "")


def split_route(value):
    """Split the text after the first colon into ``(relay, port, extra)`` as
    qmail-remote does: the relay ends at the next colon; the port is the run of
    digits after it (0 when there are none, which qmail would then use)."""
    relay, colon, rest = value.partition(":")
    if not colon:
        return relay, None, ""
    digits = _DIGITS_RE.match(rest).group(0)
    return relay, int(digits) if digits else 0, rest[len(digits):]


def parse_smtproutes(text):
    """Read the contents of ``control/smtproutes`` exactly as qmail does.

    Returns ``(routes, ignored, problems)``: the routes in file order,
    ``ignored`` lines (no colon, so qmail skips them) and ``problems`` (lines
    qmail reads, but not as their author probably meant), each a dict with
    ``lineno``, ``line`` and ``reason``.
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise RelayRuleError("smtproutes contents must be text, got %r" % (type(text).__name__,), rule="smtproutes-type")
    routes, ignored, problems = [], [], []
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip(" \t")
        if not line or line.startswith("#"):
            continue
        domain, colon, value = line.partition(":")
        if not colon:
            ignored.append({"lineno": lineno, "line": line, "reason": "no colon: qmail-remote ignores the line"})
            continue
        relay, port, extra = split_route(value)
        route = Route(domain, relay, port, extra, line=line, lineno=lineno, source="file")
        routes.append(route)
        if "\r" in line:
            problems.append({"lineno": lineno, "line": line, "reason": "carriage return (CRLF file): qmail takes it as part of the route"})
        elif domain != domain.strip():
            problems.append({"lineno": lineno, "line": line, "reason": "blank inside the domain %r: it never matches a host" % domain})
        elif port == 0:
            problems.append({"lineno": lineno, "line": line, "reason": "a colon after the relay but no port number: qmail would use port 0"})
    return routes, ignored, problems


def host_of(target):
    """The host qmail-remote is called with for ``target``: the part after the
    last ``@`` of an address (angle brackets dropped), or ``target`` itself
    when it is a domain. Lower-cased (qmail compares without case)."""
    if not isinstance(target, str):
        raise RelayRuleError("%r is not an address or a domain" % (target,), rule="smtproutes-target")
    text = target.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    if not text:
        raise RelayRuleError("%r has no domain to route" % (target,), rule="smtproutes-target",
                             fix="give an address such as user@example.com, or a domain")
    return text.lower()


def lookup_keys(host):
    """The keys qmail-remote tries for ``host``, in order: the host, each
    suffix starting at a dot (longest first), the empty key."""
    keys = [host]
    keys.extend(host[i:] for i in range(1, len(host)) if host[i] == ".")
    keys.append("")
    return keys


def resolve(routes, target):
    """Which route qmail-remote takes for ``target`` (an address or a domain).

    Returns a dict: ``input``, ``host``, ``rule`` (``exact``, ``suffix``,
    ``catch-all`` or ``none``), ``domain`` (the key that matched, else None),
    ``line`` and ``lineno`` of the route, ``mx`` (True when the MX records of
    ``host`` decide: no route, or a route with an empty relay), ``relay``
    (None with ``mx``) and ``port`` (qmail's default 25 when the route names
    none).
    """
    table = {}
    for route in routes:
        table[route.key] = route  # qmail finds the later of two equal keys
    host = host_of(target)
    for key in lookup_keys(host):
        route = table.get(key)
        if route is None:
            continue
        rule = "catch-all" if key == "" else ("exact" if key == host else "suffix")
        port = route.port if route.port is not None else DEFAULT_PORT
        return {"input": target, "host": host, "rule": rule, "domain": route.domain, "line": route.line,
                "lineno": route.lineno, "mx": route.relay == "", "relay": route.relay or None, "port": port}
    return {"input": target, "host": host, "rule": "none", "domain": None, "line": None, "lineno": None,
            "mx": True, "relay": None, "port": DEFAULT_PORT}


# --- validated routes: what the qmail role writes -------------------------------------------------

def _domain_key(value, where):
    if not isinstance(value, str):
        raise RelayRuleError("%s: domain must be text, got %r" % (where, value), rule="smtproutes-domain",
                             fix="give a domain such as corp.example.com, or .example.com for its subdomains")
    text = value.strip()
    if text == "":
        raise RelayRuleError("%s: an empty domain is the catch-all route, which the role writes itself (to the relay)" % where,
                             rule="smtproutes-catch-all", fix="give the internal domain this route is for")
    dot = text.startswith(".")
    name = text[1:] if dot else text
    if name.startswith(".") or not is_hostname(name):
        raise RelayRuleError("%s: %r is not a domain (or .domain for its subdomains)" % (where, value),
                             rule="smtproutes-domain", fix="use letters, digits, hyphens and dots, e.g. corp.example.com")
    return ("." if dot else "") + normalize_domain(name)


def _relay(value, where):
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RelayRuleError("%s: relay must be text, got %r" % (where, value), rule="smtproutes-relay",
                             fix="give a host name or an IPv4 address")
    text = value.strip()
    if text == "":
        return ""
    if _IPV4_RE.match(text):
        return text
    if text.startswith("[") and text.endswith("]") and _IPV4_RE.match(text[1:-1]):
        return text
    if ":" in text and not text.startswith("["):
        raise RelayRuleError("%s: relay %r contains a colon; give the port separately" % (where, value),
                             rule="smtproutes-relay", fix="relay: host, port: number (IPv6 addresses are not supported by stock qmail)")
    if not is_hostname(text):
        raise RelayRuleError("%s: relay %r is not a host name or an IPv4 address" % (where, value),
                             rule="smtproutes-relay", fix="give the internal server's name, e.g. mail.corp.example.com")
    return normalize_domain(text)


def _port(value, where):
    if value is None or value == "":
        return None
    number = value
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
        raise RelayRuleError("%s: port must be a number from 1 to 65535, got %r" % (where, value),
                             rule="smtproutes-port", fix="leave the port out for 25, or give e.g. 587")
    return number


def route_from_entry(entry, where="route", source="entry"):
    """A validated ``Route`` from ``domain:relay[:port]`` text or a mapping
    with ``domain``, ``relay`` (empty: MX lookup) and ``port``; raises
    ``RelayRuleError`` naming ``where``."""
    if isinstance(entry, str):
        if "\n" in entry or "\r" in entry:
            raise RelayRuleError("%s: a route is one line, got %r" % (where, entry), rule="smtproutes-syntax",
                                 fix="give one domain:relay[:port] per entry")
        domain, colon, value = entry.partition(":")
        if not colon:
            raise RelayRuleError("%s: %r has no colon; qmail-remote would ignore it" % (where, entry),
                                 rule="smtproutes-syntax", fix="write domain:relay or domain:relay:port")
        relay, sep, port = value.partition(":")
        if sep and port == "":
            raise RelayRuleError("%s: %r ends in a colon without a port" % (where, entry), rule="smtproutes-port",
                                 fix="remove the last colon, or add the port number")
        entry = {"domain": domain, "relay": relay, "port": port if sep else None}
    elif not isinstance(entry, dict):
        raise RelayRuleError("%s: a route is domain:relay[:port] text or a mapping with domain, relay, port; got %r" % (where, entry),
                             rule="smtproutes-syntax", fix="e.g. {domain: corp.example.com, relay: mail.corp.example.com}")
    unknown = sorted(set(entry) - set(_ENTRY_KEYS))
    if unknown:
        raise RelayRuleError("%s: unknown key(s) %s (a route has %s)" % (where, ", ".join(map(str, unknown)), ", ".join(_ENTRY_KEYS)),
                             rule="smtproutes-syntax", fix="remove or rename %s" % ", ".join(map(str, unknown)))
    if "domain" not in entry:
        raise RelayRuleError("%s: domain is missing" % where, rule="smtproutes-domain", fix="add domain: <internal domain>")
    domain = _domain_key(entry.get("domain"), where)
    relay = _relay(entry.get("relay"), where)
    port = _port(entry.get("port"), where)
    if relay == "" and port is not None:
        raise RelayRuleError("%s: a port without a relay; qmail-remote would try to connect to an empty host name" % where,
                             rule="smtproutes-port", fix="give the relay too, or drop the port to look up MX records as usual")
    return Route(domain, relay, port, source=source)


def catch_all_route(value, where="catchall"):
    """The catch-all ``Route`` (empty domain) from ``relay[:port]`` text or a
    mapping with ``relay`` and ``port``; the relay may not be empty."""
    if isinstance(value, str):
        relay, sep, port = value.partition(":")
        value = {"relay": relay, "port": port if sep else None}
    if not isinstance(value, dict) or set(value) - {"relay", "port"}:
        raise RelayRuleError("%s: give relay[:port] text or a mapping with relay and port, got %r" % (where, value),
                             rule="smtproutes-syntax", fix="e.g. smtp-relay.gmail.com:25")
    relay = _relay(value.get("relay"), where)
    if relay == "":
        raise RelayRuleError("%s: the catch-all needs a relay" % where, rule="smtproutes-relay", fix="give the relay host")
    return Route("", relay, _port(value.get("port"), where), source="catch-all")


def render(routes, header=()):
    """The file: ``header`` comment lines, then one line per route."""
    lines = []
    for text in header or ():
        if not isinstance(text, str) or "\n" in text or "\r" in text:
            raise RelayRuleError("header lines are single lines of text, got %r" % (text,), rule="smtproutes-header")
        lines.append(text if text.startswith("#") else "# " + text)
    lines.extend(route.line for route in routes)
    return "".join(line + "\n" for line in lines)


def plan_smtproutes(entries=(), catchall=None, existing="", keep=(), header=(), variable="routes", keep_variable="keep"):
    """The smtproutes file the qmail role writes, and what changes.

    ``entries``: the routes wanted (internal domains), validated strictly and
    written first, in the order given. ``keep``: domain keys whose routes in
    ``existing`` (the current file) are carried over as written. ``catchall``:
    the relay route, written last. Two routes for one key are refused.

    Returns a dict: ``text``, ``routes`` (as dicts, in file order), ``kept``,
    ``dropped`` (routes of ``existing`` that are not carried over, the old
    catch-all included), ``missing`` (``keep`` keys without a route in
    ``existing``), ``ignored`` and ``problems`` of ``existing``.
    """
    if entries is None:
        entries = []
    if not isinstance(entries, (list, tuple)):
        raise RelayRuleError("%s must be a list of routes, got %r" % (variable, entries), rule="smtproutes-syntax",
                             fix="give a list, e.g. [{domain: corp.example.com, relay: mail.corp.example.com}]")
    wanted = [route_from_entry(entry, "%s[%d]" % (variable, index), source="entry") for index, entry in enumerate(entries)]
    current, ignored, problems = parse_smtproutes(existing)
    latest = {}
    for route in current:
        latest[route.key] = route
    kept, missing, done = [], [], set()
    for index, key in enumerate(keep or ()):
        norm = _domain_key(key, "%s[%d]" % (keep_variable, index))
        if norm in done:
            continue
        done.add(norm)
        route = latest.get(norm)
        if route is None:
            missing.append(norm)
            continue
        if "\r" in route.line or route.domain != route.domain.strip():
            raise RelayRuleError("%s[%d]: the current route %r (line %d) is malformed, so it cannot be kept as it is"
                                 % (keep_variable, index, route.line, route.lineno), rule="smtproutes-keep",
                                 fix="list it in %s instead, written correctly" % variable)
        kept.append(Route(route.domain, route.relay, route.port, route.extra, line=route.line, lineno=route.lineno, source="kept"))
    routes = wanted + kept
    seen = {}
    for route in routes:
        other = seen.get(route.key)
        if other is not None:
            raise RelayRuleError("two routes for %r: %r (%s) and %r (%s); qmail-remote would use only one"
                                 % (route.domain, other.line, other.source, route.line, route.source),
                                 rule="smtproutes-duplicate", fix="keep one route per domain")
        seen[route.key] = route
    if catchall is not None:
        routes.append(catchall if isinstance(catchall, Route) else catch_all_route(catchall))
    kept_keys = {route.key for route in kept}
    dropped = [route.line for route in current if route.key not in kept_keys or latest[route.key] is not route]
    return {
        "text": render(routes, header),
        "routes": [route.as_dict() for route in routes],
        "kept": [route.line for route in kept],
        "dropped": dropped,
        "missing": missing,
        "ignored": ignored,
        "problems": problems,
    }
