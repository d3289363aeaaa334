# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for test suites: run the stand-in on loopback and talk to it.

* ``free_port()``: a free TCP port on loopback.
* ``write_config(path, mapping)``: atomic config write (the server sees a
  complete file or the old one, never half of one).
* ``wait_for_config(read_status, written)``: wait until the server runs
  with the config file whose bytes were ``written`` (its status file);
  ``StandinThread.apply(**changes)`` rewrites and waits.
* ``StandinThread``: the server in a background thread of this process
  (fast; ``seed_usage``, ``reconfigure`` take effect synchronously).
* ``StandinProcess``: ``python3 -m relay_standin serve`` as a subprocess.
* ``RelayClient``: smtplib sessions (which join a multi-line reply's lines);
  ``RawSession``: a socket session that returns every reply as its lines, as
  they were on the wire.

Both have ``host``, ``ports`` (listener name -> bound port),
``port_for(service_port)``, ``records()``, ``transactions()``,
``wait_for(predicate)``, ``reconfigure(**changes)`` and ``stop()``, and
work as context managers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import yaml

from . import records as recordlib
from .config import SERVICE_PORTS

TOOLS_DIR = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def write_config(path, mapping: Mapping[str, Any]) -> Path:
    """Write ``mapping`` as YAML to ``path`` atomically (temp file +
    rename, so the inode changes and the server notices every write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".yml", dir=str(path.parent))
    with os.fdopen(fd, "wb") as handle:
        handle.write(config_bytes(mapping))
    os.replace(tmp, path)
    return path


def config_bytes(mapping: Mapping[str, Any]) -> bytes:
    """The bytes ``write_config`` and the scenarios write for ``mapping``."""
    return yaml.safe_dump(dict(mapping), sort_keys=False).encode("utf-8")


def wait_for_config(read_status: Callable[[], Optional[Dict[str, Any]]], written: bytes,
                    timeout: float = 60.0) -> Dict[str, Any]:
    """Wait until the server's status (``read_status()``: the parsed status file, None while there is none)
    says it runs with the config file whose bytes are ``written``, its listeners brought in line; return that
    status.  Raises TimeoutError with the last status (a refused config shows there as ``config_error``)."""
    digest = hashlib.sha256(written).hexdigest()
    deadline = time.monotonic() + timeout
    while True:
        status = read_status()
        if status and status.get("config_sha256") == digest:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError("the stand-in did not take the new config within %ss; its status: %s" % (
                timeout, status))
        time.sleep(0.05)


def loopback_config(workdir: Path, pki_dir: Optional[Path] = None, **overrides: Any) -> Dict[str, Any]:
    """A config for tests: loopback, free ports (0), the record in
    ``workdir``, the PKI's relay certificate when ``pki_dir`` is given."""
    config: Dict[str, Any] = {
        "hostname": "relay.smarthost.test",
        "listen": ["127.0.0.1"],
        "ports": {"smtp": 0, "smtps": 0 if pki_dir else None, "submission": 0},
        "record": str(Path(workdir) / "record.jsonl"),
        "domains": ["example.com"],
        "idle_timeout_seconds": 30,
    }
    if pki_dir is not None:
        config["tls"] = {"cert": str(Path(pki_dir) / "relay.pem"), "key": str(Path(pki_dir) / "relay.key")}
    config.update(overrides)
    return config


class _StandinBase:
    """What the thread and the process runner share."""

    host = "127.0.0.1"
    ports: Dict[str, int]

    def __init__(self, workdir, config: Mapping[str, Any]) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config: Dict[str, Any] = dict(config)
        self.config_path = self.workdir / "config.yml"
        self.ports = {}
        write_config(self.config_path, self.config)

    @property
    def record_path(self) -> Optional[Path]:
        record = self.config.get("record")
        if not record:
            return None
        path = Path(record)
        return path if path.is_absolute() else self.workdir / path

    def port_for(self, service_port: int) -> int:
        """The bound port of the listener standing in for 25, 465 or 587."""
        for name, number in SERVICE_PORTS.items():
            if number == service_port:
                return self.ports[name]
        raise KeyError(service_port)

    def records(self) -> List[Dict[str, Any]]:
        return recordlib.load(self.record_path) if self.record_path else []

    def transactions(self) -> List[Dict[str, Any]]:
        return recordlib.transactions(self.records())

    def connections(self) -> List[Dict[str, Any]]:
        return recordlib.connections(self.records())

    def wait_for(self, predicate: Callable[[List[Dict[str, Any]]], bool], timeout: float = 5.0):
        """Poll the record until ``predicate(records)`` is true; returns the
        records (raises TimeoutError with the last records otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.records()
            if predicate(found):
                return found
            if time.monotonic() > deadline:
                raise TimeoutError("record condition not met within %ss; records: %s" % (timeout, found[-5:]))
            time.sleep(0.02)

    def wait_for_connections(self, count: int, timeout: float = 5.0) -> List[Dict[str, Any]]:
        """Wait until ``count`` connection lines were written (a connection's
        line comes after all its transactions)."""
        return recordlib.connections(self.wait_for(lambda r: len(recordlib.connections(r)) >= count, timeout))

    def reconfigure(self, **changes: Any) -> None:
        """Merge ``changes`` into the config and rewrite the file."""
        self.config.update(changes)
        write_config(self.config_path, self.config)

    def status(self) -> Optional[Dict[str, Any]]:
        """The server's status file, None before it wrote one."""
        path = recordlib.status_path(self.record_path)
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path else None
        except (OSError, ValueError):
            return None

    def apply(self, timeout: float = 10.0, **changes: Any) -> Dict[str, Any]:
        """``reconfigure`` and wait until the server runs with the new file; its status."""
        self.reconfigure(**changes)
        return wait_for_config(self.status, config_bytes(self.config), timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        raise NotImplementedError


class StandinThread(_StandinBase):
    """The stand-in in a background thread with its own event loop."""

    def __init__(self, workdir, config: Mapping[str, Any], start_timeout: float = 10.0) -> None:
        super().__init__(workdir, config)
        from .server import RelayServer  # pylint: disable=import-outside-toplevel  # aiosmtpd: servers only

        self.server = RelayServer(self.config_path, poll_interval=0.2)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="relay-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(start_timeout):
            raise TimeoutError("relay stand-in did not start within %ss" % start_timeout)
        if self._error is not None:
            raise self._error
        self.ports = self.server.bound_ports()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:  # pylint: disable=broad-except
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def call(self, coroutine, timeout: float = 10.0):
        """Run ``coroutine`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def reconfigure(self, **changes: Any) -> None:
        super().reconfigure(**changes)
        self.call(self.server.reload_now())
        if self.server.state.last_error:
            raise ValueError("stand-in refused the new config: %s" % self.server.state.last_error)
        # keep the numbers of listeners that are down: connecting must be refused
        self.ports = {**self.ports, **self.server.bound_ports()}

    def seed_usage(self, user: Optional[str] = None, messages: int = 0, unique_recipients: int = 0,
                   customer_recipients: int = 0) -> None:
        """Count earlier relay traffic (now) so a test reaches a limit fast."""
        async def seed() -> None:
            self.server.state.ledger.seed(self.server.state.now(), user=user, messages=messages,
                                          unique_recipients=unique_recipients,
                                          customer_recipients=customer_recipients)
        self.call(seed())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


class StandinProcess(_StandinBase):
    """``python3 -m relay_standin serve`` in a subprocess (ports chosen up
    front, since the process binds them)."""

    def __init__(self, workdir, config: Mapping[str, Any], python: str = sys.executable,
                 start_timeout: float = 15.0, env: Optional[Mapping[str, str]] = None) -> None:
        config = dict(config)
        ports = dict(config.get("ports") or {})
        for name in SERVICE_PORTS:
            if ports.get(name, 0) == 0:  # missing or 0: a free port, None: off
                ports[name] = free_port(self.host)
        config["ports"] = ports
        super().__init__(workdir, config)
        self.ports = {name: port for name, port in ports.items() if port is not None}
        process_env = dict(os.environ if env is None else env)
        process_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOOLS_DIR), process_env.get("PYTHONPATH")]))
        self.stderr_path = self.workdir / "serve.err"
        self._stderr = open(self.stderr_path, "wb")  # pylint: disable=consider-using-with
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [python, "-m", "relay_standin", "serve", "--config", str(self.config_path), "--poll-interval", "0.2"],
            stdout=subprocess.PIPE, stderr=self._stderr, env=process_env, cwd=str(self.workdir),
        )
        line = self._read_ready_line(start_timeout)
        self.bindings = json.loads(line)["bindings"]

    def _read_ready_line(self, timeout: float) -> bytes:
        result: Dict[str, bytes] = {}
        reader = threading.Thread(target=lambda: result.setdefault("line", self.process.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        line = result.get("line", b"")
        if not line:
            self.stop()
            raise RuntimeError("relay stand-in did not start: %s" % self.stderr_path.read_text(errors="replace"))
        return line

    def reconfigure(self, **changes: Any) -> None:
        """Rewrite the config; the server picks it up at the next connection
        or within its poll interval."""
        super().reconfigure(**changes)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout:
            self.process.stdout.close()
        self._stderr.close()


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def message(subject: str = "test", message_id: str = "<test@example.com>", sender: str = "alice@example.com",
            recipient: str = "bob@remote.test") -> bytes:
    """A small RFC 5322 message."""
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n\r\nbody\r\n"
            % (sender, recipient, subject, message_id)).encode("utf-8")


class RelayClient:
    """Opens smtplib sessions to a running stand-in; never resolves a name
    (EHLO name always given, addresses are literals)."""

    def __init__(self, pki_dir) -> None:
        self.pki_dir = Path(pki_dir)

    def context(self, ca: str = "ca.pem") -> ssl.SSLContext:
        """A verifying client context that trusts ``ca`` (a file of the PKI)."""
        return ssl.create_default_context(cafile=str(self.pki_dir / ca))

    def connect(self, standin, port: int = 587, helo: str = "mta.example.com", starttls: bool = True,
                login=None, host: str = "127.0.0.1", ca: str = "ca.pem", ehlo: bool = True) -> smtplib.SMTP:
        """A session to the listener standing in for ``port`` (25, 465,
        587): EHLO, then STARTTLS and EHLO again (not on 465), then AUTH
        with ``login`` (user, password) when given."""
        bound = standin.port_for(port)
        if port == 465:
            client = smtplib.SMTP_SSL(host, bound, local_hostname=helo, context=self.context(ca), timeout=10)
        else:
            client = smtplib.SMTP(host, bound, local_hostname=helo, timeout=10)
        if ehlo:
            client.ehlo(helo)
        if starttls and port != 465:
            client.starttls(context=self.context(ca))
            client.ehlo(helo)
        if login:
            client.login(*login)
        return client


class RawSession:
    """An SMTP session over a plain socket (TLS when asked) that returns each reply as its lines, exactly as
    sent (without CRLF): what smtplib hides by joining them.  ``reply()`` reads one reply, ``command(line)``
    sends a command and reads its reply; both raise ``EOFError`` when the relay closed the connection."""

    def __init__(self, standin, port: int = 587, host: str = "127.0.0.1", context: Optional[ssl.SSLContext] = None,
                 timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, standin.port_for(port)), timeout=timeout)
        if port == 465:
            self.sock = context.wrap_socket(self.sock, server_hostname="relay.smarthost.test")
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> List[str]:
        lines: List[str] = []
        while True:
            raw = self.file.readline()
            if not raw:
                raise EOFError("connection closed after %r" % (lines,))
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if line[3:4] != "-":
                return lines

    def command(self, line: str) -> List[str]:
        self.sock.sendall(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def starttls(self, context: ssl.SSLContext, server_hostname: str = "relay.smarthost.test") -> List[str]:
        answer = self.command("STARTTLS")
        if answer[-1].startswith("220"):
            self.file.close()
            self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
            self.file = self.sock.makefile("rb")
        return answer

    def closed_by_peer(self, timeout: float = 2.0) -> bool:
        """True when the relay closed the connection (end of file, or reset)."""
        self.sock.settimeout(timeout)
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def reply_lines(code: int, text: bytes) -> List[str]:
    """An smtplib reply ``(code, text)`` back as the lines it came in (smtplib joins them with newlines, without
    their codes); the continuation marks are restored."""
    parts = text.decode("utf-8", "replace").split("\n")
    return ["%d%s%s" % (code, "-" if n < len(parts) - 1 else " ", part) for n, part in enumerate(parts)]


def catalogue_key(reply: Tuple[int, bytes]) -> Optional[str]:
    """The reply catalogue entry an smtplib reply ``(code, text)`` is, or None."""
    from .engine import replies  # pylint: disable=import-outside-toplevel
    entry = replies.classify(reply_lines(*reply))
    return entry.key if entry else None
