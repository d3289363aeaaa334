# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test code, run inside the qmail host: plays qmail-send and qmail-remote against smtproutes' catch-all route.

No qmail program exists in the test bed, so this emulates the two parts of qmail that meet the relay guard (or
stunnel), as their documentation and qmail 1.03's source describe them:

- qmail-remote (qmail-remote(8), RESULTS): plain SMTP to the smtproutes catch-all (the relay guard on
  127.0.0.1:24 in the fault matrix), ``HELO`` with control/helohost (else control/me), no ESMTP parameters. A
  greeting other than 220, a HELO reply other than 250, a 4xx, a timeout or a closed connection are temporary
  failures (Z); a 5xx to MAIL, DATA or after the message is a permanent failure (D); to RCPT, 5xx rejects the
  recipient permanently (h), 4xx temporarily (s). After the dot, a connection that dies leaves a possible duplicate
  (qmail-remote says so in its report). A multi-line reply is read as qmail 1.03's smtpcode() reads it: the code is
  the first line's three digits, continuation lines (``-`` after the code) are skipped up to the line without
  ``-``; every line is kept (``lines``) and a reply whose lines carry different codes is flagged
  (``mixed_codes``: notqmail's smtpcode() makes such a reply a temporary failure, qmail 1.03 goes by the first).
- qmail-send (qmail-send(8)): temporary failures stay queued and are retried; permanent ones are bounced to the
  sender. Retries follow qmail-send's schedule for remote deliveries, birth + (sqrt(last - birth) + 20)^2 seconds
  (0, 400, 1600, 3600 s ...), with time compressed by ``--time-scale``; at most ``--concurrency`` deliveries run at
  once (control/concurrencyremote by default).

Each message has one recipient, a unique envelope sender (so the relay's record of a refusal at MAIL or RCPT names
it) and a unique Message-ID. Prints one JSON document: every message with every attempt.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import socket
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

REMOTE_CHANSKIP = 20  # qmail-send's chanskip for the remote channel


def control(directory, name, default=None):
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as handle:
            return handle.readline().strip() or default
    except OSError:
        return default


class Reply:
    """One SMTP reply: ``code`` (qmail-remote's: the first line's), ``lines`` as received, ``text`` (the last line,
    what the report shows first), ``mixed_codes`` (lines with different codes)."""

    def __init__(self, code, lines):
        self.code, self.lines = code, lines
        self.text = lines[-1]
        self.mixed_codes = len({line[:3] for line in lines}) > 1


class Died(Exception):
    """The connection closed or timed out: qmail-remote's "connection died" (temporary)."""


class Session:
    def __init__(self, sock):
        self.sock = sock
        self.reader = sock.makefile("rb")

    def reply(self):
        """A whole (multi-line) reply: its code as qmail-remote takes it (the first line's), and its lines."""
        lines = []
        while True:
            try:
                line = self.reader.readline(1002)
            except OSError as err:  # socket.timeout is an OSError
                raise Died("timeout" if isinstance(err, socket.timeout) else str(err)) from None
            if not line:
                raise Died("closed")
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if lines[-1][3:4] != "-":
                break
        try:
            code = int(lines[0][:3])
        except ValueError:
            raise Died("unreadable reply %r" % lines) from None
        return Reply(code, lines)

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as err:
            raise Died(str(err)) from None

    def command(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()


def message_text(msg):
    lines = ["Message-ID: %s" % msg["id"], "From: <%s>" % msg["sender"], "To: <%s>" % msg["recipient"],
             "Subject: fault matrix %s" % msg["id"], "", "One message of the qmail fault matrix.", ".dot line"]
    # qmail-remote's transparency: LF -> CRLF, a leading dot doubled, then the end marker.
    return "".join(("." + line if line.startswith(".") else line) + "\r\n" for line in lines).encode() + b".\r\n"


def attempt(msg, args):
    """One qmail-remote run for one message: {outcome K/Z/D, stage, reply (the last line, or the error), lines (the
    whole reply; None for an error), mixed_codes, possible_duplicate}."""
    stage = "connect"

    def result(outcome, reply=None, error=None, critical=False):
        return {"outcome": outcome, "stage": stage, "reply": reply.text if reply else error,
                "lines": reply.lines if reply else None, "mixed_codes": bool(reply and reply.mixed_codes),
                "possible_duplicate": critical}

    try:
        sock = socket.create_connection((args.host, args.port), timeout=args.connect_timeout)
    except OSError as err:
        return result("Z", error="no connection: %s" % err)
    sock.settimeout(args.timeout)
    session = Session(sock)
    critical = False
    try:
        stage = "greeting"
        reply = session.reply()
        if reply.code != 220:
            return result("Z", reply)
        stage = "helo"
        reply = session.command("HELO %s" % args.helo)
        if reply.code != 250:
            return result("Z", reply)
        stage = "mail"
        reply = session.command("MAIL FROM:<%s>" % msg["sender"])
        if reply.code >= 400:
            return result("D" if reply.code >= 500 else "Z", reply)
        stage = "rcpt"
        reply = session.command("RCPT TO:<%s>" % msg["recipient"])
        if reply.code >= 400:  # h or s for the only recipient
            return result("D" if reply.code >= 500 else "Z", reply)
        stage = "data"
        reply = session.command("DATA")
        if reply.code >= 400:
            return result("D" if reply.code >= 500 else "Z", reply)
        stage = "end_of_data"
        session.send(message_text(msg))
        critical = True
        reply = session.reply()
        if reply.code >= 400:
            return result("D" if reply.code >= 500 else "Z", reply)
        return result("K", reply)
    except Died as err:
        return result("Z", error="connection died: %s" % err, critical=critical)
    finally:
        try:  # qmail-remote says QUIT and does not wait for the answer
            sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
        sock.close()


def next_retry(birth, now, scale):
    """qmail-send's nextretry() for the remote channel, on the compressed clock."""
    elapsed = max(0.0, (now - birth) * scale)
    n = math.isqrt(int(elapsed)) + REMOTE_CHANSKIP
    return birth + n * n / scale


def run(args):
    if args.start_on_go:
        # The caller arms the relay's fault while this process is up, then says go: no start-up delay of
        # `podman exec` can make the first sessions miss the fault.
        print("ready", file=sys.stderr, flush=True)
        sys.stdin.readline()
    start = time.time()
    messages = []
    for i in range(args.count):
        messages.append({"id": "<%s.%d@example.com>" % (args.prefix, i), "sender": "%s.%d@example.com" % (args.prefix, i),
                         "recipient": "rcpt%d@example.net" % i, "attempts": [], "final": "queued"})
    due = [(start, i) for i in range(len(messages))]  # every message queued at once, as qmail-send finds them
    heapq.heapify(due)
    running = {}
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        while due or running:
            now = time.time()
            if now - start > args.deadline:
                due = []  # what is left stays queued; deliveries under way finish and are recorded
            while due and len(running) < args.concurrency and due[0][0] <= now:
                i = heapq.heappop(due)[1]
                running[pool.submit(attempt, messages[i], args)] = (i, time.time())
            pause = max(0.0, min(0.2, due[0][0] - now)) if due and len(running) < args.concurrency else 0.2
            if not running:
                time.sleep(pause)
                continue
            done = wait(list(running), timeout=pause, return_when=FIRST_COMPLETED)[0]
            for future in done:
                i, began = running.pop(future)
                outcome = future.result()
                msg = messages[i]
                msg["attempts"].append(dict(outcome, t=round(began - start, 3),
                                            seconds=round(time.time() - began, 3)))
                outcome = outcome["outcome"]
                if outcome == "Z":
                    heapq.heappush(due, (next_retry(start, time.time(), args.time_scale), i))
                else:
                    msg["final"] = {"K": "delivered", "D": "bounced"}[outcome]
    return {"prefix": args.prefix, "helo": args.helo, "concurrency": args.concurrency,
            "timeout": args.timeout, "time_scale": args.time_scale, "started": start,
            "seconds": round(time.time() - start, 2), "messages": messages}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--prefix", required=True, help="Message-IDs <prefix>.<n>@example.com, senders alike")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--control", default="/var/qmail/control")
    parser.add_argument("--concurrency", type=int, default=0, help="default: control/concurrencyremote, else 20")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per reply (timeoutremote, scaled)")
    parser.add_argument("--connect-timeout", type=float, default=5.0)
    parser.add_argument("--time-scale", type=float, default=400.0, help="queue seconds per real second")
    parser.add_argument("--deadline", type=float, default=300.0, help="stop retrying after this many seconds")
    parser.add_argument("--start-on-go", action="store_true",
                        help="say 'ready' on stderr, then queue the messages once a line arrives on stdin")
    args = parser.parse_args(argv)
    args.helo = control(args.control, "helohost") or control(args.control, "me") or socket.getfqdn()
    args.concurrency = args.concurrency or int(control(args.control, "concurrencyremote", "20"))
    json.dump(run(args), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
