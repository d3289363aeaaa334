# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""relay_standin: a local stand-in for smtp-relay.gmail.com.

An aiosmtpd server that enforces the SMTP relay service's rules (ports, TLS,
IP allowlist and SMTP AUTH, allowed senders, the HELO rule, sender rewrite,
the null-sender rule, recipients per transaction, sending limits, the HELO
checks and denial-of-service protection), answers with Google's replies laid
out as Google lays them out (several lines, a session token, ``- gsmtp``),
injects faults on demand and records every transaction as a JSON line.  The
rules and reply texts come from the collection's rule engine
(``plugins/module_utils/_relay``), imported as top-level ``_relay``.

Run it with ``python3 -m relay_standin serve --config FILE`` (``tools/`` on
``PYTHONPATH``); see docs/relay-standin.md.
"""

__version__ = "1.0.0"
