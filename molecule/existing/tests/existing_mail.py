# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Send mail on the scenario's hosts and find it again: at the relay stand-in, in a local mailbox, over SMTP."""

from __future__ import annotations

import shlex
import time
import uuid

import relay_record

MAIL_DIR = "/var/lib/relay-standin/mail"


def mid(label):
    return "<%s.%s@example.com>" % (label, uuid.uuid4().hex[:12])


def send(host, sender, recipients, message_id, subject="existing playbook"):
    """Submit one message with the host's sendmail command, as local programs do."""
    body = "To: %s\nSubject: %s\nMessage-ID: %s\n\nsmarthost.relay existing scenario\n" % (
        ", ".join(recipients), subject, message_id)
    sender_args = "" if sender is None else "-f %s" % shlex.quote(sender)
    result = host.run("printf %%s %s | /usr/sbin/sendmail -i %s -- %s" % (
        shlex.quote(body), sender_args, " ".join(shlex.quote(r) for r in recipients)))
    assert result.rc == 0, result.stdout + result.stderr


def arrived(relay, message_id, timeout=90):
    """The accepted transactions of one message at the relay (waits for the first)."""
    found = relay_record.wait_for_transactions(relay, timeout=timeout, message_id=message_id, verdict="accepted")
    assert found, "%s never reached the relay" % message_id
    return found


def relayed_message(relay, transaction):
    """The message as the relay received it (the stand-in keeps each one in its mail_dir)."""
    return relay.check_output("cat %s/%s.%d.eml" % (MAIL_DIR, transaction["connection"], transaction["seq"]))


def in_mailbox(host, user, message_id, timeout=60):
    """Wait until the message is in the user's local mailbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.run("grep -qF %s /var/mail/%s" % (shlex.quote(message_id), user)).rc == 0:
            return True
        time.sleep(1)
    return False


def smtp_session(host, port, *transactions):
    """One session (relay_standin.inject's ``session``) with the SMTP server on the host's loopback address: EHLO,
    no TLS, then ``transactions`` (each stops before DATA)."""
    return relay_record.smtp_session(host, {"target": "127.0.0.1", "port": port, "tls": "none",
                                            "helo": "client.corp.test", "transactions": list(transactions)})


def smtp_greeting(host, port):
    """The greeting's text of the SMTP server on the host's loopback address."""
    session = smtp_session(host, port)
    assert session["greeting"], session
    return session["greeting"][1]


def smtp_rcpt_reply(host, sender, recipient):
    """The reply of the host's own SMTP server on loopback to RCPT TO after MAIL FROM:<sender> (Debian's
    Sendmail has delay_checks: the access map's From: entries answer at RCPT), as "code text"; the reply to MAIL
    FROM when that refused the sender already."""
    session = smtp_session(host, 25, {"sender": sender, "recipient": recipient, "message_id": mid("rcpt"),
                                      "data": False})
    assert session["connect"] == "ok", session
    [transaction] = session["transactions"]
    return "%d %s" % tuple(transaction["rcpt"] or transaction["mail"])
