# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the tests under tests/unit/tools.

Re-exports the relay stand-in's
pytest fixtures (relay_pki, relay_standin_factory, relay_standin,
relay_client); helpers are imported from ``relay_standin.testing``.
"""

from __future__ import annotations

# pylint: disable=unused-import
from relay_standin.pytest_plugin import (  # noqa: F401
    relay_client,
    relay_pki,
    relay_standin,
    relay_standin_factory,
)
