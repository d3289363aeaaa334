# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Replies as they go on the wire.

Every refusal and limit reply of the stand-in comes from the engine's reply
catalogue (``replies.render``) and is laid out as Google lays it out
(``replies.wrap``): by default over several lines, each with the code and the
enhanced status code (``550-5.7.1 …`` on all but the last), the last ending with a
session token and ``- gsmtp``; with ``reply_layout: single_line``, on one line
(token included).

A ``WireReply`` is a ``str`` (the lines joined with CRLF, which is what aiosmtpd
pushes) that also carries the reply's ``lines``, its ``logical`` form (one line,
code and status once, no token: what the record's ``reply`` holds) and its
catalogue ``key``.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, List, Optional

from .engine import replies

LAYOUT_MULTILINE = "multiline"
LAYOUT_SINGLE_LINE = "single_line"
LAYOUTS = (LAYOUT_MULTILINE, LAYOUT_SINGLE_LINE)


class WireReply(str):
    """A reply as sent (see the module's docstring)."""

    lines: List[str]
    logical: str
    key: Optional[str]

    def __new__(cls, lines: Iterable[str], logical: Optional[str] = None, key: Optional[str] = None):
        lines = list(lines)
        obj = super().__new__(cls, "\r\n".join(lines))
        obj.lines = lines
        obj.logical = logical if logical is not None else (lines[0] if len(lines) == 1 else logical_of(lines))
        obj.key = key
        return obj

    def __reduce__(self):
        return (WireReply, (self.lines, self.logical, self.key))


def logical_of(lines: List[str]) -> str:
    """The logical one-line form of reply ``lines``: code and enhanced status code once, continuation codes and
    the ``- gsmtp`` token removed (``replies.normalise``)."""
    code, status, text = replies.normalise(lines)
    return " ".join(str(part) for part in (code, status, text) if part not in (None, ""))


def token(connection_id: str, number: int) -> str:
    """A session token for the ``number``-th reply of a connection: random-looking like Google's
    (``d2e1a72fcca58-2b0fc6a9f4f1.3``), but derived from the connection id, so a run can be replayed."""
    digest = hashlib.sha256(("%s/%d" % (connection_id, number)).encode("ascii", "replace")).hexdigest()
    return "%s-%s.%d" % (digest[:13], digest[13:25], number)


def laid_out(text: str, reply_token: Optional[str], layout: str = LAYOUT_MULTILINE,
             key: Optional[str] = None) -> WireReply:
    """The logical reply ``text`` (``"<code> <status> <words>"``) laid out: wrapped over several lines (or on one
    with ``single_line``), the last ending with ``reply_token`` and ``- gsmtp``."""
    return WireReply(replies.wrap(text, token=reply_token, multiline=layout != LAYOUT_SINGLE_LINE), text, key)


def catalogue_reply(key: str, reply_token: Optional[str], layout: str = LAYOUT_MULTILINE, **values) -> WireReply:
    """The catalogue entry ``key`` rendered (``values`` fill its placeholders) and laid out."""
    return laid_out(replies.render(key, **values), reply_token, layout, key)


def logical(reply) -> Optional[str]:
    """The logical form of any reply the stand-in keeps (a ``WireReply`` or a plain line); None stays None."""
    if reply is None:
        return None
    return reply.logical if isinstance(reply, WireReply) else str(reply)


def lines_of(reply) -> Optional[List[str]]:
    """The wire lines of any reply the stand-in keeps; None stays None."""
    if reply is None:
        return None
    if isinstance(reply, WireReply):
        return list(reply.lines)
    return str(reply).split("\r\n")


def key_of(reply) -> Optional[str]:
    return reply.key if isinstance(reply, WireReply) else None
