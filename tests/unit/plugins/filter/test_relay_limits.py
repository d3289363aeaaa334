# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smarthost.relay.plugins.filter.relay_limits import FilterModule, relay_limits


def test_registered():
    assert FilterModule().filters() == {"relay_limits": relay_limits}


def test_limits_and_throttles():
    out = relay_limits(250, servers=2)
    assert out["limits"]["customer_daily_recipients"] == 32500
    assert out["limits"]["customer_peak_recipients"] == 2250
    assert out["throttles"]["servers"] == 2
    assert out["throttles"]["messages_per_minute"] == 90


def test_caps_and_unpaid():
    assert relay_limits(10 ** 6)["limits"]["customer_daily_recipients"] == 4600000
    assert relay_limits(10 ** 6)["limits"]["customer_peak_recipients"] == 319444
    assert relay_limits(25, paid=False)["limits"]["customer_peak_recipients"] == 50
    assert relay_limits("25", paid="no")["limits"]["customer_daily_recipients"] == 100


@pytest.mark.parametrize("value, kwargs, match", [
    (0, {}, r"^relay_limits: \[licenses-positive\] licenses must be a positive integer"),
    ("many", {}, "_input"),
    (10, {"servers": 0}, r"^relay_limits: \[servers-positive\] servers must be a positive integer"),
    (10, {"margin": 1.5}, r"^relay_limits: \[margin-range\] margin "),
    (10, {"paid": "perhaps"}, "paid"),
])
def test_errors(value, kwargs, match):
    with pytest.raises(AnsibleFilterError, match=match):
        relay_limits(value, **kwargs)
