# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.postfix, proven from the relay stand-in's record.

The tests run in file order and build on each other: the converge left every MTA on 587 + STARTTLS + SMTP AUTH;
later tests re-run the role (ansible-playbook converge.yml -e ...) with the values another case needs. Debian 12
carries every case; Debian 11 and 13 the converge, idempotence, 587, 465 and delivery-status-filter cases.
The relay's refusals and limit replies are sent wrapped over several lines, as Google sends them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
import uuid
from pathlib import Path

import pytest

import relay_record
from relay_record import arrived, sha, wait_for

SCENARIO = Path(__file__).resolve().parents[1]
RELAY_CONTAINER = "srt-postfix-relay"
NETWORK = "srt-postfix"
USER = "app@example.com"
PASSWORD = "postfix-Relay-pw-7c1e"  # the stand-in's test user (molecule.yml, converge.yml)
LOCAL_SENDER = "alerts@example.com"  # a second registered user of the stand-in (molecule.yml), never logs in
STATUS_FILTER = "/etc/postfix/smarthost_delivery_status_filter"
OLD_REPLY_FILTER = "/etc/postfix/smarthost_reply_filter"
LOCAL_SENDERS_MAP = "/etc/postfix/smarthost_local_senders"
MAIL_DIR = "/var/lib/relay-standin/mail"
# Unique per run, so that finding one in a log can only mean this run leaked it.
NEW_PASSWORD = "Check-mode-pw-" + uuid.uuid4().hex[:10]
WRONG_PASSWORD = "Wrong-pw-" + uuid.uuid4().hex[:10]
HELO = "mta.example.com"
TAG = uuid.uuid4().hex[:8]
OUTPUTS = []  # the output of every ansible-playbook run of this module
RESULTS = {}  # numbers for the close-out note, written to .cache/logs/postfix-verify.json

MTAS = relay_record.group_hosts("mta")
DEB12 = next(host for host in MTAS if host.backend.name.endswith("deb12"))


# --- helpers -------------------------------------------------------------------------------------------------

def standin(**changes):
    """Change the stand-in's config; return the new config."""
    return relay_record.standin(RELAY_CONTAINER, **changes)


def scenario_subnet():
    return relay_record.network_subnet(NETWORK)


def run_role(extra, limit=DEB12.backend.name, check=False, verbosity="-v"):
    """ansible-playbook converge.yml with extra vars, as a user would re-run the role."""
    result = relay_record.run_playbook(SCENARIO / "converge.yml", "--diff", "--limit", limit, verbosity,
                                       *(["--check"] if check else []), extra_vars=extra,
                                       env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"})
    OUTPUTS.append(result.stdout + result.stderr)
    slowest = result.stdout.split("TASKS RECAP", 1)[-1].splitlines()[3:8] if "TASKS RECAP" in result.stdout else []
    RESULTS.setdefault("role_runs", []).append({"vars": sorted(extra), "check": check, "rc": result.returncode,
                                                "seconds": result.seconds,
                                                "slowest_tasks": [" ".join(line.split()) for line in slowest]})
    return result


def text(result):
    """stdout and stderr of a run, white space collapsed (the yaml callback folds long messages)."""
    return " ".join((result.stdout + result.stderr).split())


def recap(result, host=DEB12.backend.name):
    """The PLAY RECAP counters of one host."""
    for line in result.stdout.splitlines():
        if line.startswith(host + " ") and "ok=" in line:
            return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}
    raise AssertionError("no recap for %s:\n%s" % (host, result.stdout[-3000:]))


def send(host, sender, recipients, message_id, subject="test"):
    """Submit one message with Postfix's sendmail inside the MTA container."""
    body = "From: <%s>\nTo: %s\nSubject: %s\nMessage-ID: %s\n\nsmarthost.relay postfix scenario\n" % (
        sender or "MAILER-DAEMON", ", ".join(recipients), subject, message_id)
    cmd = "printf %%s %s | /usr/sbin/sendmail -i -f %s -- %s" % (
        shlex.quote(body), shlex.quote(sender or "<>"), " ".join(shlex.quote(r) for r in recipients))
    result = host.run(cmd)
    assert result.rc == 0, result.stdout + result.stderr


def mid(label):
    return "<%s.%s.%s@example.com>" % (label, TAG, uuid.uuid4().hex[:8])


def queue(host):
    """postqueue -j: one dict per queued message."""
    return [json.loads(line) for line in host.check_output("postqueue -j").splitlines() if line.strip()]


def flush(host):
    host.check_output("postqueue -f")


def bounced_in_log(host, since):
    """Mail log lines since ``since`` of mail bounced because of the relay's answer (local bounces excluded)."""
    return host.run("journalctl --quiet --no-pager -o cat --since @%d SYSLOG_FACILITY=2 "
                    "| grep 'status=bounced' | grep 'relay=relay.smarthost.test' || true" % since).stdout.strip()


def delivery_log(host, since, recipient):
    """Postfix's delivery attempts for ``recipient`` since ``since`` (mail log): dicts with dsn, status, text."""
    out = host.run("journalctl --quiet --no-pager -o cat --since @%d SYSLOG_FACILITY=2 | grep -F %s || true"
                   % (since, shlex.quote("to=<%s>" % recipient))).stdout
    found = []
    for line in out.splitlines():
        match = re.search(r" dsn=(\S+), status=(\w+) \((.*)\)$", line)
        if match:
            found.append({"dsn": match.group(1), "status": match.group(2), "text": match.group(3)})
    return found


def wait_for_status(host, since, recipient, status, timeout=90):
    """Wait until Postfix logged ``status`` (deferred, sent, bounced) for ``recipient``; the attempts so far."""
    return wait_for(lambda: [a for a in delivery_log(host, since, recipient) if a["status"] == status] or None,
                    timeout=timeout, what="status=%s for %s" % (status, recipient))


def postfix_status_text(lines, stage="RCPT TO"):
    """The delivery status Postfix hands smtp_delivery_status_filter for a relay reply of ``lines``: the
    enhanced status code of the reply, then its text with every line joined by a space."""
    status = re.match(r"^[2-5][0-9][0-9][ -]([2-5]\.[0-9]{1,3}\.[0-9]{1,3})", lines[-1]).group(1)
    return "%s host relay.smarthost.test[10.89.0.2] said: %s (in reply to %s command)" % (
        status, " ".join(lines), stage)


# The relay's replies that must be deferred, laid out as Google lays them out: wrapped over several lines, each
# with the code and enhanced status code, the distinctive words on any line (split over two, too), a session
# token and "- gsmtp" on the last. (case, fault stage, reply lines)
MULTI_LINE_REPLIES = [
    ("user-daily", "rcpt", [
        "550-5.4.5 Daily SMTP relay limit exceeded for user. For more information on",
        "550-5.4.5 the relay's sending limits ask your administrator or read",
        "550 5.4.5 https://support.google.com/a/answer/166852 x12-20020a05.37 - gsmtp"]),
    ("customer-daily-first-line", "end_of_data", [
        "550-5.7.1 Daily SMTP relay limit exceeded for customer. For more information on",
        "550-5.7.1 the relay's sending limits ask your administrator or read",
        "550 5.7.1 https://support.google.com/a/answer/166852 x12-20020a05.37 - gsmtp"]),
    ("customer-daily-split", "rcpt", [
        "550-5.7.1 The relay stopped this customer's mail: Daily SMTP relay limit exceeded for",
        "550-5.7.1 customer. Ask your administrator;",
        "550 5.7.1 https://support.google.com/a/answer/166852 q7-20020a05.11 - gsmtp"]),
    ("customer-daily-last-line", "rcpt", [
        "550-5.7.1 Ask your administrator about the relay's sending limits.",
        "550 5.7.1 Daily SMTP relay limit exceeded for customer. k3-20020a05.9 - gsmtp"]),
    ("relay-denied", "rcpt", [
        "550-5.7.0 Mail relay denied [198.51.100.7]. Invalid credentials for relay for one of",
        "550-5.7.0 the domains in: example.com (as obtained from HELO and MAIL FROM).",
        "550 5.7.0 https://support.google.com/a/answer/6140680 x12-20020a05.37 - gsmtp"]),
    ("invalid-credentials", "mail", [
        "550-5.7.1 Invalid credentials for relay [198.51.100.7]. The sender's domain is not",
        "550-5.7.1 one of the customer's domains.",
        "550 5.7.1 https://support.google.com/a/answer/6140680 x12-20020a05.37 - gsmtp"]),
    ("sending-denied", "mail", [
        "550-5.7.0 Mail Sending denied. The sender is not a registered user of the",
        "550 5.7.0 customer. https://support.google.com/a/answer/6140680 x12-20020a05.37 - gsmtp"]),
    ("user-daily-one-line", "rcpt", [
        "550 5.4.5 Daily SMTP relay limit exceeded for user. x12-20020a05.37 - gsmtp"]),
]


@pytest.fixture(scope="module")
def relay():
    return relay_record.relay()


@pytest.fixture(scope="module")
def subnet():
    return scenario_subnet()


def phase_25(subnet):
    """Port 25, opportunistic STARTTLS, IP allowlist, HELO in the customer's domain, no SMTP AUTH."""
    return {"relay_tls": "opportunistic", "relay_port": 25, "relay_auth": False, "relay_auth_username": "",
            "relay_auth_password": "", "relay_allowlist": [subnet], "relay_tls_ca_file": ""}


MAIN_FILES = ("/etc/postfix/main.cf", "/etc/postfix/master.cf")


# --- 587 + STARTTLS + AUTH (the converge), idempotence is molecule's own step --------------------------------

@pytest.mark.parametrize("host", MTAS, ids=lambda h: h.backend.name)
def test_converged_settings(host, relay):
    conf = host.check_output("postconf -h relayhost smtp_tls_security_level smtp_tls_wrappermode "
                             "smtp_sasl_auth_enable smtp_tls_CAfile smtp_helo_name inet_interfaces").splitlines()
    assert conf == ["[relay.smarthost.test]:587", "secure", "no", "yes",
                    "/usr/local/share/ca-certificates/smarthost-test-ca.crt", HELO, "loopback-only"]
    # The SASL key is the relayhost exactly; the map and its database are root-only.
    assert host.check_output("postmap -q '[relay.smarthost.test]:587' hash:/etc/postfix/smarthost_sasl_passwd") \
        == "%s:%s" % (USER, PASSWORD)
    for path in ("/etc/postfix/smarthost_sasl_passwd", "/etc/postfix/smarthost_sasl_passwd.db"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600), path
    assert host.check_output("postconf -M relay-null/unix tlsproxy/unix").count("\n") == 1
    assert host.check_output("postconf -h relay-null_destination_recipient_limit") == "1"
    # The relay's replies are filtered as whole delivery statuses, not line by line; with any_address the relay
    # takes local accounts' senders as they are, so nothing rewrites them.
    assert host.check_output("postconf -h smtp_delivery_status_filter") == "regexp:" + STATUS_FILTER
    main = host.check_output("postconf -n")
    assert "smtp_reply_filter" not in main and "smtp_generic_maps" not in main
    # A backup of main.cf was kept, and the converge's own test delivery reached the relay.
    assert host.run("ls /etc/postfix/main.cf.*~").rc == 0
    client_ip = host.interface("eth0").addresses[0]
    tests = [r for r in relay_record.transactions(relay, client_ip=client_ip, verdict="accepted")
             if (r.get("message_id") or "").startswith("<smarthost-relay-test.")]
    assert tests and tests[0]["recipients"] == ["postfix-test@example.net"]


@pytest.mark.parametrize("host", MTAS, ids=lambda h: h.backend.name)
def test_587_starttls_auth_verified(host, relay):
    message_id = mid("587")
    send(host, USER, ["someone@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["port"] == 587 and record["tls"] is True and record["tls_mode"] == "starttls"
    assert record["auth_user"] == USER and record["helo"] == HELO
    assert record["sender"] == USER and record["recipients"] == ["someone@example.net"]


def test_wrong_value_fails_before_the_host_is_touched():
    before = sha(DEB12, *MAIN_FILES)
    result = run_role({"postfix_tls_loglevel": 9})
    assert result.returncode != 0
    assert "postfix_tls_loglevel" in text(result), text(result)[-2000:]
    assert sha(DEB12, *MAIN_FILES) == before


def test_check_mode_reports_changes_and_changes_nothing():
    files = MAIN_FILES + ("/etc/postfix/smarthost_sasl_passwd",)
    before = sha(DEB12, *files)
    result = run_role({"relay_auth_password": NEW_PASSWORD, "relay_helo_name": "mail2.example.com"},
                      check=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result)["changed"] >= 1  # one task, postfix_apply, reports main.cf and the password map
    assert "+smtp_helo_name = mail2.example.com" in result.stdout  # diff mode shows main.cf
    assert sha(DEB12, *files) == before
    assert NEW_PASSWORD not in result.stdout + result.stderr


# --- connection reuse --------------------------------------------------------------------------------------

def test_200_messages_reuse_a_handful_of_connections(relay):
    tag = "bulk-" + TAG
    script = ("for i in $(seq 1 200); do printf 'Subject: bulk %%s\\nMessage-ID: <%s.%%s@example.com>\\n\\nx\\n' "
              "$i $i | /usr/sbin/sendmail -i -f %s bulk$i@example.net; done" % (tag, USER))
    start = time.monotonic()
    DEB12.check_output(script)

    def all_arrived():
        found = [r for r in relay_record.transactions(relay, verdict="accepted")
                 if (r.get("message_id") or "").startswith("<%s." % tag)]
        return found if len(found) >= 200 else None

    found = wait_for(all_arrived, timeout=180, what="200 messages at the relay")
    connections = {r["connection"] for r in found}
    RESULTS["bulk"] = {"messages": len(found), "connections": len(connections),
                       "max_per_connection": max(r["seq"] for r in found),
                       "seconds": round(time.monotonic() - start, 1)}
    assert all(r["tls"] and r["auth_user"] == USER for r in found)
    assert len(connections) <= 25, RESULTS["bulk"]
    assert RESULTS["bulk"]["max_per_connection"] >= 5, RESULTS["bulk"]


# --- limit replies and refusals: multi-line, deferred, never bounced ---------------------------------------

@pytest.mark.parametrize("host", MTAS, ids=lambda h: h.backend.name)
def test_delivery_status_filter_defers_every_multi_line_layout(host):
    """postmap -q with the delivery status Postfix builds from each multi-line reply: a 4.X.X status, the text
    kept; other 5xx replies (a wrong password, an unknown user) are left alone."""
    version = host.check_output("postconf -h mail_version")
    for case, stage, lines in MULTI_LINE_REPLIES:
        query = postfix_status_text(lines, "end of DATA" if stage == "end_of_data" else "RCPT TO")
        result = host.check_output("postmap -q %s regexp:%s" % (shlex.quote(query), STATUS_FILTER))
        assert result == "4" + query[1:], (version, case, result)
    for lines in (["535-5.7.8 Username and Password not accepted. For more information, go to",
                   "535 5.7.8 https://support.google.com/mail/?p=BadCredentials x12 - gsmtp"],
                  ["550-5.1.1 The email account that you tried to reach does not exist. Daily SMTP relay",
                   "550 5.1.1 limit exceeded for customer x12 - gsmtp"]):
        assert host.run("postmap -q %s regexp:%s" % (shlex.quote(postfix_status_text(lines)), STATUS_FILTER)).rc == 1
    RESULTS.setdefault("status_filter", {})[host.backend.name] = {"postfix": version,
                                                                  "layouts": len(MULTI_LINE_REPLIES)}


def test_multi_line_limit_replies_and_refusals_are_deferred_never_bounced(relay):
    """Each reply layout once, as the relay's answer at its stage: Postfix defers (dsn=4.X.X), nothing bounces,
    and everything arrives once the relay takes mail again."""
    since = int(time.time()) - 1
    cases = []
    for case, stage, lines in MULTI_LINE_REPLIES:
        standin(faults=[{"stage": stage, "reply": lines, "times": 1}])
        recipient = "%s-%s@example.net" % (case, TAG)
        message_id = mid(case)
        send(DEB12, USER, [recipient], message_id)
        [attempt] = wait_for_status(DEB12, since, recipient, "deferred")[:1]
        assert attempt["dsn"] == "4" + lines[-1][5:9], (case, attempt)
        assert "said: " + lines[0] in attempt["text"], (case, attempt)  # the relay's own words, first line on
        refused = wait_for(lambda: [r for r in relay_record.transactions(relay)
                                    if r.get("time", 0) >= since and (r.get("reply_lines") or [])[-1:] == lines[-1:]]
                           or None, timeout=30, what="the relay's record of %s" % case)
        assert len(refused[0]["reply_lines"]) == len(lines)  # sent as those lines, on the wire
        cases.append({"case": case, "stage": stage, "lines": len(lines), "dsn": attempt["dsn"],
                      "message_id": message_id, "recipient": recipient})
    standin(faults=[])
    flush(DEB12)
    for case in cases:
        arrived(relay, case["message_id"])
    wait_for(lambda: not queue(DEB12), timeout=60, what="an empty queue")
    bounced = bounced_in_log(DEB12, since)
    assert not bounced, bounced
    # No non-delivery report went out either.
    assert not [r for r in relay_record.transactions(relay, sender="") if r.get("time", 0) >= since]
    RESULTS["multi_line_replies"] = {
        "cases": [{k: v for k, v in case.items() if k not in ("message_id", "recipient")} for case in cases],
        "deferred": len(cases), "bounced": len(bounced.splitlines()), "delivered_after_recovery": len(cases)}


# --- certificate verification ------------------------------------------------------------------------------

def test_untrusted_certificate_gets_no_mail(relay):
    good = standin()["tls"]
    # The impostor comes with a relay restart (a new restart_epoch, in nanoseconds: beyond any epoch counter of the
    # other tests): when standin() returns, the stand-in has closed every connection Postfix cached to the genuine
    # relay, so the message can only go over a new one.
    standin(tls={"cert": "/etc/relay-standin/untrusted.pem", "key": "/etc/relay-standin/untrusted.key"},
            restart_epoch=time.time_ns())
    message_id = mid("impostor")
    send(DEB12, USER, ["someone@example.net"], message_id)

    def refused():
        held = [m for m in queue(DEB12) if m["recipients"][0].get("delay_reason")]
        return held or None

    held = wait_for(refused, timeout=90, what="the message deferred by certificate verification")
    reason = held[0]["recipients"][0]["delay_reason"]
    assert "certificate" in reason.lower() or "tls" in reason.lower(), reason
    assert not relay_record.transactions(relay, message_id=message_id)
    standin(tls=good)
    flush(DEB12)
    arrived(relay, message_id)


# --- 465 implicit TLS on every MTA -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def implicit_tls(subnet):
    result = run_role({"relay_tls": "implicit", "relay_port": 465, "relay_auth": False, "relay_auth_username": "",
                       "relay_auth_password": "", "relay_allowlist": [subnet], "relay_tls_ca_file": ""},
                      limit="mta")
    assert result.returncode == 0, result.stdout[-4000:]
    return result


@pytest.mark.parametrize("host", MTAS, ids=lambda h: h.backend.name)
def test_465_implicit_tls(host, relay, implicit_tls):
    assert recap(implicit_tls, host.backend.name)["changed"] > 0
    conf = host.check_output("postconf -h relayhost smtp_tls_wrappermode smtp_tls_security_level "
                             "smtp_sasl_auth_enable").splitlines()
    assert conf == ["[relay.smarthost.test]:465", "yes", "secure", "no"]
    assert not host.file("/etc/postfix/smarthost_sasl_passwd").exists
    message_id = mid("465")
    send(host, USER, ["someone@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["port"] == 465 and record["tls_mode"] == "implicit" and record["auth_user"] is None
    assert record["helo"] == HELO


# --- 25, IP allowlist, HELO, foreign sender, bounces, null sender ------------------------------------------

def test_25_allowlist_helo_foreign_sender_and_bounce(relay, subnet):
    result = run_role(phase_25(subnet))
    assert result.returncode == 0, result.stdout[-4000:]
    message_id = mid("foreign")
    send(DEB12, "someone@foreign.test", ["friend@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["port"] == 25 and record["helo"] == HELO and record["auth_user"] is None
    assert record["sender"] == "someone@foreign.test" and record["sender_rewritten"] == "postmaster@example.com"
    # A real bounce: local delivery to an unknown user makes Postfix send a non-delivery report (null sender).
    since = time.time() - 1
    send(DEB12, "someone@foreign.test", ["nosuchuser@localhost"], mid("bounce-me"))

    def bounce():
        found = [r for r in relay_record.transactions(relay, sender="", verdict="accepted")
                 if r["recipients"] == ["someone@foreign.test"] and r.get("time", 0) >= since]
        return found or None

    [ndr] = wait_for(bounce, timeout=90, what="the bounce at the relay")
    assert ndr["port"] == 25 and ndr["helo"] == HELO


def test_null_sender_two_recipients_two_transactions(relay):
    message_id = mid("null")
    send(DEB12, "", ["one@example.net", "two@example.net"], message_id)
    found = arrived(relay, message_id, count=2)
    assert len(found) == 2
    assert all(r["sender"] == "" and len(r["recipients"]) == 1 for r in found)
    assert sorted(r["recipients"][0] for r in found) == ["one@example.net", "two@example.net"]
    assert not relay_record.transactions(relay, message_id=message_id, verdict="refused")


def test_wrong_helo_is_refused_and_mail_stays_queued(relay):
    since = int(time.time()) - 1
    DEB12.check_output("postconf -e smtp_helo_name=mta.wrong.test && postfix reload")
    ids = [mid("wrong-helo"), mid("wrong-helo-null")]
    send(DEB12, "someone@foreign.test", ["friend@example.net"], ids[0])
    send(DEB12, "", ["friend@example.net"], ids[1])
    refused = wait_for(lambda: relay_record.transactions(relay, helo="mta.wrong.test", verdict="refused")
                       if len(relay_record.transactions(relay, helo="mta.wrong.test", verdict="refused")) >= 2
                       else None, timeout=90, what="two refusals at the relay")
    assert {r["code"] for r in refused} == {550}
    for recipient in ("friend@example.net",):
        attempts = wait_for(lambda: [a for a in delivery_log(DEB12, since, recipient) if a["status"] == "deferred"]
                            if len([a for a in delivery_log(DEB12, since, recipient)
                                    if a["status"] == "deferred"]) >= 2 else None,
                            timeout=60, what="both messages deferred")
        assert {a["dsn"] for a in attempts} == {"4.7.1"}, attempts
    assert len([m for m in queue(DEB12) if m["recipients"][0].get("delay_reason")]) >= 2
    assert not bounced_in_log(DEB12, since)
    DEB12.check_output("postconf -e smtp_helo_name=%s && postfix reload" % HELO)
    flush(DEB12)
    for message_id in ids:
        arrived(relay, message_id)


# --- upgrade: the per-line smtp_reply_filter of earlier versions goes ----------------------------------------

def test_upgrade_removes_the_old_reply_filter_and_stays_idempotent(subnet):
    """A host converged by an earlier version of the role (smtp_reply_filter and its table, with a backup of the
    table): the next run releases the setting and removes the files; the run after that changes nothing."""
    old_rules = "/^(550[ -]5\\.4\\.5 .*)$/ 450 4.4.5 $1\n"
    DEB12.check_output("printf %%s %s > %s && cp %s %s.1234.2026-01-01@00:00:00~ && postconf -e smtp_reply_filter=regexp:%s"
                       " && postfix reload" % (shlex.quote(old_rules), OLD_REPLY_FILTER, OLD_REPLY_FILTER,
                                               OLD_REPLY_FILTER, OLD_REPLY_FILTER))
    first = run_role(phase_25(subnet))
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap(first)["changed"] > 0
    assert "smtp_reply_filter" not in DEB12.check_output("postconf -n")
    assert not DEB12.run("ls %s*" % OLD_REPLY_FILTER).stdout.strip()
    assert DEB12.check_output("postconf -h smtp_delivery_status_filter") == "regexp:" + STATUS_FILTER
    second = run_role(phase_25(subnet))
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second)["changed"] == 0, second.stdout[-4000:]
    RESULTS["upgrade"] = {"first_run_changed": recap(first)["changed"], "second_run_changed": recap(second)["changed"]}


# --- rollback ----------------------------------------------------------------------------------------------

def test_rollback_when_postfix_check_fails_keeps_config_and_queue(relay, subnet):
    standin(faults=[{"action": "unlisten", "ports": [25]}])
    message_id = mid("queued")
    send(DEB12, USER, ["waiting@example.net"], message_id)
    queued = wait_for(lambda: [m for m in queue(DEB12) if m["recipients"][0].get("delay_reason")] or None,
                      timeout=60, what="a message deferred while the relay is away")
    before = sha(DEB12, *MAIN_FILES)
    result = run_role(dict(phase_25(subnet), postfix_inet_interfaces="bogus.invalid"))
    assert result.returncode != 0
    assert "(rolled back)" in text(result) and "postfix check" in text(result), text(result)[-3000:]
    assert "bogus.invalid" in text(result)  # Postfix's own complaint, from the log
    assert sha(DEB12, *MAIN_FILES) == before
    assert DEB12.check_output("postconf -h inet_interfaces") == "loopback-only"
    assert DEB12.run("postfix status").rc == 0
    assert {m["queue_id"] for m in queue(DEB12)} >= {m["queue_id"] for m in queued}
    standin(faults=[])
    flush(DEB12)
    arrived(relay, message_id)


def test_rollback_when_the_relay_refuses_the_test_delivery(relay):
    before = sha(DEB12, *MAIN_FILES)
    result = run_role({"relay_auth_password": WRONG_PASSWORD}, verbosity="-vvv")  # converge.yml: 587 + AUTH
    assert result.returncode != 0
    out = text(result)
    assert "(rolled back)" in out and "test message" in out, out[-3000:]
    assert "535" in out or "authentication failed" in out.lower(), out[-3000:]
    # the doctor's explanation of the failed test delivery: the class and the fix naming the variables
    assert "relay doctor: bad_credentials" in out and "relay_auth_password" in out, out[-3000:]
    assert WRONG_PASSWORD not in result.stdout + result.stderr
    assert sha(DEB12, *MAIN_FILES) == before
    assert not DEB12.file("/etc/postfix/smarthost_sasl_passwd").exists
    assert not DEB12.run("ls /etc/postfix/smarthost_sasl_passwd*").stdout.strip()
    # The previous configuration (25 + HELO) is live, and the test message did not stay behind.
    assert not queue(DEB12)
    message_id = mid("after-rollback")
    send(DEB12, USER, ["someone@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["port"] == 25 and record["auth_user"] is None


# --- local accounts' mail (root, cron, daemons) -----------------------------------------------------------

def send_as_local_account(host, user, message_id, recipient, envelope=None):
    """Mail as a local account sends it: ``sendmail -t`` as ``user`` without a From header (cron's way: Postfix
    adds From and the envelope sender user@$myorigin), or with the daemon's own envelope/From address."""
    headers = "To: %s\nSubject: local %s\nMessage-ID: %s\n" % (recipient, user, message_id)
    if envelope:
        headers = "From: %s\n" % envelope + headers
    body = headers + "\noutput of a job run by %s\n" % user
    sendmail = "/usr/sbin/sendmail -t -i" + (" -f %s" % shlex.quote(envelope) if envelope else "")
    run_as = "" if user == "root" else "setpriv --reuid=%s --regid=%s --init-groups " % (user, user)
    result = host.run("printf %%s %s | %s%s" % (shlex.quote(body), run_as, sendmail))
    assert result.rc == 0, result.stdout + result.stderr


def relayed_headers(relay, record):
    """The header section of a message as the relay received it (the stand-in's mail_dir)."""
    text = relay.check_output("cat %s/%s.%d.eml" % (MAIL_DIR, record["connection"], record["seq"]))
    return text.replace("\r\n", "\n").split("\n\n", 1)[0]


def local_account_mail(relay, label):
    """root's cron-style mail, a daemon's (www-data, plain and with its own host.localdomain address), a
    customer-domain sender and a null-sender message; return what the relay recorded for each."""
    sent = {
        "root": ("root", None),
        "www-data": ("www-data", None),
        "www-data-own-address": ("www-data", "www-data@host.localdomain"),
    }
    ids = {}
    for name, (user, envelope) in sent.items():
        ids[name] = mid("%s-%s" % (label, name))
        send_as_local_account(DEB12, user, ids[name], "ops@example.net", envelope)
    ids["customer"] = mid("%s-customer" % label)
    send(DEB12, USER, ["ops@example.net"], ids["customer"])
    ids["null"] = mid("%s-null" % label)
    send(DEB12, "", ["ops@example.net"], ids["null"])
    return {name: arrived(relay, message_id)[0] for name, message_id in ids.items()}


@pytest.fixture(scope="module")
def local_sender_phase(subnet):
    """25 + HELO in the customer's domain, as the rollback tests left it, now with a relay that takes only the
    customer's domains; the stand-in keeps each message so that its headers can be read."""
    standin(allowed_senders="domain_addresses", mail_dir=MAIL_DIR)
    yield dict(phase_25(subnet), relay_allowed_senders="domain_addresses", relay_foreign_senders=False)
    standin(allowed_senders="any_address", mail_dir=None)


def test_local_accounts_mail_is_masqueraded_to_the_customer_domain(relay, local_sender_phase):
    result = run_role(local_sender_phase)
    assert result.returncode == 0, result.stdout[-4000:]
    assert DEB12.check_output("postconf -h smtp_generic_maps") == "regexp:" + LOCAL_SENDERS_MAP
    origin = DEB12.check_output("postconf -xh myorigin")
    origin = DEB12.check_output("head -n 1 %s" % origin) if origin.startswith("/") else origin
    found = local_account_mail(relay, "masq")
    assert {name: r["sender"] for name, r in found.items()} == {
        "root": "root@example.com", "www-data": "www-data@example.com",
        "www-data-own-address": "www-data@example.com", "customer": USER, "null": ""}
    assert all(r["sender_rewritten"] in (None, r["sender"]) for name, r in found.items() if name != "null")
    # Header addresses leave masqueraded too (cron's From, added by Postfix as root@$myorigin).
    assert re.search(r"(?m)^From: .*root@example\.com", relayed_headers(relay, found["root"]))
    assert "@" + origin not in relayed_headers(relay, found["root"])
    RESULTS["local_senders_domain_addresses"] = {"myorigin": origin,
                                                 "senders": {n: r["sender"] for n, r in found.items()}}


def test_registered_users_without_local_sender_warns_before_the_host_is_touched(local_sender_phase):
    before = sha(DEB12, *(MAIN_FILES + (LOCAL_SENDERS_MAP,)))
    result = run_role(dict(local_sender_phase, relay_allowed_senders="registered_users"), check=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "relay_local_sender [local-sender-missing]" in text(result), text(result)[-3000:]
    assert sha(DEB12, *(MAIN_FILES + (LOCAL_SENDERS_MAP,))) == before


def test_local_accounts_mail_is_sent_as_the_registered_local_sender(relay, local_sender_phase):
    standin(allowed_senders="registered_users")
    result = run_role(dict(local_sender_phase, relay_allowed_senders="registered_users",
                           relay_local_sender=LOCAL_SENDER))
    assert result.returncode == 0, result.stdout[-4000:]
    assert "local-sender-missing" not in text(result)
    found = local_account_mail(relay, "registered")
    assert {name: r["sender"] for name, r in found.items()} == {
        "root": LOCAL_SENDER, "www-data": LOCAL_SENDER, "www-data-own-address": LOCAL_SENDER,
        "customer": USER, "null": ""}
    RESULTS["local_senders_registered_users"] = {n: r["sender"] for n, r in found.items()}


def test_rewrite_off_leaves_local_senders_alone(relay, local_sender_phase):
    """postfix_rewrite_local_senders: false takes the table out of main.cf; root's mail then leaves as
    root@<host>, which the relay refuses (and Postfix defers)."""
    since = int(time.time()) - 1
    standin(allowed_senders="domain_addresses")
    result = run_role(dict(local_sender_phase, postfix_rewrite_local_senders=False))
    assert result.returncode == 0, result.stdout[-4000:]
    assert "smtp_generic_maps" not in DEB12.check_output("postconf -n")
    recipient = "unmasked-%s@example.net" % TAG
    send_as_local_account(DEB12, "root", mid("unmasked"), recipient)
    [attempt] = wait_for_status(DEB12, since, recipient, "deferred")[:1]
    assert attempt["dsn"].startswith("4."), attempt
    assert not bounced_in_log(DEB12, since)
    # Back on: the deferred message leaves masqueraded.
    result = run_role(local_sender_phase)
    assert result.returncode == 0, result.stdout[-4000:]
    flush(DEB12)
    wait_for_status(DEB12, since, recipient, "sent")
    wait_for(lambda: not queue(DEB12), timeout=60, what="an empty queue")


# --- secrets -----------------------------------------------------------------------------------------------

def role_runs_in_log(log):
    """The lines of the scenario's ansible log written by playbook runs of converge.yml (converge, idempotence,
    the runs above). Other writers of the log, such as testinfra's ansible-inventory dump of the stand-in's own
    test users, are not runs of the role and are left out."""
    by_pid, current = {}, None
    for line in log.splitlines():
        if " p=" in line and " n=ansible " in line:
            current = line.split(" p=", 1)[1].split()[0]
        by_pid.setdefault(current, []).append(line)
    return "\n".join("\n".join(lines) for lines in by_pid.values() if any("PLAY [Converge]" in l for l in lines))


def test_no_password_in_any_ansible_output():
    log = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.log"
    runs = role_runs_in_log(log.read_text(errors="replace") if log.exists() else "")
    assert runs.count("PLAY [Converge]") >= 2 + len(OUTPUTS), "converge, idempotence and this module's runs"
    everything = runs + "".join(OUTPUTS)
    for secret in (PASSWORD, NEW_PASSWORD, WRONG_PASSWORD):
        assert secret not in everything
    RESULTS["log_bytes_checked"] = len(everything)
    out = Path(os.environ.get("SMARTHOST_ROOT", SCENARIO.parents[1])) / ".cache" / "logs" / "postfix-verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=2))
