# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sending limits with the service document's codes and texts; values from
the engine (limits.sending_limits), windows shortened or the clock moved so
each limit is reached in seconds."""

from __future__ import annotations

import time

import pytest

from relay_standin.engine import constants, replies as catalogue
from relay_standin.testing import catalogue_key, message

USER_DAILY = "user_daily"
CUSTOMER_DAILY = "customer_daily"
CUSTOMER_PEAK = "customer_peak"
USERS = {"alice@example.com": "alice-pw"}
LOGIN = ("alice@example.com", "alice-pw")


def _named(reply):
    """(code, catalogue key) of a refusal, (code, text) of anything else."""
    return (reply[0], catalogue_key(reply) or reply[1])


def _send(client, recipients, sender="alice@example.com"):
    """MAIL + RCPTs (+ DATA when one was accepted); the replies, refusals named by their catalogue key."""
    mail = client.mail(sender)
    answers = [client.rcpt(r) for r in recipients] if mail[0] == 250 else []
    if any(code == 250 for code, dummy in answers):
        assert client.data(message())[0] == 250
    else:
        client.rset()
    return _named(mail), [_named(answer) for answer in answers]


def test_reply_texts_are_the_documents():
    """The service document's replies are the catalogue's codes, enhanced codes and phrases."""
    for text, key in ((constants.REPLY_USER_DAILY, USER_DAILY), (constants.REPLY_CUSTOMER_DAILY, CUSTOMER_DAILY),
                      (constants.REPLY_CUSTOMER_PEAK, CUSTOMER_PEAK)):
        assert catalogue.render(key).startswith(text.rstrip("."))
        assert catalogue.classify(text).key == key


def test_customer_peak_limit_is_9_per_license_per_window(relay_standin_factory, relay_client):
    standin = relay_standin_factory(licenses=1, allowlist=["127.0.0.1"])
    client = relay_client.connect(standin)
    for number in range(9):  # total recipients: the same one 9 times
        _mail, replies = _send(client, ["bob@remote.test"])
        assert replies == [(250, b"2.1.5 OK")], number
    _mail, replies = _send(client, ["bob@remote.test"])
    assert replies == [(450, CUSTOMER_PEAK)]
    client.quit()
    refused = [t for t in standin.transactions() if t["verdict"] != "accepted"]
    assert [(t["verdict"], t["code"], t["stage"]) for t in refused] == [("deferred", 450, "rcpt")]


def test_customer_peak_window_passes_with_the_clock(relay_standin_factory, relay_client):
    standin = relay_standin_factory(licenses=1, allowlist=["127.0.0.1"])
    client = relay_client.connect(standin)
    assert [c for c, dummy in _send(client, ["r%d@remote.test" % n for n in range(10)])[1]] == [250] * 9 + [450]
    client.quit()
    standin.reconfigure(clock_offset_seconds=601)
    client = relay_client.connect(standin)
    assert _send(client, ["late@remote.test"])[1] == [(250, b"2.1.5 OK")]
    client.quit()


def test_customer_peak_with_short_window(relay_standin_factory, relay_client):
    standin = relay_standin_factory(licenses=1, allowlist=["127.0.0.1"], limits={"peak_window_seconds": 0.5})
    client = relay_client.connect(standin)
    assert [c for c, dummy in _send(client, ["r%d@remote.test" % n for n in range(10)])[1]] == [250] * 9 + [450]
    time.sleep(0.6)
    assert _send(client, ["again@remote.test"])[1][0][0] == 250
    client.quit()


def test_unpaid_customer_50_per_window_and_100_per_day(relay_standin_factory, relay_client):
    standin = relay_standin_factory(licenses=1000, paid=False, allowlist=["127.0.0.1"])
    client = relay_client.connect(standin)
    codes = [c for c, dummy in _send(client, ["r%d@remote.test" % n for n in range(51)])[1]]
    assert codes == [250] * 50 + [450]
    client.quit()
    standin.reconfigure(clock_offset_seconds=600)  # next peak window, same day
    client = relay_client.connect(standin)
    _mail, replies = _send(client, ["s%d@remote.test" % n for n in range(51)])
    assert [c for c, dummy in replies] == [250] * 50 + [550]
    assert replies[-1][1] == CUSTOMER_DAILY
    client.quit()
    standin.reconfigure(clock_offset_seconds=86400 + 600)  # a day later
    client = relay_client.connect(standin)
    assert _send(client, ["t@remote.test"])[1][0][0] == 250
    client.quit()


def test_customer_daily_limit_is_130_per_license(relay_standin_factory, relay_client):
    standin = relay_standin_factory(licenses=1, allowlist=["127.0.0.1"], limits={"peak_window_seconds": 0.001})
    standin.seed_usage(customer_recipients=125)
    client = relay_client.connect(standin)
    replies = []
    for number in range(6):
        replies += _send(client, ["r%d@remote.test" % number])[1]
    assert [c for c, dummy in replies] == [250] * 5 + [550]
    assert replies[-1][1] == CUSTOMER_DAILY
    client.quit()


def test_user_daily_messages_limit(relay_standin_factory, relay_client):
    standin = relay_standin_factory(users=USERS)
    standin.seed_usage(user="alice@example.com", messages=9999)
    client = relay_client.connect(standin, login=LOGIN)
    assert _send(client, ["bob@remote.test"])[0][0] == 250
    mail, dummy = _send(client, ["bob@remote.test"])
    assert mail == (550, USER_DAILY)
    client.quit()
    refused = standin.transactions()[-1]
    assert (refused["verdict"], refused["stage"], refused["limit_user"]) == ("refused", "mail", "alice@example.com")


def test_user_identity_without_auth_is_the_envelope_sender(relay_standin_factory, relay_client):
    standin = relay_standin_factory(allowlist=["127.0.0.1"])
    standin.seed_usage(user="app@example.com", messages=10000)
    client = relay_client.connect(standin)
    assert _named(client.mail("app@example.com")) == (550, USER_DAILY)
    assert client.mail("other@example.com")[0] == 250
    client.quit()


def test_user_identity_with_auth_is_the_auth_user(relay_standin_factory, relay_client):
    standin = relay_standin_factory(users=USERS)
    standin.seed_usage(user="alice@example.com", messages=10000)
    client = relay_client.connect(standin, login=LOGIN)
    assert _named(client.mail("other@example.com")) == (550, USER_DAILY)
    client.quit()


def test_user_unique_recipients_limit_counts_unique(relay_standin_factory, relay_client):
    standin = relay_standin_factory(users=USERS)
    standin.seed_usage(user="alice@example.com", unique_recipients=9999)
    client = relay_client.connect(standin, login=LOGIN)
    assert _send(client, ["new-1@remote.test"])[1][0][0] == 250       # 10,000th unique
    assert _send(client, ["new-2@remote.test"])[1] == [(550, USER_DAILY)]
    assert _send(client, ["new-1@remote.test"])[1][0][0] == 250       # not new: still fine
    assert _send(client, ["seed-7@seed.invalid"])[1][0][0] == 250     # counted before: fine
    client.quit()


def test_user_unique_recipients_within_one_transaction(relay_standin_factory, relay_client):
    standin = relay_standin_factory(users=USERS)
    standin.seed_usage(user="alice@example.com", unique_recipients=9998)
    client = relay_client.connect(standin, login=LOGIN)
    _mail, replies = _send(client, ["a@remote.test", "a@remote.test", "b@remote.test", "c@remote.test"])
    assert [c for c, dummy in replies] == [250, 250, 250, 550]
    client.quit()


def test_user_daily_window_expires_with_the_clock(relay_standin_factory, relay_client):
    standin = relay_standin_factory(users=USERS)
    standin.seed_usage(user="alice@example.com", messages=10000)
    client = relay_client.connect(standin, login=LOGIN)
    assert client.mail("alice@example.com")[0] == 550
    client.quit()
    standin.reconfigure(clock_offset_seconds=86401)
    client = relay_client.connect(standin, login=LOGIN)
    assert client.mail("alice@example.com")[0] == 250
    client.quit()


@pytest.mark.parametrize("licenses, paid, daily, peak", [
    (1, True, 130, 9), (10, True, 1300, 90), (40000, True, 4600000, 319444), (1, False, 100, 9), (500, False, 100, 50),
])
def test_limit_values_come_from_the_engine(relay_standin_factory, licenses, paid, daily, peak):
    standin = relay_standin_factory(licenses=licenses, paid=paid)
    values = standin.server.state.settings.quota.values
    assert (values["customer_daily_recipients"], values["customer_peak_recipients"]) == (daily, peak)
    assert (values["user_daily_messages"], values["user_daily_unique_recipients"]) == (10000, 10000)
