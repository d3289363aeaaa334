# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.smarthost.relay.plugins.module_utils._relay.secrets import mask, secret_texts, secrets_in


def test_secret_texts_are_every_leaf_and_the_whole_as_text():
    assert secret_texts("pw-1") == {"pw-1"}
    assert secret_texts(1234) == {"1234"}
    assert secret_texts(["pw-1", {"k": "pw-2"}]) == {"pw-1", "pw-2", "['pw-1', {'k': 'pw-2'}]", "{'k': 'pw-2'}"}
    assert secret_texts(None) == secret_texts("") == secret_texts(True) == set()


def test_secrets_in_reads_only_the_named_keys_of_a_mapping():
    assert secrets_in({"relay_auth_password": "pw-1", "relay_port": 587}, {"relay_auth_password"}) == {"pw-1"}
    assert secrets_in(["pw-1"], {"relay_auth_password"}) == set()
    assert secrets_in(None, {"relay_auth_password"}) == set()


def test_mask_reaches_every_string_and_key():
    value = {"msg": "got pw-secret-1 and pw-secret", "list": [("pw-secret",), 587, None],
             "pw-secret": {"nested": "x pw-secret-1"}}
    assert mask(value, {"pw-secret", "pw-secret-1"}) == {
        "msg": "got ******** and ********", "list": [["********"], 587, None], "********": {"nested": "x ********"}}


def test_mask_without_secrets_returns_the_value():
    value = {"msg": "x"}
    assert mask(value, set()) is value and mask(value, {""}) is value
