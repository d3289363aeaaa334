# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay doctor's active probe: ask the relay, as this host, whether it would take a message, and send none.

Steps: CONNECT (the greeting; TLS from the first byte with ``tls: implicit``), EHLO with the configured name,
STARTTLS verifying the certificate as configured (then EHLO again), AUTH PLAIN when configured, ``MAIL FROM`` the
chosen sender, ``RCPT TO`` the chosen recipient; then always ``RSET`` and ``QUIT``. DATA is never sent, so no
message exists and nothing changes on the relay or the host: the probe runs in check mode too.

The first step the relay refuses (or that fails: no connection, a certificate that does not verify) stops the
probe; its reply or failure is named by the doctor's catalogue (``doctor.diagnose``, which reads the relay's words
with ``replies.identify``). The password is only ever put into the AUTH command: results keep the user name, and
every text taken from the session is scrubbed of the password in case a relay echoed it.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from collections import namedtuple

from . import constants as C, doctor
from .secrets import mask, secret_texts

PORT_IMPLICIT_TLS = 465
PORT_SUBMISSION = 587
HIDDEN = C.SECRET_MASK
# Google's relay takes SMTP AUTH only over TLS; the probe does not even offer the password without it.
CLEAR_TEXT_AUTH = "SMTP AUTH needs TLS, and the probe does not send the password in the clear"
VERDICT_RANK = {"healthy": 0, "ok": 0, "degraded": 1, "blocked": 2}

Settings = namedtuple("Settings", ["host", "port", "tls", "verify", "ca_file", "helo", "auth", "username",
                                   "password", "sender", "recipient", "timeout"])
Settings.__doc__ = """What the probe connects with: the role's relay settings (``relay_*``) and the envelope."""


class Stop(Exception):
    """The probe stopped at ``stage``: the relay answered ``reply`` (its lines), or ``local`` says what failed."""

    def __init__(self, stage, reply=None, local=None):
        super().__init__(stage)
        self.stage = stage
        self.reply = reply
        self.local = local


def default_port(tls):
    """465 for implicit TLS, else 587 (the roles' rule for an unset ``relay_port``)."""
    return PORT_IMPLICIT_TLS if tls == "implicit" else PORT_SUBMISSION


def default_verify(tls):
    """Verify the certificate whenever TLS is required or implicit (the roles' rule for ``relay_tls_verify``)."""
    return tls in ("required", "implicit")


def probe_sender(params):
    """``probe_sender``, else the SMTP AUTH user when AUTH is on; ``<>`` probes the null sender."""
    sender = params.get("probe_sender") or (params.get("relay_auth_username") if params.get("relay_auth") else "")
    if not sender:
        raise ValueError("probe_sender is needed for the probe (or relay_auth with relay_auth_username)")
    return sender


def settings_from(params, fqdn=socket.getfqdn):
    """``Settings`` from the module's parameters; ValueError naming the option that is missing."""
    if not params.get("probe_recipient"):
        raise ValueError("probe_recipient is needed for the probe")
    if params.get("relay_auth") and not params.get("relay_auth_username"):
        raise ValueError("relay_auth_username is needed for the probe's AUTH (relay_auth is true)")
    tls = params.get("relay_tls") or "required"
    verify = params.get("relay_tls_verify")
    return Settings(
        host=params.get("relay_host") or "smtp-relay.gmail.com",
        port=params.get("relay_port") or default_port(tls),
        tls=tls,
        verify=default_verify(tls) if verify is None else bool(verify),
        ca_file=params.get("relay_tls_ca_file") or None,
        helo=params.get("relay_helo_name") or fqdn(),
        auth=bool(params.get("relay_auth")),
        username=params.get("relay_auth_username") or "",
        password=params.get("relay_auth_password") or "",
        sender=probe_sender(params),
        recipient=params["probe_recipient"],
        timeout=params.get("probe_timeout") or 30,
    )


def describe(settings):
    """The settings the probe used, as the result shows them (never the password)."""
    return {"host": settings.host, "port": settings.port, "tls": settings.tls, "tls_verify": settings.verify,
            "tls_ca_file": settings.ca_file, "helo": settings.helo, "auth": settings.auth,
            "auth_username": settings.username if settings.auth else None}


def tls_context(settings):
    """A client context that verifies the relay's certificate and name (against ``ca_file`` or the system's
    bundle), or, with verification off, takes any certificate."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def reply_lines(code, message):
    """An smtplib reply (code, the lines' texts joined with newlines) as the lines that came on the wire."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message or "")
    texts = text.split("\n")
    return ["%d%s%s" % (code, "-" if index < len(texts) - 1 else " ", line) for index, line in enumerate(texts)]


def failure_text(exc, stage):
    """What went wrong at ``stage``, in the words the doctor's local patterns name (certificate, refused, DNS)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", None) or exc
        return "TLS handshake failed at %s: certificate verify failed: %s" % (stage, why)
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed at %s: %s" % (stage, getattr(exc, "reason", None) or exc)
    if isinstance(exc, socket.gaierror):
        return "host name lookup failure: %s" % (exc.strerror or exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connect to the relay: connection refused"
    if isinstance(exc, TimeoutError):
        return "connection timed out at %s" % stage
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "lost connection with the relay at %s: %s" % (stage, exc)
    return "relay unreachable at %s: %s" % (stage, getattr(exc, "strerror", None) or exc)


def scrub(text, secret):
    """``text`` with ``secret`` replaced by asterisks (a relay never echoes a password; should one, it stays out)."""
    return mask(text, secret_texts(secret)) if text else text


def smtp_client(settings):
    """An unconnected smtplib client (TLS from the first byte with ``tls: implicit``) that verifies the certificate
    for ``settings.host``."""
    if settings.tls == "implicit":
        client = smtplib.SMTP_SSL(local_hostname=settings.helo, timeout=settings.timeout,
                                  context=tls_context(settings))
    else:
        client = smtplib.SMTP(local_hostname=settings.helo, timeout=settings.timeout)
    # The name TLS checks the certificate against: smtplib sets it only when its constructor connects, which would
    # hide the greeting (the relay's first answer).
    client._host = settings.host  # pylint: disable=protected-access
    return client


class Session:
    """One probe session: the smtplib client, the steps taken so far, and how each step is judged."""

    def __init__(self, settings):
        self.settings = settings
        self.client = None
        self.steps = []
        self.broken = False

    def exchange(self, stage, command, accepted, refused=None):
        """Run ``command()`` (an smtplib call answering ``(code, message)``) as ``stage``; record the answer; raise
        Stop unless its code is in ``accepted`` (``refused``: what a refusal means when the catalogue does not know
        the reply)."""
        try:
            code, message = command()
        except smtplib.SMTPResponseException as exc:  # STARTTLS refused
            code, message = exc.smtp_code, exc.smtp_error
        except (OSError, smtplib.SMTPException) as exc:  # socket, DNS, TLS, the relay hanging up
            raise self.failure(stage, failure_text(exc, stage)) from None
        lines = [scrub(line, self.settings.password) for line in reply_lines(code, message)]
        self.steps.append({"step": stage, "code": code, "reply": lines})
        if code not in accepted:
            raise Stop(stage, reply=lines, local=refused)

    def failure(self, stage, text, broken=True):
        """Record a step that got no answer (``text`` says why) and return the Stop to raise. ``broken``: the session
        is in an unknown state from then on (a half-done TLS handshake, a dead socket): no RSET or QUIT on it."""
        text = scrub(text, self.settings.password)
        self.steps.append({"step": stage, "code": None, "error": text})
        self.broken = self.broken or broken
        return Stop(stage, local=text)

    def connect(self):
        self.client = smtp_client(self.settings)
        return self.client.connect(self.settings.host, self.settings.port)

    def ehlo(self):
        return self.client.ehlo(self.settings.helo)

    def wants_starttls(self):
        """STARTTLS unless TLS is off or implicit; required TLS stops the probe when the relay offers none."""
        if self.settings.tls in ("none", "implicit"):
            return False
        if self.client.has_extn("starttls"):
            return True
        if self.settings.tls == "required":
            raise self.failure("STARTTLS", "TLS is required, but the relay does not offer STARTTLS", broken=False)
        return False

    def starttls(self):
        return self.client.starttls(context=tls_context(self.settings))

    def tls_active(self):
        return isinstance(self.client.sock, ssl.SSLSocket)

    def auth_plain(self):
        """AUTH PLAIN with the initial response (one attempt: a relay counts failed logins)."""
        secret = "\0%s\0%s" % (self.settings.username, self.settings.password)
        return self.client.docmd("AUTH", "PLAIN " + base64.b64encode(secret.encode("utf-8")).decode("ascii"))

    def mail(self):
        return self.client.mail(self.settings.sender)

    def rcpt(self):
        return self.client.rcpt(self.settings.recipient)

    def walk(self):
        """Every step up to RCPT TO; Stop at the first one that does not pass."""
        self.exchange("CONNECT", self.connect, (220,))
        self.exchange("EHLO", self.ehlo, (250,))
        if self.wants_starttls():
            self.exchange("STARTTLS", self.starttls, (220,), refused="the relay refused STARTTLS")
            self.exchange("EHLO", self.ehlo, (250,))
        if self.settings.auth and not self.tls_active():
            raise self.failure("AUTH", CLEAR_TEXT_AUTH, broken=False)
        if self.settings.auth:
            self.exchange("AUTH", self.auth_plain, (235,))
        self.exchange("MAIL", self.mail, (250,))
        self.exchange("RCPT", self.rcpt, (250, 251))

    def finish(self):
        """RSET and QUIT while the relay still listens (recorded), then close; never raises."""
        if self.client is None:
            return
        for stage, command in (("RSET", self.client.rset), ("QUIT", self.client.quit)):
            if self.broken or self.client.sock is None:
                break
            try:
                code, message = command()
            except (OSError, smtplib.SMTPException):
                break
            self.steps.append({"step": stage, "code": code, "reply": reply_lines(code, message)})
        self.client.close()


def diagnosis_of(stop, settings, mta=None, egress=None):
    """The doctor's diagnosis of where the probe stopped (the null sender ``<>`` refines sender refusals)."""
    sender = "" if settings.sender.strip() == "<>" else settings.sender
    return doctor.diagnose(stop.reply, stop.local, stop.stage, sender, mta, egress)


def result(settings, steps, stop, mta=None, egress=None):
    """The probe's result: verdict (``ok``, or the cause's severity), where it stopped, the diagnosis (class,
    cause, Admin console setting, fixes, the reply), every step's answer and the settings used."""
    diagnosis = diagnosis_of(stop, settings, mta, egress) if stop else None
    return {
        "verdict": diagnosis["severity"] if diagnosis else "ok",
        "stopped_at": stop.stage if stop else None,
        "diagnosis": diagnosis,
        "steps": steps,
        "relay": describe(settings),
        "sender": settings.sender,
        "recipient": settings.recipient,
    }


def run(settings, mta=None, egress=None):
    """Probe the relay with ``settings``; the result (``result``). Sends no message."""
    session = Session(settings)
    stop = None
    try:
        session.walk()
    except Stop as stopped:
        stop = stopped
    finally:
        session.finish()
    return result(settings, session.steps, stop, mta, egress)


def merge(report, probe):
    """The doctor's host ``report`` with the probe's result under ``probe``: a probe that stopped adds a reason
    and raises the verdict to its severity (a relay that refuses this host now blocks it, queue or not)."""
    report["probe"] = probe
    if probe["verdict"] == "ok":
        return report
    report["reasons"] = list(report.get("reasons") or []) + [
        "probe stopped at %s: %s" % (probe["stopped_at"], probe["diagnosis"]["title"])]
    if VERDICT_RANK[probe["verdict"]] > VERDICT_RANK[report["verdict"]]:
        report["verdict"] = probe["verdict"]
    return report
