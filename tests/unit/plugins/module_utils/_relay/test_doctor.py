# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor's diagnoses (doctor.py): every catalogue entry in every layout (one line, wrapped with a token,
joined as an MTA logs it, rewritten to 4xx by the retry rules) names its class, cause, console setting and fix;
the MTAs' own failure texts name theirs; the verdict follows the queue."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor as D
from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies as R

ROLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "..", "roles")
TOKEN = "x12-20020a05.37"
VALUES = {"ip": "198.51.100.7", "domains": "example.com", "helo": "bad name"}
RULES = R.retry_rules()
ALL_RULES = RULES["limits"] + RULES["refusals"]

# Every class the issue lists, by the catalogue entry that carries it.
EXPECTED = {
    "relay_denied": "allowlist",
    "invalid_credentials": "sender_domain",
    "sending_denied": "unregistered_sender",
    "starttls_first": "tls_required",
    "tls_required_rcpt": "tls_required",
    "auth_required": "auth_required",
    "bad_credentials": "bad_credentials",
    "too_many_logins": "bad_credentials",
    "dos_helo": "dos_helo",
    "helo_empty": "helo_name",
    "helo_invalid": "helo_name",
    "user_daily": "user_daily_limit",
    "customer_daily": "customer_daily_limit",
    "customer_peak": "peak_limit",
    "too_many_recipients": "too_many_recipients",
    "multiple_domains": "too_many_recipients",
    "null_sender_recipients": "null_sender",
}


def layouts(key):
    """The reply ``key`` as the doctor meets it: one line, Google's wrapped lines, those lines joined (Postfix's
    log), and, for the retry entries, the lines the relay guard hands on after rewriting them."""
    text = R.render(key, **VALUES)
    lines = R.wrap(text, token=TOKEN)
    out = [text, lines, " ".join(lines), R.wrap(text, token=TOKEN, multiline=False)[0]]
    if R.BY_KEY[key].retry:
        rewritten = R.apply_retry(lines, ALL_RULES)
        assert rewritten[-1].startswith("45"), rewritten
        out += [rewritten, " ".join(rewritten)]
    return out


def test_every_catalogue_entry_has_a_class():
    assert set(D.REPLY_CLASS) == {entry.key for entry in R.CATALOGUE}
    assert set(D.REPLY_CLASS.values()) <= set(D.BY_CLASS)
    assert D.REPLY_CLASS == EXPECTED


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_every_layout_names_the_class(key):
    for reply in layouts(key):
        diagnosis = D.diagnose(reply, mta="postfix")
        assert diagnosis["class"] == EXPECTED[key], (key, reply)
        assert diagnosis["catalogue"] == key
        assert "gsmtp" not in diagnosis["reply"]["text"] and TOKEN not in diagnosis["reply"]["text"]


@pytest.mark.parametrize("cls", D.CLASSES, ids=lambda c: c.key)
def test_every_class_says_cause_and_fix(cls):
    assert cls.severity in ("blocked", "degraded")
    assert len(cls.cause) > 30
    if cls.key != "unknown":
        assert cls.fixes, cls.key
    for variable, _value, _why in cls.fixes:
        assert variable.startswith(("relay_", "{mta}_", "postfix_")), variable
    if cls.console:
        assert cls.console.startswith(D.CONSOLE)


def test_allowlist_fix_carries_the_address_the_relay_saw():
    diagnosis = D.diagnose(R.wrap(R.render("relay_denied", **VALUES), token=TOKEN), stage="RCPT")
    assert diagnosis["fixes"][0] == {"variable": "relay_allowlist", "value": "198.51.100.7/32",
                                     "why": "list the address the relay saw in the setting and in relay_allowlist"}
    assert diagnosis["console"].endswith("Only accept mail from the specified IP addresses")
    assert diagnosis["stage"] == "RCPT" and diagnosis["severity"] == "blocked"
    given = D.diagnose("550 5.7.0 Mail relay denied. Invalid credentials", egress="203.0.113.9")
    assert given["fixes"][0]["value"] == "203.0.113.9/32"
    unknown = D.diagnose("550 5.7.0 Mail relay denied. Invalid credentials")
    assert unknown["fixes"][0]["value"] == "this host's egress address/32"


def test_null_sender_without_identity_is_its_own_class():
    reply = R.render("invalid_credentials", **VALUES)
    assert D.diagnose(reply, sender="")["class"] == "null_sender"
    assert D.diagnose(reply, sender="someone@foreign.test")["class"] == "sender_domain"
    assert D.diagnose(reply)["class"] == "sender_domain"


def test_mta_variables_are_named_for_the_mta():
    fixes = D.diagnose(R.render("customer_daily"), mta="sendmail")["fixes"]
    assert "sendmail_limit_replies_retry" in [f["variable"] for f in fixes]


def test_sendmail_fixes_name_sendmail_variables():
    """Sendmail has no main.cf nor Postfix's connection reuse: its fixes name the role's own variables."""
    with open(os.path.join(ROLES, "sendmail", "defaults", "main.yml")) as handle:
        sendmail_vars = yaml.safe_load(handle)
    many = D.diagnose(R.render("too_many_recipients"), mta="sendmail")["fixes"]
    assert many[0]["variable"] == "sendmail_mc_extra" and "SMTP_MAILER_MAXRCPTS" in many[0]["value"]
    dos = [f["variable"] for f in D.diagnose(R.render("dos_helo"), mta="sendmail")["fixes"]]
    assert dos == ["relay_helo_name", "sendmail_connection_cache_size"]
    assert {"sendmail_mc_extra", "sendmail_connection_cache_size"} <= set(sendmail_vars)
    assert D.diagnose(R.render("too_many_recipients"), mta="postfix")["fixes"][0]["variable"] == "postfix_main_cf"
    postfix_dos = D.diagnose(R.render("dos_helo"), mta="postfix")["fixes"]
    assert "postfix_connection_reuse" in [f["variable"] for f in postfix_dos]


def role_variables(*roles):
    names = set()
    for role in roles:
        with open(os.path.join(ROLES, role, "defaults", "main.yml")) as handle:
            names |= set(yaml.safe_load(handle) or {})
    return names


@pytest.mark.parametrize("mta", ["postfix", "sendmail", "qmail"])
def test_every_fix_names_a_variable_the_roles_have(mta):
    """A fix the operator cannot set is no fix: each variable is the relay role's, the MTA's or the guard's."""
    known = role_variables("relay", "relay_guard", mta)
    for key in D.BY_CLASS:
        for fix in D.fixes_for(key, mta=mta, egress="198.51.100.7"):
            assert fix["variable"] in known, (mta, key, fix)


def test_qmail_fixes_go_through_the_guard():
    """qmail sends one recipient per delivery, on a connection of its own: the guard is where both are settled."""
    many = D.diagnose(R.render("too_many_recipients"), mta="qmail")["fixes"]
    assert [f["variable"] for f in many] == ["relay_guard_address"]
    dos = [f["variable"] for f in D.diagnose(R.render("dos_helo"), mta="qmail")["fixes"]]
    assert dos == ["relay_helo_name", "relay_guard_pool_max_connections"]


@pytest.mark.parametrize("text, expected, stage", [
    ("connect to relay.smarthost.test[10.89.0.2]:587: Connection refused", "unreachable", "CONNECT"),
    ("connect to relay.smarthost.test[10.89.0.2]:587: Connection timed out", "unreachable", "CONNECT"),
    ("Host or domain name not found. Name service error for name=relay.example type=A: Host not found, try again",
     "unreachable", None),
    ("lost connection with relay.smarthost.test[10.89.0.2] while receiving the initial server greeting",
     "unreachable", "CONNECT"),
    ("Deferred: Connection refused by relay.smarthost.test.", "unreachable", "CONNECT"),
    ("Deferred: Name server: relay.example.: host name lookup failure", "unreachable", None),
    ("Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)", "unreachable", "CONNECT"),
    ("Sorry, I couldn't find any host named relay.example. (#5.1.2)", "unreachable", None),
    ("Server certificate not verified", "tls_failure", None),
    ("TLS is required, but was not offered by host relay.smarthost.test[10.89.0.2]", "tls_failure", None),
    ("Deferred: 403 4.7.0 TLS handshake.", "tls_failure", None),
    ("relay relay.smarthost.test:587 certificate verify failed: self-signed certificate", "tls_failure", None),
    ("SASL authentication failed; cannot authenticate to server relay.smarthost.test[10.89.0.2]: no mechanism "
     "available", "bad_credentials", "AUTH"),
    ("conversation with relay.smarthost.test[10.89.0.2] timed out while sending end of data -- message may be "
     "sent more than once", "unreachable", "DATA"),
])
def test_the_mtas_own_texts(text, expected, stage):
    diagnosis = D.diagnose(local=text)
    assert diagnosis["class"] == expected, text
    assert diagnosis["stage"] == stage, text


@pytest.mark.parametrize("text", [
    "Deferred: 403 4.7.0 authentication failed",            # Sendmail before 8.17.1, VERIFY required, verify=FAIL
    "Deferred: 454 4.7.0 authentication failed",            # 8.17.1 and later
    "454 4.7.0 authentication failed",                      # its reply= (8.16.1+), the ruleset's own words
    "503 5.7.0 authentication failed",                      # TLS_PERM_ERR
    "Deferred: 454 4.7.0 not authenticated",                # verify=NO
    "Deferred: 454 4.7.0 other side does not support STARTTLS",
    "Deferred: 454 4.7.0 TLS handshake failed.",
    "Deferred: 454 4.7.0 CN impostor.example does not match relay.smarthost.test",
])
def test_sendmails_tls_verdicts_are_not_smtp_auth(text):
    diagnosis = D.diagnose(local=text)
    assert diagnosis["class"] == "tls_failure", text
    assert "tls_server" in diagnosis["note"]


def test_the_same_words_quoted_from_a_server_stay_smtp_auth():
    """Postfix quoting a server's AUTH reply is not Sendmail's verdict on TLS."""
    local = "SASL authentication failed; server relay.smarthost.test[10.89.0.2] said: 454 4.7.0 authentication failed"
    assert D.diagnose("454 4.7.0 authentication failed", local=local, stage="AUTH")["class"] == "bad_credentials"


@pytest.mark.parametrize("text", ["Deferred: Connection reset by relay.smarthost.test.",
                                  "reply: read error from relay.smarthost.test."])
def test_sendmails_lost_connection_says_what_it_leaves_out(text):
    diagnosis = D.diagnose(local=text)
    assert (diagnosis["class"], diagnosis["stage"]) == ("unreachable", None)
    assert "HELO" in diagnosis["note"] and "verbatim" not in diagnosis


UNVERIFIED = {"verify": "FAIL", "logged": "STARTTLS=client, relay=relay.smarthost.test., version=TLSv1.3, "
                                          "verify=FAIL, cipher=TLS_AES_256_GCM_SHA384, bits=256/256"}


@pytest.mark.parametrize("reply, local, before", [
    ("535 5.7.8 Username and Password not accepted. x12 - gsmtp", None, "bad_credentials"),
    ("454 4.7.0 Too many login attempts, please try again later. x12 - gsmtp", "Deferred: Temporary AUTH failure",
     "bad_credentials"),
    ("530 5.5.1 Authentication Required. x12 - gsmtp", "Service unavailable", "auth_required"),
    (None, "Deferred: Temporary AUTH failure", "unknown"),
])
def test_a_failure_after_an_unverified_handshake_is_the_certificates(reply, local, before):
    assert D.diagnose(reply, local)["class"] == before
    diagnosis = D.diagnose(reply, local, tls=UNVERIFIED)
    assert diagnosis["class"] == "tls_failure" and UNVERIFIED["logged"] in diagnosis["note"]
    assert "verbatim" not in diagnosis
    if reply:
        assert diagnosis["reply"]["code"] == int(reply[:3])
    assert D.diagnose(reply, local, tls=dict(UNVERIFIED, verify="OK"))["class"] == before


@pytest.mark.parametrize("reply, local, key", [
    (None, "Deferred: Connection refused by relay.smarthost.test.", "unreachable"),
    ("421 4.7.0 Try again later, closing connection. x12 - gsmtp",
     "Deferred: 421 4.7.0 Try again later, closing connection. x12 - gsmtp", "dos_helo"),
])
def test_failures_before_tls_keep_their_class_in_an_unverified_session(reply, local, key):
    assert D.diagnose(reply, local, tls=UNVERIFIED)["class"] == key


def test_unknown_is_kept_verbatim():
    text = "550 5.1.1 The email account that you tried to reach does not exist. x12 - gsmtp"
    diagnosis = D.diagnose(text, local="host relay said: " + text)
    assert diagnosis["class"] == "unknown" and diagnosis["verbatim"] == "host relay said: " + text
    assert diagnosis["reply"] == {"code": 550, "status": "5.1.1",
                                  "text": "The email account that you tried to reach does not exist."}


def test_a_reply_beats_the_words_around_it():
    """Postfix's SASL failure text wraps the relay's reply: the reply decides."""
    diagnosis = D.diagnose("535 5.7.8 Username and Password not accepted. x12 - gsmtp",
                           local="SASL authentication failed; server relay said: 535 5.7.8 ...", stage="AUTH")
    assert diagnosis["class"] == "bad_credentials" and diagnosis["catalogue"] == "bad_credentials"


def test_a_reply_given_as_lines_that_the_catalogue_does_not_know():
    """Lines (as a client read them off the wire) are matched by their words too, and kept verbatim when unknown."""
    lines = ["454-4.7.0 TLS not available due to a local", "454 4.7.0 problem. x12 - gsmtp"]
    assert D.diagnose(lines, local="the relay refused STARTTLS")["class"] == "tls_failure"
    diagnosis = D.diagnose(["550-5.1.1 No such user", "550 5.1.1 here. x12 - gsmtp"])
    assert diagnosis["class"] == "unknown"
    assert diagnosis["verbatim"] == "550-5.1.1 No such user 550 5.1.1 here. x12 - gsmtp"


# --- summary and verdict ------------------------------------------------------------------------------

NOW = 1_800_000_000.0
DENIED = R.render("relay_denied", **VALUES)
PEAK = R.render("customer_peak")


def queued(queue_id, reply, age, sender="app@example.com"):
    return {"queue_id": queue_id, "arrival": NOW - age, "sender": sender, "recipients": ["a@example.net"],
            "reply": reply, "local": None, "stage": "RCPT"}


def event(queue_id, status, at, reply=None, local=None, relay=True, **extra):
    return dict({"time": NOW - at, "queue_id": queue_id, "recipient": "a@example.net", "sender": "app@example.com",
                 "status": status, "reply": reply, "local": local, "stage": "RCPT", "relay": relay}, **extra)


def test_empty_is_healthy():
    report = D.summarise([], [], NOW, mta="postfix")
    assert report["verdict"] == "healthy" and report["reasons"] == [] and report["classes"] == []


def test_refused_mail_held_and_nothing_through_is_blocked():
    queue = [queued("A1", DENIED, 300), queued("A2", DENIED, 100)]
    events = [event("A1", "deferred", 290, DENIED), event("A2", "deferred", 90, DENIED),
              event("A1", "deferred", 30, DENIED), event("B1", "sent", 1000)]
    report = D.summarise(queue, events, NOW, mta="postfix")
    assert report["verdict"] == "blocked"
    [row] = report["classes"]
    assert (row["class"], row["queued"], row["deferred"], row["oldest_age"]) == ("allowlist", 2, 2, 300)
    assert row["samples"] == ["A1", "A2"]
    assert report["last_success"]["queue_id"] == "B1" and report["last_success"]["age"] == 1000
    assert report["queue_size"] == 2 and report["queue_shown"] == "2" and report["deferred"] == 2 and report["bounced"] == 0


def test_delivery_after_the_refusal_makes_it_degraded():
    queue = [queued("A1", DENIED, 300)]
    events = [event("A1", "deferred", 290, DENIED), event("B1", "sent", 10)]
    assert D.summarise(queue, events, NOW)["verdict"] == "degraded"


def test_a_peak_limit_is_degraded_not_blocked():
    report = D.summarise([queued("A1", PEAK, 60)], [event("A1", "deferred", 50, PEAK)], NOW)
    assert report["verdict"] == "degraded"
    assert report["reasons"] == ["1 message(s) queued: 10-minute peak limit"]


def test_bounces_in_the_window_are_degraded_and_local_mail_is_no_success():
    events = [event("C1", "bounced", 50, R.render("bad_credentials")), event("L1", "sent", 5, relay=False)]
    report = D.summarise([], events, NOW)
    assert report["verdict"] == "degraded" and report["bounced"] == 1 and report["last_success"] is None


def test_guard_refusals_are_counted_apart():
    events = [event(None, "deferred", 40, R.wrap(DENIED, token=TOKEN), source="guard"),
              event("A1", "deferred", 39, DENIED)]
    [row] = D.summarise([queued("A1", DENIED, 45)], events, NOW)["classes"]
    assert (row["guard"], row["deferred"], row["queued"]) == (1, 1, 1)


def test_the_queue_after_recovery_is_healthy():
    events = [event("A1", "deferred", 290, DENIED), event("A1", "sent", 5)]
    report = D.summarise([], events, NOW)
    assert report["verdict"] == "healthy" and report["last_success"]["queue_id"] == "A1"
    assert report["classes"][0]["deferred"] == 1 and report["classes"][0]["queued"] == 0
