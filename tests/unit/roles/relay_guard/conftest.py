# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the relay guard's tests.

* ``guard_module``: roles/relay_guard/files/smarthost_relay_guard.py, loaded from its path.
* ``guard_log``: ``guard_log()`` gives the guards' log lines since the test started, written by the
  handler ``main()`` writes stderr with; ``guard_file_log`` (module) collects the whole file's and
  checks at its end that no line holds a password.
* ``start_guard(standin=None, **changes)``: a guard on 127.0.0.1 (free port) in a thread, pointed at the
  stand-in's 587 listener as ``relay.smarthost.test`` (connecting to 127.0.0.1, the name only for
  the certificate check), TLS required and verified against the test CA, AUTH as alice, Google's
  daily-limit rules, the pool's defaults; ``changes`` replace top-level keys, ``relay``/``auth``/``pool``
  keys are merged (without a stand-in, ``relay={"port": ...}`` is needed).
* ``make_guard_config(standin=None, **changes)``: that configuration, without starting a guard.
* ``limit_rewrites``: Google's daily-limit rules; ``wrong_password``: a password the stand-in refuses.
* the relay stand-in's fixtures (relay_pki, relay_standin_factory, relay_standin, relay_client).
"""

from __future__ import annotations

import importlib.util
import io
import sys
import threading
from pathlib import Path

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay.replies import retry_rules

ROOT = Path(__file__).resolve().parents[4]
GUARD_PATH = ROOT / "roles" / "relay_guard" / "files" / "smarthost_relay_guard.py"

# pylint: disable=unused-import
from relay_standin.pytest_plugin import (  # noqa: F401
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    relay_client,
    relay_pki,
    relay_standin,
    relay_standin_factory,
)

# The rule engine's rules, exactly as the relay role publishes them (relay_settings.retry_replies.limits).
GOOGLE_LIMIT_REWRITES = retry_rules()["limits"]
WRONG_PASSWORD = "wrong-pw-7Qx9"


def _load_guard_module():
    spec = importlib.util.spec_from_file_location("smarthost_relay_guard", str(GUARD_PATH))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    # no __pycache__ next to the role's files (the role ships that directory)
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes_bytecode
    return module


@pytest.fixture(scope="session")
def guard_module():
    return sys.modules.get("smarthost_relay_guard") or _load_guard_module()


@pytest.fixture(scope="module")
def guard_file_log(guard_module):
    """Every log line of this test file's guards; none may hold a password."""
    stream = io.StringIO()
    handler = guard_module.log_handler(stream)
    guard_module.LOG.addHandler(handler)
    yield stream
    guard_module.LOG.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    leaked = [line for line in lines if DEFAULT_PASSWORD in line or WRONG_PASSWORD in line]
    assert not leaked, "a password reached the guard's log: %s" % leaked


@pytest.fixture
def guard_log(guard_file_log):  # pylint: disable=redefined-outer-name
    """``guard_log()``: the log lines written since this test started."""
    start = len(guard_file_log.getvalue())

    def lines():
        return guard_file_log.getvalue()[start:].splitlines()
    return lines


@pytest.fixture
def limit_rewrites():
    """Google's daily-limit rules, as the MTA roles pass them."""
    return [dict(rule) for rule in GOOGLE_LIMIT_REWRITES]


@pytest.fixture
def wrong_password():
    return WRONG_PASSWORD


def guard_config(standin, relay_pki, **changes):
    config = {
        "listen": {"address": "127.0.0.1", "port": 0},
        "relay": {"host": "relay.smarthost.test", "address": "127.0.0.1",
                  "port": standin.port_for(587) if standin is not None else None,
                  "tls": "required", "verify": True, "ca_file": str(relay_pki / "ca.pem")},
        "auth": {"username": DEFAULT_USER, "password": DEFAULT_PASSWORD},
        "rewrites": GOOGLE_LIMIT_REWRITES,
        "timeouts": {"connect": 5, "reply": 5},
        "user": None,
    }
    for key in ("relay", "auth", "pool"):
        if isinstance(changes.get(key), dict):
            config[key] = {**config.get(key, {}), **changes.pop(key)}
    config.update(changes)
    return config


@pytest.fixture
def make_guard_config(relay_pki):  # pylint: disable=redefined-outer-name
    """``make_guard_config(standin=None, **changes)``: the configuration ``start_guard`` would start a guard with."""
    def make(standin=None, **changes):
        return guard_config(standin, relay_pki, **changes)
    return make


@pytest.fixture
def start_guard(guard_module, guard_file_log, relay_pki):  # pylint: disable=redefined-outer-name,unused-argument
    started = []

    def start(standin=None, **changes):
        guard = guard_module.Guard(guard_config(standin, relay_pki, **changes))
        thread = threading.Thread(target=guard.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="relay-guard", daemon=True)
        thread.start()
        started.append((guard, thread))
        return guard

    yield start
    for guard, thread in reversed(started):
        guard.shutdown()
        thread.join(5)
