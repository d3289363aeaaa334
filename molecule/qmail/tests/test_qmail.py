# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.qmail on Debian 12 containers laid out as qmail installations, proven byte for byte and, for the
TLS path, from the relay stand-in's record.

No qmail program runs here (qmail is packaged by no reachable registry and is not built or imitated): the control
files are checked as qmail reads them, and swaks plays qmail-remote's part against the local STARTTLS client,
saying HELO and sending no ESMTP parameters, as stock qmail-remote does. The tests run in file order: the converge
left each host on its matrix case (molecule.yml); the last tests re-run the role (ansible-playbook converge.yml -e).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import relay_record

SCENARIO = Path(__file__).resolve().parents[1]
RELAY_CONTAINER = "srt-qmail-relay"
CONTROL = "/var/qmail/control"
STUNNEL_CONF = "/etc/stunnel/smarthost-relay.conf"
STUNNEL_UNIT = "stunnel@smarthost-relay.service"
TAG = uuid.uuid4().hex[:8]
RESULTS = {}  # numbers for the report, written to .cache/logs/qmail-verify.json

HOSTS = {host.backend.name.rsplit("-", 1)[1]: host for host in relay_record.group_hosts("qmail")}
TLS, PLAIN, ROUTES = HOSTS["tls"], HOSTS["plain"], HOSTS["routes"]

HEADER = ("# Written by Ansible (smarthost.relay.qmail): internal domains first, the relay (catch-all) last.\n"
          "# qmail-remote tries the recipient's host, then its .suffixes (longest first), then the empty domain.\n")

# Every control file of every matrix case, byte for byte (None: the file must not exist).
EXPECTED = {
    "tls": {
        "smtproutes": HEADER + "corp.example.com:mail.corp.example.com\n:127.0.0.1:2525\n",
        "helohost": "qmail-tls.example.com\n",
        "timeoutremote": "1200\n",
        # relay_licenses 250, one server: 1,800 recipients per 10 minutes, 180 a minute, 3 connections.
        "concurrencyremote": "3\n",
        "timeoutsmtpd": None,
        "me": None,
        # relay_allowed_senders domain_addresses: qmail-inject's default host for local accounts' senders is the
        # customer's first domain (docs/qmail.md, "Mail from local accounts"), with or without the guard
        "defaulthost": "example.com\n",
    },
    "plain": {
        "smtproutes": HEADER + ":relay.smarthost.test:25\n",
        "timeoutremote": "1800\n",
        # was 600, below the document's 900: raised to qmail's default
        "timeoutsmtpd": "1200\n",
        "me": "qmail-plain.example.com\n",
        "helohost": None,
        "concurrencyremote": None,
        "defaulthost": "example.com\n",
    },
    "routes": {
        "smtproutes": HEADER + (
            "corp.example.com:mail.corp.example.com\n"
            ".corp.example.com:mail.corp.example.com:2526\n"
            "legacy.example.com:\n"
            "lists.example.com:lists-mx.example.com:2527\n"
            ".partner.example.org:gw.partner.example.org\n"
            ":relay.smarthost.test:25\n"),
        "helohost": "mail.example.com\n",
        "timeoutremote": "1200\n",
        "timeoutsmtpd": "1500\n",
        # relay_licenses 40: 288 recipients per 10 minutes, 28 a minute, one connection.
        "concurrencyremote": "1\n",
        "me": "qmail-routes.example.com\n",
        "defaulthost": "example.com\n",
    },
}
# What a previous administrator left (molecule.yml), kept under /var/backups/smarthost-qmail/<run>/.
BACKUPS = {
    "plain": {"timeoutsmtpd": "600\n"},
    "routes": {
        "smtproutes": ("# routes set up by hand\nlists.example.com:lists-mx.example.com:2527\n"
                       ".partner.example.org:gw.partner.example.org\nold.example.com:old-mx.example.com\n"
                       ":old-relay.example.net\n"),
        "helohost": "old-name.example.net\n",
    },
}


# --- helpers -------------------------------------------------------------------------------------------------

def standin(**changes):
    """Change the stand-in's config; return the new config."""
    return relay_record.standin(RELAY_CONTAINER, **changes)


RUNS = {}  # role re-runs started in the background: name -> (Popen, start time, vars file, extra, check)


def start_role(name, extra, host, check=False):
    """Start ansible-playbook converge.yml with extra vars on one host, as a user would re-run the role. Runs
    on different hosts do not share anything, so they go in parallel (the scenario's time budget)."""
    cmd, env, vars_file = relay_record.playbook_command(SCENARIO / "converge.yml", "--diff", "--limit",
                                                        host.backend.name, *(["--check"] if check else []),
                                                        extra_vars=extra)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    RUNS[name] = (proc, time.monotonic(), vars_file, extra, check)


def finish_role(name):
    """Wait for a run started with start_role; its output is ``.stdout``, whitespace folded in ``.text``."""
    proc, start, vars_file, extra, check = RUNS.pop(name)
    stdout = proc.communicate(timeout=600)[0]
    vars_file.unlink()
    RESULTS.setdefault("role_runs", []).append({"name": name, "vars": extra, "check": check, "rc": proc.returncode,
                                                "seconds": round(time.monotonic() - start, 1)})
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout=stdout)


def folded(text):
    return " ".join(text.split())


def recap(result, host):
    for line in result.stdout.splitlines():
        if line.startswith(host.backend.name + " ") and "ok=" in line:
            return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}
    raise AssertionError("no recap for %s:\n%s" % (host.backend.name, result.stdout[-3000:]))


def control(host, name):
    f = host.file("%s/%s" % (CONTROL, name))
    return f.content_string if f.exists else None


def mid(label):
    return "<qmail-%s.%s.%s@example.com>" % (label, TAG, uuid.uuid4().hex[:8])


def swaks(host, message_id, sender="postmaster@example.com", port=2525, helo="qmail-tls.example.com"):
    """Send as stock qmail-remote does (HELO, no ESMTP parameters) to the local STARTTLS client."""
    return host.run("swaks --server 127.0.0.1 --port %d --protocol SMTP --helo %s --from '%s' --to someone@example.net "
                    "--header 'Message-Id: %s' --timeout 30" % (port, helo, sender, message_id))


@pytest.fixture(scope="module")
def relay():
    return relay_record.relay()


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    out = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / ".cache" / "logs" / "qmail-verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=2, default=str))


# --- the matrix, byte for byte --------------------------------------------------------------------------------

SNAPSHOTS = {}


def snapshot(case):
    """Every managed control file of a host as (content, "owner:group:mode"), read in one round trip."""
    if case not in SNAPSHOTS:
        names = " ".join(EXPECTED[case])
        out = HOSTS[case].check_output(
            "cd %s && for f in %s; do [ -f $f ] && printf '%%s %%s %%s\\n' $f $(stat -c %%U:%%G:%%a $f) $(base64 -w 0 $f); done; true"
            % (CONTROL, names))
        SNAPSHOTS[case] = {}
        for line in out.splitlines():
            name, perms, data = (line.split(" ") + [""])[:3]
            SNAPSHOTS[case][name] = (base64.b64decode(data).decode(), perms)
    return SNAPSHOTS[case]


@pytest.mark.parametrize("case, name", [(c, n) for c in EXPECTED for n in EXPECTED[c]])
def test_control_file_bytes(case, name):
    got = snapshot(case).get(name)
    if EXPECTED[case][name] is None:
        assert got is None
    else:
        assert got == (EXPECTED[case][name], "root:qmail:644")


@pytest.mark.parametrize("case", sorted(BACKUPS))
def test_previous_files_backed_up_outside_control(case):
    host = HOSTS[case]
    runs = host.check_output("ls /var/backups/smarthost-qmail").split()
    assert len(runs) == 1
    assert host.file("/var/backups/smarthost-qmail/%s" % runs[0]).mode == 0o700
    for name, content in BACKUPS[case].items():
        f = host.file("/var/backups/smarthost-qmail/%s/%s" % (runs[0], name))
        # the copy keeps the file's owner and mode (cp -p), so a rollback restores them too
        assert f.content_string == content and (f.user, f.group, f.mode) == ("root", "qmail", 0o644)
    # qmail-showctl lists every file of control/: nothing but control files are there
    assert sorted(host.check_output("ls %s" % CONTROL).split()) == sorted(n for n, c in EXPECTED[case].items() if c)


def test_no_backup_without_previous_files():
    assert TLS.run("ls /var/backups/smarthost-qmail/*/*").rc != 0


def test_stunnel_only_where_tls_is_required():
    assert TLS.service(STUNNEL_UNIT).is_running and TLS.service(STUNNEL_UNIT).is_enabled
    conf = TLS.file(STUNNEL_CONF).content_string
    for line in ("client = yes", "accept = 127.0.0.1:2525", "connect = relay.smarthost.test:587", "protocol = smtp",
                 "verifyChain = yes", "checkHost = relay.smarthost.test", "CAfile = /etc/ssl/certs/ca-certificates.crt",
                 "protocolHost = qmail-tls.example.com", "setuid = stunnel4"):
        assert line + "\n" in conf, line
    # listening on loopback only (0100007F:09DD = 127.0.0.1:2525, state 0A = LISTEN)
    listening = [row.split()[1] for row in TLS.file("/proc/net/tcp").content_string.splitlines()[1:]
                 if row.split()[3] == "0A" and row.split()[1].endswith(":09DD")]
    assert listening == ["0100007F:09DD"]
    for host in (PLAIN, ROUTES):
        assert not host.file(STUNNEL_CONF).exists and not host.package("stunnel4").is_installed


# --- the STARTTLS path, for real ---------------------------------------------------------------------------

def test_starttls_path_reaches_the_relay_on_587_verified(relay):
    message_id = mid("587")
    start = time.monotonic()
    result = swaks(TLS, message_id)
    assert result.rc == 0, result.stdout + result.stderr
    [record] = relay_record.wait_for_transactions(relay, message_id=message_id)
    RESULTS["starttls_seconds"] = round(time.monotonic() - start, 2)
    fields = ("port", "tls", "tls_mode", "tls_version", "helo", "helo_verb", "client_ip", "sender", "verdict", "reply")
    RESULTS["starttls_record"] = {k: record.get(k) for k in fields}
    assert record["verdict"] == "accepted"
    assert record["port"] == 587 and record["tls"] is True and record["tls_mode"] == "starttls"
    # stunnel's own EHLO (protocolHost) came before STARTTLS and was forgotten (RFC 3207); the relay keeps the HELO
    # sent inside TLS, which is qmail-remote's (control/helohost).
    assert record["helo"] == "qmail-tls.example.com" and record["helo_verb"] == "HELO"
    assert record["auth_user"] is None
    assert record["client_ip"] in TLS.interface("eth0").addresses


def test_null_sender_accepted_by_the_helo_rule(relay):
    message_id = mid("null")
    result = swaks(TLS, message_id, sender="<>")
    assert result.rc == 0, result.stdout + result.stderr
    [record] = relay_record.wait_for_transactions(relay, message_id=message_id)
    assert record["verdict"] == "accepted" and record["sender"] == ""
    assert record["customer_domain"] == "example.com" and record["sender_rewritten"] == "postmaster@example.com"


def test_untrusted_relay_certificate_gets_nothing(relay):
    standin(tls={"cert": "/etc/relay-standin/untrusted.pem", "key": "/etc/relay-standin/untrusted.key"})
    try:
        message_id = mid("untrusted")
        result = swaks(TLS, message_id)
        assert result.rc != 0, result.stdout
        # qmail-remote would see the connection die after the greeting: a temporary failure, the mail stays queued.
        assert "220 " in result.stdout and "closed connection unexpectedly" in (result.stdout + result.stderr)
        journal = TLS.check_output("journalctl -u %s -o cat --no-pager -n 20" % STUNNEL_UNIT)
        assert "certificate verify failed" in journal
        RESULTS["untrusted_log"] = [line for line in journal.splitlines() if "CERT" in line or "verify" in line][-3:]
    finally:
        standin(tls={"cert": "/etc/relay-standin/cert.pem", "key": "/etc/relay-standin/key.pem"})
    # A sentinel over the same path, once the genuine certificate is back, arrives; the refused message never did.
    sentinel = mid("untrusted-sentinel")
    assert swaks(TLS, sentinel).rc == 0
    assert relay_record.wait_for_transactions(relay, count=1, timeout=60, message_id=sentinel, verdict="accepted")
    assert not relay_record.transactions(relay, message_id=message_id)


# --- check mode, rollback, implicit TLS (re-runs of the role) ----------------------------------------------------

def test_start_role_reruns():
    """Three re-runs of the role in parallel, one per host, now that the TLS tests are done with "tls": check mode
    on "routes", a failing restart on "plain", implicit TLS on "tls"."""
    start_role("check", {"qmail_timeoutremote": 1500, "qmail_supervisor": "daemontools"}, ROUTES, check=True)
    start_role("rollback", {"qmail_timeoutremote": 1500, "qmail_supervisor": "command",
                            "qmail_restart_command": ["/bin/false"]}, PLAIN)
    start_role("implicit", {"relay_tls": "implicit"}, TLS)
    assert set(RUNS) == {"check", "rollback", "implicit"}


def test_check_mode_shows_the_change_and_the_restart_command():
    result = finish_role("check")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "-1200\n+1500" in result.stdout
    assert "Restart qmail (daemontools): svc -t /service/qmail-send (not run in check mode)" in folded(result.stdout)
    assert recap(result, ROUTES)["changed"] >= 1
    assert control(ROUTES, "timeoutremote") == "1200\n"
    assert len(ROUTES.check_output("ls /var/backups/smarthost-qmail").split()) == 1


def test_failed_restart_rolls_the_control_files_back():
    result = finish_role("rollback")
    assert result.returncode != 0
    text = folded(result.stdout)
    assert "rolled back" in text and '"Run the restart command" failed: non-zero return code' in text, text[-2000:]
    assert control(PLAIN, "timeoutremote") == "1800\n"
    runs = PLAIN.check_output("ls /var/backups/smarthost-qmail").split()
    assert len(runs) == 2 and PLAIN.file("/var/backups/smarthost-qmail/%s/timeoutremote" % runs[-1]).content_string == "1800\n"


def test_implicit_tls_465(relay):
    result = finish_role("implicit")
    assert result.returncode == 0, result.stdout[-3000:]
    conf = TLS.file(STUNNEL_CONF).content_string
    assert "connect = relay.smarthost.test:465\n" in conf and "protocol = smtp" not in conf
    assert control(TLS, "smtproutes") == EXPECTED["tls"]["smtproutes"]
    message_id = mid("465")
    sent = swaks(TLS, message_id)
    assert sent.rc == 0, sent.stdout + sent.stderr
    [record] = relay_record.wait_for_transactions(relay, message_id=message_id)
    RESULTS["implicit_record"] = {k: record.get(k) for k in ("port", "tls", "tls_mode", "helo", "helo_verb", "verdict")}
    assert record["port"] == 465 and record["tls_mode"] == "implicit" and record["helo"] == "qmail-tls.example.com"
