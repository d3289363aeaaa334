# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A plugin's DOCUMENTATION is its schema: build an argument spec from it and
validate parameters with ansible-core's ArgumentSpecValidator."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.yaml import yaml_load

_SPEC_KEYS = ("type", "required", "default", "choices", "elements", "no_log", "aliases", "apply_defaults")


def _convert(options):
    spec = {}
    for name, doc in (options or {}).items():
        entry = {key: doc[key] for key in _SPEC_KEYS if key in doc}
        if "suboptions" in doc:
            entry["options"] = _convert(doc["suboptions"])
        spec[name] = entry
    return spec


def argument_spec_from_doc(documentation, secret=()):
    """The ``argument_spec`` dict for the ``options`` of a DOCUMENTATION string; the ``secret`` options get
    ``no_log``, which DOCUMENTATION cannot say (validate-modules refuses the key there)."""
    doc = yaml_load(documentation) or {}
    spec = _convert(doc.get("options"))
    for name in secret:
        spec[name]["no_log"] = True
    return spec


def validate_from_doc(documentation, parameters, secret=()):
    """Validate ``parameters`` against the DOCUMENTATION's options.

    Returns ``(validated_parameters, error_messages, no_log_values)``; the
    error messages are ansible-core's, each naming the option. ``no_log_values``
    are the values of the ``secret`` options, which the caller keeps out of its output.
    """
    validator = ArgumentSpecValidator(argument_spec_from_doc(documentation, secret))
    result = validator.validate(dict(parameters))
    return result.validated_parameters, list(result.error_messages), set(result._no_log_values)
