# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Server-side TLS with the standard library only (no ``cryptography``).

``TlsProvider`` holds the current server context and rebuilds it when the
configured certificate or key (or their files) change.  Listeners for
implicit TLS (465) are created once with a *switching* context whose SNI
callback hands every handshake the current context, so a test can swap in
the impostor certificate without restarting the server.
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path
from typing import Optional, Tuple


class TlsConfigError(ValueError):
    """The certificate or key cannot be loaded."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for ``cert``/``key``: TLS 1.2 or later, no client
    certificates requested."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_NONE
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError("cannot load certificate %s / key %s: %s" % (cert, key, exc)) from exc
    return context


def _stamp(path: Path) -> Tuple[str, int]:
    try:
        return (str(path), os.stat(path).st_mtime_ns)
    except OSError:
        return (str(path), -1)


class TlsProvider:
    """The current TLS context, reloaded when its files change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._context: Optional[ssl.SSLContext] = None
        self._stamps: Optional[tuple] = None
        self._switching: Optional[ssl.SSLContext] = None

    def update(self, cert: Optional[Path], key: Optional[Path]) -> None:
        """Load ``cert``/``key`` unless they are the files already loaded
        (same paths, same modification times); None turns TLS off."""
        if cert is None or key is None:
            with self._lock:
                self._context, self._stamps = None, None
            return
        stamps = (_stamp(cert), _stamp(key))
        with self._lock:
            if stamps == self._stamps and self._context is not None:
                return
        context = server_context(cert, key)
        with self._lock:
            self._context, self._stamps = context, stamps

    @property
    def current(self) -> Optional[ssl.SSLContext]:
        with self._lock:
            return self._context

    def switching_context(self) -> ssl.SSLContext:
        """A context for implicit-TLS listeners that defers to ``current``
        at every handshake.  Needs a certificate loaded (``update``)."""
        with self._lock:
            if self._switching is not None:
                return self._switching
            if self._context is None:
                raise TlsConfigError("implicit TLS needs a certificate (tls.cert, tls.key)")
            cert, key = self._stamps[0][0], self._stamps[1][0]
        switching = server_context(Path(cert), Path(key))
        switching.sni_callback = self._hand_over
        with self._lock:
            self._switching = switching
        return switching

    def _hand_over(self, ssl_object, _server_name, _context):
        current = self.current
        if current is not None:
            ssl_object.context = current
        return None


def describe(ssl_object) -> dict:
    """TLS facts of a connection for the record: version and cipher."""
    if ssl_object is None:
        return {"tls": False, "tls_version": None, "tls_cipher": None}
    cipher = ssl_object.cipher()
    return {
        "tls": True,
        "tls_version": ssl_object.version(),
        "tls_cipher": cipher[0] if cipher else None,
    }
