# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: qmail_route
short_description: Which qmail smtproutes route a recipient takes, by qmail-remote's rules; and the file to write
version_added: 0.1.0
author: smarthost.relay maintainers (!UNKNOWN)
description:
  - "Resolver: for each of O(addresses) (recipient addresses or domains) tells which line of C(control/smtproutes)
    qmail-remote uses. qmail-remote tries the recipient's host itself, then each suffix of it that starts at a dot
    (longest first, so C(.example.com) matches C(x.example.com) but not C(example.com)), then the empty domain (the
    catch-all); the first key present wins, whatever the order of the lines. Keys compare without case. A route with
    an empty relay, or no route at all, means the MX records decide."
  - When O(_input) is text, it is read as the contents of C(control/smtproutes), exactly as qmail reads it
    (trailing blanks dropped, empty and C(#) lines skipped, lines without a colon ignored).
  - "Planner: when O(_input) is a list, each element is a route (C(domain:relay[:port]) text or a mapping with
    C(domain), C(relay), C(port)), validated strictly; the result's C(text) is the file the
    C(smarthost.relay.qmail) role writes: O(header) comments, these routes in order, the routes of O(existing) whose
    domains are listed in O(keep), and the O(catchall) route last. Two routes for one domain are refused."
  - Errors raise an error naming the rule id (C([smtproutes-domain]), say), the offending element (O(variable)C([index]))
    and how to fix it.
positional: _input
options:
  _input:
    description: smtproutes text, or a list of routes to plan a file from.
    type: raw
    required: true
  addresses:
    description: Recipient addresses (C(user@host)) or domains to resolve against the routes.
    type: list
    elements: str
    default: []
  catchall:
    description: The catch-all route written last, C(relay[:port]) text or a mapping with C(relay) and C(port). List input only.
    type: raw
  existing:
    description: Contents of the current C(control/smtproutes), for O(keep). List input only.
    type: str
    default: ""
  keep:
    description: Domains (keys, C(.domain) included) whose routes in O(existing) are carried over as written. List input only.
    type: list
    elements: str
    default: []
  header:
    description: Comment lines written first (C(# ) is added where missing). List input only.
    type: list
    elements: str
    default: []
  variable:
    description: Name used for the routes in error messages.
    type: str
    default: routes
  keep_variable:
    description: Name used for O(keep) in error messages.
    type: str
    default: keep
"""

EXAMPLES = r"""
- name: Which route does each recipient take on this host?
  ansible.builtin.debug:
    msg: >-
      {{ (lookup('ansible.builtin.file', 'smtproutes') | smarthost.relay.qmail_route(
            addresses=['alice@corp.example.com', 'bob@eu.corp.example.com', 'carol@example.net'])).resolved }}

- name: Plan a file with internal routes first and the relay last
  ansible.builtin.set_fact:
    smtproutes: >-
      {{ ([{'domain': 'corp.example.com', 'relay': 'mail.corp.example.com'}, '.corp.example.com:mail.corp.example.com']
          | smarthost.relay.qmail_route(catchall='smtp-relay.gmail.com:25')).text }}
"""

RETURN = r"""
_value:
  description: The routes, the file text and the resolutions.
  type: dict
  contains:
    text:
      description: The file (list input), or the input text unchanged.
      type: str
      sample: ":smtp-relay.gmail.com:25\n"
    routes:
      description: Each route with V(domain), V(relay), V(port), V(extra), V(line), V(lineno), V(source), V(catch_all), V(mx).
      type: list
      elements: dict
    resolved:
      description:
        - One per address, with V(input), V(host), V(rule) (V(exact), V(suffix), V(catch-all) or V(none)), V(domain) (the key
          that matched), V(line), V(lineno), V(mx), V(relay) and V(port) (25 when the route names none).
      type: list
      elements: dict
    kept:
      description: Lines carried over from O(existing).
      type: list
      elements: str
    dropped:
      description: Lines of O(existing) that are not carried over (the old catch-all included).
      type: list
      elements: str
    missing:
      description: O(keep) domains that have no route in O(existing).
      type: list
      elements: str
    ignored:
      description: Lines qmail ignores (no colon), with V(lineno), V(line), V(reason).
      type: list
      elements: dict
    problems:
      description: Lines qmail reads but probably not as meant (CRLF, blanks in the domain, a colon without a port).
      type: list
      elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.smarthost.relay.plugins.module_utils._relay.findings import RelayRuleError
from ansible_collections.smarthost.relay.plugins.module_utils._relay.qmail_routes import (
    parse_smtproutes,
    plan_smtproutes,
    resolve,
)
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import validate_from_doc

_LIST_ONLY = ("catchall", "keep", "header")


def qmail_route(value, addresses=None, catchall=None, existing="", keep=None, header=None, variable="routes",
                keep_variable="keep"):
    """Resolve ``addresses`` against smtproutes text, or plan a file from a list of routes (see DOCUMENTATION)."""
    args, errors, _no_log = validate_from_doc(DOCUMENTATION, {
        "_input": value, "addresses": addresses if addresses is not None else [], "catchall": catchall,
        "existing": existing, "keep": keep if keep is not None else [], "header": header if header is not None else [],
        "variable": variable, "keep_variable": keep_variable})
    if errors:
        raise AnsibleFilterError("qmail_route: " + "; ".join(errors))
    source = args["_input"]
    try:
        if isinstance(source, str):
            used = [name for name in _LIST_ONLY if args[name]] + (["existing"] if args["existing"] else [])
            if used:
                raise AnsibleFilterError("qmail_route: %s only apply when the input is a list of routes" % ", ".join(used))
            routes, ignored, problems = parse_smtproutes(source)
            result = {"text": source, "routes": [route.as_dict() for route in routes], "kept": [], "dropped": [],
                      "missing": [], "ignored": ignored, "problems": problems}
        elif isinstance(source, (list, tuple)):
            result = plan_smtproutes(source, catchall=args["catchall"], existing=args["existing"], keep=args["keep"],
                                     header=args["header"], variable=args["variable"],
                                     keep_variable=args["keep_variable"])
            routes = parse_smtproutes(result["text"])[0]
        else:
            raise AnsibleFilterError("qmail_route: the input must be smtproutes text or a list of routes, got %s"
                                     % type(source).__name__)
        result["resolved"] = [resolve(routes, target) for target in args["addresses"]]
    except RelayRuleError as exc:
        raise AnsibleFilterError("qmail_route: [%s] %s%s" % (exc.rule, exc.message, (" (fix: %s)" % exc.fix) if exc.fix else ""))
    return result


class FilterModule(object):
    def filters(self):
        return {"qmail_route": qmail_route}
