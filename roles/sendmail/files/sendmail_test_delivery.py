# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Post-change test delivery for smarthost.relay.sendmail (run on the managed host by ansible.builtin.script).

Delivers one message synchronously through the relay with the sendmail.cf on disk (``sendmail -Am
-odi``), in a private queue directory, so the running daemon, its queue and its configuration are
never involved, and nothing is left behind: the private queue is removed afterwards, so a deferred
test message is never retried later. DSNs are off for it (``-N never``).

Sendmail's verbose transcript is read but never printed: it holds the SMTP AUTH exchange. Only the
delivery status lines and the relay's numbered replies come out, as one JSON object:
``status`` is "sent", "deferred", "bounced" or "timeout", ``reply`` the status line. Exit status 0
when the relay accepted the message, 1 otherwise.

Python 3.6+, standard library only.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from email.utils import formatdate


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sender", required=True)
    parser.add_argument("--recipient", required=True)
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--sendmail", default="/usr/sbin/sendmail")
    parser.add_argument("--queue-parent", default="/var/spool")
    return parser.parse_args(argv)


def message(sender, recipient, message_id):
    return "\r\n".join([
        "From: <%s>" % sender,
        "To: <%s>" % recipient,
        "Subject: smarthost.relay Sendmail test delivery from %s" % socket.getfqdn(),
        "Date: %s" % formatdate(localtime=True),
        "Message-ID: %s" % message_id,
        "Auto-Submitted: auto-generated",
        "",
        "This message tests the relay configuration that smarthost.relay.sendmail has just written.",
        "",
    ])


def visible(line):
    """Transcript lines that may be shown: never what the client sent (">>> ", the AUTH exchange)."""
    return not line.startswith(">>>") and "AUTH" not in line.upper().split(" ", 1)[0]


def classify(lines, recipient):
    pattern = re.compile(r"^<?%s>?\.\.\. (.*)$" % re.escape(recipient), re.IGNORECASE)
    status_lines = [m.group(1) for m in (pattern.match(line) for line in lines) if m]
    final = [s for s in status_lines if not s.startswith("Connecting to")]
    if not final:
        return "deferred", status_lines[-1] if status_lines else "no delivery status from sendmail"
    last = final[-1]
    if last.startswith("Sent"):
        return "sent", last
    if last.startswith("Deferred") or "Deferred" in last:
        return "deferred", last
    return "bounced", last


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    message_id = "<smarthost-relay-test.%s@%s>" % (uuid.uuid4().hex, socket.getfqdn())
    queue = tempfile.mkdtemp(prefix="smarthost-relay-test.", dir=args.queue_parent)
    os.chmod(queue, 0o700)
    limit = max(args.timeout, 5)
    argv = [args.sendmail, "-Am", "-odi", "-v", "-N", "never", "-oep",
            "-OQueueDirectory=%s" % queue,
            "-OTimeout.connect=%ds" % limit, "-OTimeout.iconnect=%ds" % limit, "-OTimeout.initial=%ds" % limit,
            "-f", args.sender, args.recipient]
    out = {"message_id": message_id, "sender": args.sender, "recipient": args.recipient}
    try:
        result = subprocess.run(argv, input=message(args.sender, args.recipient, message_id),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                timeout=limit + 30, check=False)
        lines = result.stdout.splitlines()
        out["status"], out["reply"] = classify(lines, args.recipient)
        out["transcript"] = [line for line in lines if visible(line)][-12:]
    except subprocess.TimeoutExpired:
        out.update({"status": "timeout", "reply": "no answer from the relay within %d seconds" % (limit + 30)})
    finally:
        shutil.rmtree(queue, ignore_errors=True)
    print(json.dumps(out))
    return 0 if out["status"] == "sent" else 1


if __name__ == "__main__":
    sys.exit(main())
