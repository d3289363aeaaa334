# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.relay_test_delivery: its DOCUMENTATION is its argument spec; check mode sends nothing; a failed
delivery fails the task with the doctor's class and fix, and removes only the test message.

Postfix's sendmail and postsuper are fake programs in a temporary directory (the real Postfix runs in the molecule
scenarios only): sendmail logs what Postfix would for the message it was given, postsuper records its arguments.
"""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies as R
from ansible_collections.smarthost.relay.plugins.modules import relay_test_delivery
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import argument_spec_from_doc

QUEUE_ID = "4Q8Zs55GBvzB7Bq"
RELAY = "relay.smarthost.test[10.89.0.2]"
BAD_LOGIN = " ".join(R.wrap(R.render("bad_credentials"), token="x12-20020a05.37"))

SENDMAIL = """#!/bin/sh
echo "$@" > {dir}/sendmail.argv
mid=$(sed -n 's/^Message-ID: \\([^[:space:]]*\\).*/\\1/p')
{{
echo "1793620740.1 deb13 postfix/cleanup[91]: {qid}: message-id=$mid"
echo "1793620740.2 deb13 postfix/qmgr[92]: {qid}: from=<mta@example.com>, size=612, nrcpt=1 (queue active)"
echo "1793620741.1 deb13 postfix/smtp[94]: {qid}: to=<relay-test@example.net>, relay={relay}:587, delay=1, \
delays=0/0/0.5/0.5, dsn={dsn}, status={status}"
}} >> {dir}/mail.log
"""


def test_argument_spec_is_the_documentation():
    assert relay_test_delivery.ARGUMENT_SPEC == argument_spec_from_doc(relay_test_delivery.DOCUMENTATION)


@pytest.fixture
def postfix(tmp_path):
    """Fake sendmail and postsuper; ``arm(dsn, status)`` sets what the delivery logs."""
    (tmp_path / "mail.log").touch()
    postsuper = tmp_path / "postsuper"
    postsuper.write_text("#!/bin/sh\necho \"$@\" >> %s/postsuper.argv\n" % tmp_path)
    postsuper.chmod(0o755)

    def arm(dsn, status):
        program = tmp_path / "sendmail"
        program.write_text(SENDMAIL.format(dir=tmp_path, qid=QUEUE_ID, relay=RELAY, dsn=dsn, status=status))
        program.chmod(0o755)

    args = {"mta": "postfix", "sender": "mta@example.com", "recipient": "relay-test@example.net", "timeout": 5,
            "sendmail": str(tmp_path / "sendmail"), "postsuper": str(postsuper), "log_file": str(tmp_path / "mail.log")}
    return {"dir": tmp_path, "arm": arm, "args": args}


def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        relay_test_delivery.main()
    return json.loads(capsys.readouterr().out)


def test_check_mode_sends_nothing(postfix, capsys):
    postfix["arm"]("2.0.0", "sent (250 2.0.0 OK)")
    result = run_module(dict(postfix["args"], _ansible_check_mode=True), capsys)
    assert result["status"] == "not sent" and not result["delivered"] and not result.get("failed")
    assert result["changed"] is False and "check mode" in result["msg"]
    assert not (postfix["dir"] / "sendmail.argv").exists() and not (postfix["dir"] / "postsuper.argv").exists()


def test_sent(postfix, capsys):
    postfix["arm"]("2.0.0", "sent (250 2.0.0 OK 1793620741 x12 - gsmtp)")
    result = run_module(postfix["args"], capsys)
    assert result["delivered"] and result["status"] == "sent" and result["changed"] is False
    assert result["queue_id"] == QUEUE_ID and "diagnosis" not in result and not result["removed"]
    assert (postfix["dir"] / "sendmail.argv").read_text().split() == [
        "-i", "-f", "mta@example.com", "--", "relay-test@example.net"]
    assert not (postfix["dir"] / "postsuper.argv").exists()


def test_failure_names_the_class_and_fix_and_removes_only_the_test_message(postfix, capsys):
    postfix["arm"]("4.7.8", "deferred (SASL authentication failed; server %s said: %s)" % (RELAY, BAD_LOGIN))
    result = run_module(postfix["args"], capsys)
    assert result["failed"] and result["status"] == "deferred" and result["removed"]
    assert (postfix["dir"] / "postsuper.argv").read_text() == "-d %s\n" % QUEUE_ID
    assert result["diagnosis"]["class"] == "bad_credentials" and result["diagnosis"]["stage"] == "AUTH"
    assert "relay doctor: bad_credentials" in result["msg"] and "relay_auth_password" in result["msg"]
    assert "535-5.7.8 Username and Password not accepted" in result["detail"]
