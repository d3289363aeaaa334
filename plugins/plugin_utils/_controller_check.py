# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the controller-side relay checks share: an action that never touches
the host, and how a rule engine report becomes the task's result."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.smarthost.relay.plugins.module_utils._relay.findings import format_findings


class ControllerCheckAction(ActionBase):
    """Runs on the controller only (no connection, no file transfer) and changes nothing, so check mode runs it
    as usual."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False


def add_findings(result, report, failure):
    """Put the report's warnings into ``result``; when it has errors, fail with ``failure % <error count>``
    followed by every error. Returns whether the result failed."""
    if report.warnings:
        result["warnings"] = [finding.format() for finding in report.warnings]
    if not report.errors:
        return False
    result["failed"] = True
    result["msg"] = "%s:\n%s" % (failure % len(report.errors), format_findings(report.errors))
    return True
