# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every scenario's verifier: tracebacks without the failing frames' argument values.

pytest's long tracebacks print each frame's arguments, and the scenarios' helpers take the stand-in's whole config
(its users' passwords) as one: a failure would copy the test bed's passwords into the scenario's log, which
scripts/test.sh's secret scan then rightly reports. Short tracebacks keep the source lines and the assertion."""


def pytest_configure(config):
    if config.option.tbstyle == "auto":
        config.option.tbstyle = "short"
