# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The relay rule engine: every rule of the SMTP relay service, once.

Pure Python on netaddr; no Ansible imports; relative imports only, so the
package imports both as
``ansible_collections.smarthost.relay.plugins.module_utils._relay`` and as
top-level ``_relay`` (the relay stand-in puts ``plugins/module_utils`` on
``sys.path``).
"""
