# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles' variables, and which of them are secret, read from their argument specs."""

from __future__ import annotations

from ansible_collections.smarthost.relay.plugins.plugin_utils._role_specs import role_secret_variables, role_variables


def test_the_roles_declare_their_passwords_no_log():
    assert role_secret_variables() == {"relay_auth_password", "exchange_session_password"}
    assert role_secret_variables() <= role_variables()


def test_a_directory_without_roles_has_no_variables(tmp_path):
    assert role_variables(str(tmp_path / "none")) == role_secret_variables(str(tmp_path / "none")) == set()
