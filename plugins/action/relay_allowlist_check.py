# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin for smarthost.relay.relay_allowlist_check (controller only).

The documentation (and schema) is in plugins/modules/relay_allowlist_check.py.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail

from ansible_collections.smarthost.relay.plugins.module_utils._relay.allowlist import (
    HAS_NETADDR,
    NETADDR_IMPORT_ERROR,
    check_allowlist,
)
from ansible_collections.smarthost.relay.plugins.modules.relay_allowlist_check import DOCUMENTATION
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import validate_from_doc
from ansible_collections.smarthost.relay.plugins.plugin_utils._controller_check import ControllerCheckAction, add_findings


class ActionModule(ControllerCheckAction):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args, errors, _no_log = validate_from_doc(DOCUMENTATION, self._task.args)
        if errors:
            raise AnsibleActionFail("relay_allowlist_check: " + "; ".join(errors))
        if not HAS_NETADDR:
            raise AnsibleActionFail("relay_allowlist_check needs the Python library netaddr on the controller: %s"
                                    % NETADDR_IMPORT_ERROR)
        report = check_allowlist(
            args["allowlist"],
            egress=args["egress_addresses"],
            wide_factor=args["wide_factor"],
        )
        data = report.as_dict()
        result.update(
            changed=False,
            ranges=data["ranges"],
            total=data["total"],
            egress=data["egress"],
            findings=data["errors"] + data["warnings"],
        )
        if not add_findings(result, report, "The IP allowlist breaks %d relay rule(s)"):
            result["msg"] = "%d range(s), %d address(es) allowed" % (len(report.ranges), report.total)
        return result
