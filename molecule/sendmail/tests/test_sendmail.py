# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.sendmail with real Sendmail, proven from the relay stand-in's record.

The tests run in file order and build on each other. The converge left "auth" on 587 + STARTTLS + SMTP AUTH
(certificate verified against the test CA file) and "helo" on port 25 with the IP allowlist and a HELO name in
the customer's domain; later tests re-run the role (ansible-playbook converge.yml -e ...) where a case needs it.
Measured numbers go to .cache/logs/sendmail-verify.json.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import relay_record
from relay_record import arrived, sha, wait_for

SCENARIO = Path(__file__).resolve().parents[1]
RELAY_CONTAINER = "srt-sendmail-relay"
USER = "mta@example.com"
PASSWORD = "sendmail-Relay-pw-41d7"  # the stand-in's test user (molecule.yml)
# Unique per run, so that finding one in a log can only mean this run leaked it.
NEW_PASSWORD = "Check-mode-pw-" + uuid.uuid4().hex[:10]
WRONG_PASSWORD = "Wrong-pw-" + uuid.uuid4().hex[:10]
OTHER_USER, OTHER_PASSWORD = "cron@example.com", "sendmail-Cron-unused-7e3f"  # the stand-in's second user (molecule.yml)
HELO = "mail.example.com"
TAG = uuid.uuid4().hex[:8]
CF_FILES = ("/etc/mail/sendmail.cf", "/etc/mail/sendmail.mc", "/etc/mail/smarthost-relay.m4")
GENERICS = "/etc/mail/smarthost-relay-genericstable"
MAIL_DIR = "/var/lib/relay-standin/mail"  # the stand-in keeps accepted messages here (molecule.yml)
LOCAL_SENDER = "cron@example.com"  # a registered user of the stand-in (molecule.yml), never logged in as
RESULTS = {}
HELD = []  # Message-ID of the mail held back by the impostor certificate

AUTH = relay_record.group_hosts("auth")[0]
HELO_MTA = relay_record.group_hosts("helo")[0]
MTAS = [AUTH, HELO_MTA]


# --- helpers -------------------------------------------------------------------------------------------------

def standin(**changes):
    """Change the stand-in's config; return the new config."""
    return relay_record.standin(RELAY_CONTAINER, **changes)


def run_playbook(playbook, extra=None, limit="auth", check=False, verbosity="-v"):
    """ansible-playbook with extra vars, as a user would re-run the role; logged to the scenario's log."""
    result = relay_record.run_playbook(SCENARIO / playbook, "--diff", "--limit", limit, verbosity,
                                       *(["--check"] if check else []), extra_vars=extra or {})
    RESULTS.setdefault("role_runs", []).append({"playbook": playbook, "vars": sorted(extra or {}), "check": check,
                                                "rc": result.returncode, "seconds": result.seconds})
    return result


def run_role(extra, **kwargs):
    return run_playbook("converge.yml", extra, **kwargs)


def recap(result, host=AUTH.backend.name):
    """The PLAY RECAP counters of one host."""
    for line in result.stdout.splitlines():
        if line.startswith(host + " ") and "ok=" in line:
            return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}
    raise AssertionError("no recap for %s:\n%s" % (host, result.stdout[-3000:]))


def mid(label):
    return "<%s.%s.%s@example.com>" % (label, TAG, uuid.uuid4().hex[:8])


def send(host, sender, recipients, message_id, subject="test"):
    """Submit one message with Sendmail's sendmail command (through the MSP) inside the MTA container.
    sender None: no -f, the local user root sends."""
    body = "To: %s\nSubject: %s\nMessage-ID: %s\n\nsmarthost.relay sendmail scenario\n" % (
        ", ".join(recipients), subject, message_id)
    sender_args = "" if sender is None else "-f %s" % shlex.quote(sender or "<>")
    cmd = "printf %%s %s | /usr/sbin/sendmail -i %s -- %s" % (
        shlex.quote(body), sender_args, " ".join(shlex.quote(r) for r in recipients))
    result = host.run(cmd)
    assert result.rc == 0, result.stdout + result.stderr


def submit(host, message_id, user="root", args=""):
    """A message as a local account sends it: no From header and no -f (unless ``args`` has one), recipients
    from the To: header (sendmail -t, as cron does), run as ``user``."""
    body = "To: ops@example.net\nSubject: local sender\nMessage-ID: %s\n\nsmarthost.relay local sender\n" % message_id
    cmd = "printf %%s %s | /usr/sbin/sendmail -i -t %s" % (shlex.quote(body), args)
    if user != "root":
        cmd = "su -s /bin/sh -c %s %s" % (shlex.quote(cmd), user)
    result = host.run(cmd)
    assert result.rc == 0, result.stdout + result.stderr


def header_from(relay, record):
    """The From header of a message as the relay received it."""
    text = relay.check_output("cat %s/%s.%d.eml" % (MAIL_DIR, record["connection"], record["seq"]))
    match = re.search(r"^From:[ \t]*(.*)$", text, re.MULTILINE | re.IGNORECASE)
    return match.group(1).strip() if match else None


def local_senders_arrive(relay, expected):
    """Mail from local accounts on "auth" (root's cron-style mail, a daemon's, a daemon's with -f user@<this host>,
    root's straight to the daemon with a bare sender) and a null-sender message: each must arrive accepted, with
    the envelope sender ``expected(local user)`` (and that address in the From header), the null sender as it was,
    and no transaction of "auth" refused meanwhile."""
    fqdn = AUTH.check_output("hostname -f")
    cases = {"root, cron-style (sendmail -t)": ("root", "", "root"),
             "www-data (sendmail -t)": ("www-data", "", "www-data"),
             "a daemon with -f www-data@<host>": ("root", "-f www-data@%s" % fqdn, "www-data"),
             "root straight to the daemon (-Am, bare sender)": ("root", "-Am -odq", "root")}
    since = time.time() - 1
    ids = {label: mid("local") for label in cases}
    for label, (user, args, dummy) in cases.items():
        submit(AUTH, ids[label], user, args)
    null_id = mid("local-null")
    send(AUTH, "", ["ops@example.net"], null_id)
    seen = {}
    for label, (dummy, dummy2, local) in cases.items():
        [record] = arrived(relay, ids[label])
        seen[label] = {"sender": record["sender"], "header_from": header_from(relay, record),
                       "sender_rewritten_by_relay": record.get("sender_rewritten")}
        assert record["sender"] == expected(local), (label, seen[label])
        assert expected(local) in (seen[label]["header_from"] or ""), (label, seen[label])
    [null] = arrived(relay, null_id)
    assert null["sender"] == "" and null["recipients"] == ["ops@example.net"]
    seen["null sender"] = {"sender": null["sender"]}
    refused = [r for r in relay_record.transactions(relay, client_ip=client_ip(AUTH))
               if r.get("time", 0) >= since and r.get("verdict") != "accepted"]
    assert not refused, refused
    return seen


QUEUE_LINE = re.compile(r"^([0-9A-Za-z]{14})[*X-]?\s")


def queue(host):
    """The MTA queue: {queue id: text of its mailq entry}."""
    entries, current = {}, None
    for line in host.run("mailq -Ac 2>/dev/null; mailq 2>/dev/null").stdout.splitlines():
        match = QUEUE_LINE.match(line)
        if match:
            current = match.group(1)
            entries[current] = line
        elif current and line.startswith((" ", "\t")):
            entries[current] += "\n" + line.strip()
        else:
            current = None
    return entries


def live_authinfo(host):
    """The name the live sendmail.cf reads the SMTP AUTH map under (its Kauthinfo line); "" without one."""
    return host.check_output("awk '$1 == \"Kauthinfo\" {print $NF}' /etc/mail/sendmail.cf")


def authinfo_maps(host):
    """The SMTP AUTH map files on the host, whichever name they were built under."""
    return host.check_output("ls /etc/mail/smarthost-relay/ | grep '^authinfo.*\\.db$' || true").split()


def authinfo_map(host):
    """The live map's name and a digest of its entries as Sendmail reads them (the .db file is not byte-stable)."""
    name = live_authinfo(host)
    return name, host.check_output("makemap -u hash %s | sort | sha256sum" % shlex.quote(name))


def daemon_pid(host):
    pid = host.check_output("head -n 1 /run/sendmail/mta/sendmail.pid").strip()
    assert host.run("kill -0 %s" % pid).rc == 0
    return pid


def client_ip(host):
    return host.interface("eth0").addresses[0]


def connections(relay, **match):
    return [r for r in relay_record.read_record(relay)
            if r.get("kind") == "connection" and all(r.get(k) == v for k, v in match.items())]


@pytest.fixture(scope="module")
def relay():
    return relay_record.relay()


@pytest.fixture(scope="module", autouse=True)
def results_file():
    yield
    out = Path(os.environ.get("SMARTHOST_ROOT", SCENARIO.parents[1])) / ".cache" / "logs" / "sendmail-verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=2, sort_keys=True))


# --- the converged state ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", MTAS, ids=lambda h: h.backend.name)
def test_converged_sendmail_cf(host):
    cf = host.file("/etc/mail/sendmail.cf").content_string
    port = 587 if host is AUTH else 25
    assert "\nDS[relay.smarthost.test]\n" in cf
    assert re.search(r"^Mrelay,.*\n(\s.*\n)*?\s+A=TCP \$h %d$" % port, cf, re.MULTILINE), "relay mailer port"
    for option in ("O Timeout.datafinal=1h", "O ConnectionCacheSize=2", "O ConnectionCacheTimeout=5m",
                   "O DeliveryMode=q", "O MinQueueAge=10s",
                   "O DaemonPortOptions=Family=inet, Name=MTA-v4, Port=smtp, Addr=127.0.0.1"):
        assert "\n%s\n" % option in cf, option
    assert cf.count("O DaemonPortOptions=") == 1
    assert "r=1," in cf  # null-sender mail: one recipient per transaction
    assert host.check_output("grep -c 'smarthost-relay.m4' /etc/mail/sendmail.mc") == "1"
    assert host.run("ls /etc/mail/sendmail.cf.*~ /etc/mail/sendmail.mc.*~").rc == 0  # backups kept
    assert not host.file("/etc/mail/sendmail.cf.smarthost-new").exists
    if host is AUTH:
        assert "\nO CACertFile=/usr/local/share/ca-certificates/smarthost-test-ca.crt\n" in cf
        assert "SLocal_tls_server" in cf and "<VERIFY + CN:relay.smarthost.test>" in cf
        assert re.search(r"^Kauthinfo hash -o /etc/mail/smarthost-relay/authinfo-[abc]$", cf, re.MULTILINE)
        # only the map the live cf reads: none under the other name, none under the name of the role's first versions
        assert authinfo_maps(host) == [os.path.basename(live_authinfo(host)) + ".db"]
        assert "\nDMexample.com\n" in cf  # masquerading: relay_allowed_senders is domain_addresses
        assert "FEATURE(`masquerade_envelope')" in host.file("/etc/mail/smarthost-relay.m4").content_string
        assert "Kgenerics" not in cf and not host.file(GENERICS).exists  # no mapping to one address
        for path, mode in (("/etc/mail/smarthost-relay", 0o700), ("/etc/mail/smarthost-relay/authinfo", 0o600),
                           (live_authinfo(host) + ".db", 0o600)):
            f = host.file(path)
            assert (f.user, f.group, f.mode) == ("root", "root", mode), path
        assert host.run("ls /etc/mail/smarthost-relay/authinfo.*~").rc != 0  # no stale copy of the password
    else:
        assert "\nO HeloName=%s\n" % HELO in cf
        assert "Kauthinfo" not in cf and "SLocal_tls_server" not in cf and "SLocal_try_tls" in cf
        assert "\nDM\n" in cf or "DMexample" not in cf  # any_address: no masquerading
        assert not host.file("/etc/mail/smarthost-relay/authinfo").exists and authinfo_maps(host) == []


@pytest.mark.parametrize("host", MTAS, ids=lambda h: h.backend.name)
def test_not_an_open_relay(host, relay):
    listening = host.check_output("cat /proc/net/tcp | awk '$4 == \"0A\" {print $2}'").split()
    assert "0100007F:0019" in listening and not [a for a in listening if a.endswith(":0019") and a != "0100007F:0019"]
    # From another host, port 25 is closed: nothing answers there.
    probe = relay_record.smtp_session(relay, {"target": client_ip(host), "port": 25, "tls": "none",
                                              "helo": "relay.smarthost.test", "transactions": []})
    assert probe["connect"] != "ok" and probe["greeting"] is None, probe


@pytest.mark.parametrize("host", MTAS, ids=lambda h: h.backend.name)
def test_converge_test_delivery_arrived(host, relay):
    tests = [r for r in relay_record.transactions(relay, client_ip=client_ip(host), verdict="accepted")
             if (r.get("message_id") or "").startswith("<smarthost-relay-test.")]
    assert tests and tests[0]["recipients"] == ["sendmail-test@example.net"]


# --- 587 + STARTTLS + AUTH, masquerading ---------------------------------------------------------------------

def test_587_starttls_auth_verified(relay):
    message_id = mid("587")
    send(AUTH, USER, ["someone@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["port"] == 587 and record["tls"] is True and record["tls_mode"] == "starttls"
    assert record["auth_user"] == USER and record["helo"] == "mta-auth.corp.test"
    assert record["sender"] == USER and record["recipients"] == ["someone@example.net"]
    assert "AUTH=" in json.dumps(record["sender_params"])  # Sendmail adds AUTH=<> once authenticated


def test_local_senders_masqueraded_for_domain_addresses(relay):
    """relay_allowed_senders domain_addresses (the default; "auth" as converged): the stand-in refuses every sender
    outside example.com meanwhile, and local accounts' mail arrives as <user>@example.com."""
    standin(allowed_senders="domain_addresses")
    try:
        RESULTS["local_senders_domain_addresses"] = local_senders_arrive(relay, lambda local: local + "@example.com")
    finally:
        standin(allowed_senders="any_address")


# --- 25, IP allowlist, HELO, foreign sender, bounce, null sender --------------------------------------------

def test_25_allowlist_helo_foreign_sender_and_bounce(relay):
    message_id = mid("foreign")
    send(HELO_MTA, "someone@foreign.test", ["friend@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["port"] == 25 and record["helo"] == HELO and record["auth_user"] is None
    assert record["tls"] is False  # relay_tls: none, although the stand-in offers STARTTLS
    assert record["client_ip"] == client_ip(HELO_MTA)
    assert record["sender"] == "someone@foreign.test" and record["sender_rewritten"] == "postmaster@example.com"
    # A real bounce: mail to an unknown local user makes Sendmail send a DSN (null sender) to the sender.
    since = time.time() - 1
    HELO_MTA.run("printf 'Subject: bounce me\\n\\nx\\n' | /usr/sbin/sendmail -Am -odq -f someone@foreign.test "
                 "nosuchuser@localhost")  # exit status 67: "User unknown", and a DSN is queued

    def bounce():
        found = [r for r in relay_record.transactions(relay, sender="", verdict="accepted")
                 if r["recipients"] == ["someone@foreign.test"] and r.get("time", 0) >= since]
        return found or None

    [dsn] = wait_for(bounce, timeout=90, what="the bounce at the relay")
    assert dsn["port"] == 25 and dsn["helo"] == HELO and dsn["sender_rewritten"] == "postmaster@example.com"


def test_null_sender_two_recipients_two_transactions(relay):
    message_id = mid("null")
    send(HELO_MTA, "", ["one@example.net", "two@example.net"], message_id)
    found = arrived(relay, message_id, count=2)
    assert len(found) == 2
    assert all(r["sender"] == "" and len(r["recipients"]) == 1 for r in found)
    assert sorted(r["recipients"][0] for r in found) == ["one@example.net", "two@example.net"]
    assert not relay_record.transactions(relay, message_id=message_id, verdict="refused")
    RESULTS["null_sender_two_recipients"] = {"transactions": len(found),
                                             "connections": len({r["connection"] for r in found})}


# --- connection reuse ------------------------------------------------------------------------------------------

def test_100_messages_few_connections(relay):
    """100 messages handed to Sendmail at once (one SMTP session to its daemon, as an application would)."""
    tag = "bulk-" + TAG
    start = time.monotonic()
    # One session to Sendmail's daemon on localhost:25: <tag.1@example.com> to bulk1@example.net, ... up to 100.
    out = AUTH.check_output(relay_record.injector("batch", tag, USER, 100, "--first", 1, "--recipient-prefix",
                                                  "bulk", "--body", "x", "--reconnect-for", 0))
    assert out.split() == ["100", "0"], out
    submitted = time.monotonic()

    def all_arrived():
        found = [r for r in relay_record.transactions(relay, verdict="accepted")
                 if (r.get("message_id") or "").startswith("<%s." % tag)]
        return found if len(found) >= 100 else None

    found = wait_for(all_arrived, timeout=180, what="100 messages at the relay")
    used = {r["connection"] for r in found}
    RESULTS["bulk"] = {"messages": len(found), "connections": len(used),
                       "max_per_connection": max(sum(1 for r in found if r["connection"] == c) for c in used),
                       "submit_seconds": round(submitted - start, 1),
                       "seconds": round(time.monotonic() - start, 1)}
    assert all(r["tls"] and r["auth_user"] == USER for r in found)
    assert len(used) <= 10, RESULTS["bulk"]


# --- limit replies -----------------------------------------------------------------------------------------

def test_peak_limit_450_is_retried_and_delivered(relay):
    since = time.time() - 1
    # The limit holds until all three are deferred (not for a fixed time, which a loaded machine could outlast
    # before Sendmail tried the third); then it is lifted and Sendmail's retries must deliver them.
    standin(faults=[{"stage": "rcpt", "reply": "450 4.2.1 Peak SMTP relay limit exceeded for customer.",
                     "ports": [587]}])
    ids = [mid("peak") for dummy in range(3)]
    for message_id in ids:
        send(AUTH, USER, ["peak@example.net"], message_id)

    def deferred():
        held = [text for text in queue(AUTH).values() if "4.2.1" in text]
        return held if len(held) >= 3 else None

    wait_for(deferred, timeout=60, what="three messages deferred with 450 4.2.1")
    standin(faults=[])
    for message_id in ids:
        arrived(relay, message_id, timeout=120)
    refused = [r for r in relay_record.transactions(relay, verdict="deferred") if r.get("time", 0) >= since]
    bounces = [r for r in relay_record.transactions(relay, sender="") if r.get("time", 0) >= since
               and r["recipients"] == [USER]]
    RESULTS["peak_450"] = {"messages": 3, "deferred_attempts": len(refused), "bounces": len(bounces),
                           "delivered": 3, "seconds": round(time.time() - since, 1)}
    assert not bounces


def test_daily_limit_550_is_bounced_by_sendmail(relay):
    """Why the relay guard exists (this scenario runs Sendmail without it): Sendmail has no setting that turns a
    5xx reply into a retry (SoftBounce only rewrites Sendmail's own replies), so a 550 5.4.5 from the relay bounces
    the message to its sender at once, through the relay (here the limit has passed by then: the fault fires
    once)."""
    since = time.time() - 1
    standin(faults=[{"stage": "mail", "reply": "550 5.4.5 Daily SMTP relay limit exceeded for user.",
                     "ports": [587], "times": 1}])
    message_id = mid("daily")
    send(AUTH, USER, ["daily@example.net"], message_id)

    def bounced():
        found = [r for r in relay_record.transactions(relay, sender="", verdict="accepted")
                 if r["recipients"] == [USER] and r.get("time", 0) >= since]
        return found or None

    dsns = wait_for(bounced, timeout=90, what="the bounce to the sender")
    standin(faults=[])
    # A sentinel sent after the fault is gone must arrive: the path flows again, and the bounced message, no longer
    # in the queue (asserted below), has nothing left to retry.
    sentinel = mid("daily-sentinel")
    send(AUTH, USER, ["sentinel@example.net"], sentinel)
    assert relay_record.wait_for_transactions(relay, count=1, timeout=120, message_id=sentinel, verdict="accepted")
    refused = [r for r in relay_record.transactions(relay, verdict="refused") if r.get("time", 0) >= since]
    delivered = relay_record.transactions(relay, message_id=message_id, verdict="accepted")
    RESULTS["daily_550"] = {"messages": 1, "refused": len(refused), "bounced_to_sender": len(dsns),
                            "delivered_later": len(delivered), "left_in_queue": len(queue(AUTH)),
                            "seconds_to_bounce": round(dsns[0]["time"] - since, 1)}
    assert not delivered and len(refused) == 1 and not queue(AUTH)


# --- certificate verification, broken change, restart, rollback ----------------------------------------------

def test_untrusted_certificate_gets_no_mail(relay):
    standin(tls={"cert": "/etc/relay-standin/untrusted.pem", "key": "/etc/relay-standin/untrusted.key"})
    since = time.time() - 1
    message_id = mid("impostor")
    send(AUTH, USER, ["someone@example.net"], message_id)

    def held():
        found = [qid for qid, text in queue(AUTH).items() if "454 4.7.0" in text]
        return found or None

    held_ids = wait_for(held, timeout=60, what="the message deferred by certificate verification")
    HELD.append(message_id)
    impostor = [c for c in connections(relay, client_ip=client_ip(AUTH)) if c.get("time", 0) >= since]
    assert impostor and all(c["tls"] and c["transactions"] == 0 for c in impostor), impostor
    assert not relay_record.transactions(relay, message_id=message_id)
    RESULTS["untrusted"] = {"connections": len(impostor), "transactions": 0, "queued": held_ids}


def test_broken_change_keeps_previous_config_and_queue():
    queued = set(queue(AUTH))
    assert queued
    before, pid = sha(AUTH, *CF_FILES), daemon_pid(AUTH)
    # With registered_users and relay_local_sender too, so that the run writes a genericstable, which the rollback
    # must take away again (it did not exist before).
    result = run_role({"sendmail_mc_extra": ["LOCAL_CONFIG", "O NoSuchOption=smarthost"],
                       "relay_allowed_senders": "registered_users", "relay_local_sender": LOCAL_SENDER})
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "rolled back" in out and "-bt" in out and "NoSuchOption" in out, out[-3000:]
    assert "Build the genericstable map with makemap" in out
    assert not AUTH.file(GENERICS).exists and not AUTH.file(GENERICS + ".db").exists
    assert sha(AUTH, *CF_FILES) == before
    assert daemon_pid(AUTH) == pid
    assert queued <= set(queue(AUTH))


def test_restart_keeps_the_queue():
    queued = set(queue(AUTH))
    pid = daemon_pid(AUTH)
    # The stand-in still shows the impostor's certificate, so no post-change test message this time.
    result = run_role({"sendmail_queue_interval": "p6s", "relay_test_message": False})
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result)["changed"] > 0
    assert daemon_pid(AUTH) != pid
    assert 'QUEUE_INTERVAL="p6s";' in AUTH.file("/etc/mail/sendmail.conf").content_string
    assert queued <= set(queue(AUTH))


def test_failed_test_delivery_rolls_back_and_mail_flows(relay):
    # "auth" is allowlisted too (Google refuses other addresses even after SMTP AUTH), so a failed login alone would
    # not stop its mail: "Require SMTP Authentication" is checked as well while this case runs (both must hold).
    # The relay holds back its answer to the next two logins for 15 s: the test delivery's, and the running
    # daemon's when its queue runner sends the message submitted meanwhile. The window in which the wrong password
    # is on disk and not yet rolled back stays open longer than the runner's 6 s interval.
    stall = {"stage": "auth", "action": "stall", "seconds": 15, "times": 2, "ports": [587]}
    standin(tls={"cert": "/etc/relay-standin/cert.pem", "key": "/etc/relay-standin/key.pem"}, auth_required=True,
            faults=[stall])
    try:
        _failed_test_delivery_rolls_back_and_mail_flows(relay)
    finally:
        standin(auth_required=False, faults=[])


def _failed_test_delivery_rolls_back_and_mail_flows(relay):
    # The mail the impostor held back goes out first, with the right credentials, through the restart and the
    # broken change it survived.
    relay_record.sendmail_queue_run(AUTH)
    for wanted in HELD:
        [record] = arrived(relay, wanted)
        assert record["auth_user"] == USER and record["tls"] is True
    before = sha(AUTH, "/etc/mail/smarthost-relay/authinfo", "/etc/mail/sendmail.cf"), authinfo_map(AUTH)
    live, source = live_authinfo(AUTH), sha(AUTH, "/etc/mail/smarthost-relay/authinfo")
    since = time.time() - 1
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(run_role, {"relay_auth_password": WRONG_PASSWORD, "sendmail_queue_interval": "p6s"},
                          verbosity="-vvv")
        # Once the wrong password is on disk (its map is built the next moment), mail the daemon sends (its queue
        # runner, the previous sendmail.cf, which names the previous map) still logs in with the right one.
        wait_for(lambda: sha(AUTH, "/etc/mail/smarthost-relay/authinfo") != source or run.done(),
                 what="the wrong password in the SMTP AUTH map's source")
        assert not run.done(), run.result().stdout[-3000:]
        during = mid("during-test-delivery")
        send(AUTH, USER, ["someone@example.net"], during)
        [record] = arrived(relay, during)
        result = run.result()
    assert record["auth_user"] == USER and record["tls"] is True
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "rolled back" in out and "test message" in out, out[-3000:]
    assert "535" in out, out[-3000:]
    # the doctor's explanation of the failed test delivery: a class and a fix naming a variable (Sendmail goes on
    # unauthenticated after the relay's 535, so the refusal it reports last may be a later step's)
    assert re.search(r"relay doctor: [a-z_]+ .*fix: [a-z_]+", out), out[-3000:]
    assert WRONG_PASSWORD not in out
    assert base64.b64encode(WRONG_PASSWORD.encode()).decode() not in out
    assert (sha(AUTH, "/etc/mail/smarthost-relay/authinfo", "/etc/mail/sendmail.cf"), authinfo_map(AUTH)) == before
    assert authinfo_maps(AUTH) == [os.path.basename(live) + ".db"]  # the wrong password's map is gone
    assert AUTH.run("ls /etc/mail/smarthost-relay/authinfo.*~").rc != 0
    failures = [c for c in connections(relay, client_ip=client_ip(AUTH)) if c.get("auth_failures")
                and c.get("time", 0) >= since]
    assert len(failures) == 1, failures  # the test delivery's, none of the daemon's
    # The previous configuration is live: new mail goes out with the right credentials.
    message_id = mid("after-rollback")
    send(AUTH, USER, ["someone@example.net"], message_id)
    [record] = arrived(relay, message_id)
    assert record["auth_user"] == USER and record["tls"] is True
    RESULTS["wrong_password"] = {"connections_with_auth_failures": len(failures)}


def test_new_credentials_take_the_other_map_name_and_the_previous_map_goes(relay):
    """A change of credentials that passes its test delivery: the map is built under a new name, the daemon
    reloaded onto it, and the previous map removed; the same again back to the scenario's own user. Then a
    sendmail.cf newer than the daemon's pid file is taken for one the daemon has not read: reloaded."""
    names = [live_authinfo(AUTH)]
    for user, password in ((OTHER_USER, OTHER_PASSWORD), (USER, PASSWORD)):
        result = run_role({"relay_auth_username": user, "relay_auth_password": password,
                           "sendmail_queue_interval": "p6s"})
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        names.append(live_authinfo(AUTH))
        assert authinfo_maps(AUTH) == [os.path.basename(names[-1]) + ".db"]
        assert password not in result.stdout + result.stderr
        message_id = mid("as-" + user.partition("@")[0])
        send(AUTH, USER, ["someone@example.net"], message_id)
        [record] = arrived(relay, message_id)
        assert record["auth_user"] == user
    assert names[0] != names[1] and names[2] == names[0]
    # A daemon that has not read the sendmail.cf on disk (as after a run stopped before the reload): reloaded.
    pid = daemon_pid(AUTH)
    AUTH.run_expect([0], "touch /etc/mail/sendmail.cf")
    result = run_role({"sendmail_queue_interval": "p6s"})
    assert result.returncode == 0 and recap(result)["changed"] > 0, (result.stdout + result.stderr)[-3000:]
    assert daemon_pid(AUTH) != pid
    result = run_role({"sendmail_queue_interval": "p6s"})
    assert recap(result)["changed"] == 0 and live_authinfo(AUTH) == names[0]


def test_check_mode_and_refusals():
    """Two runs that change nothing, at the same time: check mode with a new password and HELO name (changes
    reported, the fragment's diff shown, nothing changed, the password nowhere), and the values the role must
    refuse before it touches the host (relay_tls=implicit, sendmail_timeout_datafinal=30m)."""
    files = CF_FILES + ("/etc/mail/smarthost-relay/authinfo",)
    before, before_map = sha(AUTH, *files), authinfo_map(AUTH)
    with ThreadPoolExecutor(2) as pool:
        check = pool.submit(run_role, {"relay_auth_password": NEW_PASSWORD, "relay_helo_name": "mail2.example.com",
                                       "sendmail_queue_interval": "p6s",
                                       "relay_allowed_senders": "registered_users",
                                       "relay_local_sender": LOCAL_SENDER}, check=True, verbosity="-vvv")
        refusals = pool.submit(run_playbook, "refusals.yml")
        check, refusals = check.result(), refusals.result()
    out = check.stdout + check.stderr
    assert check.returncode == 0, out[-3000:]
    assert recap(check)["changed"] >= 2
    assert "+define(`confHELO_NAME', `mail2.example.com')" in out  # diff mode shows the fragment
    assert "+FEATURE(`genericstable'" in out  # masquerading, then the mapping to the registered sender ...
    assert re.search(r"^\+@mta-auth\.corp\.test\s+%s$" % re.escape(LOCAL_SENDER), out, re.MULTILINE)  # ... its map
    assert not AUTH.file(GENERICS).exists
    assert NEW_PASSWORD not in out and base64.b64encode(NEW_PASSWORD.encode()).decode() not in out
    out = " ".join(refusals.stdout.split())  # the YAML callback folds long messages
    assert refusals.returncode == 0, out[-3000:]
    assert "relay_tls=implicit (port 465) is not possible with Sendmail" in out
    assert "sendmail_timeout_datafinal must be a Sendmail time value of at least one hour" in out
    assert out.count("REFUSED: ") == 2
    assert (sha(AUTH, *files), authinfo_map(AUTH)) == (before, before_map)
    assert authinfo_maps(AUTH) == [os.path.basename(before_map[0]) + ".db"]  # check mode built no map


def test_registered_users_local_senders_sent_as_registered_sender(relay):
    """relay_allowed_senders registered_users with relay_local_sender: the stand-in takes registered users only
    (mta@example.com, cron@example.com), and every local account's mail arrives as cron@example.com, the null
    sender untouched. A second run changes nothing; then sendmail_rewrite_local_senders: false takes the mapping
    (and masquerading) away again."""
    extra = {"relay_allowed_senders": "registered_users", "relay_local_sender": LOCAL_SENDER,
             "sendmail_queue_interval": "p6s"}
    standin(allowed_senders="registered_users")
    try:
        first = run_role(extra)
        assert first.returncode == 0, first.stdout[-3000:]
        assert recap(first)["changed"] > 0
        again = run_role(extra)
        assert again.returncode == 0 and recap(again)["changed"] == 0, again.stdout[-3000:]
        cf = AUTH.file("/etc/mail/sendmail.cf").content_string
        assert "Kgenerics hash -o %s" % GENERICS in cf and "\nDMexample.com\n" in cf
        fqdn = AUTH.check_output("hostname -f")
        table = AUTH.file(GENERICS).content_string
        assert "@%s\t%s" % (fqdn, LOCAL_SENDER) in table and "@example.com\t" not in table
        db = AUTH.file(GENERICS + ".db")
        assert (db.user, db.group, db.mode) == ("root", "root", 0o644)
        RESULTS["local_senders_registered_users"] = local_senders_arrive(relay, lambda local: LOCAL_SENDER)
        RESULTS["local_senders_registered_users"]["role_runs_seconds"] = [first.seconds, again.seconds]
    finally:
        standin(allowed_senders="any_address")
    # The switch off: nothing rewritten, the map gone; with any_address the relay itself rewrites the envelope.
    off = run_role(dict(extra, sendmail_rewrite_local_senders=False))
    assert off.returncode == 0, off.stdout[-3000:]
    cf = AUTH.file("/etc/mail/sendmail.cf").content_string
    assert "Kgenerics" not in cf and "\nDMexample.com\n" not in cf
    assert not AUTH.file(GENERICS).exists and not AUTH.file(GENERICS + ".db").exists
    message_id = mid("rewrite-off")
    submit(AUTH, message_id)
    [record] = arrived(relay, message_id)
    fqdn = AUTH.check_output("hostname -f")
    assert record["sender"] == "root@" + fqdn, record["sender"]
    RESULTS["local_senders_rewrite_off"] = {"sender": record["sender"],
                                            "sender_rewritten_by_relay": record.get("sender_rewritten")}


def test_no_secret_in_any_log():
    log = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.log"
    text = log.read_text(errors="replace")
    assert text, "no ansible log"
    for secret in (PASSWORD, WRONG_PASSWORD, NEW_PASSWORD, OTHER_PASSWORD):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text
    RESULTS["log_bytes_checked"] = len(text)
