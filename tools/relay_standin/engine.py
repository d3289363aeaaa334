# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Import the collection's rule engine as top-level ``_relay``.

The engine lives in ``<collection root>/plugins/module_utils/_relay``; this
package lives in ``<collection root>/tools/relay_standin``.  The environment
variable ``RELAY_STANDIN_ENGINE_PATH`` overrides the directory that holds
``_relay`` (e.g. a read-only mount of the collection elsewhere).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENGINE_PATH_ENV = "RELAY_STANDIN_ENGINE_PATH"


def engine_path() -> Path:
    """The directory that contains the ``_relay`` package."""
    override = os.environ.get(ENGINE_PATH_ENV)
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[2] / "plugins" / "module_utils"


def _put_engine_on_path() -> None:
    path = str(engine_path())
    if not (Path(path) / "_relay" / "__init__.py").is_file():
        raise ImportError(
            "relay engine not found: %s/_relay (set %s to the directory holding _relay)" % (path, ENGINE_PATH_ENV)
        )
    if path not in sys.path:
        sys.path.insert(0, path)


_put_engine_on_path()

# pylint: disable=wrong-import-position
from _relay import allowlist, constants, domains, limits, replies, session  # noqa: E402  pylint: disable=import-error

__all__ = ["allowlist", "constants", "domains", "limits", "replies", "session", "engine_path", "ENGINE_PATH_ENV"]
