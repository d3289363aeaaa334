# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.sendmail_cf_build: its DOCUMENTATION is its argument spec; it builds into the new file only, keeps
it only when it differs from the live sendmail.cf in more than comments (never in check mode), and a failed step is
named while the live file stays as it was and the new one is removed.

m4 and sendmail are fake shell scripts in tmp_path (the real ones run in the molecule scenarios only): the fake m4
prints a date-like comment and then sendmail.mc itself, so sendmail.mc holds the sendmail.cf text it builds; the
fake sendmail answers ``-bv`` with a mailer and host, and ``-bt`` input (``$j``, ``/try relay``) like Sendmail.
"""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.smarthost.relay.plugins.module_utils._relay import sendmail_host
from ansible_collections.smarthost.relay.plugins.modules import sendmail_cf_build
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import argument_spec_from_doc

RELAY = "127.0.0.1"
PORT = 2525
CF = """V10/Berkeley
Cwlocalhost
DSrelay:[127.0.0.1]
O Timeout.datafinal=1h
Mrelay,\t\tP=[IPC], F=mDFMuXa8k, S=EnvFromSMTP/HdrFromSMTP, R=MasqSMTP, E=\\r\\n, L=2040,
\t\tT=DNS/RFC822/SMTP,
\t\tA=TCP $h 2525
"""
M4 = """#!/bin/sh
{before}
echo "##### built by fake-m4 in process $$"
cat "$1"
"""
SENDMAIL = """#!/bin/sh
if [ "$3" = -bv ]; then
  echo "$4... deliverable: mailer relay, host [{host}], user $4"
  exit 0
fi
{bt_complaint}
echo "ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)"
echo "Enter <ruleset> <address>"
while read -r line; do
  case "$line" in
    '$j') echo "> mta.example.com" ;;
    '/try relay '*)
      address=${{line#/try relay }}
      echo "> Trying envelope sender address $address for mailer relay"
      echo "canonify           input: $address"
      case "$address" in '<>') leaves='<>' ;; *) leaves='{leaves}' ;; esac
      echo "Rcode = 0, addr = $leaves" ;;
  esac
done
echo "> "
"""
LOCAL_SENDER = "root@example.com"


@pytest.fixture
def host(tmp_path):
    """sendmail.mc (the cf text the fake m4 prints), the live sendmail.cf, and ``arm(...)`` to set the fakes."""
    (tmp_path / "sendmail.mc").write_text(CF)
    live = tmp_path / "sendmail.cf"
    live.write_text("##### built long ago\nV10/Berkeley\nDS[smtp-relay.gmail.com]\n")

    def arm(m4_before="", bt_complaint="", host=RELAY, leaves=LOCAL_SENDER):
        for name, text in (("m4", M4.format(before=m4_before)),
                           ("sendmail", SENDMAIL.format(bt_complaint=bt_complaint, host=host, leaves=leaves))):
            (tmp_path / name).write_text(text)
            (tmp_path / name).chmod(0o755)

    arm()
    args = {"mc": str(tmp_path / "sendmail.mc"), "cf": str(live), "dest": str(tmp_path / "sendmail.cf.smarthost-new"),
            "m4": str(tmp_path / "m4"), "sendmail": str(tmp_path / "sendmail"), "relay_host": RELAY, "relay_port": PORT}
    return {"dir": tmp_path, "live": live, "new": tmp_path / "sendmail.cf.smarthost-new", "arm": arm, "args": args}


def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        sendmail_cf_build.main()
    return json.loads(capsys.readouterr().out)


def test_argument_spec_is_the_documentation():
    assert sendmail_cf_build.ARGUMENT_SPEC == argument_spec_from_doc(sendmail_cf_build.DOCUMENTATION)
    assert set(sendmail_cf_build.ARGUMENT_SPEC) == set(sendmail_host.BUILD_SETTINGS)


def test_a_different_build_stays_for_the_role_to_install(host, capsys):
    live_before = host["live"].read_bytes()
    host["arm"](m4_before='echo "*** WARNING: FEATURE(\\`nouucp\') is obsolete" >&2')
    result = run_module(host["args"], capsys)
    assert not result.get("failed") and result["differs"] and result["changed"]
    assert result["path"] == str(host["new"]) and "senders" not in result
    assert result["m4_messages"] == ["*** WARNING: FEATURE(`nouucp') is obsolete"]
    assert host["new"].read_text().endswith(CF) and host["new"].stat().st_mode & 0o777 <= 0o644
    assert host["live"].read_bytes() == live_before


def test_a_build_that_differs_only_in_m4s_date_comment_is_removed(host, capsys):
    host["live"].write_text("##### built by root@mta on Sat Dec  5 10:00:00 UTC 2026\n\n" + CF)
    result = run_module(host["args"], capsys)
    assert not result.get("failed") and result["differs"] is False and result["changed"] is False
    assert not host["new"].exists()


def test_no_live_cf_differs(host, capsys):
    host["live"].unlink()
    result = run_module(host["args"], capsys)
    assert result["differs"] and host["new"].exists() and not host["live"].exists()


def test_check_mode_builds_and_checks_but_keeps_nothing(host, capsys):
    live_before = host["live"].read_bytes()
    result = run_module(dict(host["args"], _ansible_check_mode=True, local_sender=LOCAL_SENDER), capsys)
    assert not result.get("failed") and result["differs"] and result["senders"]["local_sender"] == LOCAL_SENDER
    assert not host["new"].exists() and host["live"].read_bytes() == live_before


def test_check_mode_fails_like_a_real_run(host, capsys):
    host["arm"](bt_complaint='echo "sendmail.cf: line 9: unknown option name NoSuchOption" >&2')
    result = run_module(dict(host["args"], _ansible_check_mode=True), capsys)
    assert result["failed"] and result["step"] == "sendmail -C %s -bt" % host["new"]


def test_local_senders_leave_as_the_relay_accepts_them(host, capsys):
    result = run_module(dict(host["args"], local_sender=LOCAL_SENDER.upper()), capsys)
    assert not result.get("failed")
    assert result["senders"] == {"local_sender": LOCAL_SENDER, "bare_sender": LOCAL_SENDER, "null_sender": "<>"}


def cf_with(old, new):
    return CF.replace(old, new)


# (what is armed or changed, the step named, a part of the error)
FAILURES = {
    "m4 fails": ({"m4_before": 'echo "m4:sendmail.mc:12: cannot open \\`nosuch.m4\'" >&2; exit 1'}, None,
                 "m4 {mc}", "cannot open `nosuch.m4'"),
    "m4 ERROR": ({"m4_before": 'echo "*** ERROR: FEATURE() should be before MAILER()" >&2'}, None,
                 "m4 {mc}", "*** ERROR: FEATURE() should be before MAILER()"),
    "m4 prints nothing": ({"m4_before": "exit 0"}, None, "m4 {mc}", "m4 produced an empty sendmail.cf"),
    "m4 missing": ({}, {"m4": "/nonexistent/m4"}, "m4 {mc}", "No such file"),
    "readcf complains": ({"bt_complaint": 'echo "{new}: line 9: unknown option name NoSuchOption" >&2'}, None,
                         "sendmail -C {new} -bt", "unknown option name NoSuchOption"),
    "sendmail missing": ({}, {"sendmail": "/nonexistent/sendmail"}, "sendmail -C {new} -bt", "No such file"),
    "not routed to the relay": ({"host": "smtp.example.net"}, None,
                                "sendmail -C {new} -bv smarthost-relay-probe@relay-check.invalid",
                                "a remote address does not go to the relay (mailer relay, host [127.0.0.1])"),
    "smart host overridden": ({}, ("DSrelay:[127.0.0.1]", "DSsmtp.example.net"), "smart host",
                              "no DS[127.0.0.1] line"),
    "relay port overridden": ({}, ("A=TCP $h 2525", "A=TCP $h 25"), "relay mailer",
                              "connects with 'TCP $h 25', not 'TCP $h 2525'"),
    "datafinal too short": ({}, ("Timeout.datafinal=1h", "Timeout.datafinal=30m"), "Timeout.datafinal",
                            "Timeout.datafinal is 30m, less than 3600 seconds"),
    "local sender rewritten": ({"leaves": "root@mta.example.com"}, {"local_sender": LOCAL_SENDER},
                               "sendmail -C {new} -bt (/try relay)",
                               "root leaves as root@mta.example.com, not root@example.com"),
}


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_a_failed_step_is_named_and_leaves_the_live_cf(host, capsys, name):
    armed, change, step, error = FAILURES[name]
    names = {"mc": host["args"]["mc"], "new": str(host["new"])}
    host["arm"](**{key: value.format(**names) if key == "bt_complaint" else value for key, value in armed.items()})
    args = dict(host["args"])
    if isinstance(change, tuple):
        (host["dir"] / "sendmail.mc").write_text(cf_with(*change))
    elif change:
        args.update(change)
    host["new"].write_text("left over from an earlier run\n")
    live_before = host["live"].read_bytes()
    result = run_module(args, capsys)
    assert result["failed"] and result["differs"] is False and result["changed"] is False
    assert result["step"] == step.format(**names)
    assert error in result["error"], result["error"]
    assert result["msg"] == "%s failed: %s" % (result["step"], result["error"])
    assert host["live"].read_bytes() == live_before
    assert not host["new"].exists()
