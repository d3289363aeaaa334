# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The same rules seen by swaks, the client the container test bed uses."""

from __future__ import annotations

import shutil
import subprocess

import pytest


@pytest.fixture(autouse=True, scope="module")
def _swaks_with_tls():
    """scripts/setup.sh installs swaks and checks its TLS: a missing one is a broken set-up, never a skip."""
    if shutil.which("swaks") is None:
        pytest.fail("swaks not installed: run scripts/setup.sh (Debian package swaks, requirements/apt.txt)")
    support = subprocess.run(["swaks", "--support"], capture_output=True, text=True, check=False).stdout
    if "=== TLS supported" not in support:
        pytest.fail("swaks cannot do TLS: run scripts/setup.sh (Debian package libnet-ssleay-perl, requirements/apt.txt)")


USERS = {"alice@example.com": "alice-pw"}


def swaks(standin, pki, port, *extra, ca="ca.pem"):
    args = ["swaks", "--server", "127.0.0.1", "--port", str(standin.port_for(port)), "--helo", "mta.example.com",
            "--from", "alice@example.com", "--to", "bob@remote.test", "--timeout", "10",
            "--tls-verify", "--tls-ca-path", str(pki / ca), "--header", "Message-Id: <swaks@example.com>",
            *extra]
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=30)


@pytest.fixture
def standin(relay_standin_factory):
    return relay_standin_factory(auth_required=True, users=USERS)


def test_starttls_auth_587(standin, relay_pki):
    result = swaks(standin, relay_pki, 587, "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.com",
                   "--auth-password", "alice-pw")
    assert result.returncode == 0, result.stdout + result.stderr
    [record] = standin.transactions()
    assert (record["port"], record["tls"], record["auth_user"], record["message_id"]) == (
        587, True, "alice@example.com", "<swaks@example.com>")


def test_implicit_tls_login_465(standin, relay_pki):
    result = swaks(standin, relay_pki, 465, "--tls-on-connect", "--auth", "LOGIN", "--auth-user",
                   "alice@example.com", "--auth-password", "alice-pw")
    assert result.returncode == 0, result.stdout + result.stderr
    assert standin.transactions()[0]["tls_mode"] == "implicit"


def test_without_auth_is_refused(standin, relay_pki):
    result = swaks(standin, relay_pki, 587, "--tls")
    assert result.returncode != 0
    assert "530-5.5.1 Authentication Required" in result.stdout   # the first line of the multi-line reply


def test_plaintext_auth_is_refused(standin, relay_pki):
    result = swaks(standin, relay_pki, 25, "--auth", "PLAIN", "--auth-user", "alice@example.com",
                   "--auth-password", "alice-pw")
    assert result.returncode != 0
    assert standin.transactions() == []


def test_untrusted_ca_fails_verification(standin, relay_pki):
    result = swaks(standin, relay_pki, 587, "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.com",
                   "--auth-password", "alice-pw", ca="untrusted-ca.pem")
    assert result.returncode != 0
    assert standin.transactions() == []
