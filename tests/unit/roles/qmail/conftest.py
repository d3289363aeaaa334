# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixture: ``playbook_runner`` (see qmail_role_helpers.make_runner)."""

from __future__ import annotations

import pytest

from qmail_role_helpers import make_runner


@pytest.fixture
def playbook_runner(tmp_path):
    return make_runner(tmp_path)
