# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets: the SMTP AUTH passwords appear in no playbook output (-vvv --diff, real and check mode), in no log,
in no temporary file on the hosts or the controller; on the hosts only in root-owned 0600 files of the roles.

The converge and idempotence ran at -vvv with diffs (molecule.yml); here site.yml runs again with a new user and
password for both MTAs (a real change: the password files are rewritten, the test messages log in with it), then in
check mode with yet another password. Passwords made here are unique per run, so a hit can only be this run's leak.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import (EPHEMERAL, LOG_PATH, MTAS, PASSWORDS, RELAY, config_state, host, recap, relay_record,  # noqa: I100
                      run_site, standin_add_users)

NEW_USER = "rotated-%s@example.com" % uuid.uuid4().hex[:6]
NEW_PASSWORD = "Rotated-pw-" + uuid.uuid4().hex[:12]
CHECK_PASSWORD = "Check-mode-pw-" + uuid.uuid4().hex[:12]
ALL_PASSWORDS = {"converged-postfix": PASSWORDS["postfix"], "converged-sendmail": PASSWORDS["sendmail"],
                 "rotated": NEW_PASSWORD, "check-mode": CHECK_PASSWORD}
# Where each role keeps its password files; a hit anywhere else is a leak.
ROLE_DIRS = {"postfix": ("/etc/postfix/",), "sendmail": ("/etc/smarthost-relay-guard/",)}
HOST_TEMP_DIRS = "/tmp /var/tmp /root/.ansible"
# Directories of the machinery that runs these sessions, not of this test.
CONTROLLER_TMP_SKIP = ("/tmp/bash_jobs", "/tmp/prompts")


def forms(secret, user=None):
    """The secret as written, base64-encoded, and inside an SMTP AUTH PLAIN string."""
    found = [secret, base64.b64encode(secret.encode()).decode()]
    if user:
        found.append(base64.b64encode(("\0%s\0%s" % (user, secret)).encode()).decode())
    return found


def grep_host(target, secret, paths):
    """Files under paths on the host holding the secret in any of its forms (Sendmail's authinfo holds base64)."""
    patterns = " ".join("-e %s" % f for f in forms(secret))
    return target.run("grep -rlF %s -- %s 2>/dev/null | sort -u || true" % (patterns, paths)).stdout.split()


def occurrences(text):
    """{label: how often the password occurs in any of its forms} for every password."""
    return {label: sum(text.count(f) for f in forms(secret, NEW_USER)) for label, secret in ALL_PASSWORDS.items()}


NONE = dict.fromkeys(ALL_PASSWORDS, 0)


@pytest.fixture(scope="module")
def runs(results):
    """The rotation run, then the check-mode run, each with a TMPDIR of its own under /tmp."""
    marker = time.time()
    standin_add_users({NEW_USER: NEW_PASSWORD})
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    tmpdirs = [Path(tempfile.mkdtemp(prefix="srt-security-%s-" % run)) for run in ("rotation", "check")]
    rotation = run_site(inventory, "-vvv", "--diff", tmpdir=tmpdirs[0],
                        extra_vars={"relay_auth_username": NEW_USER, "relay_auth_password": NEW_PASSWORD})
    before = {mta: config_state(mta) for mta in MTAS}
    # The whole site.yml in check mode, test-message play included (it sends nothing in check mode).
    check = run_site(inventory, "-vvv", "--diff", "--check", tmpdir=tmpdirs[1],
                     extra_vars={"relay_auth_username": NEW_USER, "relay_auth_password": CHECK_PASSWORD})
    after = {mta: config_state(mta) for mta in MTAS}
    results["secrets"] = {"rotation_run_seconds": rotation.seconds, "check_run_seconds": check.seconds,
                          "rotation_output_bytes": len(rotation.stdout + rotation.stderr),
                          "check_output_bytes": len(check.stdout + check.stderr)}
    yield {"rotation": rotation, "check": check, "before": before, "after": after, "tmpdirs": tmpdirs,
           "marker": marker}
    for path in tmpdirs:
        shutil.rmtree(path, ignore_errors=True)


def test_rotation_changed_both_hosts_and_mail_flows_with_the_new_password(runs):
    result = runs["rotation"]
    counters = recap(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:]
    for name in MTAS.values():
        assert counters[name]["changed"] > 0 and counters[name]["failed"] == 0, counters
    # -vvv (the changed files are all no_log: no diff). molecule's ansible-compat exports
    # ANSIBLE_VERBOSE_TO_STDERR=True, so the connection's lines are on stderr.
    assert "<%s> RUN " % MTAS["postfix"] in result.stdout + result.stderr
    assert "no_log: true" in result.stdout  # the password's tasks are censored, not silent
    relay = host(RELAY)
    for name in MTAS.values():
        ip = host(name).interface("eth0").addresses[0]
        # one test message per host: the role's own after the change; the test-message play reports it
        assert len(relay_record.transactions(relay, auth_user=NEW_USER, client_ip=ip, verdict="accepted")) == 1, name


def test_rotation_output_holds_no_password(runs):
    result = runs["rotation"]
    assert occurrences(result.stdout + result.stderr) == NONE


def test_check_mode_reports_changes_changes_nothing_and_shows_no_password(runs):
    result = runs["check"]
    counters = recap(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:]
    for name in MTAS.values():
        assert counters[name]["changed"] > 0, counters  # the password files would change
    assert runs["before"] == runs["after"]
    assert occurrences(result.stdout + result.stderr) == NONE


@pytest.mark.parametrize("mta", MTAS)
def test_password_files_on_the_host_are_the_roles_root_0600(runs, mta, results):
    target = host(MTAS[mta])
    found = {}
    for label, secret in (("new", NEW_PASSWORD), ("converged", PASSWORDS[mta]), ("check", CHECK_PASSWORD)):
        found[label] = grep_host(target, secret, "/etc /var " + HOST_TEMP_DIRS)
    assert found["new"], "the new password is nowhere on %s" % mta
    assert not found["check"]
    if mta == "sendmail":
        # The guard's configuration was rewritten with the new password and the copy kept for a rollback removed
        # once the change worked: the old password is nowhere.
        assert not found["converged"], found
        assert target.run("ls /etc/smarthost-relay-guard/guard.json.*~").rc != 0
    for path in found["new"] + found["converged"]:
        stat = target.file(path)
        assert path.startswith(ROLE_DIRS[mta]), path  # Sendmail: the guard's, not an authinfo map (guard on)
        assert (stat.user, stat.group, stat.mode) == ("root", "root", 0o600), path
    results.setdefault("secrets", {})["%s_password_files" % mta] = found


@pytest.mark.parametrize("mta", MTAS)
def test_no_password_in_temporary_files_on_the_host(runs, mta):
    target = host(MTAS[mta])
    for secret in ALL_PASSWORDS.values():
        hits = grep_host(target, secret, HOST_TEMP_DIRS)
        assert not hits, hits


def checkout_copies():
    """SHA-256 of every file of the checkout: a file under /tmp with the same bytes is a copy of the source (the
    test bed's passwords are written in this scenario's files), not something a run leaked."""
    root = Path(__file__).resolve().parents[3]
    tracked = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=False).stdout
    digests = set()
    for name in filter(None, tracked.decode().split("\0")):
        try:
            digests.add(hashlib.sha256((root / name).read_bytes()).hexdigest())
        except OSError:
            continue
    return digests


def test_no_password_in_temporary_files_on_the_controller(runs, results):
    """The runs' own TMPDIRs, ~/.ansible/tmp, and every file under /tmp written since the runs began."""
    recent = subprocess.run(["find", "/tmp", "-xdev", "-type", "f", "-newermt", "@%d" % int(runs["marker"])],
                            capture_output=True, text=True, check=False).stdout.split("\n")
    candidates = [Path(p) for p in recent if p and not p.startswith(CONTROLLER_TMP_SKIP)]
    for root in [*runs["tmpdirs"], Path.home() / ".ansible" / "tmp"]:
        candidates += [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    # molecule's own directories (this run's and earlier runs' molecule.<hash>.security) hold the scenario's config
    # and inventory, the test bed's passwords by design (this run's ansible.log is checked below).
    candidates = [p for p in candidates
                  if EPHEMERAL not in p.parents and not any(d.name.startswith("molecule.") for d in p.parents)]
    sources = checkout_copies()
    hits = []
    for path in candidates:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() in sources:
            continue  # a copy of this scenario's own source (a build or sanity tree), which names the bed's passwords
        hits += [str(path) for secret in ALL_PASSWORDS.values() if any(f.encode() in data for f in forms(secret))]
    assert not hits
    results.setdefault("secrets", {})["controller_temp_files_scanned"] = len(candidates)


def test_no_password_in_the_scenario_log(runs, results):
    """Converge, idempotence (at -vvv with diffs, molecule.yml) and the two runs above."""
    text = LOG_PATH.read_text(errors="replace")
    assert "--- before" in text and "ESTABLISH" in text and "TASK [smarthost.relay.postfix" in text
    assert occurrences(text) == NONE
    results.setdefault("secrets", {})["scenario_log_bytes"] = len(text)
