# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/doctor.yml with the real module on this machine, Postfix faked (a ``postqueue`` that prints a queue,
a log file): the table, the Markdown and JSON reports, and the exit status (non-zero when a host is blocked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.smarthost.relay.plugins.module_utils._relay import constants
from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies as R

ROOT = Path(__file__).resolve().parents[4]
DENIED = " ".join(R.wrap(R.render("relay_denied", ip="198.51.100.7", domains="example.com"), token="x1"))


def collections_path():
    path = os.path.abspath(constants.__file__)
    marker = os.sep + "ansible_collections" + os.sep
    return path[:path.rindex(marker)]


def ansible_playbook():
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return candidate if os.path.exists(candidate) else shutil.which("ansible-playbook")


def fake_host(tmp_path, held):
    """A bin directory with a postqueue printing ``held`` messages refused by the allowlist, and a log file."""
    now = time.time()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    reason = "host relay.smarthost.test[10.89.0.2] said: %s (in reply to RCPT TO command)" % DENIED
    lines = [json.dumps({"queue_name": "deferred", "queue_id": "ABCDE1234%d" % i, "arrival_time": int(now - 60),
                         "sender": "app@example.com",
                         "recipients": [{"address": "a@example.net", "delay_reason": reason}]}) for i in range(held)]
    (bin_dir / "postqueue").write_text("#!/bin/sh\ncat <<'END'\n%s\nEND\n" % "\n".join(lines))
    (bin_dir / "postqueue").chmod(0o755)
    log = tmp_path / "mail.log"
    log.write_text("%d h postfix/smtp[1]: ABCDE12340: to=<a@example.net>, relay=relay.smarthost.test[10.89.0.2]:25, "
                   "delay=1, delays=0/0/0/1, dsn=4.7.0, status=deferred (%s)\n" % (now - 50, reason) if held else "")
    return bin_dir, log


@pytest.mark.skipif(ansible_playbook() is None, reason="ansible-playbook not installed")
@pytest.mark.parametrize("held,check", [(0, False), (2, False), (2, True)], ids=["healthy", "blocked", "check-mode"])
def test_doctor_playbook(tmp_path, held, check):
    """Check mode is the same run: the hosts are only read, and the reports are written all the same."""
    bin_dir, log = fake_host(tmp_path, held)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[postfix]\nmta1 ansible_connection=local ansible_python_interpreter=%s ansible_become=false\n"
                         % sys.executable)
    report_dir = tmp_path / "report"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_HOME=str(tmp_path / "home"),
               PATH="%s:%s" % (bin_dir, os.environ["PATH"]))
    proc = subprocess.run([ansible_playbook(), "-i", str(inventory), str(ROOT / "playbooks" / "doctor.yml"),
                           "-e", "doctor_report_dir=%s" % report_dir, "-e", "doctor_log_file=%s" % log]
                          + (["--check"] if check else []),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          check=False)
    out = proc.stdout
    report = json.loads((report_dir / "doctor.json").read_text())
    markdown = (report_dir / "doctor.md").read_text()
    if held:
        assert proc.returncode != 0 and "Blocked: mta1" in out, out
        assert "mta1 | postfix | 2 | allowlist 1 0 | blocked" in out, out
        assert report["blocked"] == ["mta1"] and report["hosts"]["mta1"]["classes"][0]["queued"] == 2
        assert "### address not in the relay's allowlist (`allowlist`, blocked)" in markdown
        assert "- fix: `relay_allowlist`: `198.51.100.7/32`" in markdown
        assert "- hosts: mta1 (2 held now; 1 deferred, 0 bounced in the window)" in markdown
        assert "Only accept mail from the specified IP addresses" in markdown
    else:
        assert proc.returncode == 0, out
        assert "mta1 | postfix | 0 | - | healthy" in out, out
        assert report["blocked"] == [] and report["hosts"]["mta1"]["verdict"] == "healthy"
        assert "| mta1 | postfix | 0 | healthy | - |" in markdown
