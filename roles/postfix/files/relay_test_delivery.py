# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Post-change test delivery for smarthost.relay.postfix (run on the managed host by ansible.builtin.script).

Submits one message with Postfix's sendmail, follows it through the mail log (the journal, or a
classic log file) by its Message-ID and queue id, and reports what the relay answered:

* exit 0 and a JSON line with status "sent" when the relay accepted it;
* exit 1 with status "deferred", "bounced" or "timeout" and the relay's reply otherwise. The test
  message is then removed from the queue (only that message), so it is not retried later.

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
import time
import uuid
from email.utils import formatdate

LOG_FILES = ("/var/log/mail.log", "/var/log/maillog")
FINAL = ("sent", "deferred", "bounced", "expired", "undeliverable")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sender", required=True)
    parser.add_argument("--recipient", required=True)
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--sendmail", default="/usr/sbin/sendmail")
    parser.add_argument("--postsuper", default="/usr/sbin/postsuper")
    return parser.parse_args(argv)


class MailLog(object):
    """New mail log lines since the object was created: from the journal when systemd runs, else
    from the first classic log file that exists."""

    def __init__(self):
        self.since = time.time() - 1
        self.journal = shutil.which("journalctl") and os.path.isdir("/run/systemd/system")
        self.path = None
        self.offset = 0
        if not self.journal:
            for path in LOG_FILES:
                if os.path.exists(path):
                    self.path = path
                    self.offset = os.path.getsize(path)
                    break

    def lines(self):
        if self.journal:
            result = subprocess.run(
                ["journalctl", "--quiet", "--no-pager", "-o", "cat", "--since", "@%d" % int(self.since),
                 "SYSLOG_FACILITY=2"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, check=False)
            return result.stdout.splitlines()
        if self.path:
            with open(self.path, "r", errors="replace") as handle:
                handle.seek(self.offset)
                return handle.read().splitlines()
        return []


def message(sender, recipient, message_id):
    return "\r\n".join([
        "From: <%s>" % sender,
        "To: <%s>" % recipient,
        "Subject: smarthost.relay Postfix test delivery from %s" % socket.getfqdn(),
        "Date: %s" % formatdate(localtime=True),
        "Message-ID: %s" % message_id,
        "Auto-Submitted: auto-generated",
        "",
        "Postfix on %s was configured to relay through the smarthost;" % socket.getfqdn(),
        "this message tests that the relay accepts its mail.",
        "",
    ])


def follow(log, message_id, recipient, deadline):
    """(queue_id, status, detail) once the log shows a final status for the test message."""
    queue_id = None
    id_re = re.compile(r"(?:^|\s)([0-9A-Za-z]+): message-id=" + re.escape(message_id))
    while time.time() < deadline:
        lines = log.lines()
        if queue_id is None:
            for line in lines:
                found = id_re.search(line)
                if found:
                    queue_id = found.group(1)
                    break
        if queue_id is not None:
            status_re = re.compile(re.escape(queue_id) + r": to=<" + re.escape(recipient)
                                   + r">.*?, status=(\w+)(?: \((.*)\))?$")
            for line in lines:
                found = status_re.search(line)
                if found and found.group(1) in FINAL:
                    return queue_id, found.group(1), found.group(2) or ""
        time.sleep(0.5)
    return queue_id, "timeout", "no delivery status in the mail log within the timeout"


def main(argv):
    args = parse_args(argv)
    domain = args.sender.rpartition("@")[2] or "localhost"
    message_id = "<smarthost-relay-test.%s@%s>" % (uuid.uuid4().hex, domain)
    log = MailLog()
    submit = subprocess.run([args.sendmail, "-i", "-f", args.sender, "--", args.recipient],
                            input=message(args.sender, args.recipient, message_id),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    if submit.returncode != 0:
        print(json.dumps({"status": "not submitted", "detail": submit.stdout.strip(), "message_id": message_id}))
        return 1
    queue_id, status, detail = follow(log, message_id, args.recipient, time.time() + args.timeout)
    report = {"status": status, "detail": detail, "queue_id": queue_id, "message_id": message_id,
              "sender": args.sender, "recipient": args.recipient}
    if status == "sent":
        print(json.dumps(report))
        return 0
    if queue_id is not None:
        # Only the test message: it must not be retried with a configuration that is rolled back.
        subprocess.run([args.postsuper, "-d", queue_id], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
    print(json.dumps(report))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
