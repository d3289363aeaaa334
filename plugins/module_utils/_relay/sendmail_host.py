# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sendmail on the managed host, for the role smarthost.relay.sendmail.

* ``probe(paths, sendmail, service, packages)`` (module ``sendmail_probe``): one read-only look at what the role
  needs to decide what to do; it changes nothing.
* ``build_cf(settings, keep)`` (module ``sendmail_cf_build``): m4 on sendmail.mc into a NEW file (never the live
  sendmail.cf), then that file checked with ``sendmail -C new.cf -bt`` / ``-bv`` and read for the smart host, the
  relay port and Timeout.datafinal (a line of sendmail.mc after the role's include could override them), and
  optionally ``root@$j``, ``root`` and ``<>`` tried through the relay mailer. ``differs`` compares with the live file
  in everything but comments (m4 stamps every build with its date). The new file stays only when it differs and
  ``keep`` is true; a failed step raises ``CheckFailed(step, error)`` after removing it.

Commands run with ``subprocess`` directly: ``sendmail -bt`` must get the given input (empty or not), never the
module's own stdin.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import stat
import subprocess

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
PROBE_PATHS = ("mc", "cf", "cf_kit", "pid_file", "private_dir", "fragment", "empty_ca_dir", "authinfo",
               "genericstable", "genericstable_db")
BUILD_SETTINGS = ("mc", "cf", "dest", "sendmail", "m4", "relay_host", "relay_port", "min_datafinal", "probe_address",
                  "local_sender")


def run(argv, data=None, cwd=None, timeout=None):
    """``(rc, stdout, stderr)``; OSError and TimeoutExpired are the caller's."""
    result = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            universal_newlines=True, timeout=timeout, check=False)
    return result.returncode, result.stdout, result.stderr


def probe(paths, sendmail="/usr/sbin/sendmail", service="sendmail", packages=(), authinfo_maps=(), map_suffix="db"):
    """What the host has: ``paths`` holds every name of PROBE_PATHS; ``authinfo_maps`` the names the role may have
    built the SMTP AUTH map under (each file is the name plus ``.map_suffix``)."""
    out = {"mc_exists": os.path.isfile(paths["mc"])}
    out["mc_has_smtp_mailer"] = out["mc_exists"] and mc_has_smtp_mailer(paths["mc"])
    out["cf_group"] = file_group(paths["cf"], "root")
    out["cert_altnames"] = os.path.isfile(os.path.join(paths["cf_kit"], "feature", "check_cert_altnames.m4"))
    out["pid"], out["running"] = daemon(paths["pid_file"])
    # Sendmail writes its pid file when it starts and when a SIGHUP makes it read sendmail.cf again.
    out["daemon_stale"] = out["running"] and newer(paths["cf"], paths["pid_file"])
    out["fragment_exists"] = os.path.exists(paths["fragment"])
    out["private_dir_ok"] = root_only(paths["private_dir"], 0o700)
    out["empty_ca_dir_ok"] = root_only(paths["empty_ca_dir"], 0o755)
    out.update(authinfo_probe(paths, authinfo_maps, map_suffix))
    out["genericstable_exists"] = os.path.exists(paths["genericstable"]) or os.path.exists(paths["genericstable_db"])
    out["genericstable_db_ok"] = root_only(paths["genericstable_db"], 0o644)
    out["local_names"] = local_names(sendmail, paths["cf"])
    out["packages_missing"] = missing_packages(list(packages))
    out["enabled"] = enabled(service)
    return out


def authinfo_probe(paths, names, suffix):
    """The SMTP AUTH map: the name the live cf reads it under, the role's names that have a map file, whether the
    live one is root's 0600 and built from the source as it is now (not older than it)."""
    source, live = paths["authinfo"], cf_map(paths["cf"], "authinfo")
    found = [name for name in names if os.path.exists("%s.%s" % (name, suffix))]
    live_file = "%s.%s" % (live, suffix)
    return {
        "authinfo_source_exists": os.path.exists(source),
        "authinfo_exists": os.path.exists(source) or bool(found),
        "authinfo_found": found,
        "authinfo_map": live,
        "authinfo_db_ok": bool(live) and root_only(live_file, 0o600),
        "authinfo_map_current": bool(live) and os.path.exists(source) and not newer(source, live_file),
    }


def newer(path, than):
    """``path`` was modified after ``than`` (False when either is missing)."""
    try:
        return os.stat(path).st_mtime_ns > os.stat(than).st_mtime_ns
    except OSError:
        return False


def cf_map(cf, name):
    """The file a map of sendmail.cf is read from: the last word of its K line ("Kauthinfo hash -o /path"); empty
    without the cf or the map."""
    try:
        with open(cf, errors="replace") as handle:
            for line in handle:
                words = line.split()
                if len(words) > 2 and words[0] == "K" + name:
                    return words[-1]
    except OSError:
        pass
    return ""


def mc_has_smtp_mailer(mc):
    with open(mc, errors="replace") as handle:
        text = handle.read()
    return bool(re.search(r"^\s*MAILER\(\s*`?smtp'?\s*\)", text, re.MULTILINE))


def file_group(path, default):
    try:
        return grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):
        return default


def root_only(path, mode, stat_path=os.stat):
    """Owned by root:root with exactly ``mode``."""
    try:
        st = stat_path(path)
    except OSError:
        return False
    return st.st_uid == 0 and st.st_gid == 0 and stat.S_IMODE(st.st_mode) == mode


def daemon(pid_file):
    """``(pid as read, whether a process has it)``; ``("", False)`` without a readable numeric pid."""
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
        dummy, out, dummy = run([sendmail, "-C", cf, "-bt"], data="$=w\n", timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return class_w(out)


def class_w(output):
    """The names in ``sendmail -bt``'s answer to ``$=w``: after the banner ("ADDRESS TEST MODE ...", "Enter
    <ruleset> <address>") each prompt is "> "."""
    names = set()
    for line in output.splitlines():
        if line.startswith(("ADDRESS TEST MODE", "Enter <ruleset>")):
            continue
        name = (line[2:] if line.startswith("> ") else line).strip()
        if name and name != ">" and re.match(r"^[A-Za-z0-9.\[\]:_-]+$", name):
            names.add(name.lower())
    return sorted(names)


def missing_packages(names):
    """The packages of ``names`` that dpkg or rpm does not list as installed (all of them without either)."""
    if not names:
        return []
    if shutil.which("dpkg-query"):
        dummy, out, dummy = run(["dpkg-query", "-W", "-f", "${Package} ${Status}\\n"] + names)
        installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
        return [name for name in names if name not in installed]
    if shutil.which("rpm"):
        return [name for name in names if run(["rpm", "-q", "--whatprovides", name])[0] != 0]
    return list(names)


def enabled(service):
    if not shutil.which("systemctl"):
        return False
    dummy, out, dummy = run(["systemctl", "is-enabled", service])
    return out.strip() in ("enabled", "static", "alias")


class CheckFailed(Exception):
    """A build or check step failed: ``step`` names it (the command, or what was checked), ``error`` says why."""

    def __init__(self, step, error):
        super().__init__(error)
        self.step = step
        self.error = error


def build_cf(settings, keep=True):
    """Build and check a new sendmail.cf at ``settings["dest"]`` (``settings`` holds every name of BUILD_SETTINGS).

    Returns ``{"path", "differs", "m4_messages"[, "senders"]}``; the new file is removed unless it differs and
    ``keep``. Raises CheckFailed, the new file removed and the live one untouched, when a step fails.
    """
    dest = settings["dest"]
    try:
        text, messages = m4_build(settings["m4"], settings["mc"])
        write_new(dest, text)
        check_cf(settings, text)
        out = {"path": dest, "differs": False, "m4_messages": messages}
        if settings["local_sender"]:
            out["senders"] = check_local_senders(settings["sendmail"], dest, settings["local_sender"])
        out["differs"] = significant(read_live(settings["cf"])) != significant(text)
    except Exception:
        remove(dest)
        raise
    if not (keep and out["differs"]):
        remove(dest)
    return out


def command(step, argv, data=None, cwd=None):
    """``run`` for a build step: a program that cannot be run fails the step."""
    try:
        return run(argv, data=data, cwd=cwd)
    except OSError as exc:
        raise CheckFailed(step, str(exc))


def m4_build(m4, mc):
    """``(sendmail.cf text, m4's complaints that did not fail the build)``."""
    step = "m4 %s" % mc
    rc, out, err = command(step, [m4, os.path.basename(mc)], cwd=os.path.dirname(os.path.abspath(mc)) or "/")
    complaints = [line for line in err.splitlines() if line.strip()]
    if rc != 0 or any("ERROR" in line or "m4:" in line for line in complaints):
        raise CheckFailed(step, " | ".join(complaints) or "m4 exited with %d" % rc)
    if not out.strip():
        raise CheckFailed(step, "m4 produced an empty sendmail.cf")
    return out, complaints


def write_new(dest, text):
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    except OSError as exc:
        raise CheckFailed("write %s" % dest, str(exc))


def check_cf(settings, text):
    """Sendmail reads the new file, routes a remote address to the relay, and the role's settings survived."""
    sendmail, dest, relay_host = settings["sendmail"], settings["dest"], settings["relay_host"]
    check_readable(sendmail, dest)
    check_routing(sendmail, dest, settings["probe_address"], relay_host)
    lines = text.splitlines()
    check_smart_host(lines, relay_host)
    check_relay_mailer(lines, settings["relay_port"])
    check_datafinal(lines, settings["min_datafinal"])


def check_readable(sendmail, cf):
    """readcf's complaints go to stderr."""
    step = "sendmail -C %s -bt" % cf
    rc, dummy, err = command(step, [sendmail, "-C", cf, "-bt"], data="")
    errors = [line for line in err.splitlines() if line.strip()]
    if rc != 0 or errors:
        raise CheckFailed(step, " | ".join(errors) or "exit status %d" % rc)


def check_routing(sendmail, cf, address, relay_host):
    step = "sendmail -C %s -bv %s" % (cf, address)
    dummy, out, err = command(step, [sendmail, "-C", cf, "-bv", address], data="")
    want = "mailer relay, host [%s]" % relay_host
    if want not in out:
        raise CheckFailed(step, "a remote address does not go to the relay (%s): %s" % (want, (out + err).strip()))


def check_smart_host(lines, relay_host):
    # "relay:[host]" names the mailer: the relay guard's loopback address is one of this host's own ($=w), which
    # an unqualified smart host would be dropped for.
    if not {"DS[%s]" % relay_host, "DSrelay:[%s]" % relay_host} & set(lines):
        raise CheckFailed("smart host", "sendmail.cf has no DS[%s] line: sendmail.mc sets SMART_HOST after the role's "
                          "include" % relay_host)


def relay_mailer_args(lines):
    """The ``A=TCP $h ...`` of the relay mailer's definition (within its first four lines), or None."""
    for index, line in enumerate(lines):
        if line.startswith("Mrelay,"):
            found = None
            for follow in lines[index:index + 4]:
                match = re.search(r"A=(TCP \$h.*)$", follow)
                if match:
                    found = match.group(1).strip()
            return found
    return None


def check_relay_mailer(lines, port):
    relay_args = relay_mailer_args(lines)
    if relay_args != "TCP $h %d" % port:
        raise CheckFailed("relay mailer", "the relay mailer connects with %r, not 'TCP $h %d': sendmail.mc sets "
                          "RELAY_MAILER_ARGS after the role's include" % (relay_args, port))


def check_datafinal(lines, minimum):
    datafinal = [re.sub(r"^O Timeout\.datafinal=", "", line) for line in lines if line.startswith("O Timeout.datafinal=")]
    if not datafinal or seconds(datafinal[-1]) < minimum:
        found = datafinal[-1] if datafinal else "unset"
        raise CheckFailed("Timeout.datafinal", "Timeout.datafinal is %s, less than %d seconds: sendmail.mc sets "
                          "confTO_DATAFINAL after the role's include" % (found, minimum))


def seconds(value):
    """A Sendmail time value (``1h``, ``90m``, ``1h30m``; a bare number is minutes) in seconds."""
    total = 0
    for number, unit in re.findall(r"([0-9]+)([smhdw]?)", value or ""):
        total += int(number) * UNITS.get(unit or "m", 60)
    return total


def host_name(sendmail, cf):
    """``$j`` of ``cf``: this host's name as Sendmail has it."""
    step = "sendmail -C %s -bt ($j)" % cf
    dummy, out, err = command(step, [sendmail, "-C", cf, "-bt"], data="$j\n")
    names = [line[2:].strip() for line in out.splitlines() if line.startswith("> ") and line[2:].strip()]
    if not names:
        raise CheckFailed(step, "cannot tell this host's name ($j): %s" % (out + err).strip())
    return names[0]


def try_senders(sendmail, cf, addresses):
    """``/try relay`` each envelope sender with ``cf``: {address as given: address as it leaves}."""
    script = "/tryflags es\n" + "".join("/try relay %s\n" % address for address in addresses)
    dummy, out, dummy = command("sendmail -C %s -bt (/try relay)" % cf, [sendmail, "-C", cf, "-bt"], data=script)
    tried = re.findall(r"^(?:> )*Trying envelope sender address (.*) for mailer relay$", out, re.MULTILINE)
    left = re.findall(r"^Rcode = [0-9]+, addr = (.*)$", out, re.MULTILINE)
    return dict(zip(tried, left))


def check_local_senders(sendmail, cf, local_sender):
    """Local accounts' mail leaves with the address the relay accepts; the null sender is not rewritten."""
    local = "root@%s" % host_name(sendmail, cf)
    want = {local: local_sender, "root": local_sender, "<>": "<>"}
    left = try_senders(sendmail, cf, list(want))
    wrong = ["%s leaves as %s, not %s" % (address, left.get(address, "(no answer)"), expected)
             for address, expected in want.items() if left.get(address, "").lower() != expected.lower()]
    if wrong:
        raise CheckFailed("sendmail -C %s -bt (/try relay)" % cf,
                          "local senders would not leave as the relay accepts them: %s (does sendmail.mc rewrite "
                          "senders after the role's include, e.g. EXPOSED_USER or its own genericstable?)"
                          % "; ".join(wrong))
    return {"local_sender": left.get(local), "bare_sender": left.get("root"), "null_sender": left.get("<>")}


def significant(text):
    """The lines that matter to Sendmail: no comments, no blank lines."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def read_live(cf):
    """The live sendmail.cf's text; empty when there is none yet."""
    try:
        with open(cf, "r", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise CheckFailed("read %s" % cf, str(exc))


def remove(path):
    if os.path.exists(path):
        os.unlink(path)
