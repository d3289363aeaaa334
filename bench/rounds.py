# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The order of the role runs: rounds of one run per role, interleaved so no role always goes first. Pure."""

from __future__ import annotations


def round_order(roles, index):
    """The roles in round ``index`` (0-based): the list rotated by one each round (A B, B A, A B, …), so over
    len(roles) rounds each role takes each place once and a drift in the machine's load does not favour one."""
    if not roles:
        return []
    shift = index % len(roles)
    return list(roles[shift:]) + list(roles[:shift])
