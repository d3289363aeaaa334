# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test PKI made with the ``openssl`` command (no Python crypto library).

Writes, into one directory:

* ``ca.pem`` / ``ca.key``: the trusted test CA;
* ``relay.pem`` / ``relay.key``: the relay's certificate, signed by it,
  with SANs relay.smarthost.test, localhost, 127.0.0.1 and ::1;
* ``untrusted-ca.pem`` / ``untrusted-ca.key``: an impostor CA nobody trusts;
* ``untrusted.pem`` / ``untrusted.key``: the same names, signed by the
  impostor, so a verifying client must refuse it.

Existing files are kept unless ``force`` is set (the set is only
regenerated when one of its files is missing).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Optional

RELAY_NAMES = ("relay.smarthost.test", "localhost")
RELAY_ADDRESSES = ("127.0.0.1", "::1")
CA_DAYS = 3650
LEAF_DAYS = 825
FILES = ("ca.pem", "ca.key", "relay.pem", "relay.key",
         "untrusted-ca.pem", "untrusted-ca.key", "untrusted.pem", "untrusted.key")


class PkiError(RuntimeError):
    """openssl is missing or failed."""


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise PkiError("the openssl command is needed to make the test PKI")
    result = subprocess.run([binary, *args], cwd=str(cwd), stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise PkiError("openssl %s failed: %s" % (args[0], result.stderr.strip()))


def _key(path: Path, key_type: str) -> None:
    if key_type == "ec":
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path.name,
                 cwd=path.parent)
    else:
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path.name,
                 cwd=path.parent)
    os.chmod(path, 0o600)


def _serial() -> str:
    return "0x" + secrets.token_hex(16)


def _make_ca(work: Path, stem: str, common_name: str, key_type: str) -> None:
    _key(work / (stem + ".key"), key_type)
    (work / (stem + ".ext")).write_text(
        "[req]\ndistinguished_name = dn\n[dn]\n[ext]\n"
        "basicConstraints = critical, CA:TRUE, pathlen:0\n"
        "keyUsage = critical, keyCertSign, cRLSign\n"
        "subjectKeyIdentifier = hash\n",
        encoding="ascii",
    )
    _openssl("req", "-x509", "-new", "-key", stem + ".key", "-out", stem + ".pem", "-days", str(CA_DAYS),
             "-subj", "/O=smarthost.relay tests/CN=" + common_name, "-config", stem + ".ext",
             "-extensions", "ext", "-set_serial", _serial(), "-sha256", cwd=work)


def _make_leaf(work: Path, stem: str, ca_stem: str, names: Iterable[str], addresses: Iterable[str],
               key_type: str) -> None:
    names, addresses = list(names), list(addresses)
    _key(work / (stem + ".key"), key_type)
    san = ", ".join(["DNS:" + n for n in names] + ["IP:" + a for a in addresses])
    (work / (stem + ".ext")).write_text(
        "[req]\ndistinguished_name = dn\n[dn]\n[ext]\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
        "subjectAltName = %s\n" % san,
        encoding="ascii",
    )
    _openssl("req", "-new", "-key", stem + ".key", "-out", stem + ".csr", "-subj",
             "/O=smarthost.relay tests/CN=" + names[0], "-config", stem + ".ext", cwd=work)
    _openssl("x509", "-req", "-in", stem + ".csr", "-CA", ca_stem + ".pem", "-CAkey", ca_stem + ".key",
             "-set_serial", _serial(), "-days", str(LEAF_DAYS), "-sha256", "-extfile", stem + ".ext",
             "-extensions", "ext", "-out", stem + ".pem", cwd=work)


def make_pki(out_dir, force: bool = False, key_type: str = "rsa", names: Optional[Iterable[str]] = None,
             addresses: Optional[Iterable[str]] = None) -> Dict[str, Path]:
    """Create the test PKI in ``out_dir``; returns file name -> path."""
    if key_type not in ("rsa", "ec"):
        raise PkiError("key type must be rsa or ec, got %r" % (key_type,))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in FILES}
    if not force and all(path.is_file() for path in paths.values()):
        return paths
    names = list(names or RELAY_NAMES)
    addresses = list(addresses or RELAY_ADDRESSES)
    with tempfile.TemporaryDirectory(prefix="relay-pki-") as tmp:
        work = Path(tmp)
        _make_ca(work, "ca", "smarthost.relay test CA", key_type)
        _make_leaf(work, "relay", "ca", names, addresses, key_type)
        _make_ca(work, "untrusted-ca", "smarthost.relay impostor CA", key_type)
        _make_leaf(work, "untrusted", "untrusted-ca", names, addresses, key_type)
        for name in FILES:
            shutil.copyfile(work / name, paths[name])
            os.chmod(paths[name], 0o600 if name.endswith(".key") else 0o644)
    return paths
