# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The wire side of the stand-in: an aiosmtpd ``SMTP`` subclass.

It adds what aiosmtpd does not do the way Google's relay does:

* ESMTP parameters real MTAs send: ``AUTH=``, ``RET=``, ``ENVID=`` on MAIL
  and ``NOTIFY=``, ``ORCPT=`` on RCPT (RFC 4954, RFC 3461) are set aside
  before aiosmtpd parses the command (it answers 555 to unknown ones) and
  kept for the record; ``SIZE``, ``BODY=8BITMIME`` and ``SMTPUTF8`` are
  aiosmtpd's own.
* TLS state for both STARTTLS (25, 587) and implicit TLS (465); AUTH only
  once TLS is up, on every port.
* The greeting, fault injection at each stage, and closing or resetting the
  connection after a fault.
* The HELO/EHLO checks Google makes before anything else: a malformed name
  (``501 5.5.4``) and denial-of-service protection (``421 4.7.0 Try again later,
  closing connection``: a burst of new connections from the client's address, a
  generic HELO name); both close the connection.
* Replies rendered from the reply catalogue and laid out as Google does
  (``reply()``: wrapped over several lines with a session token by default).
* One ``ConnectionInfo`` per TCP connection, and its record line when the
  connection ends.

The relay rules themselves are in ``policy.RelayPolicy`` (the handler).
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import logging
import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

from aiosmtpd.smtp import SMTP, AuthResult

from .engine import replies, session as rules
from .faults import FaultRule
from .state import RelayState
from .tls import describe
from .transaction import ConnectionInfo
from .wire import WireReply, laid_out

log = logging.getLogger("relay_standin")

IDENT = "ESMTP relay-standin"
REPLY_AUTH_OK = "235 2.7.0 Accepted"
REPLY_TLS_ACTIVE = "503 5.5.1 TLS already active."
# Placeholder pushed after a fault dropped the connection (never sent).
DROPPED = "421 4.7.0 connection dropped"

# Parameters aiosmtpd does not know but Google's relay accepts.
SET_ASIDE_MAIL = frozenset({"AUTH", "RET", "ENVID"})
SET_ASIDE_RCPT = frozenset({"NOTIFY", "ORCPT"})
_NOTIFY_RE = re.compile(r"^(NEVER|(SUCCESS|FAILURE|DELAY)(,(SUCCESS|FAILURE|DELAY))*)$", re.IGNORECASE)
_RET_RE = re.compile(r"^(FULL|HDRS)$", re.IGNORECASE)


def abort_transport(transport) -> None:
    """Close ``transport`` at once (TCP RST). On CPython 3.11.2 (Debian 12's python3) an SSL transport whose
    connection is already lost raises AttributeError from abort() (its SSL protocol is gone); there is nothing
    left to abort then."""
    try:
        transport.abort()
    except AttributeError:
        pass


@dataclass(frozen=True)
class Listener:
    """Where a connection came in: listener name, the service port it stands
    in for (25/465/587), the port actually bound, implicit TLS or not."""

    name: str
    service_port: int
    listen_port: int
    implicit_tls: bool


def _client_address(peer) -> Tuple[str, int]:
    host, port = (peer[0], peer[1]) if peer else ("unknown", 0)
    if isinstance(host, str) and host.lower().startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, port


def _param_problem(keyword: str, value: str) -> Optional[str]:
    """A 501 reply for a malformed set-aside parameter, else None."""
    if keyword == "RET" and not _RET_RE.match(value):
        return "501 5.5.4 Invalid RET parameter (FULL or HDRS)."
    if keyword == "NOTIFY" and not _NOTIFY_RE.match(value):
        return "501 5.5.4 Invalid NOTIFY parameter."
    if keyword == "ORCPT" and ";" not in value:
        return "501 5.5.4 Invalid ORCPT parameter (addr-type;address)."
    if keyword in ("AUTH", "ENVID") and not value:
        return "501 5.5.4 Invalid %s parameter." % keyword
    return None


class RelaySMTP(SMTP):
    """One connection to the stand-in."""

    def __init__(self, handler, state: RelayState, listener: Listener, loop=None) -> None:
        # Per-instance limits (aiosmtpd's class-level dict is shared and grows
        # at every EHLO); every command may use the whole 1000-octet line.
        self.command_size_limits = collections.defaultdict(lambda: 1000)
        settings = state.settings
        self.state = state
        self.settings = settings
        self.listener = listener
        starttls_context = None if listener.implicit_tls or not settings.tls_enabled else state.tls.current
        super().__init__(
            handler,
            hostname=settings.hostname,
            ident=IDENT,
            data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=starttls_context,
            require_starttls=False,
            timeout=settings.idle_timeout_seconds,
            auth_required=False,
            auth_require_tls=not listener.implicit_tls,
            authenticator=self._check_credentials,
            loop=loop,
        )
        self.conn: Optional[ConnectionInfo] = None
        self.command_params: List[str] = []  # parameters of the current MAIL or RCPT, as sent
        self._greeted = False
        self._dropped = False
        self._close_after_push = False
        self._quit = False

    # ---- connection life cycle -------------------------------------------------
    def connection_made(self, transport) -> None:
        starting_tls = self.conn is not None
        super().connection_made(transport)
        if not starting_tls:
            ip, port = _client_address(transport.get_extra_info("peername"))
            self.conn = ConnectionInfo(
                connection_id=self.state.next_connection_id(),
                listener=self.listener.name,
                service_port=self.listener.service_port,
                listen_port=self.listener.listen_port,
                client_ip=ip,
                client_port=port,
            )
            if self.listener.implicit_tls:
                self.conn.tls_mode = "implicit"
                self.conn.tls = describe(transport.get_extra_info("ssl_object"))
            dos = self.settings.dos
            if dos.max_new_connections is not None:
                opened = self.state.connection_rate.note(ip, dos.window_seconds)
                self.conn.burst = opened > dos.max_new_connections
            return
        # STARTTLS completed: RFC 3207 says forget HELO and AUTH.
        self.event_handler.close_transaction(self, "starttls")
        self.conn.tls_mode = "starttls"
        self.conn.tls = describe(transport.get_extra_info("ssl_object"))
        self.conn.helo = self.conn.helo_verb = self.conn.auth_user = None

    def connection_lost(self, error) -> None:
        if self.conn is not None:
            self.event_handler.close_transaction(self, "connection lost")
            if self.conn.end is None:
                self.conn.end = "quit" if self._quit else ("error" if error else "client closed")
            self.state.writer.write(self.conn.connection_record(self.event_handler.wall_clock()))
            self.conn = None
        super().connection_lost(error)

    def tls_active(self) -> bool:
        return self.listener.implicit_tls or self._tls_protocol is not None

    def drop(self, reset: bool = False, reason: str = "fault") -> None:
        """End the connection now, without a reply."""
        self._dropped = True
        if self.conn is not None:
            self.conn.end = reason
        if self.transport is not None:
            if reset:
                abort_transport(self.transport)
            else:
                self.transport.close()

    async def push(self, status) -> None:
        if self._dropped:
            return
        if not self._greeted:
            self._greeted = True
            status = await self._greeting(status)
            if self._dropped:
                return
        await super().push(status)
        if self._close_after_push:
            self._close_after_push = False
            self.drop(reason="fault")

    async def _greeting(self, status):
        """The greeting, unless a connect-stage fault replaces it."""
        reply = await self.fault_at("connect")
        return status if reply is None else reply

    # ---- replies -----------------------------------------------------------------
    def reply(self, key: str, **values) -> WireReply:
        """The catalogue reply ``key``, laid out as configured (``reply_layout``) with this session's next
        token; ``ip`` (the client's address) and ``helo`` are filled in unless given."""
        conn = self.conn
        values.setdefault("ip", conn.client_ip if conn else "unknown")
        values.setdefault("helo", (conn.helo if conn else None) or "")
        if "domains" not in values and conn is not None:
            sender = conn.current.sender if conn.current is not None else None
            values["domains"] = rules.domains_seen(conn.helo, sender)
        return self.laid_out(replies.render(key, **values), key)

    def laid_out(self, text: str, key: Optional[str] = None) -> WireReply:
        """The logical reply ``text`` (e.g. an engine verdict's) laid out as configured, with this session's
        next token."""
        reply_token = self.conn.next_token() if self.conn else None
        return laid_out(text, reply_token, self.settings.reply_layout, key)

    def _fault_reply(self, rule: FaultRule):
        if rule.reply_key:
            return self.reply(rule.reply_key)
        if len(rule.reply_lines) > 1:
            return WireReply(rule.reply_lines, rule.reply)
        return rule.reply

    # ---- faults ----------------------------------------------------------------
    async def fault_at(self, stage: str, transaction=None):
        """Apply the fault planned for ``stage``, if any.  Returns None to go
        on normally, else the reply to send instead (an empty string when the
        connection was dropped: nothing more is sent)."""
        rule: Optional[FaultRule] = self.state.faults.take(stage, self.listener.service_port)
        if rule is None:
            return None
        description = rule.describe()
        reply = self._fault_reply(rule) if rule.action == "reply" else None
        if isinstance(reply, WireReply):
            description["reply"] = reply.logical
        if self.conn is not None:
            self.conn.faults.append(description)
        if transaction is not None:
            transaction.faults.append(description)
        log.info("fault at %s: %s", stage, description)
        if rule.action == "stall":
            await asyncio.sleep(rule.seconds)
            return None
        if rule.action in ("close", "reset"):
            self.drop(reset=rule.action == "reset")
            return ""
        if rule.disconnect:
            self._close_after_push = True
        return reply

    # ---- HELO / EHLO -------------------------------------------------------------
    async def _greeting_refused(self, verb: str, name: Optional[str]) -> bool:
        """Faults at ``helo``, then the relay's own HELO checks: a burst of new connections, a malformed name,
        a generic name.  True when the command was answered here (and the connection closed, or dropped)."""
        reply = await self.fault_at("helo")
        if reply is not None:
            await self.push(reply or DROPPED)
            return True
        conn, settings = self.conn, self.settings
        dos = None
        key = None
        if conn.burst:
            key, dos = "dos_helo", "burst"
        else:
            key = rules.helo_problem(name, fqdn_required=settings.helo_fqdn_required)
            own = (settings.hostname,) + tuple(settings.dos.generic_helo_names)
            if key is None and settings.dos.generic_helo and rules.generic_helo(name, own_names=own):
                key, dos = "dos_helo", "generic_helo"
        if key is None:
            return False
        conn.helo, conn.helo_verb = name, verb
        refusal = self.reply(key, helo=name or "")
        conn.refuse_session("helo", refusal, dos=dos)
        log.info("%s %r from %s refused: %s", verb, name, conn.client_ip, refusal.logical)
        await self.push(refusal)
        self.drop(reason="refused")
        return True

    async def smtp_HELO(self, arg: Optional[str]) -> None:
        if await self._greeting_refused("HELO", arg):
            return
        await super().smtp_HELO(arg)

    async def smtp_EHLO(self, arg: Optional[str]) -> None:
        if await self._greeting_refused("EHLO", arg):
            return
        await super().smtp_EHLO(arg)

    # ---- commands --------------------------------------------------------------
    async def smtp_STARTTLS(self, arg: str):
        if self.tls_active():
            await self.push(REPLY_TLS_ACTIVE)
            return
        if self.tls_context:
            reply = await self.fault_at("starttls")
            if reply is not None:
                await self.push(reply)
                return
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        if not self.tls_active():
            await self.push(self.reply("starttls_first"))
            return
        reply = await self.fault_at("auth")
        if reply is not None:
            await self.push(reply)
            return
        await super().smtp_AUTH(arg)

    def _check_credentials(self, _server, _session, _envelope, mechanism, auth_data) -> AuthResult:
        login = getattr(auth_data, "login", b"") or b""
        password = getattr(auth_data, "password", b"") or b""
        user = login.decode("utf-8", "replace")
        expected = self.settings.users.get(user)
        if expected is not None and hmac.compare_digest(expected.encode("utf-8"), password):
            self.conn.auth_user = user
            return AuthResult(success=True, auth_data=auth_data, message=REPLY_AUTH_OK)
        self.conn.auth_failures += 1
        log.info("AUTH %s failed for %r", mechanism, user)
        return AuthResult(success=False, handled=False, message=self.reply("bad_credentials"))

    def _set_aside_params(self, arg: Optional[str], keyword: str, names: Iterable[str]):
        """(argument without the set-aside parameters, parameters as sent,
        error reply or None)."""
        self.command_params = []
        if arg is None or arg[: len(keyword)].upper() != keyword:
            return arg, [], None
        rest = arg[len(keyword):].strip()
        if "=" not in rest:  # nothing to set aside: skip the address parser (hot path)
            return arg, rest.split()[1:], None
        address, params = self._getaddr(rest)
        if address is None or not params or not params.strip():
            return arg, [], None
        address_text = rest[: len(rest) - len(params)].strip()
        kept, sent = [], params.split()
        for param in sent:
            name, dummy, value = param.partition("=")
            if name.upper() in names:
                problem = _param_problem(name.upper(), value)
                if problem:
                    return arg, sent, problem
            else:
                kept.append(param)
        return "%s%s%s" % (keyword, address_text, "".join(" " + p for p in kept)), sent, None

    async def smtp_MAIL(self, arg: Optional[str]) -> None:
        arg, sent, problem = self._set_aside_params(arg, "FROM:", SET_ASIDE_MAIL)
        if problem:
            await self.push(problem)
            return
        self.command_params = sent
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: Optional[str]) -> None:
        arg, sent, problem = self._set_aside_params(arg, "TO:", SET_ASIDE_RCPT)
        if problem:
            await self.push(problem)
            return
        self.command_params = sent
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if self.session and self.session.host_name and self.envelope and self.envelope.rcpt_tos and not arg:
            reply = await self.event_handler.before_data(self)
            if reply is not None:
                await self.push(reply)
                return
        await super().smtp_DATA(arg)

    async def smtp_QUIT(self, arg: str):
        if not arg:
            self._quit = True
        await super().smtp_QUIT(arg)

    def advertised_extensions(self) -> List[str]:
        """EHLO keywords, in the order Google's relay lists them."""
        extensions = ["SIZE %d" % self.settings.max_message_size, "8BITMIME"]
        if self.tls_context is not None and not self.tls_active():
            extensions.append("STARTTLS")
        if self.tls_active():
            extensions.append("AUTH LOGIN PLAIN")
        extensions += ["ENHANCEDSTATUSCODES", "PIPELINING", "DSN", "SMTPUTF8"]
        return extensions
