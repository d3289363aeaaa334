# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixture: ``playbook_runner`` (see qmail_role_helpers.make_runner)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmail_role_helpers import make_runner  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def playbook_runner(tmp_path):
    return make_runner(tmp_path)
