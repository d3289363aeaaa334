# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest collects the test_*.py files here (the build tier); targets/ holds ansible-test's integration targets,
which the sanity tier runs, so pytest never looks inside."""

from __future__ import annotations

collect_ignore = ["targets"]
