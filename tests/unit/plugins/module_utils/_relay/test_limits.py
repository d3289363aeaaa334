# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.smarthost.relay.plugins.module_utils._relay.findings import RelayRuleError
from ansible_collections.smarthost.relay.plugins.module_utils._relay.limits import sending_limits, suggested_throttles


def test_per_user_limits_and_windows():
    limits = sending_limits(10)
    assert limits["user_daily_messages"] == 10000
    assert limits["user_daily_unique_recipients"] == 10000
    assert limits["peak_window_seconds"] == 600
    assert limits["daily_window_seconds"] == 86400
    assert limits["replies"]["customer_peak"].startswith("450 4.2.1")


@pytest.mark.parametrize("licenses, daily, peak, capped_daily, capped_peak", [
    (1, 130, 9, False, False),
    (250, 32500, 2250, False, False),
    (35384, 4599920, 318456, False, False),
    (35385, 4600000, 318465, True, False),   # 130 x 35385 = 4,600,050 > cap
    (35493, 4600000, 319437, True, False),
    (35494, 4600000, 319444, True, True),    # 9 x 35494 = 319,446 > cap
    (1000000, 4600000, 319444, True, True),
])
def test_customer_limits_and_caps(licenses, daily, peak, capped_daily, capped_peak):
    limits = sending_limits(licenses)
    assert (limits["customer_daily_recipients"], limits["customer_peak_recipients"]) == (daily, peak)
    assert (limits["capped_daily"], limits["capped_peak"]) == (capped_daily, capped_peak)


def test_daily_cap_boundary_exactly():
    assert sending_limits(4600000 // 130)["customer_daily_recipients"] == 130 * (4600000 // 130)
    assert sending_limits(319444 // 9)["customer_peak_recipients"] == 9 * (319444 // 9)
    assert sending_limits(319444 // 9 + 1)["customer_peak_recipients"] == 319444


@pytest.mark.parametrize("licenses, daily, peak", [
    (1, 100, 9),       # "lower" limits: never above the licence-based value
    (5, 100, 45),
    (6, 100, 50),
    (1000, 100, 50),
])
def test_unpaid_limits(licenses, daily, peak):
    limits = sending_limits(licenses, paid=False)
    assert (limits["customer_daily_recipients"], limits["customer_peak_recipients"]) == (daily, peak)
    assert limits["paid"] is False
    assert not limits["capped_daily"]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "ten", None])
def test_licenses_must_be_positive_int(bad):
    with pytest.raises(RelayRuleError) as exc:
        sending_limits(bad)
    assert exc.value.rule == "licenses-positive"
    assert "licenses must be a positive integer" in str(exc.value)


def test_licenses_digit_string_accepted():
    assert sending_limits("20")["customer_peak_recipients"] == 180


def test_throttles_example():
    t = suggested_throttles(250, True, 2)
    assert t["fleet_peak_budget"] == 1800       # 2250 * 0.8
    assert t["peak_recipients_per_server"] == 900
    assert t["recipients_per_minute"] == 90
    assert t["messages_per_minute"] == 90
    assert t["rate_delay_seconds"] == 0
    assert t["concurrency"] == 2
    assert t["daily_recipients_per_server"] == 13000
    assert t["minutes_at_peak_rate"] == 144
    assert t["feasible"] is True


def test_throttles_small_unpaid_and_infeasible():
    t = suggested_throttles(3, False, 1)
    assert t["peak_recipients_per_server"] == 21  # min(27, 50) * 0.8
    assert t["messages_per_minute"] == 2
    assert t["rate_delay_seconds"] == 29          # ceil(600 / 21)
    t = suggested_throttles(1, False, 60)
    assert t["feasible"] is False
    assert t["rate_delay_seconds"] is None
    assert t["minutes_at_peak_rate"] is None


def test_throttles_recipients_per_message():
    t = suggested_throttles(250, True, 1, recipients_per_message=10)
    assert t["recipients_per_minute"] == 180
    assert t["messages_per_minute"] == 18
    assert t["rate_delay_seconds"] == 4  # ceil(600 * 10 / 1800)


@pytest.mark.parametrize("kwargs, rule", [
    ({"servers": 0}, "servers-positive"),
    ({"margin": 1}, "margin-range"),
    ({"margin": -0.1}, "margin-range"),
    ({"margin": True}, "margin-range"),
    ({"recipients_per_message": 0}, "recipients_per_message-positive"),
])
def test_throttle_argument_errors(kwargs, rule):
    with pytest.raises(RelayRuleError) as exc:
        suggested_throttles(10, **kwargs)
    assert exc.value.rule == rule


@settings(max_examples=300, deadline=None)
@given(licenses=st.integers(1, 2000000), paid=st.booleans(), servers=st.integers(1, 500),
       margin=st.sampled_from([0, 0.1, 0.2, 0.5]), rpm=st.integers(1, 50))
def test_fleet_never_exceeds_limits(licenses, paid, servers, margin, rpm):
    limits = sending_limits(licenses, paid)
    t = suggested_throttles(licenses, paid, servers, margin, rpm)
    # the whole fleet, every server at its per-window share, stays under the limits with the margin
    assert servers * t["peak_recipients_per_server"] <= limits["customer_peak_recipients"] * (1 - margin)
    assert servers * t["daily_recipients_per_server"] <= limits["customer_daily_recipients"] * (1 - margin)
    # ten minutes at messages_per_minute stay inside the server's share
    assert t["messages_per_minute"] * rpm * 10 <= t["peak_recipients_per_server"]
    # the rate delay, when given, also keeps a window inside the share
    if t["rate_delay_seconds"]:
        assert (600 // t["rate_delay_seconds"]) * rpm <= t["peak_recipients_per_server"]
    # a day at the sustained rate stays inside the daily share
    assert t["sustained_messages_per_minute"] * rpm * 1440 <= t["daily_recipients_per_server"] + 1440 * 0.001 * rpm
    assert 1 <= t["concurrency"] <= 20
