# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fail when an SMTP AUTH password of the test bed appears in a log.

Usage (from the collection root, with the project venv):
    .venv/bin/python scripts/scan_secrets.py [PATH ...]

Secrets: every value of a relay stand-in ``users:`` mapping and of a ``relay_auth_password`` key in
the YAML files under ``molecule/`` (inventories in molecule.yml, playbook vars) and in the demo's and
the benchmark's generated ``.cache/{demo,bench}/secrets.yml``; templated values are skipped.
Logs: every file under ``.cache/logs`` (the molecule tier's full outputs and ansible logs), the
file ANSIBLE_LOG_PATH names, and each PATH given (files or directories).
Each secret is looked for as written and base64-encoded (as SMTP AUTH and HTTP carry it). Hits are
reported by file, count and the secret's source, never by the secret itself.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SECRET_FILES = (".cache/demo/secrets.yml", ".cache/bench/secrets.yml")
MIN_LENGTH = 6  # shorter values would match ordinary text; no test-bed password is that short


def _walk(node, source, found):
    """Collect passwords from one parsed YAML document into found {secret: source}."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "relay_auth_password" and isinstance(value, str):
                found.setdefault(value, "%s: %s" % (source, key))
            elif key == "users" and isinstance(value, dict):
                for user, password in value.items():
                    if isinstance(password, str):
                        found.setdefault(password, "%s: users.%s" % (source, user))
            _walk(value, source, found)
    elif isinstance(node, list):
        for item in node:
            _walk(item, source, found)


def _yaml_documents(path):
    try:
        return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []


def collect_secrets(root=ROOT):
    """{password: where it was found} for every test-bed SMTP AUTH password."""
    root = Path(root)
    found = {}
    sources = sorted(root.glob("molecule/**/*.yml")) + [root / name for name in SECRET_FILES]
    for path in sources:
        if path.is_file():
            for document in _yaml_documents(path):
                _walk(document, str(path.relative_to(root)), found)
    return {secret: source for secret, source in found.items()
            if len(secret) >= MIN_LENGTH and "{{" not in secret and "{%" not in secret}


def log_files(paths):
    """Every regular file under the given files and directories (symbolic links followed once)."""
    for path in paths:
        path = Path(path)
        if path.is_file():
            yield path
        elif path.is_dir():
            for directory, _dirs, names in os.walk(path):
                for name in sorted(names):
                    candidate = Path(directory) / name
                    if candidate.is_file():
                        yield candidate


def scan(secrets, paths):
    """[(file, count, source)] for every secret found in a file, counting plain and base64 forms."""
    needles = [(secret.encode(), base64.b64encode(secret.encode()), source) for secret, source in secrets.items()]
    hits = []
    for path in log_files(paths):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for plain, encoded, source in needles:
            count = data.count(plain) + data.count(encoded)
            if count:
                hits.append((str(path), count, source))
    return hits


def default_paths(root=ROOT):
    paths = [Path(root) / ".cache" / "logs"]
    if os.environ.get("ANSIBLE_LOG_PATH"):
        paths.append(Path(os.environ["ANSIBLE_LOG_PATH"]))
    return paths


def main(argv=None, root=ROOT):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="further log files or directories")
    args = parser.parse_args(argv)
    secrets = collect_secrets(root)
    paths = default_paths(root) + args.paths
    files = list(log_files(paths))
    hits = scan(secrets, paths)
    for path, count, source in hits:
        print("SECRET LEAKED: %s holds the password of %s %d time(s)" % (path, source, count))
    print("scan_secrets: %d password(s), %d file(s), %d byte(s) scanned, %d leak(s)"
          % (len(secrets), len(files), sum(f.stat().st_size for f in files), len(hits)))
    if not secrets:
        print("scan_secrets: no passwords found to look for; is this the collection root?")
        return 2
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
