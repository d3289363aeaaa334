# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmarks' one import-path set-up (they run as scripts, outside pytest): the rule engine
(plugins/module_utils, for ``_relay``) and the relay stand-in's toolkit (tools/, for ``relay_standin``).
Import it before either."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "plugins" / "module_utils", ROOT / "tools"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
