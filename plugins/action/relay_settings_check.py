# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin for smarthost.relay.relay_settings_check (controller only).

The documentation (and schema) is in plugins/modules/relay_settings_check.py.
"""

from __future__ import annotations

from ansible_collections.smarthost.relay.plugins.module_utils._relay.mta import check_mta
from ansible_collections.smarthost.relay.plugins.module_utils._relay.profile import PROFILE_KEYS, ProfileReport, check_profile
from ansible_collections.smarthost.relay.plugins.module_utils._relay.secrets import mask, mask_fields, mask_values, secrets_in
from ansible_collections.smarthost.relay.plugins.module_utils._relay.variables import unknown_variables
from ansible_collections.smarthost.relay.plugins.modules.relay_settings_check import DOCUMENTATION
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import validate_from_doc
from ansible_collections.smarthost.relay.plugins.plugin_utils._controller_check import ControllerCheckAction, add_findings
from ansible_collections.smarthost.relay.plugins.plugin_utils._role_specs import role_secret_variables, role_variables

_MTA_OPTIONS = ("mta", "mta_vars", "settings", "facts", "inventory")
# The options whose values never appear in the result (its message, findings, warnings and normalized settings).
SECRET_OPTIONS = ("auth_password",)


def _secrets(task_args, no_log_values):
    """The call's secrets: its own secret options' values, and the passwords among the MTA variables and settings
    it was given (the roles' no_log variables; the settings' auth_password, should they not be masked yet)."""
    secrets = set(no_log_values)
    secrets |= secrets_in(task_args.get("mta_vars"), role_secret_variables())
    secrets |= secrets_in(task_args.get("settings"), SECRET_OPTIONS)
    return secrets


def _report(findings):
    groups = {"error": [], "warning": [], "note": []}
    for finding in findings:
        groups[finding.severity].append(finding)
    return groups["error"], groups["warning"], groups["note"]


def _hidden(result, secrets):
    """``result`` with every secret masked wherever a text quotes it. The normalized settings of a check that passed
    are the data the roles configure from: a password that is part of the relay's host name or of a retry pattern
    must not change them, so there only the secret fields and values that are a secret are masked."""
    normalized = result.pop("normalized", None)
    result = mask(result, secrets)
    if normalized is not None:
        result["normalized"] = (mask(normalized, secrets) if result.get("failed")
                                else mask_values(mask_fields(normalized, SECRET_OPTIONS), secrets))
    return result


class ActionModule(ControllerCheckAction):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args, errors, no_log_values = validate_from_doc(DOCUMENTATION, self._task.args, secret=SECRET_OPTIONS)
        result["changed"] = False
        result = self._check(result, args, errors, task_vars)
        return _hidden(result, _secrets(self._task.args, no_log_values))

    @staticmethod
    def _check(result, args, errors, task_vars):
        if not errors and args["mta"] not in (None, "detect") and not args["settings"]:
            errors.append("settings is required with mta: %s (pass the relay_settings fact)" % args["mta"])
        if errors:
            result["failed"] = True
            result["msg"] = "relay_settings_check: invalid arguments:\n" + "\n".join(
                "- [argument-spec] %s" % e for e in errors)
            return result
        prefix = args.pop("variable_prefix")
        names = args.pop("variable_names")
        mta, mta_vars, settings, facts, inventory = (args.pop(key) for key in _MTA_OPTIONS)
        if names is None and prefix:
            names = list(task_vars or {})
        unknown = unknown_variables(names, role_variables()) if names else []
        if mta:
            findings = unknown + check_mta(mta, settings or {}, mta_vars or {}, facts or {}, inventory)
            report = ProfileReport(dict(settings or {}), *_report(findings))
        else:
            report = check_profile({k: v for k, v in args.items() if v is not None})
            if prefix:
                report = ProfileReport(report.normalized, *[[f.renamed(prefix, PROFILE_KEYS) for f in group]
                                                            for group in (report.errors, report.warnings, report.notes)])
            report.errors[:0] = unknown
        result["normalized"] = report.normalized
        result["findings"] = [f.as_dict() for f in report.findings]
        result["notes"] = [f.format() for f in report.notes]
        if not add_findings(result, report, "The %s settings break %%d rule(s)" % (mta if mta and mta != "detect" else "relay")):
            n = report.normalized
            result["msg"] = ("%s settings OK" % mta) if mta else "relay settings OK: %s:%s, tls %s, %s" % (
                n["host"], n["port"], n["tls"], "SMTP AUTH" if n["auth"] else "IP allowlist")
        return result
