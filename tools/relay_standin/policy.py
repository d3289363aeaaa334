# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay rules, applied to each SMTP command (the aiosmtpd handler).

Order at MAIL FROM (each step can refuse): fault, TLS required, relay access
(IP allowlist / SMTP AUTH), allowed senders + HELO rule + rewrite (engine
``session.sender_verdict``), per-user message limit.  At RCPT TO: fault,
recipients per transaction (100 by default), null sender (engine
``session.null_sender_rcpt_verdict``), customer and user recipient limits.
At end of DATA: fault, then the message is counted and accepted.  (HELO/EHLO
checks and the denial-of-service rule are in ``protocol.RelaySMTP``.)

Every refusal and limit reply is a catalogue entry, rendered and laid out by
``RelaySMTP.reply`` (several lines with a session token by default).
"""

from __future__ import annotations

import logging
import time

from .engine import allowlist, session as rules
from .message import message_id, store
from .protocol import DROPPED

log = logging.getLogger("relay_standin")

REPLY_DATA_OK = "250 2.0.0 OK %s - gsmtp"
REPLY_RESET = "250 2.1.5 Flushed"
REPLY_BYE = "221 2.0.0 closing connection"
REPLY_NO_TRANSACTION = "503 5.5.1 Bad sequence of commands."


class RelayPolicy:
    """aiosmtpd handler: one instance per server, state via the protocol."""

    def __init__(self, state) -> None:
        self.state = state

    @staticmethod
    def wall_clock() -> float:
        return time.time()

    # ---- transaction bookkeeping -------------------------------------------------
    def close_transaction(self, server, reason: str) -> None:
        """Write the open transaction (if any) to the record."""
        conn = server.conn
        if conn is None or conn.current is None:
            return
        trans, conn.current = conn.current, None
        log.debug("transaction %s#%d closed by %s", conn.connection_id, trans.seq, reason)
        self.state.writer.write(conn.transaction_record(trans, self.wall_clock()))

    def _refuse_mail(self, server, trans, reply: str) -> str:
        trans.conclude("mail", reply or None)
        self.close_transaction(server, "mail refused")
        return reply or DROPPED

    # ---- greetings (faults and the relay's HELO checks came first: protocol.RelaySMTP) ----------
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.close_transaction(server, "ehlo")
        session.host_name = hostname
        server.conn.helo, server.conn.helo_verb = hostname, "EHLO"
        lines = ["%s at your service, [%s]" % (server.settings.hostname, server.conn.client_ip)]
        lines += server.advertised_extensions()
        return ["250-" + line for line in lines[:-1]] + ["250 " + lines[-1]]

    async def handle_HELO(self, server, session, envelope, hostname):
        self.close_transaction(server, "helo")
        session.host_name = hostname
        server.conn.helo, server.conn.helo_verb = hostname, "HELO"
        return "250 %s at your service" % server.settings.hostname

    # ---- MAIL FROM -------------------------------------------------------------
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        conn, settings = server.conn, server.settings
        self.close_transaction(server, "mail")
        sender = "" if rules.is_null_sender(address) else address
        trans = conn.begin(sender, list(server.command_params), self.wall_clock())
        reply = await server.fault_at("mail", trans)
        if reply is not None:
            return self._refuse_mail(server, trans, reply)
        if settings.tls_required and not server.tls_active():
            return self._refuse_mail(server, trans, server.reply("starttls_first"))
        enabled = settings.allowlist_networks is not None
        allowlisted = enabled and allowlist.address_allowed(conn.client_ip, settings.allowlist_networks)
        access = rules.relay_access_verdict(conn.client_ip, allowlisted, conn.auth_user, settings.auth_required,
                                            enabled, helo=conn.helo, sender=sender)
        if not access.accepted:
            return self._refuse_mail(server, trans, self._verdict_reply(server, access))
        verdict = rules.sender_verdict(settings.allowed_senders, sender, settings.domains, list(settings.users),
                                       conn.auth_user, conn.helo, conn.client_ip)
        if not verdict.accepted:
            return self._refuse_mail(server, trans, self._verdict_reply(server, verdict))
        trans.sender_rewritten = verdict.rewritten_sender
        trans.customer_domain = verdict.customer_domain
        trans.limit_user = conn.auth_user or sender or verdict.rewritten_sender
        refusal = settings.quota.mail_refusal(self.state.ledger, trans.limit_user, self.state.now())
        if refusal:
            return self._refuse_mail(server, trans, server.reply(refusal))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return verdict.text

    @staticmethod
    def _verdict_reply(server, verdict):
        """The refusal of an engine verdict as sent: its text (a catalogue entry rendered by the engine) laid
        out."""
        return server.laid_out(verdict.text, verdict.key)

    # ---- RCPT TO ---------------------------------------------------------------
    def _recipient_refusal(self, server, trans, envelope, address):
        settings = server.settings
        limit = settings.max_recipients_per_transaction
        if limit is not None and len(envelope.rcpt_tos) >= limit:
            return server.reply("too_many_recipients")
        null_rule = rules.null_sender_rcpt_verdict(trans.sender, len(envelope.rcpt_tos) + 1)
        if not null_rule.accepted:
            return self._verdict_reply(server, null_rule)
        refusal = settings.quota.recipient_refusal(self.state.ledger, trans.limit_user, envelope.rcpt_tos, address,
                                                   self.state.now())
        return server.reply(refusal) if refusal else None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        trans = server.conn.current
        if trans is None:
            return REPLY_NO_TRANSACTION
        reply = await server.fault_at("rcpt", trans)
        if reply is None:
            reply = self._recipient_refusal(server, trans, envelope, address)
        if reply is not None:
            trans.refuse_recipient(address, reply or "connection dropped")
            return reply or DROPPED
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        trans.recipients.append(address)
        if server.command_params:
            trans.recipient_params[address] = list(server.command_params)
        return rules.REPLY_RECIPIENT_OK

    # ---- DATA ------------------------------------------------------------------
    async def before_data(self, server):
        """Fault at the DATA command (before 354); None to go on."""
        trans = server.conn.current
        reply = await server.fault_at("data", trans)
        if reply is not None and trans is not None:
            trans.conclude("data", reply or None)
        return None if reply is None else (reply or DROPPED)

    async def handle_DATA(self, server, session, envelope):
        conn, settings = server.conn, server.settings
        trans = conn.current
        if trans is None:
            return REPLY_NO_TRANSACTION
        content = envelope.original_content or b""
        trans.size = len(content)
        trans.message_id = message_id(content)
        reply = await server.fault_at("end_of_data", trans)
        if reply is not None:
            trans.conclude("end_of_data", reply or None)
            self.close_transaction(server, "end of data refused")
            return reply or DROPPED
        self.state.ledger.record_message(trans.limit_user, envelope.rcpt_tos, self.state.now())
        queue_id = "%s.%d" % (conn.connection_id, trans.seq)
        if settings.mail_dir is not None:
            store(settings.mail_dir, queue_id, content)
        reply = REPLY_DATA_OK % queue_id
        trans.conclude("end_of_data", reply)
        self.close_transaction(server, "accepted")
        return reply

    # ---- RSET / QUIT -----------------------------------------------------------
    async def handle_RSET(self, server, session, envelope):
        self.close_transaction(server, "rset")
        return REPLY_RESET

    async def handle_QUIT(self, server, session, envelope):
        self.close_transaction(server, "quit")
        return REPLY_BYE
