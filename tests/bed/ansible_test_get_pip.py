# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pip bootstrap for ansible-test's sanity venvs on a machine that reaches PyPI but not ansible's CI file host.

ansible-test runs its cached get-pip script as ``python get_pip.py [pip options] pip==X ...``. This installs the
interpreter's bundled pip (ensurepip) and then the requested packages from the configured index, which is what the
upstream script achieves. scripts/test.sh copies it into ansible-test's cache before the sanity tier.
"""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
ARGS = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"] + ARGS)
