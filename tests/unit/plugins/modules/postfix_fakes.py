# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fake Postfix programs for the postfix_apply tests (the real Postfix runs in the molecule scenarios only).

postconf edits main.cf/master.cf of ``-c <dir>`` as Postfix would (``-e``, ``-X``, ``-M``, ``-M -X``, ``-xh``); postmap
copies a map to its ``.db``; postfix, systemctl, journalctl and postsuper record their arguments. Every call goes to
``calls.log`` beside them, in order. A file ``postconf.fail``, ``postmap.fail`` (once), ``check.fail``,
``reload.fail`` or ``restart.fail`` (once) there makes that call fail; ``status.stopped`` makes ``postfix status``
say Postfix is not running; ``journal.txt`` is what journalctl prints.
"""

from __future__ import annotations

import sys

POSTCONF = r'''#!%(python)s
import os, re, sys
bin_dir = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(bin_dir, "calls.log"), "a") as log:
    log.write("postconf " + " ".join(sys.argv[1:]) + "\n")
if os.path.exists(os.path.join(bin_dir, "postconf.fail")):
    sys.stderr.write("postconf: fatal: bad parameter\n"); sys.exit(1)
args = sys.argv[1:]
conf = args[1]; args = args[2:]
main, master = os.path.join(conf, "main.cf"), os.path.join(conf, "master.cf")
def lines(path):
    with open(path) as h: return h.read().splitlines()
def save(path, rows):
    with open(path, "w") as h: h.write("".join(r + "\n" for r in rows))
DEFAULTS = {"myorigin": "$myhostname", "myhostname": "localhost.localdomain", "mydestination": "$myhostname"}
def value(name):
    found = [l.split("=", 1)[1].strip() for l in lines(main) if l.split("=", 1)[0].strip() == name]
    v = found[-1] if found else DEFAULTS.get(name, "")
    return re.sub(r"\$(\w+)", lambda m: value(m.group(1)), v)
if args[0] == "-e":
    rows = lines(main)
    for item in args[1:]:
        name, val = item.split("=", 1)
        new = "%%s = %%s" %% (name, val)
        idx = [i for i, l in enumerate(rows) if l.split("=", 1)[0].strip() == name]
        if idx: rows[idx[0]] = new
        else: rows.append(new)
    save(main, rows)
elif args[0] == "-X":
    save(main, [l for l in lines(main) if l.split("=", 1)[0].strip() not in args[1:]])
elif args[:2] == ["-M", "-X"]:
    drop = set(args[2:])
    save(master, [l for l in lines(master) if "/".join(l.split()[:2]) not in drop])
elif args[0] == "-M":
    rows = lines(master)
    for item in args[1:]:
        key, entry = item.split("=", 1)
        idx = [i for i, l in enumerate(rows) if "/".join(l.split()[:2]) == key]
        if idx: rows[idx[0]] = entry
        else: rows.append(entry)
    save(master, rows)
elif args[0] == "-xh":
    for name in args[1:]:
        print(value(name))
'''
RECORDER = '''#!/bin/sh
here=$(dirname "$0")
echo "%(name)s $*" >> "$here/calls.log"
%(body)s
'''
POSTMAP = '''case "$1" in *:*) src=${1#*:} ;; *) src=$1 ;; esac
if [ -e "$here/postmap.fail" ] && [ ! -e "$here/postmap.failed-once" ]; then
  touch "$here/postmap.failed-once"; echo "postmap: fatal: open $src: bad" >&2; exit 1
fi
cp "$src" "$src.db"
'''
POSTFIX = '''case "$1" in
  check) [ -e "$here/check.fail" ] && { echo "postfix/postfix-script: fatal: check failed" >&2; exit 1; } ;;
  reload) [ -e "$here/reload.fail" ] && { echo "postfix/postfix-script: fatal: the Postfix mail system is not running" >&2; exit 1; } ;;
  status) [ -e "$here/status.stopped" ] && exit 1 ;;
esac
exit 0
'''
SYSTEMCTL = '''if [ -e "$here/restart.fail" ] && [ ! -e "$here/restart.failed-once" ]; then
  touch "$here/restart.failed-once"; echo "Job for postfix.service failed." >&2; exit 1
fi
exit 0
'''
JOURNALCTL = '''[ -e "$here/journal.txt" ] && cat "$here/journal.txt"
exit 0
'''


def install(bin_dir):
    """Write the fake programs into ``bin_dir`` (a pathlib.Path)."""
    programs = {"postconf": POSTCONF % {"python": sys.executable},
                "postmap": RECORDER % {"name": "postmap", "body": POSTMAP},
                "postfix": RECORDER % {"name": "postfix", "body": POSTFIX},
                "systemctl": RECORDER % {"name": "systemctl", "body": SYSTEMCTL},
                "journalctl": RECORDER % {"name": "journalctl", "body": JOURNALCTL},
                "postsuper": RECORDER % {"name": "postsuper", "body": "exit 0"}}
    for name, text in programs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
