# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smarthost.relay.plugins.filter.mta_test_sender import FilterModule, mta_test_sender

RELAY = {"auth": False, "auth_username": None, "customer_domain": "example.com"}


def test_registered():
    assert FilterModule().filters() == {"mta_test_sender": mta_test_sender}


@pytest.mark.parametrize("kwargs, expected", [
    ({}, "postmaster@example.com"),
    ({"explicit": None, "local_sender": None}, "postmaster@example.com"),
    ({"local_sender": "alerts@example.com"}, "alerts@example.com"),
    ({"explicit": "me@example.com", "local_sender": "alerts@example.com"}, "me@example.com"),
])
def test_sender(kwargs, expected):
    assert mta_test_sender(RELAY, **kwargs) == expected


def test_auth_user_with_smtp_auth():
    relay = dict(RELAY, auth=True, auth_username="relay@example.com")
    assert mta_test_sender(relay, local_sender="alerts@example.com") == "relay@example.com"


def test_settings_must_be_a_mapping():
    with pytest.raises(AnsibleFilterError, match="_input"):
        mta_test_sender("settings")
