# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Listeners and the config poll loop.

One asyncio server per (listener, address): ``smtp`` (stands in for port
25, STARTTLS offered), ``smtps`` (465, implicit TLS) and ``submission``
(587, STARTTLS).  Port 0 binds a free port (the same one for every address
of a listener).  The config file is checked at every new connection and
every ``poll_interval`` seconds; listeners follow the config (ports,
addresses) and ``unlisten`` faults (a port that is down refuses
connections at the TCP level).

After every change the server writes its status (``status.json`` beside the
record): the SHA-256 of the config file in force, its ``restart_epoch`` and
the ports listening.  A test that rewrites the config waits for its digest
there instead of sleeping through the poll interval.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import weakref
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .config import IMPLICIT_TLS_LISTENERS, SERVICE_PORTS
from .policy import RelayPolicy
from .protocol import Listener, RelaySMTP, abort_transport
from .records import status_path
from .state import RelayState

log = logging.getLogger("relay_standin")

_SOFT_BIND_ERRORS = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
BindingKey = Tuple[str, str, int]  # listener name, address, configured port


class RelayServer:
    """The stand-in server; ``await start()``, then ``await stop()``."""

    def __init__(self, config_path, poll_interval: float = 0.5) -> None:
        self.config_path = Path(config_path)
        self.poll_interval = poll_interval
        self.state: Optional[RelayState] = None
        self.policy: Optional[RelayPolicy] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._servers: Dict[BindingKey, asyncio.AbstractServer] = {}
        self._actual_ports: Dict[Tuple[str, int], int] = {}
        self._poll_task: Optional[asyncio.Task] = None
        self._reconcile_lock: Optional[asyncio.Lock] = None
        self._connections: "weakref.WeakSet[RelaySMTP]" = weakref.WeakSet()
        self._published: Optional[Dict[str, object]] = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._reconcile_lock = asyncio.Lock()
        self.state = RelayState.from_file(self.config_path)
        self.policy = RelayPolicy(self.state)
        await self.reconcile(strict=True)
        self._poll_task = self.loop.create_task(self._poll())

    async def stop(self) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
            try:
                await self._poll_task
            except asyncio.CancelledError:
                pass
        servers = list(self._servers.values())
        self._servers.clear()
        for server in servers:
            server.close()
        for connection in list(self._connections):
            if connection.transport is not None:
                abort_transport(connection.transport)
        for server in servers:
            await server.wait_closed()
        await asyncio.sleep(0)
        if self.state is not None:
            self.state.close()

    def bound_ports(self) -> Dict[str, int]:
        """Listener name -> bound port, for the listeners that are up."""
        return {key[0]: server.sockets[0].getsockname()[1]
                for key, server in self._servers.items() if server.sockets}

    def bindings(self) -> List[Tuple[str, str, int]]:
        """(listener, address, port) of every socket that is listening."""
        out = []
        for (name, _host, _port), server in sorted(self._servers.items()):
            for sock in server.sockets:
                address = sock.getsockname()
                out.append((name, address[0], address[1]))
        return out

    # ---- listeners ---------------------------------------------------------------
    def _desired(self) -> List[BindingKey]:
        settings = self.state.settings
        down = self.state.faults.unlistened_ports()
        return [(name, host, port)
                for name, port in settings.listeners().items() if SERVICE_PORTS[name] not in down
                for host in settings.listen]

    def _factory(self, listener_name: str, implicit_tls: bool, listen_port_ref: Dict[str, int]):
        def make_protocol():
            self.state.reload_if_changed()
            listener = Listener(listener_name, SERVICE_PORTS[listener_name], listen_port_ref["port"], implicit_tls)
            connection = RelaySMTP(self.policy, self.state, listener, loop=self.loop)
            connection.restart_epoch = self.state.settings.restart_epoch
            self._connections.add(connection)
            return connection
        return make_protocol

    async def _open(self, key: BindingKey) -> None:
        name, host, port = key
        implicit = name in IMPLICIT_TLS_LISTENERS
        if port == 0:
            port = self._actual_ports.get((name, 0), 0)
        port_ref = {"port": port}
        ssl_context = self.state.tls.switching_context() if implicit else None
        server = await self.loop.create_server(
            self._factory(name, implicit, port_ref), host=host, port=port, ssl=ssl_context, reuse_address=True,
        )
        bound = server.sockets[0].getsockname()[1]
        port_ref["port"] = bound
        if key[2] == 0:
            self._actual_ports[(name, 0)] = bound
        self._servers[key] = server
        log.info("listening: %s on [%s]:%d%s", name, host, bound, " (implicit TLS)" if implicit else "")

    async def _close(self, key: BindingKey) -> None:
        server = self._servers.pop(key, None)
        if server is not None:
            server.close()
            await server.wait_closed()
            log.info("stopped listening: %s on [%s]:%s", key[0], key[1], key[2])

    def _close_connections_of_earlier_epochs(self) -> None:
        """A new ``restart_epoch`` in the settings: close every connection opened before it, as a restart does."""
        epoch = self.state.settings.restart_epoch
        for connection in list(self._connections):
            if getattr(connection, "restart_epoch", epoch) != epoch:
                connection.restart_epoch = epoch
                log.info("restart_epoch %d: closing connection %s", epoch,
                         connection.conn.connection_id if connection.conn else "?")
                connection.drop(reason="relay restart")

    async def reconcile(self, strict: bool = False) -> None:
        """Open and close listeners until they match the settings.  With
        ``strict``, a listener that cannot bind any address is an error."""
        async with self._reconcile_lock:
            self._close_connections_of_earlier_epochs()
            desired = self._desired()
            for key in [k for k in self._servers if k not in desired]:
                await self._close(key)
            failures: Dict[str, List[str]] = {}
            for key in desired:
                if key in self._servers:
                    continue
                try:
                    await self._open(key)
                except OSError as exc:
                    failures.setdefault(key[0], []).append("[%s]:%d: %s" % (key[1], key[2], exc))
                    level = logging.WARNING if exc.errno in _SOFT_BIND_ERRORS else logging.ERROR
                    log.log(level, "cannot listen for %s on [%s]:%d: %s", key[0], key[1], key[2], exc)
            if strict:
                up = {key[0] for key in self._servers}
                dead = [name for name in failures if name not in up]
                if dead:
                    raise OSError("cannot listen for %s: %s" % (
                        ", ".join(dead), "; ".join(m for name in dead for m in failures[name])))
            self._publish_status()

    def status(self) -> Dict[str, object]:
        """What the server runs with now: the config file's digest, its restart_epoch, the last reload error
        and the bound port of each listener that is up."""
        return {"config_sha256": self.state.source.digest, "restart_epoch": self.state.settings.restart_epoch,
                "reloads": self.state.reload_count, "config_error": self.state.last_error,
                "listening": self.bound_ports()}

    def _publish_status(self) -> None:
        status = self.status()
        path = status_path(self.state.settings.record)
        if path is None or status == self._published:
            return
        temporary = path.with_name(path.name + ".new")
        try:
            temporary.write_text(json.dumps(status, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            log.error("cannot write the status file %s: %s", path, exc)
            return
        self._published = status

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self.state.reload_if_changed()
                await self.reconcile()
            except Exception:  # pylint: disable=broad-except
                log.exception("poll failed")

    async def reload_now(self) -> bool:
        """Reload the config at once (tests call this instead of waiting for
        the poll) and bring the listeners in line."""
        changed = self.state.reload_if_changed()
        await self.reconcile()
        return changed
