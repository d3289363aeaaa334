# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in keeps up with an MTA pushing many messages: in-memory
counters, one appended line per transaction."""

from __future__ import annotations

import threading
import time

from relay_standin import records
from relay_standin.testing import message

MESSAGES = 1000


def test_a_thousand_messages_over_reused_connections(relay_standin_factory, relay_client):
    standin = relay_standin_factory(allowlist=["127.0.0.1"])
    body = message()
    errors = []

    def sender(worker, count):
        try:
            client = relay_client.connect(standin, port=587)
            for number in range(count):
                refused = client.sendmail("alice@example.com", ["r%d-%d@remote.test" % (worker, number)], body)
                if refused:
                    errors.append(refused)
            client.quit()
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)

    started = time.monotonic()
    workers = [threading.Thread(target=sender, args=(n, MESSAGES // 4)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    elapsed = time.monotonic() - started
    assert errors == []
    standin.wait_for_connections(4)
    summary = records.summarize(standin.records())
    assert summary["verdicts"] == {"accepted": MESSAGES}
    assert summary["connections"] == 4
    assert elapsed < 30, "%d messages took %.1fs" % (MESSAGES, elapsed)
