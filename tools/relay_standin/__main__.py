# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``python3 -m relay_standin``: see cli.py."""

import sys

from .cli import main

sys.exit(main())
