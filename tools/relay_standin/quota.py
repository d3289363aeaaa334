# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The sending-limit rule: which limit (if any) a MAIL or RCPT would break.

Limit values come from the engine (``limits.sending_limits``); a refusal is
named by its reply catalogue key (``user_daily``, ``customer_daily``,
``customer_peak``: the engine's ``replies.CATALOGUE``), which the policy renders
and lays out.  Only the window lengths may be shortened by the config so that
tests reach a window's end in seconds.

Decision: limits are checked before a message is relayed, counting the
recipients already accepted in the open transaction; usage is counted when
the message is accepted at the end of DATA.  The customer limits are checked
before the user limit (a user "may also be prevented from sending messages
if a customer relay limit has been reached, in which case they will see a
different error message").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from .ledger import UsageLedger, Windows


@dataclass(frozen=True)
class Quota:
    """Limits of one customer: ``values`` is ``limits.sending_limits(...)``."""

    values: Mapping[str, object]
    windows: Windows

    def mail_refusal(self, ledger: UsageLedger, user: str, now: float) -> Optional[str]:
        """The catalogue key of the reply refusing MAIL FROM for ``user``, or None."""
        if ledger.user_messages(user, now, self.windows) >= self.values["user_daily_messages"]:
            return "user_daily"
        return None

    def recipient_refusal(self, ledger: UsageLedger, user: str, pending: Sequence[str], recipient: str,
                          now: float) -> Optional[str]:
        """The catalogue key of the reply refusing RCPT TO ``recipient``, given
        the recipients already accepted in this transaction (``pending``), or
        None."""
        daily, peak = ledger.customer_recipients(now, self.windows)
        wanted = len(pending) + 1
        if daily + wanted > self.values["customer_daily_recipients"]:
            return "customer_daily"
        if peak + wanted > self.values["customer_peak_recipients"]:
            return "customer_peak"
        unique = ledger.user_unique_recipients(user, now, self.windows, list(pending) + [recipient])
        if unique > self.values["user_daily_unique_recipients"]:
            return "user_daily"
        return None
