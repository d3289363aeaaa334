# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reply catalogue: what Google's SMTP relay answers, what it means, and which replies an MTA must retry.

One table (``CATALOGUE``) serves everything that speaks or reads the relay's replies:

* the relay stand-in renders its refusals and limit replies from it (``render``, ``wrap``), wrapped over
  several lines with continuation codes and ended by a session token and ``- gsmtp``, as Google sends them;
* ``retry_rules`` turns the entries that mean "later, not never" into rules that Postfix's
  ``smtp_delivery_status_filter`` and the relay guard apply to the *whole* reply (every line joined), so
  that the distinctive words may stand on any line, even split over two;
* ``classify`` names the cause of a reply (or of an MTA's log text of it) for whoever explains stuck mail;
  ``identify`` also reads a reply back after the retry rules rewrote it (the relay doctor, ``doctor.py``).

Facts (codes, enhanced codes, the short reply texts) are from Google's "Gmail SMTP errors and codes"
(support.google.com/a/answer/3726730), the relay articles 2956491 and 6140680, and the service document's
sending-limits section; the explanatory sentences after the short texts are this project's own words.
Texts are protocol data: entries match on code + enhanced code + the distinctive ``phrase``.
"""

from __future__ import annotations

import re
from collections import namedtuple

Reply = namedtuple("Reply", ["key", "code", "status", "phrase", "detail", "cause", "retry", "retry_code"])
Reply.__doc__ = """One reply the relay gives.

``code``/``status``: the SMTP code (int) and enhanced status code; ``phrase``: the reply's distinctive words
(matched, case-insensitively, anywhere in the joined reply); ``detail``: what the stand-in says after the phrase
(``%(ip)s``, ``%(domains)s``, ``%(helo)s`` filled in by ``render``; unfilled ones render empty); ``cause``: what
it means; ``retry``: ``"limit"`` or ``"refusal"`` for a 5xx an MTA should defer rather than bounce, None
otherwise; ``retry_code``: the 4xx code the rewrite gives it."""

ARTICLE_LIMITS = "https://support.google.com/a/answer/166852"
ARTICLE_RELAY = "https://support.google.com/a/answer/6140680"
ARTICLE_HELO = "https://support.google.com/mail/?p=helo"

CATALOGUE = (
    Reply("relay_denied", 550, "5.7.0", "Mail relay denied",
          " [%(ip)s]. Invalid credentials for relay for one of the domains in: %(domains)s (as obtained from HELO "
          "and MAIL FROM). Neither the connecting address nor the session ties this mail to a customer of the "
          "relay: register the address in the SMTP relay setting or authenticate. " + ARTICLE_RELAY,
          "this server's address is not in the relay's allowed IPs (or the session is not authenticated), or "
          "its HELO and sender domains are not the customer's", "refusal", 450),
    Reply("invalid_credentials", 550, "5.7.1", "Invalid credentials for relay",
          " [%(ip)s]. The sender's domain is not one of the customer's domains, or the sender is empty, and the "
          "session neither authenticated with SMTP AUTH nor named one of the customer's domains in HELO or "
          "EHLO. " + ARTICLE_RELAY,
          "sender outside the customer's domains (or the null sender) without SMTP AUTH or an own-domain HELO",
          "refusal", 450),
    Reply("sending_denied", 550, "5.7.0", "Mail Sending denied",
          ". The envelope sender is not a registered user of the customer, and the setting allows only "
          "registered users. " + ARTICLE_RELAY,
          "sender is not a registered (active) user and the setting allows registered users only", "refusal", 450),
    Reply("starttls_first", 530, "5.7.0", "Must issue a STARTTLS command first", ".",
          "the relay requires TLS (or AUTH was tried in the clear)", "refusal", 450),
    Reply("auth_required", 530, "5.5.1", "Authentication Required",
          ". This customer's SMTP relay setting requires SMTP AUTH. " + ARTICLE_RELAY,
          "the relay requires SMTP AUTH and the client did not log in", "refusal", 450),
    Reply("bad_credentials", 535, "5.7.8", "Username and Password not accepted",
          ". The user name or password given with SMTP AUTH is wrong. " + ARTICLE_RELAY,
          "wrong SMTP AUTH user name or password", None, None),
    Reply("too_many_logins", 454, "4.7.0", "Too many login attempts, please try again later", ".",
          "repeated failed logins", None, None),
    Reply("dos_helo", 421, "4.7.0", "Try again later, closing connection", ".",
          "denial-of-service protection at HELO: a burst of new connections, or a generic HELO name "
          "(localhost, the relay's own name)", None, None),
    # Google's two HELO refusals (support.google.com/mail/answer/6386757): "Empty HELO/EHLO argument not allowed,
    # closing connection." and 'HELO/EHLO argument "<name>" invalid, closing connection.'; the empty one first, its
    # phrase holds the other's.
    Reply("helo_empty", 501, "5.5.4", "Empty HELO/EHLO argument not allowed",
          ", closing connection. Send the host's fully qualified name or an address literal. " + ARTICLE_HELO,
          "HELO/EHLO without an argument", None, None),
    Reply("helo_invalid", 501, "5.5.4", "HELO/EHLO argument",
          ' "%(helo)s" invalid, closing connection. Send the host\'s fully qualified name or an address '
          "literal. " + ARTICLE_HELO,
          "malformed HELO/EHLO name (not a host name or an address literal: spaces, characters outside letters, "
          "digits, hyphens and dots, empty labels)", None, None),
    Reply("user_daily", 550, "5.4.5", "Daily SMTP relay limit exceeded for user",
          ". The relay's sending limits are explained at " + ARTICLE_LIMITS + "; ask your administrator.",
          "the sending user's daily relay limit (10,000 messages or unique recipients in 24 h)", "limit", 450),
    Reply("customer_daily", 550, "5.7.1", "Daily SMTP relay limit exceeded for customer",
          ". The relay's sending limits are explained at " + ARTICLE_LIMITS + "; ask your administrator.",
          "the customer's daily relay limit (about 130 recipients per licence in 24 h)", "limit", 450),
    Reply("customer_peak", 450, "4.2.1", "Peak SMTP relay limit exceeded for customer",
          ". This is a temporary error; the relay's sending limits are explained at " + ARTICLE_LIMITS + ".",
          "the customer's 10-minute relay limit (about 9 recipients per licence)", None, None),
    Reply("too_many_recipients", 452, "4.5.3", "Your message has too many recipients",
          ". Send the remaining recipients in another transaction. " + ARTICLE_LIMITS,
          "more recipients in one transaction than the relay takes", None, None),
    Reply("multiple_domains", 451, "4.3.0", "Multiple destination domains per transaction is unsupported",
          ". Please try again.", "recipients of several domains in one transaction", None, None),
    Reply("tls_required_rcpt", 421, "4.7.0", "TLS required for RCPT domain, closing connection", ".",
          "the recipient's domain requires TLS", None, None),
    # Not from Google's list: the service document says only that the null sender takes one RCPT TO; this
    # project's text, with RFC 3463's status for "too many recipients".
    Reply("null_sender_recipients", 550, "5.5.3",
          "Multiple recipients (RCPT TO) are not supported with a null envelope sender", " (MAIL FROM:<>).",
          "a second recipient for the null sender (MAIL FROM:<>)", None, None),
)
BY_KEY = {reply.key: reply for reply in CATALOGUE}

# "… <session token> - gsmtp": every reply of Google's ends with it; custom rules add "- gcdp <id>" before it.
_TOKEN = re.compile(r"(\s+-\s+gcdp\s+\S+)?(\s+\S+)?\s+-\s+gsmtp\s*$")
_CONTINUATION = re.compile(r"(^|\s)[2-5][0-9]{2}[- ][2-5]\.[0-9]{1,3}\.[0-9]{1,3}(\s+|$)")
_LEADING_CODE = re.compile(r"^[2-5][0-9]{2}[- ]\s*")
_LINE_CODE = re.compile(r"^[2-5][0-9]{2}(?:[- ][2-5]\.[0-9]{1,3}\.[0-9]{1,3})?(?:[- ]|$)\s*")
WRAP_WIDTH = 66


class _Values(dict):
    """Values for a reply's ``detail``: a placeholder nobody filled in renders empty."""

    def __missing__(self, key):
        return ""


def render(key, **values):
    """The reply ``key`` as one logical line, ``"<code> <status> <phrase><detail>"`` (no token)."""
    reply = BY_KEY[key]
    detail = reply.detail % _Values({"ip": "unknown"}, **values) if reply.detail else ""
    return "%d %s %s%s" % (reply.code, reply.status, reply.phrase, detail)


def wrap(text, token=None, width=WRAP_WIDTH, multiline=True):
    """Reply lines of the logical reply ``text`` (``"<code> <status> <words>"``), wrapped as Google wraps them:
    every line carries the code (with ``-`` on all but the last) and the enhanced status code; the words are
    wrapped at ``width`` and the last line ends with ``token`` and ``- gsmtp`` when a token is given (appended
    whatever its length, as in Google's ``550 5.7.1 … https://support.google.com/a/answer/166852
    x12-20020a05.37 - gsmtp``). ``multiline=False``: one line."""
    code, status, words = _split(text)
    prefix = "%s %s " % (code, status) if status else "%s " % code
    ending = "%s - gsmtp" % token if token else ""
    if not multiline:
        return [prefix + " ".join(part for part in (words, ending) if part)]
    lines, current = [], ""
    for word in words.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = word if not current else current + " " + word
    lines.append(" ".join(part for part in (current, ending) if part))
    head = prefix.replace(" ", "-", 1)
    return [head + line for line in lines[:-1]] + [prefix + lines[-1]]


def _split(text):
    code, _sep, rest = text.partition(" ")
    status, _sep, words = rest.partition(" ")
    if not re.match(r"^[2-5]\.[0-9]{1,3}\.[0-9]{1,3}$", status):
        return code, "", rest
    return code, status, words


def normalise(reply):
    """``(code, status, text)`` of a reply given as its lines or as one joined string (an MTA's log of it):
    continuation codes and the ``- gsmtp`` token removed, white space folded.  Given as lines, each line's own
    code (and enhanced status code) is removed, also in a reply without enhanced status codes."""
    if isinstance(reply, (list, tuple)):
        lines = [" ".join(str(line).split()) for line in reply]
        joined = " ".join(lines)
        bodies = [_LINE_CODE.sub("", line) for line in lines]
    else:
        joined = " ".join(str(reply).split())
        bodies = None
    match = re.match(r"^([2-5][0-9]{2})(?:[- ]|$)(([2-5]\.[0-9]{1,3}\.[0-9]{1,3})(?: |$))?", joined)
    code = int(match.group(1)) if match else None
    status = match.group(3) if match else None
    if bodies is not None and match:
        text = " ".join(body for body in bodies if body)
    else:
        text = _LEADING_CODE.sub("", _CONTINUATION.sub(" ", joined).strip())
    text = _TOKEN.sub("", text).strip()
    return code, status, text


def classify(reply):
    """The catalogue entry a reply (lines, or joined text) is, by code + enhanced code + phrase; None if none."""
    code, status, text = normalise(reply)
    lowered = text.lower()
    for entry in CATALOGUE:
        if code not in (None, entry.code):
            continue
        if status is not None and status != entry.status:
            continue
        if entry.phrase.lower() in lowered:
            return entry
    return None


def identify(reply):
    """``classify``, and also a reply the retry rules turned into 4xx (``450-4.4.5 Daily SMTP relay limit exceeded
    for user``, as the relay guard hands it on): an entry with a retry code matches its retry code and status too.
    None if nothing matches."""
    entry = classify(reply)
    if entry is not None:
        return entry
    code, status, text = normalise(reply)
    lowered = text.lower()
    for entry in CATALOGUE:
        if not entry.retry:
            continue
        if code not in (None, entry.retry_code):
            continue
        if status is not None and status != "4" + entry.status[1:]:
            continue
        if entry.phrase.lower() in lowered:
            return entry
    return None


# ---- retry rules -----------------------------------------------------------------------------------

def _ere(text):
    """``text`` as a POSIX extended regular expression that Python's ``re`` reads the same way."""
    return re.sub(r"([.\[\]()*+?{}|^$\\])", r"\\\1", text)


def _wrapped_phrase(phrase):
    """An ERE for ``phrase`` that also matches it wrapped over reply lines: a continuation prefix
    (``550-5.7.1``) may stand between any two words."""
    glue = " +([2-5][0-9][0-9][- ][2-5]\\.[0-9]{1,3}\\.[0-9]{1,3} +)?"
    return glue.join(_ere(word) for word in phrase.split())


def _rule(entry):
    code = "%d[ -]%s" % (entry.code, _ere(entry.status))
    pattern = "^%s(\\.[0-9]{1,3}\\.[0-9]{1,3} (.* )?%s .*%s.*)$" % (
        entry.status[0], code, _wrapped_phrase(entry.phrase))
    return {
        "cause": entry.key,
        "code": entry.code,
        "status": entry.status,
        "retry_code": entry.retry_code,
        "retry_status": "4" + entry.status[1:],
        "pattern": pattern,
        "replacement": "4${1}",
    }


def retry_rules():
    """The rules published in ``relay_settings.retry_replies``: ``limits`` (the two daily limits) and
    ``refusals`` (this server not, or not yet, set up right with the relay).

    Each rule is applied to one delivery status, ``"<enhanced status> <text>"``, where the text holds every
    line of the relay's reply joined with single spaces (what Postfix passes to
    ``smtp_delivery_status_filter``; the relay guard builds the same string). ``pattern`` is a POSIX ERE
    (case-insensitive in a Postfix regexp table; the guard matches it ignoring case too), ``replacement``
    in Postfix regexp-table syntax turns the 5.X.X into 4.X.X; the guard rewrites every reply line to
    ``retry_code``/``retry_status``."""
    return {
        "limits": [_rule(entry) for entry in CATALOGUE if entry.retry == "limit"],
        "refusals": [_rule(entry) for entry in CATALOGUE if entry.retry == "refusal"],
    }


def delivery_status(lines):
    """The string the retry rules are matched against for a reply given as its lines: the last line's
    enhanced status code (as Postfix takes it), then the lines joined with single spaces."""
    last = lines[-1]
    match = re.match(r"^[2-5][0-9]{2}[ -]([2-5]\.[0-9]{1,3}\.[0-9]{1,3})", last)
    status = match.group(1) if match else "%s.0.0" % last[:1]
    return "%s %s" % (status, " ".join(lines))


def matching_rule(lines, rules):
    """The first of ``rules`` that matches the reply ``lines``, or None."""
    query = delivery_status(lines)
    for rule in rules:
        if re.match(rule["pattern"], query, re.IGNORECASE):
            return rule
    return None


def apply_retry(lines, rules):
    """The reply ``lines`` with every line's code and enhanced status code set to the matching rule's
    ``retry_code``/``retry_status``; unchanged when no rule matches (what the relay guard does)."""
    rule = matching_rule(lines, rules)
    if rule is None:
        return list(lines)
    out = []
    for line in lines:
        mark, rest = line[3:4], line[4:]
        if rest.startswith(rule["status"]):
            rest = rule["retry_status"] + rest[len(rule["status"]):]
        out.append("%d%s%s" % (rule["retry_code"], mark, rest))
    return out
