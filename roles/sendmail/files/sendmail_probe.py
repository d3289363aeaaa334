# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only look at a host's Sendmail for smarthost.relay.sendmail (run by ansible.builtin.script).

One call instead of a task per file: prints one JSON object with what the role needs to decide what
to do. It changes nothing.

Python 3.6+, standard library only.
"""

import argparse
import grp
import json
import os
import re
import shutil
import stat
import subprocess
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mc", required=True)
    parser.add_argument("--cf", required=True)
    parser.add_argument("--cf-kit", required=True, help="the m4 configuration kit (…/cf)")
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--private-dir", required=True)
    parser.add_argument("--fragment", required=True)
    parser.add_argument("--empty-ca-dir", required=True)
    parser.add_argument("--authinfo", required=True)
    parser.add_argument("--authinfo-db", required=True)
    parser.add_argument("--genericstable", required=True)
    parser.add_argument("--genericstable-db", required=True)
    parser.add_argument("--sendmail", default="/usr/sbin/sendmail")
    parser.add_argument("--service", default="sendmail")
    parser.add_argument("--package", action="append", default=[], help="a package that must be installed")
    return parser.parse_args(argv)


def missing_packages(names):
    """The packages of ``names`` that dpkg or rpm does not list as installed."""
    if not names:
        return []
    if shutil.which("dpkg-query"):
        result = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\\n"] + names,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, check=False)
        installed = {line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")}
        return [name for name in names if name not in installed]
    if shutil.which("rpm"):
        return [name for name in names
                if subprocess.run(["rpm", "-q", "--whatprovides", name], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, check=False).returncode != 0]
    return list(names)


def enabled(service):
    if not shutil.which("systemctl"):
        return False
    result = subprocess.run(["systemctl", "is-enabled", service], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            universal_newlines=True, check=False)
    return result.stdout.strip() in ("enabled", "static", "alias")


def root_only(path, mode):
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == 0 and st.st_gid == 0 and stat.S_IMODE(st.st_mode) == mode


def daemon(pid_file):
    try:
        with open(pid_file) as handle:
            pid = handle.readline().strip()
    except OSError:
        return "", False
    if not pid.isdigit():
        return "", False
    try:
        os.kill(int(pid), 0)
    except OSError:
        return pid, False
    return pid, True


def local_names(sendmail, cf):
    """Class w of the live sendmail.cf: the names (and address literals) Sendmail takes as this host's own, so
    the addresses of its local accounts. Empty when Sendmail or its cf is missing or does not answer."""
    if not (os.path.isfile(cf) and os.access(sendmail, os.X_OK)):
        return []
    try:
        result = subprocess.run([sendmail, "-C", cf, "-bt"], input="$=w\n", stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, universal_newlines=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    lines = result.stdout.splitlines()
    # After the banner ("ADDRESS TEST MODE ...", "Enter <ruleset> <address>") each prompt is "> ".
    names = set()
    for line in lines:
        if line.startswith(("ADDRESS TEST MODE", "Enter <ruleset>")):
            continue
        name = line[2:] if line.startswith("> ") else line
        name = name.strip()
        if name and name != ">" and re.match(r"^[A-Za-z0-9.\[\]:_-]+$", name):
            names.add(name.lower())
    return sorted(names)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = {"mc_exists": os.path.isfile(args.mc), "mc_has_smtp_mailer": False, "cf_group": "root"}
    if out["mc_exists"]:
        with open(args.mc, errors="replace") as handle:
            text = handle.read()
        out["mc_has_smtp_mailer"] = bool(re.search(r"^\s*MAILER\(\s*`?smtp'?\s*\)", text, re.MULTILINE))
    try:
        out["cf_group"] = grp.getgrgid(os.stat(args.cf).st_gid).gr_name
    except (OSError, KeyError):
        pass
    out["cert_altnames"] = os.path.isfile(os.path.join(args.cf_kit, "feature", "check_cert_altnames.m4"))
    out["pid"], out["running"] = daemon(args.pid_file)
    out["fragment_exists"] = os.path.exists(args.fragment)
    out["private_dir_ok"] = root_only(args.private_dir, 0o700)
    out["empty_ca_dir_ok"] = root_only(args.empty_ca_dir, 0o755)
    out["authinfo_exists"] = os.path.exists(args.authinfo) or os.path.exists(args.authinfo_db)
    out["authinfo_db_ok"] = root_only(args.authinfo_db, 0o600)
    out["genericstable_exists"] = os.path.exists(args.genericstable) or os.path.exists(args.genericstable_db)
    out["genericstable_db_ok"] = root_only(args.genericstable_db, 0o644)
    out["local_names"] = local_names(args.sendmail, args.cf)
    out["packages_missing"] = missing_packages(args.package)
    out["enabled"] = enabled(args.service)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
