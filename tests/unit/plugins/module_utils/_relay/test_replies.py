# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reply catalogue (replies.py): render/wrap lay replies out as Google does, normalise/classify read them back
in every layout, the retry rules are POSIX EREs that turn exactly the retry entries into 4xx."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies as R
from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import check_profile

TOKEN = "d2e1a72fcca58-2b0fc6a9f4f1.7"
VALUES = {"ip": "192.0.2.7", "domains": "example.com, mta.example.com", "helo": "bad_name"}
ENTRIES = [entry.key for entry in R.CATALOGUE]
RETRY = [entry.key for entry in R.CATALOGUE if entry.retry]
NOT_RETRY = [entry.key for entry in R.CATALOGUE if not entry.retry]
RULES = R.retry_rules()
ALL_RULES = RULES["limits"] + RULES["refusals"]


def _prefix(entry, last=False):
    return "%d%s%s " % (entry.code, " " if last else "-", entry.status)


def split_layouts(key):
    """Google-like wrapped layouts of entry ``key`` with its phrase split over two lines at every word boundary:
    a line of other words first, the phrase's first words ending line 2, its rest opening line 3, the detail and
    the token on the last line."""
    entry = R.BY_KEY[key]
    words = entry.phrase.split()
    detail = (entry.detail % R._Values(VALUES)).strip() or "."  # pylint: disable=protected-access
    out = []
    for cut in range(1, len(words)):
        out.append([
            _prefix(entry) + "Note:",
            _prefix(entry) + " ".join(words[:cut]),
            _prefix(entry) + " ".join(words[cut:]),
            _prefix(entry, last=True) + "%s %s - gsmtp" % (detail, TOKEN),
        ])
    # the phrase alone on the last line, with the token
    out.append([_prefix(entry) + "See below.", _prefix(entry, last=True) + "%s %s - gsmtp" % (entry.phrase, TOKEN)])
    return out


def postfix_log(lines):
    """How Postfix logs a multi-line reply: the lines joined, continuation codes kept."""
    return " ".join(lines)


# --- render / wrap -------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ENTRIES)
def test_render_is_one_logical_line(key):
    entry = R.BY_KEY[key]
    text = R.render(key, **VALUES)
    assert text.startswith("%d %s %s" % (entry.code, entry.status, entry.phrase))
    assert "\n" not in text and "gsmtp" not in text and "%(" not in text
    assert text.count(" %s " % entry.status) == 1


def test_render_fills_and_defaults_placeholders():
    assert R.render("relay_denied", ip="192.0.2.7", domains="example.com").startswith(
        "550 5.7.0 Mail relay denied [192.0.2.7]. Invalid credentials for relay for one of the domains in: "
        "example.com (as obtained from HELO and MAIL FROM).")
    assert R.render("invalid_credentials").startswith("550 5.7.1 Invalid credentials for relay [unknown].")
    assert R.render("helo_invalid", helo="my printer").startswith(
        '501 5.5.4 HELO/EHLO argument "my printer" invalid, closing connection.')
    assert R.render("helo_invalid").startswith('501 5.5.4 HELO/EHLO argument "" invalid')
    assert R.render("dos_helo") == "421 4.7.0 Try again later, closing connection."
    assert R.render("customer_peak").startswith(
        "450 4.2.1 Peak SMTP relay limit exceeded for customer. This is a temporary error")


@pytest.mark.parametrize("key", ENTRIES)
@pytest.mark.parametrize("width", [R.WRAP_WIDTH, 30, 12])
def test_wrap_multiline_layout(key, width):
    entry = R.BY_KEY[key]
    text = R.render(key, **VALUES)
    lines = R.wrap(text, token=TOKEN, width=width)
    for line in lines[:-1]:
        assert line.startswith(_prefix(entry))
    assert lines[-1].startswith(_prefix(entry, last=True))
    assert lines[-1].endswith(" %s - gsmtp" % TOKEN)
    units = text.split(" ")[2:]
    assert lines[-1][len(_prefix(entry, last=True)):-len(" %s - gsmtp" % TOKEN)].strip()  # never alone on a line
    for line in lines:
        body = line[len(_prefix(entry)):]
        if line is lines[-1]:
            body = body[:-len(" %s - gsmtp" % TOKEN)]
        assert len(body) <= width or body in units  # longer only when one word is
    words = " ".join(line[len(_prefix(entry)):] for line in lines).split()
    assert words == text.split()[2:] + [TOKEN, "-", "gsmtp"]
    if width == 12 and len(entry.phrase.split()) > 1:
        assert len(lines) > 2


def test_wrap_long_reply_goes_over_several_lines_like_googles():
    lines = R.wrap(R.render("customer_daily"), token=TOKEN)
    assert len(lines) >= 3
    assert lines[0].startswith("550-5.7.1 Daily SMTP relay limit exceeded for customer.")
    assert lines[-1].startswith("550 5.7.1 ") and lines[-1].endswith(TOKEN + " - gsmtp")


def test_wrap_single_line_layout_and_without_token():
    text = R.render("user_daily")
    assert R.wrap(text, token=TOKEN, multiline=False) == [text + " %s - gsmtp" % TOKEN]
    assert R.wrap(text, multiline=False) == [text]
    assert R.wrap("421 4.7.0 Try again later, closing connection.", token="x1.2") == [
        "421 4.7.0 Try again later, closing connection. x1.2 - gsmtp"]
    # the token always ends the last line of words, however long it makes it (Google's layout)
    assert R.wrap("421 4.7.0 Try again later, closing connection.", token=TOKEN) == [
        "421 4.7.0 Try again later, closing connection. %s - gsmtp" % TOKEN]
    assert R.wrap("554 Too many connections", token=TOKEN, multiline=False) == [
        "554 Too many connections %s - gsmtp" % TOKEN]


# --- normalise / classify ------------------------------------------------------------------------------

@pytest.mark.parametrize("reply, expected", [
    (["550-5.7.1 Daily SMTP relay limit exceeded for customer. For more information on",
      "550-5.7.1 SMTP relay sending limits please contact your administrator or",
      "550 5.7.1 review this article. https://support.google.com/a/answer/166852 x12-20020a05.37 - gsmtp"],
     (550, "5.7.1", "Daily SMTP relay limit exceeded for customer. For more information on SMTP relay sending limits "
                    "please contact your administrator or review this article. "
                    "https://support.google.com/a/answer/166852")),
    ("550-5.7.1 Daily SMTP relay limit exceeded 550-5.7.1 for customer.  550 5.7.1 See x1.2 - gsmtp",
     (550, "5.7.1", "Daily SMTP relay limit exceeded for customer. See")),
    ("550 5.7.1 This message violates example.com email policy. - gcdp ab12 - gsmtp",
     (550, "5.7.1", "This message violates example.com email policy.")),
    ("421 4.7.0 Try again later, closing connection.", (421, "4.7.0", "Try again later, closing connection.")),
    ("554 Too many connections", (554, None, "Too many connections")),
    (["554-Too many", "554 connections"], (554, None, "Too many connections")),   # lines without status codes
    (["550-5.7.1 quoting 550 5.7.1 inside", "550 5.7.1 the text x1.2 - gsmtp"],
     (550, "5.7.1", "quoting 550 5.7.1 inside the text")),
    (["421"], (421, None, "")),
    ("Connected to 192.0.2.1 but sender was rejected.",
     (None, None, "Connected to 192.0.2.1 but sender was rejected.")),
])
def test_normalise(reply, expected):
    assert R.normalise(reply) == expected


@pytest.mark.parametrize("key", ENTRIES)
@pytest.mark.parametrize("multiline", [True, False])
def test_classify_rendered_layouts(key, multiline):
    lines = R.wrap(R.render(key, **VALUES), token=TOKEN, multiline=multiline)
    assert R.classify(lines).key == key
    assert R.classify(postfix_log(lines)).key == key
    assert R.classify("\n".join(lines)).key == key
    assert R.classify([line.lower() for line in lines]).key == key


@pytest.mark.parametrize("key", ENTRIES)
def test_classify_phrase_split_across_lines(key):
    for lines in split_layouts(key):
        assert R.classify(lines).key == key, lines
        assert R.classify(postfix_log(lines)).key == key, lines


@pytest.mark.parametrize("key", ENTRIES)
def test_classify_needs_code_and_status(key):
    entry = R.BY_KEY[key]
    other_status = "%s.9.9" % entry.status[0]
    lines = [line.replace(entry.status, other_status) for line in R.wrap(R.render(key, **VALUES), token=TOKEN)]
    assert R.classify(lines) is None or R.classify(lines).key != key
    wrong_code = [("%d" % (entry.code + 1)) + line[3:] for line in R.wrap(R.render(key, **VALUES), token=TOKEN)]
    assert R.classify(wrong_code) is None or R.classify(wrong_code).key != key


def test_classify_unknown_replies():
    assert R.classify("550 5.1.1 The email account that you tried to reach does not exist.") is None
    assert R.classify(["250 2.0.0 OK 1a2b.1 - gsmtp"]) is None


def test_catalogue_keys_are_unique_and_well_formed():
    assert len(ENTRIES) == len(set(ENTRIES)) == len(R.BY_KEY)
    for entry in R.CATALOGUE:
        assert 400 <= entry.code < 600
        assert re.match(r"^[45]\.[0-9]{1,3}\.[0-9]{1,3}$", entry.status) and entry.status[0] == str(entry.code)[0]
        assert entry.phrase and entry.cause
        assert (entry.retry is None) is (entry.retry_code is None)
        if entry.retry:
            assert entry.code >= 500 and 400 <= entry.retry_code < 500


def test_google_texts_and_codes():
    """Codes, enhanced codes and phrases of Google's relay replies (Google's answers 3726730, 6140680, 6386757;
    the service document's limits)."""
    expected = {
        "relay_denied": (550, "5.7.0", "Mail relay denied"),
        "invalid_credentials": (550, "5.7.1", "Invalid credentials for relay"),
        "sending_denied": (550, "5.7.0", "Mail Sending denied"),
        "starttls_first": (530, "5.7.0", "Must issue a STARTTLS command first"),
        "auth_required": (530, "5.5.1", "Authentication Required"),
        "bad_credentials": (535, "5.7.8", "Username and Password not accepted"),
        "helo_empty": (501, "5.5.4", "Empty HELO/EHLO argument not allowed"),
        "helo_invalid": (501, "5.5.4", "HELO/EHLO argument"),
        "too_many_recipients": (452, "4.5.3", "Your message has too many recipients"),
        "dos_helo": (421, "4.7.0", "Try again later, closing connection"),
        "user_daily": (550, "5.4.5", "Daily SMTP relay limit exceeded for user"),
        "customer_daily": (550, "5.7.1", "Daily SMTP relay limit exceeded for customer"),
        "customer_peak": (450, "4.2.1", "Peak SMTP relay limit exceeded for customer"),
    }
    for key, (code, status, phrase) in expected.items():
        entry = R.BY_KEY[key]
        assert (entry.code, entry.status, entry.phrase) == (code, status, phrase), key
    # Google's own two HELO replies are recognised as what they are
    assert R.classify(["501-5.5.4 Empty HELO/EHLO argument not allowed, closing connection.",
                       "501 5.5.4  https://support.google.com/mail/?p=helo x1.2 - gsmtp"]).key == "helo_empty"
    assert R.classify(['501-5.5.4 HELO/EHLO argument "my_printer" invalid, closing connection.',
                       "501 5.5.4  https://support.google.com/mail/?p=helo x1.2 - gsmtp"]).key == "helo_invalid"


# --- retry rules -------------------------------------------------------------------------------------------

def test_retry_rules_shape():
    assert set(RULES) == {"limits", "refusals"}
    assert [r["cause"] for r in RULES["limits"]] == [e.key for e in R.CATALOGUE if e.retry == "limit"]
    assert [r["cause"] for r in RULES["refusals"]] == [e.key for e in R.CATALOGUE if e.retry == "refusal"]
    assert sorted(r["cause"] for r in ALL_RULES) == sorted(RETRY)
    for rule in ALL_RULES:
        assert set(rule) == {"cause", "code", "status", "retry_code", "retry_status", "pattern", "replacement"}
        entry = R.BY_KEY[rule["cause"]]
        assert (rule["code"], rule["status"], rule["retry_code"]) == (entry.code, entry.status, entry.retry_code)
        assert rule["retry_status"] == "4" + entry.status[1:]


@pytest.mark.parametrize("rule", ALL_RULES, ids=[r["cause"] for r in ALL_RULES])
def test_rules_are_posix_extended_regexps(rule):
    """Postfix's regexp tables read POSIX EREs: no Python-only syntax; ${n} in the replacement."""
    pattern = rule["pattern"]
    assert "(?" not in pattern
    assert not re.search(r"\\[dswbDSWBAZ]", pattern), pattern
    assert "/" not in pattern  # the table's delimiter
    assert pattern.startswith("^") and pattern.endswith("$")
    groups = re.compile(pattern).groups
    assert set(int(n) for n in re.findall(r"\$\{([0-9]+)\}", rule["replacement"])) <= set(range(1, groups + 1))
    assert "\\" not in rule["replacement"]


@pytest.mark.skipif(shutil.which("grep") is None, reason="no grep")
@pytest.mark.parametrize("key", RETRY)
def test_rules_match_the_same_under_posix_grep(key):
    """The patterns mean the same to a POSIX ERE engine (grep -E) as to Python's re."""
    rule = next(r for r in ALL_RULES if r["cause"] == key)
    cases = [R.delivery_status(R.wrap(R.render(key, **VALUES), token=TOKEN, multiline=multiline))
             for multiline in (True, False)]
    cases += [R.delivery_status(lines) for lines in split_layouts(key)]
    cases += [R.delivery_status(["550 5.1.1 No such user x1.2 - gsmtp"])]
    text = "\n".join(cases) + "\n"
    found = subprocess.run(["grep", "-E", "-i", "-n", "-e", rule["pattern"]], input=text, capture_output=True,
                           text=True, check=False).stdout
    matched_by_grep = {int(line.split(":", 1)[0]) - 1 for line in found.splitlines()}
    matched_by_python = {n for n, case in enumerate(cases) if re.match(rule["pattern"], case, re.IGNORECASE)}
    assert matched_by_grep == matched_by_python == set(range(len(cases) - 1))


def _layouts(key):
    text = R.render(key, **VALUES)
    return [R.wrap(text, token=TOKEN), R.wrap(text, token=TOKEN, multiline=False),
            R.wrap(text, token=TOKEN, width=20)] + split_layouts(key)


@pytest.mark.parametrize("key", RETRY)
def test_apply_retry_turns_every_line_of_a_retry_entry_into_4xx(key):
    entry = R.BY_KEY[key]
    group = RULES["limits" if entry.retry == "limit" else "refusals"]
    for lines in _layouts(key):
        assert R.matching_rule(lines, group)["cause"] == key
        assert R.matching_rule(lines, ALL_RULES)["cause"] == key
        rewritten = R.apply_retry(lines, group)
        assert len(rewritten) == len(lines)
        for before, after in zip(lines, rewritten):
            assert after[:4] == "%d%s" % (entry.retry_code, before[3])
            assert after[4:] == "4" + before[5:] if before[4:].startswith(entry.status) else after[4:] == before[4:]
        assert R.normalise(rewritten)[:2] == (entry.retry_code, "4" + entry.status[1:])
        # Postfix takes the last line's code: it must be the 4xx
        assert rewritten[-1].startswith("%d 4" % entry.retry_code)


@pytest.mark.parametrize("key", RETRY)
def test_retry_entry_is_left_alone_by_the_other_group(key):
    entry = R.BY_KEY[key]
    other = RULES["refusals" if entry.retry == "limit" else "limits"]
    for lines in _layouts(key):
        assert R.apply_retry(lines, other) == lines


@pytest.mark.parametrize("key", NOT_RETRY)
def test_apply_retry_leaves_other_entries_alone(key):
    for lines in _layouts(key):
        assert R.matching_rule(lines, ALL_RULES) is None, lines
        assert R.apply_retry(lines, ALL_RULES) == lines


@pytest.mark.parametrize("lines", [
    ["550 5.1.1 The email account that you tried to reach does not exist. x1.2 - gsmtp"],
    ["550-5.7.1 This message violates example.com email policy.", "550 5.7.1 - gcdp ab12 - gsmtp"],
    ["250 2.0.0 OK 1a2b.1 - gsmtp"],
    # a limit's words under another code are not the limit
    ["550-5.7.26 Daily SMTP relay limit exceeded for customer?", "550 5.7.26 No: DMARC x1.2 - gsmtp"],
    ["450 4.2.1 Peak SMTP relay limit exceeded for customer. x1.2 - gsmtp"],
])
def test_apply_retry_leaves_foreign_replies_alone(lines):
    assert R.apply_retry(lines, ALL_RULES) == lines


def test_delivery_status_uses_the_last_lines_status():
    assert R.delivery_status(["550-5.7.1 a", "550 5.7.1 b x - gsmtp"]) == "5.7.1 550-5.7.1 a 550 5.7.1 b x - gsmtp"
    assert R.delivery_status(["554 no status"]) == "5.0.0 554 no status"


def test_published_in_relay_settings():
    report = check_profile({"host": "smtp-relay.gmail.com", "tls": "required", "auth": False,
                            "domains": ["example.com"], "allowlist": ["203.0.113.0/24"]})
    assert report.normalized["retry_replies"] == R.retry_rules()
