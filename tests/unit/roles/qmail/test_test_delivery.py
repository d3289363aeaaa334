# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The post-change test delivery's reading of qmail-send's log (roles/qmail/files/qmail_test_delivery.py).

The log lines are qmail-send's formats, as multilog (TAI64N prefix) and syslog write them; the delivery itself
needs a real qmail and is verified only on one (docs/qmail.md, operator's checklist).
"""

from __future__ import annotations

import importlib.util
import os

from qmail_role_helpers import ROLE

SPEC = importlib.util.spec_from_file_location("qmail_test_delivery", os.path.join(ROLE, "files", "qmail_test_delivery.py"))
delivery = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(delivery)

MULTILOG = """@400000006a1b2c3d0a1b2c3d new msg 131089
@400000006a1b2c3d0a1b2c3e info msg 131089: bytes 412 from <postmaster@example.com> qp 4242 uid 0
@400000006a1b2c3d0a1b2c3f starting delivery 7: msg 131089 to remote qmail-test@example.net
@400000006a1b2c3d0a1b2c40 status: local 0/10 remote 1/20
@400000006a1b2c3d0a1b2c41 delivery 7: success: 127.0.0.1_accepted_message./Remote_host_said:_250_2.0.0_OK_1a2b-000001.1_-_gsmtp/
@400000006a1b2c3d0a1b2c42 status: local 0/10 remote 0/20
@400000006a1b2c3d0a1b2c43 end msg 131089
"""

SYSLOG = """Nov 29 15:00:00 mx qmail: 1795963728.1 info msg 99: bytes 300 from <postmaster@example.com> qp 11 uid 0
Nov 29 15:00:00 mx qmail: 1795963728.2 starting delivery 3: msg 99 to remote qmail-test@example.net
Nov 29 15:00:01 mx qmail: 1795963729.1 delivery 3: deferral: Connected_to_127.0.0.1_but_connection_died._(#4.4.2)/
Nov 29 15:00:30 mx qmail: 1795963758.1 starting delivery 4: msg 99 to remote qmail-test@example.net
Nov 29 15:00:31 mx qmail: 1795963759.1 delivery 4: failure: Connected_to_127.0.0.1_but_sender_was_rejected./Remote_host_said:_550_5.7.0_Mail_relay_denied/
Nov 29 15:00:31 mx qmail: 1795963759.2 end msg 99
"""


def test_success_from_multilog():
    lines = MULTILOG.splitlines()
    assert delivery.messages_from(lines, "POSTMASTER@example.com") == ["131089"]
    status, detail, ended = delivery.outcome(lines, "131089", "qmail-test@example.net")
    assert status == "success" and ended
    assert detail == "127.0.0.1 accepted message. | Remote host said: 250 2.0.0 OK 1a2b-000001.1 - gsmtp"


def test_deferral_then_failure_from_syslog():
    lines = SYSLOG.splitlines()
    assert delivery.outcome(lines[:3], "99", "qmail-test@example.net") == (
        "deferral", "Connected to 127.0.0.1 but connection died. (#4.4.2)", False)
    status, detail, ended = delivery.outcome(lines, "99", "qmail-test@example.net")
    assert status == "failure" and "550 5.7.0 Mail relay denied" in detail and ended


def test_other_messages_and_recipients_are_ignored():
    lines = MULTILOG.splitlines()
    assert delivery.outcome(lines, "131090", "qmail-test@example.net") == (None, "", False)
    assert delivery.outcome(lines, "131089", "someone-else@example.net") == (None, "", True)
    assert delivery.messages_from(lines, "other@example.com") == []


def test_message_headers():
    text = delivery.message("postmaster@example.com", "qmail-test@example.net", "<id@example.com>")
    assert "Message-ID: <id@example.com>\n" in text and "To: <qmail-test@example.net>\n" in text
    assert "\r" not in text  # qmail-inject takes UNIX newlines


def test_log_reads_only_new_lines(tmp_path):
    path = tmp_path / "current"
    path.write_text("old line\n")
    log = delivery.Log(str(path))
    with open(str(path), "a") as handle:
        handle.write("new line\n")
    assert log.lines() == ["new line"]
    assert delivery.Log(str(tmp_path / "missing")).lines() == []
