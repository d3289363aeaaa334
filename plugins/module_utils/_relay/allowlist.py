# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The IP allowlist of the relay service (Admin console, step 8).

Rules: CIDR format; IPv4 and IPv6 in every text form (full with leading
zeros, zeros dropped, ``::`` compressed); at most 65,536 addresses per range
(IPv4 /16, IPv6 /112); "Use your own public IP address"; "keep the allowed IP
range as narrow as possible".  Canonical output is netaddr's compact form.
"""

from __future__ import annotations

import bisect
import re
import socket

from . import constants as C
from .findings import Finding, RelayRuleError

try:
    import netaddr
    from netaddr import IPAddress, IPNetwork
    from netaddr.strategy import ipv4 as _ipv4, ipv6 as _ipv6
except ImportError as _exc:  # pragma: no cover - exercised via HAS_NETADDR
    HAS_NETADDR = False
    NETADDR_IMPORT_ERROR = _exc
    netaddr = IPAddress = IPNetwork = _ipv4 = _ipv6 = None
else:
    HAS_NETADDR = True
    NETADDR_IMPORT_ERROR = None

# A range is flagged as too wide for its egress addresses when it holds at
# least this many times the addresses of the narrowest CIDR covering them.
DEFAULT_WIDE_FACTOR = 16

_PREFIX_RE = re.compile(r"^[0-9]{1,3}$")

# Non-public space: (cidr, what it is).  The relay sees the public egress
# address of a server, so none of these belongs in the allowlist.
_SPECIAL = {
    4: (
        ("0.0.0.0/8", "'this network' (RFC 791)"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("100.64.0.0/10", "shared carrier-grade NAT space (RFC 6598)"),
        ("127.0.0.0/8", "loopback (RFC 1122)"),
        ("169.254.0.0/16", "link-local (RFC 3927)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
        ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking (RFC 2544)"),
        ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
        ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
        ("224.0.0.0/4", "multicast (RFC 5771)"),
        ("240.0.0.0/4", "reserved (RFC 1112)"),
        ("255.255.255.255/32", "limited broadcast (RFC 919)"),
    ),
    6: (
        ("::/128", "the unspecified address (RFC 4291)"),
        ("::1/128", "loopback (RFC 4291)"),
        ("::ffff:0:0/96", "IPv4-mapped (RFC 4291); list the IPv4 address itself"),
        ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
        ("100::/64", "discard-only (RFC 6666)"),
        ("2001::/23", "IETF protocol assignments (RFC 2928)"),
        ("2001:db8::/32", "documentation (RFC 3849)"),
        ("2002::/16", "6to4 (RFC 3056)"),
        ("3fff::/20", "documentation (RFC 9637)"),
        ("fc00::/7", "unique local (ULA, RFC 4193)"),
        ("fe80::/10", "link-local (RFC 4291)"),
        ("fec0::/10", "deprecated site-local (RFC 3879)"),
        ("ff00::/8", "multicast (RFC 4291)"),
    ),
}
_GLOBAL_UNICAST_V6 = ("2000::/3", "outside global unicast 2000::/3 (reserved by IETF)")
_special_cache = {}


def _require_netaddr():
    if not HAS_NETADDR:
        raise RelayRuleError(
            "the Python library netaddr is required for IP allowlist checks (%s)" % (NETADDR_IMPORT_ERROR,),
            rule="netaddr-missing",
            fix="install netaddr on the controller (pip install netaddr)",
        )


def _specials():
    if not _special_cache:
        for version, table in _SPECIAL.items():
            rows = []
            for cidr, label in table:
                net = IPNetwork(cidr)
                rows.append((net.first, net.last, str(net.cidr), label))
            # narrowest first, so an address is named by its most specific block
            rows.sort(key=lambda row: row[1] - row[0])
            _special_cache[version] = rows
        g = IPNetwork(_GLOBAL_UNICAST_V6[0])
        _special_cache["gua"] = (g.first, g.last)
    return _special_cache


def _parse_address(text, original):
    """(version, integer) of an address; strict like inet_pton: no '127.1'
    shorthands, no octal-looking leading zeros, IPv6 in every RFC 4291 form."""
    if "%" in text:
        raise RelayRuleError(
            "%r has an IPv6 zone index (%%...); zones are local to one host" % original,
            rule="allowlist-syntax",
            fix="remove the zone (%...) and use a public address",
        )
    try:
        if ":" in text:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError, TypeError):
        hint = ""
        if re.match(r"^[0-9.]+$", text) and any(p.startswith("0") and len(p) > 1 for p in text.split(".")):
            hint = " (IPv4 octets must not have leading zeros: they are ambiguous, read as octal by some tools)"
        raise RelayRuleError(
            "%r is not a valid IPv4 or IPv6 address or CIDR range%s" % (original, hint),
            rule="allowlist-syntax",
            fix="write an address (203.0.113.7, 2001:db8::7) or a CIDR range (203.0.113.0/24, 2001:db8::/112)",
        )


def _fmt(version, value):
    """netaddr's canonical (compact) text of an integer address."""
    return (_ipv4 if version == 4 else _ipv6).int_to_str(value)


def _parse(text):
    """(version, first, prefixlen) of one entry; see ``parse_range``."""
    _require_netaddr()
    if isinstance(text, (IPNetwork, IPAddress)):
        text = str(text)
    if not isinstance(text, str):
        raise RelayRuleError(
            "%r is not an address or CIDR range (expected a string, got %s)" % (text, type(text).__name__),
            rule="allowlist-syntax",
            fix="quote the entry as a string, e.g. '203.0.113.0/24'",
        )
    original = text
    text = text.strip()
    if not text:
        raise RelayRuleError("empty allowlist entry", rule="allowlist-syntax", fix="remove the empty entry")
    addr_text, sep, prefix_text = text.partition("/")
    version, value = _parse_address(addr_text.strip(), original)
    bits = C.ADDRESS_BITS[version]
    if not sep:
        prefixlen = bits
    else:
        prefix_text = prefix_text.strip()
        if not _PREFIX_RE.match(prefix_text):
            fix = "use a CIDR prefix length (/0 to /%d)" % bits
            try:
                mask = IPAddress(prefix_text, flags=netaddr.INET_PTON)
                if mask.version == version and mask.is_netmask():
                    fix = "write the mask %s as the prefix length /%d" % (prefix_text, mask.netmask_bits())
            except (netaddr.AddrFormatError, ValueError, TypeError):
                pass
            raise RelayRuleError(
                "%r does not use CIDR format: %r is not a prefix length" % (original, prefix_text),
                rule="allowlist-syntax",
                fix=fix,
            )
        prefixlen = int(prefix_text)
        if prefixlen > bits:
            raise RelayRuleError(
                "%r has prefix length /%d; IPv%d allows /0 to /%d" % (original, prefixlen, version, bits),
                rule="allowlist-syntax",
                fix="use a prefix length of at most /%d" % bits,
            )
    hostmask = (1 << (bits - prefixlen)) - 1
    if value & hostmask:
        meant = "%s/%d" % (_fmt(version, value & ~hostmask), prefixlen)
        raise RelayRuleError(
            "%r has host bits set: %s is not the first address of a /%d; "
            "the network is probably %s" % (original, _fmt(version, value), prefixlen, meant),
            rule="allowlist-host-bits",
            fix="write %s for the network, or %s/%d for the single address" % (meant, _fmt(version, value), bits),
        )
    return version, value, prefixlen


def parse_range(text):
    """Parse one allowlist entry into a ``netaddr.IPNetwork`` (canonical CIDR).

    Accepts an address (a /32 or /128) or ``address/prefixlen``, IPv6 in every
    textual form.  Raises ``RelayRuleError`` with a rule id and a fix for
    malformed input, a non-CIDR mask and host bits set (naming the network
    probably meant).  The size limit is checked by ``check_allowlist``, not
    here, so the stand-in can load any syntactically valid range.
    """
    version, first, prefixlen = _parse(text)
    return IPNetwork((first, prefixlen), version)


def _entry_fields(entry):
    """(text, enabled, description) of an entry: a string, or a dict with
    ``range`` (also ``cidr``/``address``), ``enabled`` and ``description``."""
    if isinstance(entry, dict):
        text = entry.get("range", entry.get("cidr", entry.get("address")))
        return text, bool(entry.get("enabled", True)), entry.get("description")
    return entry, True, None


def _split_text(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [p for p in re.split(r"[\s,;]+", value) if p]
    return list(value)


class AllowlistReport:
    """Result of ``check_allowlist``.

    ``ranges``: one dict per valid entry (``index``, ``input``, ``cidr``,
    ``version``, ``prefixlen``, ``addresses``, ``first``, ``last``, ``enabled``,
    ``description``); ``total``: distinct addresses in the enabled ranges;
    ``errors`` / ``warnings``: lists of ``Finding``; ``egress``: the egress
    addresses with the range covering each (or None).
    """

    def __init__(self):
        self.ranges = []
        self.total = 0
        self.errors = []
        self.warnings = []
        self.egress = []

    @property
    def ok(self):
        return not self.errors

    @property
    def findings(self):
        return self.errors + self.warnings

    def networks(self, enabled_only=True):
        return [IPNetwork(r["cidr"]) for r in self.ranges if r["enabled"] or not enabled_only]

    def as_dict(self):
        return {
            "ok": self.ok,
            "ranges": [dict(r) for r in self.ranges],
            "total": self.total,
            "egress": [dict(e) for e in self.egress],
            "errors": [f.as_dict() for f in self.errors],
            "warnings": [f.as_dict() for f in self.warnings],
        }


def _label(variable, index, entry):
    return "%s[%d] (%s)" % (variable, index, entry)


def _special_findings(variable, version, first, last, shown, specials):
    """Warnings for a range that lies in, or includes, non-public space."""
    out = []
    for sfirst, slast, scidr, what in specials[version]:
        if first <= slast and sfirst <= last:
            if sfirst <= first and last <= slast:
                how = "is in %s %s" % (scidr, what)
            else:
                how = "includes %s, %s" % (scidr, what)
            out.append(
                Finding(
                    variable,
                    "allowlist-public",
                    "%s %s; the relay only ever sees a server's public egress address"
                    % (shown, how),
                    "list the public address(es) your mail servers send from (after NAT)",
                    "warning",
                )
            )
            break
    if not out and version == 6:
        gfirst, glast = specials["gua"]
        if not (gfirst <= first and last <= glast):
            out.append(
                Finding(
                    variable,
                    "allowlist-public",
                    "%s is %s; the relay only ever sees a server's public egress address"
                    % (shown, _GLOBAL_UNICAST_V6[1]),
                    "list the public address(es) your mail servers send from",
                    "warning",
                )
            )
    return out


def check_allowlist(entries, egress=None, variable="allowlist", egress_variable="egress_addresses",
                    wide_factor=DEFAULT_WIDE_FACTOR):
    """Check allowlist entries (and optionally the egress addresses they must
    cover); collects every finding.  Runs in O(n log n): one sort, one sweep.

    ``entries``: strings (or dicts with ``range``, ``enabled``,
    ``description``), or one string separated by commas/whitespace.
    ``egress``: addresses (or ranges) the mail servers send from.
    """
    _require_netaddr()
    report = AllowlistReport()
    specials = _specials()
    parsed = []
    for index, entry in enumerate(_split_text(entries)):
        text, enabled, description = _entry_fields(entry)
        name = "%s[%d]" % (variable, index)
        try:
            version, first, prefixlen = _parse(text)
        except RelayRuleError as exc:
            report.errors.append(exc.to_finding(name))
            continue
        bits = C.ADDRESS_BITS[version]
        size = 1 << (bits - prefixlen)
        last = first + size - 1
        first_text = _fmt(version, first)
        cidr = "%s/%d" % (first_text, prefixlen)
        rng = {
            "index": index,
            "input": text if isinstance(text, str) else str(text),
            "cidr": cidr,
            "version": version,
            "prefixlen": prefixlen,
            "addresses": size,
            "first": first_text,
            "last": _fmt(version, last),
            "enabled": enabled,
            "description": description,
        }
        if size > C.MAX_RANGE_ADDRESSES:
            widest = C.MIN_PREFIXLEN[version]
            report.errors.append(
                Finding(
                    name,
                    "allowlist-max-addresses",
                    "%s holds %d addresses; the relay allows at most 65,536 addresses per range "
                    "(IPv%d /%d or narrower)" % (cidr, size, version, widest),
                    "split it into /%d ranges or, better, list only the addresses your servers send from"
                    % widest,
                ),
            )
        report.warnings.extend(_special_findings(name, version, first, last, cidr, specials))
        report.ranges.append(rng)
        parsed.append((version, first, -last, last, index, cidr))

    # Duplicates and containment: CIDR blocks either nest or are disjoint, so
    # after sorting by (start, -end) a stack of open ranges finds, for every
    # range, the innermost earlier range that contains it.
    parsed.sort()
    stack = []
    for version, first, _neg, last, index, cidr in parsed:
        while stack and (stack[-1][0] != version or stack[-1][2] < first):
            stack.pop()
        if stack:
            _v, ofirst, olast, oindex, ocidr = stack[-1]
            this = _label(variable, index, cidr)
            other = _label(variable, oindex, ocidr)
            if ofirst == first and olast == last:
                a, b = sorted((index, oindex))
                report.errors.append(
                    Finding(
                        "%s[%d]" % (variable, max(a, b)),
                        "allowlist-duplicate",
                        "%s duplicates %s" % (_label(variable, b, cidr), _label(variable, a, ocidr)),
                        "remove %s[%d]" % (variable, b),
                    )
                )
            else:
                report.errors.append(
                    Finding(
                        "%s[%d]" % (variable, index),
                        "allowlist-overlap",
                        "%s is contained in %s; the ranges overlap" % (this, other),
                        "remove %s[%d], or narrow %s[%d] so they no longer overlap" % (variable, index, variable, oindex),
                    )
                )
        else:
            stack.append((version, first, last, index, cidr))
            continue
        if last < stack[-1][2]:
            stack.append((version, first, last, index, cidr))
    # keep findings in input order for readable output
    report.errors.sort(key=_finding_order)

    # Distinct addresses over enabled ranges: merge sorted intervals.
    by_index = {r["index"]: r for r in report.ranges}
    merged = {4: [], 6: []}
    for version, first, _neg, last, index, _cidr in parsed:
        if not by_index[index]["enabled"]:
            continue
        iv = merged[version]
        if iv and first <= iv[-1][1] + 1:
            if last > iv[-1][1]:
                iv[-1][1] = last
        else:
            iv.append([first, last])
    report.total = sum(b - a + 1 for v in merged.values() for a, b in v)

    if egress is not None:
        _check_egress(report, egress, merged, parsed, by_index, variable, egress_variable, wide_factor, specials)
    return report


def _finding_order(f):
    """Allowlist entries first, then egress addresses, each in input order."""
    name, _sep, rest = f.variable.partition("[")
    index = int(rest.rstrip("]")) if rest.rstrip("]").isdigit() else -1
    return ("egress" in name, index)


def _check_egress(report, egress, merged, parsed, by_index, variable, egress_variable, wide_factor, specials):
    starts = {v: [a for a, _b in iv] for v, iv in merged.items()}
    events = []
    for version, first, neg, last, index, cidr in parsed:
        if by_index[index]["enabled"]:
            events.append((version, first, 0, neg, last, index, cidr))
    for eindex, item in enumerate(_split_text(egress)):
        name = "%s[%d]" % (egress_variable, eindex)
        text = item if not isinstance(item, dict) else _entry_fields(item)[0]
        try:
            enet = parse_range(text)
        except RelayRuleError as exc:
            report.errors.append(exc.to_finding(name))
            continue
        v = enet.version
        shown = str(enet) if enet.size > 1 else str(enet.ip)
        for f in _special_findings(name, v, enet.first, enet.last, shown, specials):
            f.rule = "egress-public"
            f.message = "egress address " + f.message.replace(
                "the relay only ever sees", "not a public address; the relay only ever sees")
            f.fix = "give the public address the server's mail leaves from (after NAT)"
            report.warnings.append(f)
        iv = merged[v]
        pos = bisect.bisect_right(starts[v], enet.first) - 1
        covered = pos >= 0 and iv[pos][0] <= enet.first and enet.last <= iv[pos][1]
        entry = {
            "index": eindex,
            "input": text if isinstance(text, str) else str(text),
            "cidr": str(enet),
            "covered": covered,
            "covered_by": None,
        }
        report.egress.append(entry)
        events.append((v, enet.first, 1, -enet.last, enet.last, eindex, entry))
        if not covered:
            report.errors.append(
                Finding(
                    name,
                    "egress-covered",
                    "egress address %s is not covered by any enabled %s range; the relay would refuse its mail"
                    % (shown, variable),
                    "add %s to %s (or enable the entry that covers it)" % (shown, variable),
                )
            )
    # One sweep: ranges nest or are disjoint, so the open ranges form a stack
    # (innermost on top); the innermost one that reaches an egress range's end
    # covers it.
    events.sort()  # (version, first, kind, -last, last, index): never ties, so payloads are not compared
    stack = []
    inside = {}  # range index -> [first, last] of egress addresses inside it
    for version, first, kind, _neg, last, index, payload in events:
        while stack and (stack[-1][0] != version or stack[-1][2] < first):
            stack.pop()
        if kind == 0:
            stack.append((version, first, last, index, payload))
            continue
        for _v, rfirst, rlast, rindex, rcidr in reversed(stack):
            if rlast >= last:
                payload["covered_by"] = rcidr
                span = inside.setdefault(rindex, [first, last])
                span[0] = min(span[0], first)
                span[1] = max(span[1], last)
                break
    # ranges much wider than the egress addresses inside them, and unused ones
    for version, first, _kind, _neg, last, index, cidr in (e for e in events if e[2] == 0):
        name = "%s[%d]" % (variable, index)
        span = inside.get(index)
        if span is None:
            report.warnings.append(
                Finding(
                    name,
                    "allowlist-narrow",
                    "%s covers none of %s; keep the allowed IP range as narrow as possible"
                    % (cidr, egress_variable),
                    "remove %s, or add the servers that send from it to %s" % (name, egress_variable),
                    "warning",
                )
            )
            continue
        lo, hi = IPAddress(span[0], version), IPAddress(span[1], version)
        narrow = netaddr.spanning_cidr([lo, hi]) if lo != hi else IPNetwork("%s/%d" % (lo, C.ADDRESS_BITS[version]))
        size = last - first + 1
        if size >= wide_factor * narrow.size:
            report.warnings.append(
                Finding(
                    name,
                    "allowlist-narrow",
                    "%s holds %d addresses but the egress addresses inside it fit in %s (%d); "
                    "keep the allowed IP range as narrow as possible" % (cidr, size, narrow, narrow.size),
                    "replace %s with %s" % (cidr, narrow),
                    "warning",
                )
            )
    report.errors.sort(key=_finding_order)
    report.warnings.sort(key=_finding_order)


def _as_network(item):
    if isinstance(item, IPNetwork):
        return item
    if isinstance(item, dict):
        item = item.get("cidr", item.get("range"))
    return parse_range(item)


def _client_address(ip):
    """(version, integer) of a client address, or None when unparseable."""
    try:
        if isinstance(ip, IPAddress):
            version, value = ip.version, int(ip)
        else:
            text = str(ip).strip()
            if text.startswith("[") and text.endswith("]"):
                text = text[1:-1]
            version, value = _parse_address(text.split("%", 1)[0], text)
    except (RelayRuleError, ValueError, TypeError):
        return None
    if version == 6 and value >> 32 == 0xFFFF:  # ::ffff:a.b.c.d, IPv4-mapped
        version, value = 4, value & 0xFFFFFFFF
    return version, value


class AllowedRanges(object):
    """Ranges compiled once for fast lookups (``address_allowed`` in
    O(log n)); entries that do not parse are skipped."""

    def __init__(self, ranges):
        _require_netaddr()
        merged = {4: [], 6: []}
        for item in ranges or ():
            try:
                net = _as_network(item)
            except (RelayRuleError, ValueError, TypeError):
                continue
            merged[net.version].append((net.first, net.last))
        self._starts, self._intervals = {}, {}
        for version, items in merged.items():
            items.sort()
            out = []
            for first, last in items:
                if out and first <= out[-1][1] + 1:
                    out[-1][1] = max(out[-1][1], last)
                else:
                    out.append([first, last])
            self._intervals[version] = out
            self._starts[version] = [a for a, _b in out]

    def __contains__(self, ip):
        parsed = _client_address(ip)
        if parsed is None:
            return False
        version, value = parsed
        pos = bisect.bisect_right(self._starts[version], value) - 1
        return pos >= 0 and value <= self._intervals[version][pos][1]


def address_allowed(ip, ranges):
    """True when ``ip`` (a client address string or ``IPAddress``) lies in one
    of ``ranges``: ``IPNetwork``s, CIDR strings, ``check_allowlist`` range
    dicts, or an ``AllowedRanges`` (compile once, then O(log n) per call).
    IPv4-mapped IPv6 client addresses (``::ffff:203.0.113.7``, as a dual-stack
    socket reports them), brackets and IPv6 zone suffixes are handled.  An
    unparseable address or range is never allowed (returns False)."""
    if isinstance(ranges, AllowedRanges):
        return ip in ranges
    _require_netaddr()
    parsed = _client_address(ip)
    if parsed is None:
        return False
    version, value = parsed
    for item in ranges or ():
        try:
            net = _as_network(item)
        except (RelayRuleError, ValueError, TypeError):
            continue
        if net.version == version and net.first <= value <= net.last:
            return True
    return False
