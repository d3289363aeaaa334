# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The idempotent attribute, declared once (community.crypto does the same).
    DOCUMENTATION = r"""
options: {}
attributes:
  idempotent:
    description:
      - When run twice with the same arguments, the second run gives the same result and changes nothing.
"""

    # Notes and attributes shared by the controller-side relay checks.
    CONTROLLER_CHECK = r"""
options: {}
notes:
  - Runs on the Ansible controller only and never connects to the managed host, so it can run before any host is
    reachable. It changes nothing, and behaves the same in check mode.
  - The rules come from Google's SMTP relay service document; every finding names the variable it concerns, the rule
    id, and how to fix it.
requirements:
  - netaddr (Python library on the controller)
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  connection:
    support: none
  delegation:
    support: none
    details: Runs on the controller and never connects to the host, so O(ignore:delegate_to) has no effect.
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    platforms: all
"""
