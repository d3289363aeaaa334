# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest fixtures for suites that need a relay stand-in.

Use from a conftest.py (with ``tools/`` on ``sys.path``)::

    from relay_standin.pytest_plugin import relay_pki, relay_standin_factory, relay_standin  # noqa: F401

* ``relay_pki`` (session): directory with the test PKI (see pki.py).
* ``relay_standin_factory`` (function): ``start(**config) -> StandinThread``
  (``process=True`` for a subprocess); everything it started is stopped
  at teardown.  Config keys override ``testing.loopback_config``.
* ``relay_standin`` (function): one stand-in with the loopback defaults,
  TLS on, user ``alice@example.com`` / ``alice-pw``, 127.0.0.1 allowlisted.
* ``relay_client`` (function): a ``testing.RelayClient`` trusting the test CA.
"""

from __future__ import annotations

import pytest

from .pki import make_pki
from .testing import RelayClient, StandinProcess, StandinThread, loopback_config

DEFAULT_USER = "alice@example.com"
DEFAULT_PASSWORD = "alice-pw"
DEFAULT_LOGIN = (DEFAULT_USER, DEFAULT_PASSWORD)


@pytest.fixture(scope="session")
def relay_pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("relay-pki"))["ca.pem"].parent


@pytest.fixture
def relay_standin_factory(tmp_path, relay_pki):
    started = []

    def start(process: bool = False, tls: bool = True, **config):
        workdir = tmp_path / ("standin-%d" % len(started))
        settings = loopback_config(workdir, relay_pki if tls else None, **config)
        runner = (StandinProcess if process else StandinThread)(workdir, settings)
        started.append(runner)
        return runner

    yield start
    for runner in reversed(started):
        runner.stop()


@pytest.fixture
def relay_standin(relay_standin_factory):
    return relay_standin_factory(users={DEFAULT_USER: DEFAULT_PASSWORD}, allowlist=["127.0.0.1"])


@pytest.fixture
def relay_client(relay_pki):
    return RelayClient(relay_pki)
