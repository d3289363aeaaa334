# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Post-change test delivery for smarthost.relay.qmail (run on the managed host by ansible.builtin.script).

Queues one message with qmail-inject, finds its queue number (the message file under queue/mess that holds its
Message-ID, or qmail-send's "info msg N" line for the sender), and follows qmail-send's log until the remote
delivery to the recipient ends:

* exit 0, JSON status "success": the relay accepted it ("delivery D: success: ...");
* exit 0, JSON status "unconfirmed": no readable log, but the message left the queue in time;
* exit 1, status "failure", "deferral" or "timeout", with qmail-remote's report: the caller rolls back. The message
  stays in qmail's queue (qmail has no tool to delete one safely while qmail-send runs); qmail retries it.

qmail-send's log lines (multilog or syslog, any prefix): "info msg N: bytes B from <sender> qp P uid U",
"starting delivery D: msg N to remote R", "delivery D: success|failure|deferral: text", "end msg N".
Python 3.6+, standard library only.
"""

import argparse
import glob
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from email.utils import formatdate

INFO_RE = re.compile(r"info msg (\d+): bytes \d+ from <([^>]*)> qp \d+ uid \d+")
START_RE = re.compile(r"starting delivery (\d+): msg (\d+) to remote (\S+)")
RESULT_RE = re.compile(r"delivery (\d+): (success|failure|deferral): (.*?)\s*$")
END_RE = re.compile(r"end msg (\d+)")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmail-dir", default="/var/qmail")
    parser.add_argument("--sender", required=True)
    parser.add_argument("--recipient", required=True)
    parser.add_argument("--timeout", type=int, default=120)
    parser.add_argument("--log", default="", help="qmail-send's log file (multilog current, or a syslog file)")
    return parser.parse_args(argv)


def messages_from(lines, sender):
    """Queue numbers of the messages qmail-send logged as coming from ``sender``."""
    found = []
    for line in lines:
        match = INFO_RE.search(line)
        if match and match.group(2).lower() == sender.lower():
            found.append(match.group(1))
    return found


def outcome(lines, msg, recipient):
    """``(status, detail, ended)`` of the remote delivery of message ``msg`` to ``recipient``, from qmail-send's
    log lines: status is "success", "failure", the latest "deferral" (qmail retries later), or None when no
    delivery was logged yet; ``ended`` is True once "end msg" was logged."""
    deliveries = set()
    status, detail, ended = None, "", False
    for line in lines:
        match = START_RE.search(line)
        if match and match.group(2) == msg and match.group(3).lower() == recipient.lower():
            deliveries.add(match.group(1))
            continue
        match = RESULT_RE.search(line)
        if match and match.group(1) in deliveries:
            deliveries.discard(match.group(1))
            if status not in ("success", "failure"):
                status, detail = match.group(2), match.group(3)
            continue
        match = END_RE.search(line)
        if match and match.group(1) == msg:
            ended = True
    return status, readable(detail), ended


def readable(text):
    """qmail-remote's reports use '_' for blanks and '/' for line ends."""
    return text.replace("_", " ").replace("/", " | ").strip(" |")


class Log(object):
    """Lines appended to a log file since the object was made."""

    def __init__(self, path):
        self.path = path if path and os.access(path, os.R_OK) else None
        self.offset = os.path.getsize(self.path) if self.path else 0

    def lines(self):
        if not self.path:
            return []
        size = os.path.getsize(self.path)
        if size < self.offset:  # multilog rotated "current"
            self.offset = 0
        with open(self.path, "r", errors="replace") as handle:
            handle.seek(self.offset)
            return handle.read().splitlines()


def queued(qmail_dir, message_id):
    """The queue number of the message file that holds ``message_id``, or None."""
    needle = message_id.encode()
    for path in glob.glob(os.path.join(qmail_dir, "queue", "mess", "*", "*")):
        try:
            with open(path, "rb") as handle:
                if needle in handle.read(65536):
                    return os.path.basename(path)
        except OSError:
            continue
    return None


def message(sender, recipient, message_id):
    host = socket.getfqdn()
    return "\n".join([
        "From: <%s>" % sender,
        "To: <%s>" % recipient,
        "Subject: smarthost.relay qmail test delivery from %s" % host,
        "Date: %s" % formatdate(localtime=True),
        "Message-ID: %s" % message_id,
        "Auto-Submitted: auto-generated",
        "",
        "qmail on %s was configured to relay through the smarthost;" % host,
        "this message tests that the relay accepts its mail.",
        "",
    ])


def main(argv):
    args = parse_args(argv)
    domain = args.sender.rpartition("@")[2] or "localhost"
    message_id = "<smarthost-relay-test.%s@%s>" % (uuid.uuid4().hex, domain)
    log = Log(args.log)
    inject = os.path.join(args.qmail_dir, "bin", "qmail-inject")
    run = subprocess.run([inject, "-f" + args.sender, "-a", args.recipient],
                         input=message(args.sender, args.recipient, message_id),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    report = {"message_id": message_id, "sender": args.sender, "recipient": args.recipient, "log": log.path}
    if run.returncode != 0:
        report.update(status="not queued", detail="qmail-inject exited %d: %s" % (run.returncode, run.stdout.strip()))
        print(json.dumps(report))
        return 1
    msg = queued(args.qmail_dir, message_id)
    seen = []
    deadline = time.time() + args.timeout
    status, detail, ended = None, "", False
    while time.time() < deadline:
        seen.extend(log.lines())
        if msg is None:
            candidates = messages_from(seen, args.sender)
            msg = candidates[-1] if candidates else None
        if msg is not None:
            status, detail, ended = outcome(seen, msg, args.recipient)
            if status in ("success", "failure"):
                break
            if log.path is None and not glob.glob(os.path.join(args.qmail_dir, "queue", "mess", "*", msg)):
                status, detail = "unconfirmed", "no readable qmail-send log; the message left the queue"
                break
        time.sleep(0.5)
    else:
        if status is None:
            status, detail = "timeout", "no delivery result within %d s" % args.timeout
        elif status == "deferral":
            detail = "still queued after %d s; last attempt: %s" % (args.timeout, detail)
    report.update(status=status, detail=detail, msg=msg, ended=ended)
    print(json.dumps(report))
    return 0 if status in ("success", "unconfirmed") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
