# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tests' one SMTP injector: a standalone script (standard library only, Python 3.6+), copied into a
container and run by its own python3, or imported from ``relay_standin.inject``.

``batch PREFIX SENDER COUNT``: COUNT messages in one SMTP session (as an application would), Message-IDs
``<PREFIX.<i>@<id-domain>>``, one recipient each (``<recipient-prefix><i>@example.net``, or cycling through
``--recipient-pool`` of them), at ``--rate`` messages per second (0: as fast as the server takes them). When the
server drops the session (a restart by a role run), it reconnects and submits the message it was on again, for up
to ``--reconnect-for`` seconds without progress. With ``--hold-at`` and ``--go-file`` it pauses before that message
until the file exists, then goes on at the same rate: a test that changes the MTA while mail flows can so be sure
that some messages follow the change however long the change takes. Prints ``<submitted> <reconnects>``.

``session JSON``: one session of several transactions, each reply kept (``{"target", "port", "tls": none |
starttls | implicit, "helo", "transactions": [{"sender", "recipient", "message_id", "data": true}]}``; without
SMTP AUTH; TLS unverified: the servers probed are MTAs with self-signed certificates). A transaction goes on to
DATA only when its RCPT was accepted (and ``data`` is not false), so a server that wrongly relays really relays.
Prints ``{"connect": "ok" | error, "greeting": [code, text], "starttls": offered?, "transactions": [{"mail":
[code, text], "rcpt": ..., "data": ...}]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import ssl
import sys
import time

# This file's text is what goes into containers: ``source()`` for ``podman exec -i CONTAINER sh -c INSTALL``, then
# ``podman exec CONTAINER *in_container(ARGS)``.
PATH_IN_CONTAINER = "/usr/local/bin/smarthost-inject"
INSTALL = "cat > %s && chmod 0755 %s" % (PATH_IN_CONTAINER, PATH_IN_CONTAINER)


def source():
    with open(os.path.abspath(__file__), encoding="utf-8") as handle:
        return handle.read()


def in_container(*args):
    """The command that runs the installed copy with ``args`` in a container. By the container's python3: the
    file has no shebang (ansible-test allows only ``#!/usr/bin/env python``, a name Debian does not install)."""
    return ["python3", PATH_IN_CONTAINER] + [str(arg) for arg in args]


def batch_message(args, index):
    """(recipient, message) of message ``index`` of a batch."""
    number = index % args.recipient_pool if args.recipient_pool else index
    recipient = "%s%d@example.net" % (args.recipient_prefix, number)
    text = ("From: %s\r\nTo: %s\r\nSubject: %s %d\r\nMessage-ID: <%s.%d@%s>\r\n\r\n%s\r\n"
            % (args.sender, recipient, args.prefix, index, args.prefix, index, args.id_domain, args.body))
    return recipient, text


def hold(go_file):
    while not os.path.exists(go_file):
        time.sleep(0.2)


def batch(args):
    """Submit the batch; (submitted, reconnects)."""
    end = args.first + args.count
    start, reconnects, smtp, index = time.monotonic(), 0, None, args.first
    last_ok, hold_at = start, args.hold_at
    while index < end:
        done = index - args.first
        if index == hold_at:
            hold(args.go_file)
            hold_at, start = None, time.monotonic() - done / args.rate if args.rate else start
            last_ok = time.monotonic()
        if args.rate:
            time.sleep(max(0.0, start + done / args.rate - time.monotonic()))
        try:
            if smtp is None:
                smtp = smtplib.SMTP(args.host, args.port, local_hostname=args.helo, timeout=args.timeout)
            recipient, text = batch_message(args, index)
            smtp.sendmail(args.sender, [recipient], text)
            index, last_ok = index + 1, time.monotonic()
        except (OSError, smtplib.SMTPException):
            if time.monotonic() - last_ok > args.reconnect_for:
                raise
            smtp, reconnects = None, reconnects + 1
            time.sleep(0.5)
    if smtp is not None:
        smtp.quit()
    return args.count, reconnects


def reply(pair):
    code, text = pair
    return [code, text.decode(errors="replace") if isinstance(text, bytes) else str(text)]


def transaction(session, item):
    result = {"mail": reply(session.docmd("MAIL FROM:<%s>" % item["sender"])), "rcpt": None, "data": None}
    if result["mail"][0] < 400:
        result["rcpt"] = reply(session.docmd("RCPT TO:<%s>" % item["recipient"]))
        if result["rcpt"][0] < 400 and item.get("data", True):
            message = "From: <%s>\r\nTo: <%s>\r\nSubject: open relay probe\r\nMessage-ID: %s\r\n\r\nprobe\r\n" % (
                item["sender"], item["recipient"], item["message_id"])
            result["data"] = reply(session.data(message))
    session.rset()
    return result


def unverified_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def open_session(request, context, out):
    if request["tls"] == "implicit":
        session = smtplib.SMTP_SSL(timeout=20, context=context)
    else:
        session = smtplib.SMTP(timeout=20)
    # The name TLS is set up for: smtplib sets it only when its constructor connects, which would hide the greeting.
    session._host = request["target"]  # pylint: disable=protected-access
    code, text = session.connect(request["target"], request["port"])
    out["greeting"] = reply((code, text))
    if code != 220:  # as smtplib.SMTP(host, port) does
        session.close()
        raise smtplib.SMTPConnectError(code, text)
    session.ehlo(request["helo"])
    return session


def session_run(request):
    """One session of ``request["transactions"]``; what each step answered."""
    context = unverified_context()
    out = {"connect": "ok", "greeting": None, "starttls": None, "transactions": []}
    try:
        session = open_session(request, context, out)
    except (OSError, smtplib.SMTPException) as error:
        out["connect"] = "%s: %s" % (type(error).__name__, error)
        return out
    out["starttls"] = session.has_extn("starttls")
    if request["tls"] == "starttls":
        if not out["starttls"]:
            session.quit()
            return out
        session.starttls(context=context)
        session.ehlo(request["helo"])
    for item in request.get("transactions", []):
        out["transactions"].append(transaction(session, item))
    session.quit()
    return out


def parser():
    top = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    commands = top.add_subparsers(dest="command")
    commands.required = True
    many = commands.add_parser("batch")
    many.add_argument("prefix")
    many.add_argument("sender")
    many.add_argument("count", type=int)
    many.add_argument("--rate", type=float, default=0.0)
    many.add_argument("--hold-at", type=int)
    many.add_argument("--go-file", default="")
    many.add_argument("--first", type=int, default=0)
    many.add_argument("--id-domain", default="example.com")
    many.add_argument("--recipient-prefix", default="rcpt")
    many.add_argument("--recipient-pool", type=int, default=0)
    many.add_argument("--body", default="fault matrix")
    many.add_argument("--host", default="127.0.0.1")
    many.add_argument("--port", type=int, default=25)
    many.add_argument("--helo", default="localhost")
    many.add_argument("--timeout", type=float, default=120.0)
    many.add_argument("--reconnect-for", type=float, default=600.0)
    one = commands.add_parser("session")
    one.add_argument("request", type=json.loads)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command == "batch":
        print("%d %d" % batch(args))
    else:
        print(json.dumps(session_run(args.request)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
