# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.sendmail on Debian 11 or 13 (SMARTHOST_DEBIAN), read from the relay stand-in's record."""

from __future__ import annotations

import json
import os
import shlex
import uuid
from pathlib import Path

import pytest

import relay_record

MTA = relay_record.group_hosts("mta")[0]
USER = "mta@example.com"
TAG = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def relay():
    return relay_record.relay()


def send(sender, recipients, message_id):
    body = "To: %s\nSubject: smoke\nMessage-ID: %s\n\nsmarthost.relay sendmail smoke\n" % (
        ", ".join(recipients), message_id)
    cmd = "printf %%s %s | /usr/sbin/sendmail -i -f %s -- %s" % (
        shlex.quote(body), shlex.quote(sender or "<>"), " ".join(shlex.quote(r) for r in recipients))
    result = MTA.run(cmd)
    assert result.rc == 0, result.stdout + result.stderr


def test_version_and_built_cf():
    version = MTA.check_output("sendmail -d0.1 -bv root </dev/null | head -n 1")
    cf = MTA.file("/etc/mail/sendmail.cf").content_string
    # The default path: Sendmail sends in plain SMTP to the relay guard on loopback, which does TLS and AUTH.
    assert "\nDSrelay:[127.0.0.1]\n" in cf and "A=TCP $h 24" in cf
    assert "\nO Timeout.datafinal=1h\n" in cf and "r=1," in cf
    assert "Kauthinfo" not in cf and not MTA.file("/etc/mail/smarthost-relay/authinfo").exists
    altnames = MTA.file("/usr/share/sendmail/cf/feature/check_cert_altnames.m4").exists
    out = Path(os.environ.get("SMARTHOST_ROOT", ".")) / ".cache" / "logs" / "sendmail-smoke.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"version": version, "cert_altnames": altnames}))


def test_guard_runs_with_its_secret_root_only():
    assert MTA.service("smarthost-relay-guard").is_running and MTA.service("smarthost-relay-guard").is_enabled
    config = MTA.file("/etc/smarthost-relay-guard/guard.json")
    assert (config.user, config.group, config.mode) == ("root", "root", 0o600)
    assert MTA.file("/etc/smarthost-relay-guard").mode == 0o700
    assert not MTA.run("ls /etc/smarthost-relay-guard/guard.json.*~").stdout  # no backup left with the password
    pid = MTA.check_output("systemctl show -p MainPID --value smarthost-relay-guard")
    assert MTA.check_output("ps -o user= -p %s" % pid) == "smarthost-guard"
    # Loopback only: the guard answers on 127.0.0.1 (the relay's greeting) and not on the host's own address.
    probe = "import socket,sys; s=socket.create_connection((sys.argv[1], 24), 5); print(s.recv(200).decode())"
    assert MTA.check_output("python3 -c %s 127.0.0.1" % shlex.quote(probe)).startswith("220 ")
    address = MTA.check_output("hostname -I").split()[0]
    assert MTA.run("python3 -c %s %s" % (shlex.quote(probe), address)).rc != 0


def test_converge_test_delivery_and_587_auth(relay):
    assert relay_record.wait_for_transactions(relay, recipients=["sendmail-test@example.net"], verdict="accepted")
    message_id = "<smoke.%s@example.com>" % TAG
    send(USER, ["someone@example.net"], message_id)
    [record] = relay_record.wait_for_transactions(relay, message_id=message_id, verdict="accepted")
    assert record["port"] == 587 and record["tls"] is True and record["auth_user"] == USER


def test_null_sender_two_recipients(relay):
    message_id = "<smoke-null.%s@example.com>" % TAG
    send("", ["one@example.net", "two@example.net"], message_id)
    found = relay_record.wait_for_transactions(relay, count=2, message_id=message_id, verdict="accepted")
    assert len(found) == 2 and all(len(r["recipients"]) == 1 and r["sender"] == "" for r in found)
