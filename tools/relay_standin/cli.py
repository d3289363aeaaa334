# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Command line: ``serve``, ``records``, ``pki``, ``check-config``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import List, Optional

from . import records as recordlib
from .config import ConfigError, load_settings
from .pki import PkiError, make_pki


def _serve(args) -> int:
    from .server import RelayServer  # pylint: disable=import-outside-toplevel  # aiosmtpd: serve only

    async def run() -> None:
        server = RelayServer(args.config, poll_interval=args.poll_interval)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        print(json.dumps({"event": "listening", "bindings": server.bindings()}), flush=True)
        try:
            await stop.wait()
        finally:
            await server.stop()

    try:
        asyncio.run(run())
    except (ConfigError, OSError) as exc:
        print("relay_standin: %s" % exc, file=sys.stderr)
        return 2
    return 0


def _records(args) -> int:
    loaded = recordlib.load(args.file)
    if args.summary:
        summary = recordlib.summarize(loaded)
        if args.json:
            print(json.dumps(summary, indent=2, sort_keys=True))
        else:
            for key, value in summary.items():
                print("%s: %s" % (key, json.dumps(value, sort_keys=True) if isinstance(value, dict) else value))
        return 0
    chosen = loaded if args.all else recordlib.transactions(loaded)
    if args.verdict:
        chosen = [r for r in chosen if r.get("verdict") == args.verdict or r.get("kind") == "connection"]
    for record in chosen:
        if args.json:
            print(json.dumps(record, sort_keys=True))
        elif record.get("kind") == recordlib.KIND_CONNECTION:
            print(recordlib.format_connection(record))
        else:
            print(recordlib.format_transaction(record))
    return 0


def _pki(args) -> int:
    try:
        paths = make_pki(args.out, force=args.force, key_type=args.key_type)
    except PkiError as exc:
        print("relay_standin: %s" % exc, file=sys.stderr)
        return 2
    for name in sorted(paths):
        print(paths[name])
    return 0


def _check_config(args) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print("relay_standin: %s" % exc, file=sys.stderr)
        return 2
    dos = settings.dos
    print("ok: listeners %s, %d allowlist range(s), %d user(s), senders %s, domains %s, replies %s, dos %s%s" % (
        settings.listeners(), len(settings.allowlist), len(settings.users), settings.allowed_senders,
        ", ".join(settings.domains) or "-", settings.reply_layout,
        "off" if dos.max_new_connections is None else "%d new connections per %gs" % (
            dos.max_new_connections, dos.window_seconds),
        ", generic HELO refused" if dos.generic_helo else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m relay_standin",
                                     description="Local stand-in for smtp-relay.gmail.com (test use only).")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the relay stand-in")
    serve.add_argument("--config", required=True, type=Path, help="YAML config file (re-read when it changes)")
    serve.add_argument("--poll-interval", type=float, default=0.5, help="seconds between config checks")
    serve.set_defaults(func=_serve)

    show = commands.add_parser("records", help="show a record file")
    show.add_argument("file", type=Path, help="JSON-lines record file")
    show.add_argument("--json", action="store_true", help="JSON output")
    show.add_argument("--summary", action="store_true", help="counts per verdict, connection, port, TLS, ...")
    show.add_argument("--all", action="store_true", help="include connection lines")
    show.add_argument("--verdict", choices=recordlib.VERDICTS, help="only transactions with this verdict")
    show.set_defaults(func=_records)

    pki = commands.add_parser("pki", help="write the test PKI (needs the openssl command)")
    pki.add_argument("--out", required=True, type=Path, help="directory for the PEM files")
    pki.add_argument("--force", action="store_true", help="regenerate even if the files exist")
    pki.add_argument("--key-type", choices=("rsa", "ec"), default="rsa", help="key algorithm (default rsa)")
    pki.set_defaults(func=_pki)

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("--config", required=True, type=Path)
    check.set_defaults(func=_check_config)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else (logging.INFO if args.verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("relay_standin").setLevel(level if args.verbose else logging.INFO)
    logging.getLogger("mail.log").setLevel(logging.DEBUG if args.verbose > 1 else logging.ERROR)
    return args.func(args)
