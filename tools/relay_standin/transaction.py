# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the record says about one TCP connection and its transactions.

``ConnectionInfo`` lives as long as the TCP connection; ``Transaction``
from one MAIL FROM to its end (accepted at end of DATA, refused, or
abandoned by RSET, a new EHLO, QUIT or a lost connection).  Each becomes one
JSON line of the record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from .wire import key_of, lines_of, logical, token


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def verdict_for(code: Optional[int]) -> str:
    if code is None:
        return "abandoned"
    if 200 <= code < 300:
        return "accepted"
    return "deferred" if 400 <= code < 500 else "refused"


def reply_code(reply: Optional[str]) -> Optional[int]:
    if not reply or not reply[:3].isdigit():
        return None
    return int(reply[:3])


@dataclass
class Transaction:
    """One MAIL FROM ... end of DATA (or its refusal)."""

    seq: int
    started: float
    sender: str
    sender_params: List[str] = field(default_factory=list)
    sender_rewritten: Optional[str] = None
    customer_domain: Optional[str] = None
    limit_user: Optional[str] = None
    recipients: List[str] = field(default_factory=list)
    recipient_params: Dict[str, List[str]] = field(default_factory=dict)
    refused_recipients: List[Dict[str, Any]] = field(default_factory=list)
    size: Optional[int] = None
    message_id: Optional[str] = None
    reply: Optional[str] = None  # as sent: a plain line or a wire.WireReply
    stage: Optional[str] = None
    faults: List[Dict[str, Any]] = field(default_factory=list)
    last_refusal: Optional[str] = None  # the reply (as sent) that refused the last refused recipient

    def refuse_recipient(self, address: str, reply: str) -> None:
        self.refused_recipients.append({"address": address, "code": reply_code(reply), "reply": logical(reply),
                                        "reply_lines": lines_of(reply), "reply_key": key_of(reply)})
        self.last_refusal = reply

    def conclude(self, stage: str, reply: Optional[str]) -> None:
        self.stage, self.reply = stage, reply

    def final_reply(self) -> Optional[str]:
        """The reply that decided the transaction: the concluding reply, else
        the last refused recipient when no recipient was accepted."""
        if self.reply is not None:
            return self.reply
        if not self.recipients and self.refused_recipients:
            return self.last_refusal
        return None


@dataclass
class ConnectionInfo:
    """One TCP connection to one listener."""

    connection_id: str
    listener: str
    service_port: int
    listen_port: int
    client_ip: str
    client_port: int
    opened: float = field(default_factory=time.time)
    tls_mode: Optional[str] = None
    tls: Dict[str, Any] = field(default_factory=lambda: {"tls": False, "tls_version": None, "tls_cipher": None})
    helo: Optional[str] = None
    helo_verb: Optional[str] = None
    auth_user: Optional[str] = None
    auth_failures: int = 0
    sequence: int = 0
    transactions: int = 0
    accepted: int = 0
    faults: List[Dict[str, Any]] = field(default_factory=list)
    end: Optional[str] = None
    current: Optional[Transaction] = None
    replies_sent: int = 0  # replies that carried a session token
    dos: Optional[str] = None  # "burst" or "generic_helo" once the DoS protection refused the connection
    burst: bool = False  # over the new-connection limit when it opened (refused at HELO/EHLO)
    refusal: Optional[Dict[str, Any]] = None  # the relay's own refusal that ended the session (HELO stage)

    def next_token(self) -> str:
        """The session token for the next reply that carries one."""
        self.replies_sent += 1
        return token(self.connection_id, self.replies_sent)

    def refuse_session(self, stage: str, reply, dos: Optional[str] = None) -> None:
        """The relay refuses the session itself (at HELO/EHLO: malformed name, denial of service)."""
        self.dos = dos
        self.refusal = {"stage": stage, "code": reply_code(reply), "reply": logical(reply),
                        "reply_lines": lines_of(reply), "reply_key": key_of(reply)}

    def begin(self, sender: str, params: List[str], now: float) -> Transaction:
        self.sequence += 1
        self.current = Transaction(seq=self.sequence, started=now, sender=sender, sender_params=params)
        return self.current

    def session_fields(self) -> Dict[str, Any]:
        return {
            "connection": self.connection_id,
            "listener": self.listener,
            "port": self.service_port,
            "listen_port": self.listen_port,
            "client_ip": self.client_ip,
            "tls_mode": self.tls_mode,
            **self.tls,
            "helo": self.helo,
            "helo_verb": self.helo_verb,
            "auth_user": self.auth_user,
        }

    def transaction_record(self, trans: Transaction, now: float) -> Dict[str, Any]:
        reply = trans.final_reply()
        code = reply_code(reply)
        self.transactions += 1
        if code is not None and 200 <= code < 300:
            self.accepted += 1
        stage = trans.stage or ("rcpt" if trans.refused_recipients and not trans.recipients else None)
        return {
            "kind": "transaction",
            "ts": iso_time(now),
            "time": round(now, 6),
            **self.session_fields(),
            "seq": trans.seq,
            "sender": trans.sender,
            "sender_params": trans.sender_params,
            "sender_rewritten": trans.sender_rewritten,
            "customer_domain": trans.customer_domain,
            "limit_user": trans.limit_user,
            "recipients": trans.recipients,
            "recipient_params": trans.recipient_params,
            "refused_recipients": trans.refused_recipients,
            "size": trans.size,
            "message_id": trans.message_id,
            "verdict": verdict_for(code),
            "code": code,
            "reply": logical(reply),
            "reply_lines": lines_of(reply),
            "reply_key": key_of(reply),
            "stage": stage,
            "faults": trans.faults,
        }

    def connection_record(self, now: float) -> Dict[str, Any]:
        return {
            "kind": "connection",
            "ts": iso_time(now),
            "time": round(now, 6),
            **self.session_fields(),
            "opened": iso_time(self.opened),
            "duration": round(max(0.0, time.time() - self.opened), 3),
            "transactions": self.transactions,
            "accepted": self.accepted,
            "auth_failures": self.auth_failures,
            "faults": self.faults,
            "dos": self.dos,
            "refusal": self.refusal,
            "end": self.end,
        }
