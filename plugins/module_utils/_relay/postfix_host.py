# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Postfix on the managed host, for the role smarthost.relay.postfix (module ``postfix_apply``): one call applies a
change and, when a step fails, puts the previous configuration back.

* ``plan(params)``: the candidate main.cf and master.cf, built by Postfix's own ``postconf -c <scratch>`` (``-e``,
  ``-X``, ``-M``, ``-M -X``) on a scratch copy, and every file compared with what is on disk (content, owner, mode;
  indexed maps also their database). The local senders' table is written here, from the names the candidate
  configuration gives (``$myhostname``, ``$myorigin``, ``$mydestination``). Nothing is written.
* ``apply(plan, params)``: back up every file it replaces (``<file>.<pid>.<date>~``, as Ansible's ``backup``), write
  each atomically (a temporary file in the same directory, owner and mode set, renamed), ``postmap`` the indexed maps
  that changed or lack their database, ``postfix check``, ``postfix reload`` (a service restart when ``restart``),
  the test delivery (``delivery.deliver``, as the module ``relay_test_delivery``). A failed step raises
  ``RolledBack`` after ``rollback``: every file back from its backup, created files removed, restored maps indexed
  again, Postfix restarted (a restart was attempted, or it does not run) or reloaded, and Postfix's own complaint
  read from the journal. Once it worked, the password map's backup goes (secrets are not kept) and the ``remove``
  paths are deleted.

The password map's content is never returned, never in a diff nor a message; its file, backup and database are
root:root 0600 (``postmap`` runs under umask 077 for it). ``run(argv, umask=None) -> (rc, out, err)``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

from . import delivery

MAP_SUFFIXES = {"hash": "db", "btree": "db", "lmdb": "lmdb", "cdb": "cdb", "dbm": "dir", "sdbm": "dir"}
OWNER = (0, 0)
SYSTEMD_DIR = "/run/systemd/system"
JOURNAL_STEPS = re.compile(r"postfix check|Restart|Reload")

STEP_BUILD = "Build the new main.cf and master.cf with postconf in a scratch copy"
STEP_READ = "Read the files to compare"
STEP_MAPS = "Install the delivery status filter and address maps (keeping a timestamped backup)"
STEP_SASL = "Install the SMTP AUTH password map"
STEP_INDEX = "Index the address maps with postmap"
STEP_INDEX_SASL = "Index the SMTP AUTH password map with postmap (database root-only)"
STEP_MAIN = "Install the new main.cf (keeping a timestamped backup)"
STEP_MASTER = "Install the new master.cf (keeping a timestamped backup)"
STEP_CHECK = "Check the new configuration with postfix check"
STEP_RESTART = "Restart Postfix (inet_interfaces or inet_protocols changed)"
STEP_RELOAD = "Reload Postfix (queued mail stays queued)"
STEP_TEST = "Send a test message through the relay and wait for the relay's answer"
STEP_REMOVE = "Remove the files the configuration no longer names"
# The master's children that read the relay settings (trivial-rewrite resolves relayhost, smtp connects, tlsproxy
# and scache hold its TLS and connections): after ``postfix reload`` the ones started before it must be gone before
# the test message is submitted, or an old smtp (wrappermode off) may take it to the new port 465 and wait there for
# a greeting in the clear. Idle ones exit within a second of the reload; busy ones after their delivery.
RELAY_WORKERS = ("qmgr", "trivial-rewrite", "smtp", "tlsproxy", "scache")
RELOAD_SETTLE_SECONDS = 30
UNREAD = object()  # the master's pid before it is looked for (None: looked for, not found)


def run_command(argv, umask=None):
    """``(rc, stdout, stderr)`` in the C locale; a program that cannot be run gives rc 127."""
    def preexec():
        os.umask(umask)

    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, check=False, env=dict(os.environ, LC_ALL="C"),
                                preexec_fn=preexec if umask is not None else None)
    except OSError as exc:
        return 127, "", str(exc)
    return result.returncode, result.stdout, result.stderr


class StepFailed(Exception):
    """A step failed: ``step`` names it as the role's tasks did, ``error`` says why (never a secret)."""

    def __init__(self, step, error, report=None):
        super().__init__(error)
        self.step = step
        self.error = error
        self.report = report


class RolledBack(Exception):
    """A step failed after the first write and the previous configuration was put back: ``msg`` is the role's."""

    def __init__(self, failure, msg, log_line, rollback_errors, result):
        super().__init__(msg)
        self.failure = failure
        self.msg = msg
        self.log_line = log_line
        self.rollback_errors = rollback_errors
        self.result = result


def command(step, run, argv, umask=None):
    """Run one step's command; a non-zero exit fails the step with what the command said."""
    rc, out, err = run(argv, umask=umask) if umask is not None else run(argv)
    if rc != 0:
        raise StepFailed(step, " | ".join(part.strip() for part in ("non-zero return code", out, err)
                                          if part and part.strip()))
    return out


# ---- files ------------------------------------------------------------------------------------------

def read_state(path):
    """``(bytes or None, (uid, gid, mode) or None)`` of ``path``."""
    try:
        st = os.stat(path)
        with open(path, "rb") as handle:
            return handle.read(), (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    except FileNotFoundError:
        return None, None


def attrs_of(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def write_atomic(path, data, mode, owner=None):
    """``data`` into ``path`` through a temporary file in the same directory, owner and mode set before the
    rename (the temporary file is 0600 from its creation, so a secret is never readable by others)."""
    owner = OWNER if owner is None else owner
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chown(tmp, owner[0], owner[1])
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def backup_name(path, clock=time.time):
    """Ansible's ``backup: true`` name: ``<path>.<pid>.<YYYY-mm-dd@HH:MM:SS>~``."""
    return "%s.%s.%s" % (path, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S~", time.localtime(clock())))


def remove_file(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


class FileChange(object):
    """One file the run installs: ``kind`` main, master, map or sasl; ``data`` the wanted bytes."""

    def __init__(self, kind, path, data, mode, indexed=False, secret=False):
        self.kind, self.path, self.data, self.mode = kind, path, data, mode
        self.indexed, self.secret = indexed, secret
        self.current, self.attrs = read_state(path)
        self.write = self.current != data
        self.fix_attrs = not self.write and self.attrs != (OWNER[0], OWNER[1], mode)
        self.backup = None
        self.written = False
        self.attrs_fixed = False

    @property
    def changes(self):
        return self.write or self.fix_attrs

    def diff(self):
        before = "" if self.current is None else self.current.decode("utf-8", "replace")
        return {"before_header": self.path if self.current is not None else "%s (absent)" % self.path,
                "after_header": self.path, "before": before, "after": self.data.decode("utf-8", "replace")}


# ---- the candidate configuration --------------------------------------------------------------------

def local_names(run, postconf, config_dir):
    """``$myhostname``, ``$myorigin`` (a file name: its first line, as Postfix reads it) and the ``$mydestination``
    entries of the configuration in ``config_dir``."""
    out = command(STEP_BUILD, run, [postconf, "-c", config_dir, "-xh", "myhostname", "mydestination"])
    names = [name for line in out.splitlines() for name in re.split(r"[, ]", line) if name]
    origin = command(STEP_BUILD, run, [postconf, "-c", config_dir, "-xh", "myorigin"]).strip()
    if origin.startswith("/"):
        try:
            with open(origin, errors="replace") as handle:
                origin = handle.readline().strip()
        except OSError:
            origin = ""
    return names + ([origin] if origin else [])


def build_candidate(run, postconf, config_dir, edits, want_names):
    """``(main.cf bytes, master.cf bytes, names or None)``: the edits applied by postconf on a scratch copy."""
    scratch = tempfile.mkdtemp(prefix="smarthost-postfix.")
    try:
        try:
            for name in ("main.cf", "master.cf"):
                shutil.copy2(os.path.join(config_dir, name), scratch)
        except OSError as exc:
            raise StepFailed(STEP_BUILD, str(exc))
        for flags, items in ((["-e"], edits["main_set"]), (["-X"], edits["main_remove"]),
                             (["-M"], edits["master_set"]), (["-M", "-X"], edits["master_remove"])):
            if items:
                command(STEP_BUILD, run, [postconf, "-c", scratch] + flags + list(items))
        texts = []
        for name in ("main.cf", "master.cf"):
            with open(os.path.join(scratch, name), "rb") as handle:
                texts.append(handle.read())
        names = local_names(run, postconf, scratch) if want_names else None
        return texts[0], texts[1], names
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")


def local_sender_names(read, extra, exclude):
    """The names whose addresses are local accounts': lower case, no trailing dot, host names only, never
    localhost or localdomain (matched with their subdomains anyway) nor one of ``exclude`` (the customer's)."""
    names = {name.lower().rstrip(".") for name in list(read) + list(extra)}
    skip = {"localhost", "localdomain"} | {name.lower() for name in exclude}
    return sorted(name for name in names if NAME.match(name) and name not in skip)


def local_senders_table(names, rewrite, address="", domain=""):
    """The regexp smtp_generic_maps table that rewrites local accounts' addresses (rewrite: masquerade or
    address)."""
    ere = "|".join(["(.+\\.)?localhost", "(.+\\.)?localdomain"] + [name.replace(".", "\\.") for name in names])
    lines = [
        "# Managed by smarthost.relay.postfix (Ansible): local changes are overwritten.",
        "# smtp_generic_maps (regexp table, case-insensitive): addresses of this host's local accounts (root, cron,",
        "# daemons), rewritten on the way out to the relay so that it accepts them; the null sender is never "
        "looked up.",
        "# Local names: localhost, localdomain (with subdomains)%s." % "".join(", " + name for name in names),
    ]
    if rewrite == "address":
        lines += ["# relay_settings.local_senders: sent as %s." % address,
                  "/^[^@]+@(%s)$/ %s" % (ere, address)]
    else:
        lines += ["# relay_settings.local_senders: masqueraded to %s (the user stays)." % domain,
                  "/^([^@]+)@(%s)$/ ${1}@%s" % (ere, domain)]
    return "\n".join(lines) + "\n"


# ---- the plan -----------------------------------------------------------------------------------------

class Plan(object):
    """What the run would change; ``files`` in the order they are installed."""

    def __init__(self, params, files, names, db_suffix):
        self.params = params
        self.files = files
        self.local_names = names
        self.db_suffix = db_suffix
        self.index = [f for f in files if f.indexed and (f.write or not os.path.exists(self.db(f)))]
        self.sasl_db_fix = False
        sasl = self.sasl
        if sasl is not None and sasl not in self.index:
            self.sasl_db_fix = attrs_of(self.db(sasl)) != (OWNER[0], OWNER[1], 0o600)
            if self.sasl_db_fix:
                self.index.append(sasl)
        self.remove = [path for path in removals(params, db_suffix) if os.path.lexists(path)]

    @property
    def sasl(self):
        return next((f for f in self.files if f.kind == "sasl"), None)

    def db(self, change):
        return "%s.%s" % (change.path, self.db_suffix)

    @property
    def config_changes(self):
        """The files whose content or owner/mode change: Postfix must check and pick them up."""
        return [f for f in self.files if f.changes]

    @property
    def changed(self):
        return bool(self.config_changes or self.index or self.remove)

    def diff(self):
        return [f.diff() for f in self.files if f.write and not f.secret]


def removals(params, db_suffix):
    """``remove``, and the password map with its databases when ``sasl_map`` is given without content."""
    paths = list(params.get("remove") or [])
    if params.get("sasl_map") and params.get("sasl_map_content") is None:
        base = params["sasl_map"]
        paths += [base] + ["%s.%s" % (base, suffix) for suffix in sorted(set(MAP_SUFFIXES.values()))]
    return paths


def plan(params, run=run_command):
    """Build the candidate and compare every file with the host; writes nothing."""
    sbin, config_dir = params["sbin"], params["config_dir"]
    postconf = os.path.join(sbin, "postconf")
    edits = {key: params.get(key) or [] for key in ("main_set", "main_remove", "master_set", "master_remove")}
    senders = params.get("local_senders")
    if any(edits.values()):
        main, master, names = build_candidate(run, postconf, config_dir, edits, bool(senders))
    else:
        main = read_state(os.path.join(config_dir, "main.cf"))[0]
        master = read_state(os.path.join(config_dir, "master.cf"))[0]
        if main is None or master is None:
            raise StepFailed(STEP_READ, "%s has no main.cf or master.cf" % config_dir)
        names = local_names(run, postconf, config_dir) if senders else None
    files = [FileChange("map", m["path"], m["content"].encode(), 0o644, indexed=bool(m.get("indexed")))
             for m in params.get("maps") or []]
    found = None
    if senders:
        found = local_sender_names(names, senders.get("names") or [], senders.get("exclude") or [])
        table = local_senders_table(found, senders["rewrite"], senders.get("address") or "",
                                    senders.get("domain") or "")
        files.append(FileChange("map", senders["path"], table.encode(), 0o644))
    if params.get("sasl_map") and params.get("sasl_map_content") is not None:
        files.append(FileChange("sasl", params["sasl_map"], params["sasl_map_content"].encode(), 0o600,
                                indexed=True, secret=True))
    files.append(FileChange("main", os.path.join(config_dir, "main.cf"), main, 0o644))
    files.append(FileChange("master", os.path.join(config_dir, "master.cf"), master, 0o644))
    return Plan(params, files, found, MAP_SUFFIXES.get(params["db_type"], "db"))


# ---- applying it ------------------------------------------------------------------------------------

def restart_commands(service, postfix, which=shutil.which):
    """How to restart Postfix: systemd's unit, else the init script, else postfix stop + start."""
    if os.path.isdir(SYSTEMD_DIR) and which("systemctl"):
        return [["systemctl", "restart", service]]
    if which("service"):
        return [["service", service, "restart"]]
    return [[postfix, "stop"], [postfix, "start"]]


def master_pid(run, sbin, config_dir):
    """This Postfix master's pid, from ``<queue_directory>/pid/master.pid``; None when that cannot be read."""
    rc, out, _err = run([os.path.join(sbin, "postconf"), "-c", config_dir, "-h", "queue_directory"])
    if rc != 0:
        return None
    try:
        with open(os.path.join(out.strip(), "pid", "master.pid")) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def master_children(master, proc="/proc"):
    """The pids of the RELAY_WORKERS whose parent is ``master`` (an empty set for None)."""
    found = set()
    for entry in os.listdir(proc) if master is not None else ():
        info = proc_parent_and_name(proc, entry) if entry.isdigit() else None
        if info and info[0] == master and info[1] in RELAY_WORKERS:
            found.add(int(entry))
    return found


def proc_parent_and_name(proc, pid):
    """``(ppid, comm)`` of a process from ``/proc/<pid>/stat``, or None once it is gone."""
    try:
        with open(os.path.join(proc, pid, "stat")) as handle:
            text = handle.read()
    except OSError:
        return None
    name = text[text.index("(") + 1:text.rindex(")")]
    return int(text[text.rindex(")") + 2:].split()[1]), name


class Applier(object):
    """One apply run; it remembers what it did, so that ``rollback`` undoes exactly that."""

    def __init__(self, plan, run=run_command, deliver=None, clock=time.time, which=shutil.which, workers=None,
                 sleep=time.sleep):
        self.plan, self.params = plan, plan.params
        self.run, self.clock, self.which, self.sleep = run, clock, which, sleep
        self.workers = workers or self.master_workers
        self.master = UNREAD
        self.deliver = deliver or delivery.deliver
        sbin = self.params["sbin"]
        self.postfix = os.path.join(sbin, "postfix")
        self.postmap = os.path.join(sbin, "postmap")
        self.started = int(clock())
        self.indexed = []
        self.action = "none"
        self.restart_attempted = False
        self.report = None
        self.removed = []

    # -- steps --
    def install(self, change, step):
        try:
            if change.write:
                if change.current is not None:
                    change.backup = backup_name(change.path, self.clock)
                    uid, gid, mode = change.attrs
                    write_atomic(change.backup, change.current, 0o600 if change.secret else mode, (uid, gid))
                write_atomic(change.path, change.data, change.mode)
                change.written = True
            elif change.fix_attrs:
                os.chown(change.path, OWNER[0], OWNER[1])
                os.chmod(change.path, change.mode)
                change.attrs_fixed = True
        except OSError as exc:
            raise StepFailed(step, "%s: %s" % (change.path, exc.strerror or exc))

    def index(self, change, step):
        db_type = self.params["db_type"]
        command(step, self.run, [self.postmap, "%s:%s" % (db_type, change.path)],
                umask=0o077 if change.secret else None)
        self.indexed.append(change.path)
        if change.secret:
            db = self.plan.db(change)
            try:
                os.chown(db, OWNER[0], OWNER[1])
                os.chmod(db, 0o600)
            except OSError as exc:
                raise StepFailed(step, "%s: %s" % (db, exc.strerror or exc))

    def reload_or_restart(self):
        if self.params["restart"]:
            self.restart_attempted = True
            self.action = "restart"
            for argv in restart_commands(self.params["service"], self.postfix, self.which):
                rc, out, err = self.run(argv)
                if rc != 0:
                    raise StepFailed(STEP_RESTART, "Unable to restart service %s: %s" % (
                        self.params["service"], " | ".join(p.strip() for p in (out, err) if p.strip())
                        or "exit status %d" % rc))
        else:
            self.action = "reload"
            before = self.workers()
            command(STEP_RELOAD, self.run, [self.postfix, "reload"])
            self.wait_gone(before)

    def master_workers(self):
        """``master_children`` of this Postfix's master, whose pid is read once (a reload keeps the master)."""
        if self.master is UNREAD:
            self.master = master_pid(self.run, self.params["sbin"], self.params["config_dir"])
        return master_children(self.master)

    def wait_gone(self, pids):
        """Wait (at most RELOAD_SETTLE_SECONDS) until none of ``pids`` runs any more."""
        deadline = self.clock() + RELOAD_SETTLE_SECONDS
        while pids & self.workers() and self.clock() < deadline:
            self.sleep(0.2)

    def test_delivery(self):
        test = self.params.get("test_delivery")
        if not test:
            return
        settings = {"sender": test["sender"], "recipient": test["recipient"], "timeout": test.get("timeout") or 60,
                    "sendmail": test.get("sendmail") or "/usr/sbin/sendmail",
                    "postsuper": test.get("postsuper") or os.path.join(self.params["sbin"], "postsuper"),
                    "log_file": test.get("log_file")}
        self.report = self.deliver("postfix", settings)
        if not self.report["delivered"]:
            raise StepFailed(STEP_TEST, self.report["msg"], report=self.report)

    def apply(self):
        """Every step in order; returns the result fields. Raises RolledBack after a rollback."""
        plan = self.plan
        try:
            for change in plan.files:
                if change.kind in ("map", "sasl"):
                    self.install(change, STEP_SASL if change.secret else STEP_MAPS)
            for change in plan.index:
                self.index(change, STEP_INDEX_SASL if change.secret else STEP_INDEX)
            for change in plan.files:
                if change.kind in ("main", "master"):
                    self.install(change, STEP_MAIN if change.kind == "main" else STEP_MASTER)
            if plan.config_changes:
                self.started = int(self.clock())
                command(STEP_CHECK, self.run, [self.postfix, "check"])
                self.reload_or_restart()
                self.test_delivery()
        except StepFailed as failure:
            raise self.rollback(failure)
        self.forget_secret_backup()
        for path in plan.remove:
            if remove_file(path):
                self.removed.append(path)
        return self.result()

    # -- after --
    def forget_secret_backup(self):
        sasl = self.plan.sasl
        if sasl is not None and sasl.backup:
            remove_file(sasl.backup)
            sasl.backup = None

    def result(self):
        files = self.plan.files
        out = {
            "written": [f.path for f in files if f.written],
            "backups": dict((f.path, f.backup) for f in files if f.backup),
            "indexed": list(self.indexed),
            "removed": list(self.removed),
            "action": self.action,
            "main_cf_changed": any(f.written for f in files if f.kind == "main"),
            "master_cf_changed": any(f.written for f in files if f.kind == "master"),
            "local_names": self.plan.local_names,
        }
        if self.report is not None:
            out["test_delivery"] = self.report
        return out

    # -- rollback --
    def rollback(self, failure):
        """Put every file back, make Postfix run the previous configuration, return RolledBack."""
        errors = []
        restored = []
        for change in reversed(self.plan.files):
            try:
                if change.written and change.backup:
                    uid, gid, mode = change.attrs
                    write_atomic(change.path, change.current, mode, (uid, gid))
                    restored.append(change)
                elif change.written:
                    remove_file(change.path)
                    if change.indexed:
                        for suffix in set(MAP_SUFFIXES.values()):
                            remove_file("%s.%s" % (change.path, suffix))
                elif change.attrs_fixed:
                    uid, gid, mode = change.attrs
                    os.chown(change.path, uid, gid)
                    os.chmod(change.path, mode)
            except OSError as exc:
                errors.append("%s: %s" % (change.path, exc.strerror or exc))
        for change in restored:
            if change.indexed:
                try:
                    self.index(change, "re-index %s" % ("the password map" if change.secret else change.path))
                except StepFailed as exc:
                    errors.append(exc.error)
        self.forget_secret_backup()
        errors += self.restore_service()
        log_line = self.complaint(failure.step)
        msg = 'Postfix was left on its previous configuration (rolled back) because "%s" failed: %s' % (
            failure.step, failure.error or "no detail")
        if log_line:
            msg += " | " + log_line
        if errors:
            msg += " (the rollback itself failed in part: %s)" % "; ".join(errors)
        result = self.result()
        result["written"] = []
        return RolledBack(failure, msg, log_line, errors, result)

    def restore_service(self):
        running = self.run([self.postfix, "status"])[0] == 0
        if self.restart_attempted or not running:
            argvs = restart_commands(self.params["service"], self.postfix, self.which)
        else:
            argvs = [[self.postfix, "reload"]]
        errors = []
        for argv in argvs:
            rc, out, err = self.run(argv)
            if rc != 0:
                errors.append("%s: %s" % (" ".join(argv), (out + err).strip() or "exit status %d" % rc))
        return errors

    def complaint(self, step):
        """Postfix's last fatal/error/warning line in the journal since the check began (mail facility)."""
        if not JOURNAL_STEPS.search(step):
            return ""
        rc, out, dummy = self.run(["journalctl", "--quiet", "--no-pager", "-o", "cat", "--since", "@%d" % self.started,
                                   "SYSLOG_FACILITY=2", "--priority=warning"])
        lines = [line for line in out.splitlines() if re.search("fatal|error|warning", line)] if rc == 0 else []
        return lines[-1].strip() if lines else ""
