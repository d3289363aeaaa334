# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SMTP client run inside a container (python3 - JSON < this file): one session, several transactions.

Argument: {"target", "port", "tls": none|starttls|implicit, "helo", "transactions": [{"sender", "recipient",
"message_id"}]}. Without SMTP AUTH. A transaction goes on to DATA only when its RCPT was accepted, so a server
that wrongly relays really relays (and the relay stand-in records it). Prints a JSON result:
{"connect": "ok" | error text, "starttls": offered?, "transactions": [{"mail": [code, text], "rcpt": ..., "data": ...}]}.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import sys


def reply(pair):
    code, text = pair
    return [code, text.decode(errors="replace") if isinstance(text, bytes) else str(text)]


def transaction(session, item):
    result = {"mail": reply(session.docmd("MAIL FROM:<%s>" % item["sender"])), "rcpt": None, "data": None}
    if result["mail"][0] < 400:
        result["rcpt"] = reply(session.docmd("RCPT TO:<%s>" % item["recipient"]))
        if result["rcpt"][0] < 400:
            message = "From: <%s>\r\nTo: <%s>\r\nSubject: open relay probe\r\nMessage-ID: %s\r\n\r\nprobe\r\n" % (
                item["sender"], item["recipient"], item["message_id"])
            result["data"] = reply(session.data(message))
    session.rset()
    return result


def main(request):
    context = ssl.create_default_context()
    # The MTAs' own server certificates are self-signed; what is probed is relaying, not their certificate.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    out = {"connect": "ok", "starttls": None, "transactions": []}
    try:
        if request["tls"] == "implicit":
            session = smtplib.SMTP_SSL(request["target"], request["port"], timeout=20, context=context)
        else:
            session = smtplib.SMTP(request["target"], request["port"], timeout=20)
        session.ehlo(request["helo"])
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
    for item in request["transactions"]:
        out["transactions"].append(transaction(session, item))
    session.quit()
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
