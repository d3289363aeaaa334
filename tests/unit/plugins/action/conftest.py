# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixture: run an action plugin in-process with a connection that refuses to be used."""

from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest


class NoConnection(object):
    """A connection whose only usable attribute is ``_shell.tmpdir``; any other
    use (exec_command, put_file, _connect, ...) fails the test."""

    def __init__(self):
        self._shell = SimpleNamespace(tmpdir=None)

    def __getattr__(self, name):
        raise AssertionError("the action plugin used the connection (%s); it must stay on the controller" % name)


def _run_action(action_class, args, check_mode=False):
    task = MagicMock()
    task.args = dict(args)
    task.async_val = 0
    task.check_mode = check_mode
    task.action = "smarthost.relay.test"
    plugin = action_class(task, NoConnection(), MagicMock(), MagicMock(), MagicMock(), None)

    def forbidden(*_a, **_kw):
        raise AssertionError("the action plugin tried to reach the host")

    for name in ("_execute_module", "_low_level_execute_command", "_make_tmp_path", "_transfer_data",
                 "_transfer_file", "_remote_expand_user"):
        setattr(plugin, name, forbidden)
    return plugin.run(task_vars={})


@pytest.fixture
def run_action():
    return _run_action
