# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build and check a new sendmail.cf for smarthost.relay.sendmail (run on the managed host by ansible.builtin.script).

Runs m4 on sendmail.mc into a NEW file (never the live sendmail.cf), then checks the new file:

* ``sendmail -C new.cf -bt`` reads it without a complaint (readcf errors make it fail);
* ``sendmail -C new.cf -bv <probe>`` routes a remote address to the relay mailer and host;
* the relay port, Timeout.datafinal and the smart host are what the role asked for (a line of
  sendmail.mc after the role's include could override them);
* with --local-sender: the envelope sender ``root@<this host>`` and a bare ``root`` leave through the relay
  mailer as that address (``sendmail -C new.cf -bt``, ``/try relay``), and the null sender stays null.

Prints one JSON object: ``differs`` tells whether the new file differs from the live one in anything but
comments (m4 stamps every build with its date), ``path`` is the new file (removed when it does not
differ, or with --discard). Exit status 1 and ``error``/``step`` when the build or a check fails; the
new file is then removed and the live one is never touched.

Python 3.6+, standard library only.
"""

import argparse
import json
import os
import re
import subprocess
import sys

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mc", required=True)
    parser.add_argument("--cf", required=True, help="the live sendmail.cf")
    parser.add_argument("--out", required=True, help="where to write the new sendmail.cf")
    parser.add_argument("--sendmail", default="/usr/sbin/sendmail")
    parser.add_argument("--m4", default="m4")
    parser.add_argument("--relay-host", required=True)
    parser.add_argument("--relay-port", type=int, required=True)
    parser.add_argument("--min-datafinal", type=int, default=3600)
    parser.add_argument("--probe", default="smarthost-relay-probe@relay-check.invalid")
    parser.add_argument("--local-sender", default="",
                        help="what root@<this host> must leave as through the relay mailer (empty: not checked)")
    parser.add_argument("--discard", action="store_true", help="remove the new file in any case (check mode)")
    return parser.parse_args(argv)


def seconds(value):
    total = 0
    for number, unit in re.findall(r"([0-9]+)([smhdw]?)", value or ""):
        total += int(number) * UNITS.get(unit or "m", 60)
    return total


def significant(text):
    """The lines that matter to Sendmail: no comments, no blank lines."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def run(argv, **kwargs):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=False, **kwargs)


class CheckFailed(Exception):
    def __init__(self, step, error):
        super().__init__(error)
        self.step = step
        self.error = error


def build(args):
    mc_dir = os.path.dirname(os.path.abspath(args.mc)) or "/"
    result = run([args.m4, os.path.basename(args.mc)], cwd=mc_dir)
    complaints = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0 or any("ERROR" in line or "m4:" in line for line in complaints):
        raise CheckFailed("m4 %s" % args.mc, " | ".join(complaints) or "m4 exited with %d" % result.returncode)
    if not result.stdout.strip():
        raise CheckFailed("m4 %s" % args.mc, "m4 produced an empty sendmail.cf")
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(result.stdout)
    return result.stdout, complaints


def check(args, text):
    result = run([args.sendmail, "-C", args.out, "-bt"], input="")
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0 or errors:
        raise CheckFailed("sendmail -C %s -bt" % args.out, " | ".join(errors) or "exit status %d" % result.returncode)
    result = run([args.sendmail, "-C", args.out, "-bv", args.probe], input="")
    want = "mailer relay, host [%s]" % args.relay_host
    if want not in result.stdout:
        raise CheckFailed("sendmail -C %s -bv %s" % (args.out, args.probe),
                          "a remote address does not go to the relay (%s): %s"
                          % (want, (result.stdout + result.stderr).strip()))
    lines = text.splitlines()
    # "relay:[host]" names the mailer: the relay guard's loopback address is one of this host's own ($=w), which
    # an unqualified smart host would be dropped for.
    if not {"DS[%s]" % args.relay_host, "DSrelay:[%s]" % args.relay_host} & set(lines):
        raise CheckFailed("smart host", "sendmail.cf has no DS[%s] line: sendmail.mc sets SMART_HOST after the role's "
                          "include" % args.relay_host)
    relay_args = None
    for index, line in enumerate(lines):
        if line.startswith("Mrelay,"):
            for follow in lines[index:index + 4]:
                match = re.search(r"A=(TCP \$h.*)$", follow)
                if match:
                    relay_args = match.group(1).strip()
            break
    if relay_args != "TCP $h %d" % args.relay_port:
        raise CheckFailed("relay mailer", "the relay mailer connects with %r, not 'TCP $h %d': sendmail.mc sets "
                          "RELAY_MAILER_ARGS after the role's include" % (relay_args, args.relay_port))
    datafinal = [re.sub(r"^O Timeout\.datafinal=", "", line) for line in lines if line.startswith("O Timeout.datafinal=")]
    if not datafinal or seconds(datafinal[-1]) < args.min_datafinal:
        found = datafinal[-1] if datafinal else "unset"
        raise CheckFailed("Timeout.datafinal", "Timeout.datafinal is %s, less than %d seconds: sendmail.mc sets "
                          "confTO_DATAFINAL after the role's include" % (found, args.min_datafinal))


def try_senders(args, addresses):
    """``/try relay`` each envelope sender with the new cf: {address as given: address as it leaves}."""
    script = "/tryflags es\n" + "".join("/try relay %s\n" % address for address in addresses)
    result = run([args.sendmail, "-C", args.out, "-bt"], input=script)
    tried = re.findall(r"^(?:> )*Trying envelope sender address (.*) for mailer relay$", result.stdout, re.MULTILINE)
    left = re.findall(r"^Rcode = [0-9]+, addr = (.*)$", result.stdout, re.MULTILINE)
    return dict(zip(tried, left))


def check_local_senders(args):
    """Local accounts' mail leaves with the address the relay accepts; the null sender is not rewritten."""
    result = run([args.sendmail, "-C", args.out, "-bt"], input="$j\n")
    names = [line[2:].strip() for line in result.stdout.splitlines() if line.startswith("> ") and line[2:].strip()]
    if not names:
        raise CheckFailed("sendmail -C %s -bt ($j)" % args.out, "cannot tell this host's name ($j): %s"
                          % (result.stdout + result.stderr).strip())
    local = "root@%s" % names[0]
    want = {local: args.local_sender, "root": args.local_sender, "<>": "<>"}
    left = try_senders(args, list(want))
    wrong = ["%s leaves as %s, not %s" % (address, left.get(address, "(no answer)"), expected)
             for address, expected in want.items() if left.get(address, "").lower() != expected.lower()]
    if wrong:
        raise CheckFailed("sendmail -C %s -bt (/try relay)" % args.out,
                          "local senders would not leave as the relay accepts them: %s (does sendmail.mc rewrite "
                          "senders after the role's include, e.g. EXPOSED_USER or its own genericstable?)"
                          % "; ".join(wrong))
    return {"local_sender": left.get(local), "bare_sender": left.get("root"), "null_sender": left.get("<>")}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = {"path": args.out, "differs": False, "warnings": []}
    try:
        text, warnings = build(args)
        out["warnings"] = warnings
        check(args, text)
        if args.local_sender:
            out["senders"] = check_local_senders(args)
        try:
            with open(args.cf, "r", errors="replace") as handle:
                live = handle.read()
        except FileNotFoundError:
            live = ""
        out["differs"] = significant(live) != significant(text)
    except CheckFailed as exc:
        if os.path.exists(args.out):
            os.unlink(args.out)
        out.update({"failed": True, "step": exc.step, "error": exc.error})
        print(json.dumps(out))
        return 1
    if args.discard or not out["differs"]:
        os.unlink(args.out)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
