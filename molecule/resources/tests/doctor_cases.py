# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor's molecule proof, shared by the MTA scenarios: the causes the stand-in induces one after the
other, and a run of playbooks/doctor.yml (with its probe) that returns one host's report.

Each cause is what the stand-in is told (its config, or a fault rule where the MTA's own settings keep the relay's
rule from ever firing), the class the doctor must name, the variable its first fix names, and where the probe,
which talks to the relay with the MTA's relay_* settings, must stop. Every cause also restarts the relay as clients
see it (a new ``restart_epoch``): connections an MTA keeps open from the cause before would carry the old settings.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
import uuid
from collections import namedtuple
from pathlib import Path

import pytest
import yaml

import relay_record

import relay_standin.engine  # noqa: F401  pylint: disable=unused-import
from relay_standin.config import DEFAULT_DOS_MAX_NEW_CONNECTIONS as DOS_MAX_NEW_CONNECTIONS
from relay_standin.config import DEFAULT_DOS_WINDOW_SECONDS as DOS_WINDOW_SECONDS
# the rule engine as the stand-in imports it (top-level _relay): the doctor's own readers tell the tests when the
# MTA has met the cause (doctor_parsers: for the scenarios' tests, which read their MTA's queue with it)
# pylint: disable-next=wrong-import-position,import-error,unused-import
from _relay import doctor as engine_doctor, doctor_parsers  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[3]
DOCTOR = ROOT / "playbooks" / "doctor.yml"
UNTRUSTED = {"cert": "/etc/relay-standin/untrusted.pem", "key": "/etc/relay-standin/untrusted.key"}
# An allowlist that holds no container of any scenario: the relay's "Only accept mail from the specified IP
# addresses" refuses the MTA as Google refuses an address that is not listed.
ELSEWHERE = ["127.0.0.1/32"]
UNREGISTERED_SENDER = "clerk@example.com"  # in the customer's domain, no user of the stand-in
EPOCHS = itertools.count(int(time.time()))

Cause = namedtuple("Cause", ["name", "changes", "klass", "fix", "probe_stage", "sender"])
Cause.__doc__ = """``changes(base, mta)``: the stand-in's config changes (``base``: the config as prepare wrote it,
``mta``: a dict with the MTA's ``helo`` name and relay ``port``); ``klass``: the doctor's class; ``fix``: the
variable of its first fix; ``probe_stage``: where the probe stops; ``sender``: the envelope sender the MTA's
messages (and the probe) use for this cause, None for the scenario's own."""


def _fault(stage, key, **extra):
    return lambda base, mta: {"faults": [dict({"stage": stage, "reply_key": key}, **extra)]}


CAUSES = (
    # first, while nothing else is held: the relay takes the registered senders' mail held from other causes
    Cause("sender", lambda base, mta: {"allowed_senders": "registered_users"}, "unregistered_sender",
          "relay_local_sender", "MAIL", UNREGISTERED_SENDER),
    Cause("allowlist", lambda base, mta: {"allowlist": ELSEWHERE}, "allowlist", "relay_allowlist", "MAIL", None),
    # Google closes the connection after it refused the HELO/EHLO name (its text says so)
    Cause("helo", _fault("helo", "helo_invalid", disconnect=True), "helo_name", "relay_helo_name", "EHLO", None),
    Cause("credentials", lambda base, mta: {"users": {user: "not-" + password
                                                      for user, password in base["users"].items()}},
          "bad_credentials", "relay_auth_username", "AUTH", None),
    # An MTA with relay_tls required always starts TLS, so the relay's own "Require TLS encryption" never fires on
    # it: the relay answers MAIL as Google answers a client that did not.
    Cause("tls_required", _fault("mail", "starttls_first"), "tls_required", "relay_tls", "MAIL", None),
    Cause("impostor", lambda base, mta: {"tls": UNTRUSTED}, "tls_failure", "relay_tls_ca_file", "STARTTLS", None),
    Cause("user_daily", _fault("mail", "user_daily"), "user_daily_limit", "relay_licenses", "MAIL", None),
    Cause("customer_daily", _fault("rcpt", "customer_daily"), "customer_daily_limit", "relay_licenses", "RCPT",
          None),
    Cause("customer_peak", _fault("rcpt", "customer_peak"), "peak_limit", "relay_licenses", "RCPT", None),
    Cause("too_many_recipients", _fault("rcpt", "too_many_recipients"), "too_many_recipients", "{mta}_main_cf",
          "RCPT", None),
    # the relay's own rule: the MTA's HELO name counts as generic (as localhost does)
    Cause("dos_helo", lambda base, mta: {"dos": {"generic_helo_names": [mta["helo"]]}}, "dos_helo",
          "relay_helo_name", "EHLO", None),
    Cause("relay_down", lambda base, mta: {"faults": [{"action": "unlisten", "ports": [mta["port"]]}]},
          "unreachable", "relay_host", "CONNECT", None),
)
DEGRADED = {"peak_limit", "too_many_recipients", "dos_helo"}

# Sendmail sending to the relay itself (relay guard off): it passes every 5xx of its smart host on as a bounce at
# the first attempt (no setting retries one; the guard exists for that), so these causes leave nothing queued: the
# doctor counts their messages as bounced. They are induced first, while nothing is held, so that no message held
# by a 4xx cause is bounced by a later one.
SENDMAIL_DIRECT_BOUNCED = ("sender", "allowlist", "credentials", "tls_required", "user_daily", "customer_daily")


def _with_auth_required(changes):
    return lambda base, mta: dict(changes(base, mta), auth_required=True)


def for_sendmail(cause):
    """The cause with Sendmail's fix: it has no main.cf, its per-transaction recipient limit is the relay mailer's,
    set in sendmail.mc."""
    return cause._replace(fix="sendmail_mc_extra") if cause.fix == "{mta}_main_cf" else cause


def sendmail_direct(causes=CAUSES):
    """The causes as Sendmail meets them without the relay guard: ``(cause, held, probe class)`` in the order to
    induce them (bouncing causes first); ``held`` False where Sendmail bounces the messages.

    Credentials: after a 5xx to AUTH Sendmail goes on without authenticating (usersmtp.c gives up only on a 4xx)
    and logs nothing about the refused login, so an allowlisted host's mail still passes; the relay must also
    require SMTP AUTH (as Google does with "Require SMTP Authentication") for wrong credentials to stop mail, and
    what Sendmail logs is the MAIL's ``530 5.5.1 Authentication Required``: the queue's class is auth_required,
    whose fixes name the AUTH settings too. The probe, which tries AUTH once and stops, meets the 535 itself."""
    out = []
    for cause in causes:
        probe_klass = cause.klass
        cause = for_sendmail(cause)
        if cause.name == "credentials":
            cause = cause._replace(changes=_with_auth_required(cause.changes), klass="auth_required",
                                   fix="relay_auth")
        out.append((cause, cause.name not in SENDMAIL_DIRECT_BOUNCED, probe_klass))
    return sorted(out, key=lambda item: item[1])


def config_for(cause, base, mta):
    """The stand-in's whole config while ``cause`` holds: prepare's config with the cause's changes and a relay
    restart."""
    return dict(base, restart_epoch=next(EPOCHS), **cause.changes(base, mta))


def healthy(base):
    """prepare's config again, with a relay restart."""
    return dict(base, restart_epoch=next(EPOCHS))


def read_config(container):
    return yaml.safe_load(relay_record.podman("exec", container, "cat", relay_record.STANDIN_CONFIG))


def write_config(container, config):
    """Replace the stand-in's config and wait until it runs with it: connections opened before keep the old
    settings unless the config brings a new restart_epoch."""
    relay_record.apply_config(container, config)


def pace(relay_host, client_ip, coming, base):
    """Wait until the relay's denial-of-service budget has room for ``coming`` new connections from ``client_ip``.

    Google answers a burst of new connections from one address with 421 (the stand-in does too, at its
    ``dos.max_new_connections`` per ``dos.window_seconds``); every cause flushes all messages held so far, one
    connection each at worst, and the causes follow each other within seconds: without waiting for older
    connections to leave the window the test itself would be the burst, and the MTA's messages would be held for
    a DoS reply instead of the cause's. Waits on the record (connections age out of the window), never a fixed
    sleep."""
    dos = dict(base.get("dos") or {})
    budget = dos.get("max_new_connections", DOS_MAX_NEW_CONNECTIONS)
    window = float(dos.get("window_seconds", DOS_WINDOW_SECONDS))
    if budget is None:
        return
    assert coming < budget, "%d connections at once exceed the relay's budget of %d" % (coming, budget)

    def recent():
        now = time.time()
        return sum(1 for r in relay_record.read_record(relay_host)
                   if r.get("kind") == "connection" and r.get("client_ip") == client_ip
                   and now - (r["time"] - r.get("duration", 0.0)) < window)

    relay_record.wait_for(lambda: recent() + coming < budget, timeout=window + 30, interval=2,
                          what="room for %d new connection(s) in the relay's DoS window" % coming)


def base_fixture(container, flush, empty):
    """The scenario's module-scoped ``base`` fixture: the stand-in's config (in ``container``) as prepare wrote it;
    put back after the module, the held messages delivered (``flush()``, the MTA's queue run) and the queue drained
    (until ``empty()``), whatever happened."""
    @pytest.fixture(scope="module")
    def base():
        config = read_config(container)
        yield config
        write_config(container, healthy(config))
        flush()
        relay_record.wait_for(empty, timeout=120, what="an empty queue")
    return base


def run_doctor_probing(host, since, runs, recipient, settings=None, probe=True, check=False, probe_sender=None):
    """playbooks/doctor.yml on ``host`` with the probe to ``recipient`` (``settings``: the relay_* variables to
    probe with, else the inventory's; ``probe`` false: no probe), as the sender ``probe_sender`` when given; the
    run's check mode, exit status and seconds appended to ``runs``. Returns (CompletedProcess, the host's report)."""
    extra = None
    if probe:
        extra = dict(settings or {}, doctor_probe=True, doctor_probe_recipient=recipient)
        if probe_sender:
            extra["doctor_probe_sender"] = probe_sender
    result, report = run_doctor(host, since, extra, check=check)
    runs.append({"check": check, "rc": result.returncode, "seconds": result.seconds})
    return result, report


def run_doctor(host, since, extra=None, check=False, out_dir=None):
    """playbooks/doctor.yml on ``host`` (its inventory name) for the window since ``since``; ``extra``: more
    variables (the probe's). Returns (CompletedProcess, the host's report)."""
    result, reports = run_doctor_on([host], since, extra, check, out_dir)
    return result, reports[host]


def run_doctor_on(hosts, since, extra=None, check=False, out_dir=None):
    """playbooks/doctor.yml in one run over ``hosts``; returns (CompletedProcess, {host: its report})."""
    out_dir = Path(out_dir or os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / ("doctor-%s" % uuid.uuid4().hex[:6])
    variables = {"doctor_hosts": ",".join(hosts), "doctor_become": False,
                 "doctor_window": int(time.time() - since) + 5, "doctor_report_dir": str(out_dir)}
    result = relay_record.run_playbook(DOCTOR, *(["--check"] if check else []),
                                       extra_vars=dict(variables, **(extra or {})))
    assert (out_dir / "doctor.json").exists(), result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads((out_dir / "doctor.json").read_text())
    assert (out_dir / "doctor.md").read_text().startswith("# Relay doctor")
    return result, report["hosts"]


def journal_events(host, since, parse):
    """The host's mail log since ``since`` as the doctor reads it: the journal's mail facility, read with ``parse``
    (``doctor_parsers.postfix_log`` or ``sendmail_log``)."""
    lines = host.check_output("journalctl --quiet --no-pager -o short-unix --since @%d SYSLOG_FACILITY=2" % since)
    return [event for event in parse(lines.splitlines()) if event["time"] >= since]


def wait_for_logged_deliveries(host, since, parse, count):
    """Wait until the mail log shows ``count`` deliveries to the relay since ``since``. The doctor reads the log,
    and journald may write it seconds after the relay took the mail and the queue emptied (under load)."""
    def logged():
        return sum(1 for e in journal_events(host, since, parse) if e["status"] == "sent" and e["relay"])
    relay_record.wait_for(lambda: logged() >= count, timeout=60,
                          what="%d relay deliveries in the mail log" % count)


def write_results(name, results):
    """The module's timings and findings, as .cache/logs/<name>.json."""
    out = ROOT / ".cache" / "logs" / ("%s.json" % name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


def class_of(entry, mta):
    """The doctor's class of one queue entry (doctor_parsers' dict), None when it carries no reason yet."""
    if not (entry.get("reply") or entry.get("local")):
        return None
    return engine_doctor.diagnose(entry.get("reply"), entry.get("local"), entry.get("stage"), entry.get("sender"),
                                  mta, tls=entry.get("tls"))["class"]


def row(report, key):
    return next((r for r in report["classes"] if r["class"] == key), None)


def check_reply_text(found):
    """The class's reply reads as one text: no line's code left in it (as "?535-5.7.8" where the MTA logged a line
    end as "?", or "535-5.7.8" where it joined the lines)."""
    text = (found.get("reply") or {}).get("text") or ""
    assert not re.search(r"(^|\W)[2-5][0-9]{2}[- ][2-5]\.[0-9]{1,3}\.[0-9]{1,3}\b", text), found["reply"]


def expected_verdict(cause):
    return "degraded" if cause.klass in DEGRADED else "blocked"


def check_probe(report, cause, stage=None, klass=None):
    """The probe met the cause at its step, with the same class as the queue's (or ``klass``, where the MTA's texts
    name the cause by another class than the relay's reply to the probe)."""
    probe = report["probe"]
    assert (probe["stopped_at"], probe["diagnosis"]["class"], probe["verdict"]) == (
        stage or cause.probe_stage, klass or cause.klass, expected_verdict(cause)), probe
    assert "probe stopped at %s: %s" % (probe["stopped_at"], probe["diagnosis"]["title"]) in report["reasons"]
