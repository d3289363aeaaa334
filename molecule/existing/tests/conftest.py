# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the existing-playbook scenario: its hosts and the relay stand-in."""

from __future__ import annotations

import os

import pytest

# The scenario logs every ansible-playbook run to ANSIBLE_LOG_PATH; test_site_playbook.py greps it for the password.
LOG_PATH = os.environ.get("ANSIBLE_LOG_PATH")

import relay_record


@pytest.fixture(scope="session")
def relay():
    return relay_record.relay()


@pytest.fixture(scope="session")
def postfix():
    return relay_record.group_hosts("postfix_servers")[0]


@pytest.fixture(scope="session")
def sendmail():
    return relay_record.group_hosts("sendmail_servers")[0]
