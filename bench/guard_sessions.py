# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SMTP sessions to the relay guard on 127.0.0.1:24 (runs inside a container), as an MTA opens them:

- ``qmail``: one message per session, as qmail-remote (``HELO``, MAIL, one RCPT, DATA, then ``QUIT`` without
  waiting for its reply), ``--concurrency`` sessions at once (qmail-send's concurrencyremote);
- ``sendmail``: ``--per-session`` messages per session, as a Sendmail queue run (``EHLO``, the messages one after
  the other, ``QUIT`` answered), ``--concurrency`` sessions at once.

A message the guard answers with a 4xx or 5xx (or whose session dies) is counted and not retried. Message-IDs are
``<TAG.N@bench.example.com>``. Prints one JSON document: sessions, messages sent and refused, refusal replies,
seconds.

Usage: python3 guard_sessions.py STYLE COUNT TAG [--concurrency N] [--per-session N] [--helo NAME]
"""

import argparse
import collections
import json
import re
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


TOKEN = re.compile(r"\s+\S+\s+-\s+gsmtp\s*$")  # Google's session token and "- gsmtp": one key per kind of reply


class Refused(Exception):
    pass


def reply(reader):
    lines = []
    while True:
        line = reader.readline(1002)
        if not line:
            raise Refused("connection closed")
        lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
        if lines[-1][3:4] != "-":
            return int(lines[0][:3]), lines


def command(sock, reader, line, expect):
    sock.sendall(line.encode() + b"\r\n")
    code, lines = reply(reader)
    if code != expect:
        raise Refused(" / ".join(lines))


def message(tag, number):
    return ("Message-ID: <%s.%d@bench.example.com>\r\nSubject: bench %d\r\n\r\nbench\r\n.\r\n"
            % (tag, number, number)).encode()


def session(args, numbers, outcome):
    """One MTA session for the messages ``numbers``."""
    sent = 0
    try:
        with socket.create_connection(("127.0.0.1", args.port), timeout=120) as sock:
            reader = sock.makefile("rb")
            code, lines = reply(reader)
            if code != 220:
                raise Refused(" / ".join(lines))
            command(sock, reader, "%s %s" % ("HELO" if args.style == "qmail" else "EHLO", args.helo), 250)
            for number in numbers:
                command(sock, reader, "MAIL FROM:<bench@example.com>", 250)
                command(sock, reader, "RCPT TO:<rcpt%d@example.net>" % (number % 50), 250)
                command(sock, reader, "DATA", 354)
                sock.sendall(message(args.tag, number))
                code, lines = reply(reader)
                if code != 250:
                    raise Refused(" / ".join(lines))
                sent += 1
            if args.style == "qmail":
                sock.sendall(b"QUIT\r\n")  # qmail-remote does not wait for the answer
            else:
                command(sock, reader, "QUIT", 221)
    except (OSError, Refused) as error:
        outcome.add(len(numbers) - sent, str(error))
    return sent


class Outcome:
    def __init__(self):
        self.lock = threading.Lock()
        self.refused = 0
        self.replies = collections.Counter()

    def add(self, messages, text):
        with self.lock:
            self.refused += messages
            self.replies[TOKEN.sub("", text)[:100]] += 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("style", choices=("qmail", "sendmail"))
    parser.add_argument("count", type=int)
    parser.add_argument("tag")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--per-session", type=int, default=10, help="messages per session (sendmail style)")
    parser.add_argument("--helo", default="bench.example.com")
    parser.add_argument("--port", type=int, default=24)
    args = parser.parse_args(argv)
    size = 1 if args.style == "qmail" else args.per_session
    batches = [list(range(i, min(i + size, args.count))) for i in range(0, args.count, size)]
    outcome = Outcome()
    start = time.time()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        sent = sum(pool.map(lambda numbers: session(args, numbers, outcome), batches))
    json.dump({"style": args.style, "concurrency": args.concurrency, "messages_per_session": size,
               "sessions": len(batches), "sent": sent, "refused": outcome.refused,
               "refusals": dict(outcome.replies.most_common(5)), "started": start,
               "seconds": round(time.time() - start, 2)}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
