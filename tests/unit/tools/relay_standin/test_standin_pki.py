# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The test PKI made with the openssl command."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess

import pytest

from relay_standin import cli
from relay_standin.pki import FILES, make_pki


@pytest.fixture(autouse=True, scope="module")
def _openssl_installed():
    """scripts/setup.sh installs and checks the openssl command: a missing one is a broken set-up, never a skip."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl command not installed: run scripts/setup.sh (Debian package openssl, requirements/apt.txt)")


def _openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def test_files_and_modes(relay_pki):
    for name in FILES:
        mode = os.stat(relay_pki / name).st_mode & 0o777
        assert mode == (0o600 if name.endswith(".key") else 0o644), name


def test_relay_certificate_chains_to_the_test_ca_only(relay_pki):
    assert _openssl("verify", "-CAfile", str(relay_pki / "ca.pem"), str(relay_pki / "relay.pem")).returncode == 0
    assert _openssl("verify", "-CAfile", str(relay_pki / "ca.pem"), str(relay_pki / "untrusted.pem")).returncode != 0
    assert _openssl("verify", "-CAfile", str(relay_pki / "untrusted-ca.pem"),
                    str(relay_pki / "untrusted.pem")).returncode == 0


@pytest.mark.parametrize("name", ["relay.pem", "untrusted.pem"])
def test_subject_alternative_names(relay_pki, name):
    decoded = ssl._ssl._test_decode_cert(str(relay_pki / name))  # pylint: disable=protected-access
    assert set(decoded["subjectAltName"]) == {
        ("DNS", "relay.smarthost.test"), ("DNS", "localhost"), ("IP Address", "127.0.0.1"),
        ("IP Address", "0:0:0:0:0:0:0:1"),
    }


def test_strict_verification_accepts_the_chain(relay_pki):
    context = ssl.create_default_context(cafile=str(relay_pki / "ca.pem"))
    if hasattr(ssl, "VERIFY_X509_STRICT"):
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(relay_pki / "relay.pem"), str(relay_pki / "relay.key"))
    client_side, server_side = ssl.MemoryBIO(), ssl.MemoryBIO()
    outgoing, incoming = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(client_side, outgoing, server_hostname="relay.smarthost.test")
    peer = server.wrap_bio(incoming, server_side, server_side=True)
    for dummy in range(10):
        for endpoint in (client, peer):
            try:
                endpoint.do_handshake()
            except ssl.SSLWantReadError:
                pass
        incoming.write(outgoing.read())
        client_side.write(server_side.read())
    assert client.version() is not None


def test_existing_files_are_kept_unless_forced(tmp_path):
    first = make_pki(tmp_path, key_type="ec")
    stamp = first["ca.pem"].read_bytes()
    assert make_pki(tmp_path, key_type="ec")["ca.pem"].read_bytes() == stamp
    assert make_pki(tmp_path, key_type="ec", force=True)["ca.pem"].read_bytes() != stamp


def test_pki_cli(tmp_path, capsys):
    assert cli.main(["pki", "--out", str(tmp_path / "pki"), "--key-type", "ec"]) == 0
    assert sorted(p.name for p in (tmp_path / "pki").iterdir()) == sorted(FILES)
    assert len(capsys.readouterr().out.splitlines()) == len(FILES)
