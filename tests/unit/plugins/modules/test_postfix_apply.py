# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.postfix_apply: its DOCUMENTATION is its argument spec; one call builds the candidate with postconf
in a scratch copy, compares, and only when something differs backs up, writes atomically, indexes, checks, reloads
(or restarts) and sends the test message; a failed step puts every file back byte for byte and fails with the role's
message; the password map's content is never in a result, a diff or a message.

Postfix's programs are the fakes of postfix_fakes.py in tmp_path/bin (the real Postfix runs in the molecule
scenarios only); every call they get is in ``calls.log``, in order.
The test delivery is the real code of relay_test_delivery with the fake sendmail of its own tests.
"""

from __future__ import annotations

import json
import os

import postfix_fakes
import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.smarthost.relay.plugins.module_utils._relay import postfix_host
from ansible_collections.smarthost.relay.plugins.module_utils._relay import replies as R
from ansible_collections.smarthost.relay.plugins.modules import postfix_apply
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import argument_spec_from_doc

PASSWORD = "s3cret-Relay-pw-9f2a"
OLD_PASSWORD = "old-Relay-pw-1b7c"
SASL_LINE = "[smtp-relay.gmail.com]:587 relay@example.com:%s\n"
MAIN = "myhostname = mta.example.net\nmydestination = $myhostname, localhost\nrelayhost = [old.example]:25\n"
MASTER = "smtp      inet  n       -       y       -       -       smtpd\n"
QUEUE_ID = "4Q8Zs55GBvzB7Bq"
RELAY = "relay.smarthost.test[10.89.0.2]"
BAD_LOGIN = " ".join(R.wrap(R.render("bad_credentials"), token="x12-20020a05.37"))

SENDMAIL = """here=$(dirname "$0")
mid=$(sed -n 's/^Message-ID: \\([^[:space:]]*\\).*/\\1/p')
{{
echo "1793620740.1 deb13 postfix/cleanup[91]: {qid}: message-id=$mid"
echo "1793620741.1 deb13 postfix/smtp[94]: {qid}: to=<relay-test@example.net>, relay={relay}:587, delay=1, \
delays=0/0/0.5/0.5, dsn={dsn}, status={status}"
}} >> "$here/mail.log"
"""


@pytest.fixture
def host(tmp_path, monkeypatch):
    """/etc/postfix under tmp_path with main.cf, master.cf and an old password map; the fake programs in bin."""
    conf, bin_dir = tmp_path / "etc" / "postfix", tmp_path / "bin"
    conf.mkdir(parents=True)
    bin_dir.mkdir()
    (conf / "main.cf").write_text(MAIN)
    (conf / "master.cf").write_text(MASTER)
    for path, text, mode in ((conf / "main.cf", MAIN, 0o644), (conf / "master.cf", MASTER, 0o644),
                             (conf / "smarthost_sasl_passwd", SASL_LINE % OLD_PASSWORD, 0o600),
                             (conf / "smarthost_sasl_passwd.db", SASL_LINE % OLD_PASSWORD, 0o600)):
        path.write_text(text)
        path.chmod(mode)
    postfix_fakes.install(bin_dir)
    (bin_dir / "mail.log").touch()
    systemd = tmp_path / "run-systemd"
    systemd.mkdir()
    monkeypatch.setattr(postfix_host, "SYSTEMD_DIR", str(systemd))
    monkeypatch.setattr(postfix_host, "OWNER", (os.geteuid(), os.getegid()))
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))

    def arm_delivery(dsn, status):
        program = bin_dir / "sendmail"
        program.write_text("#!/bin/sh\n" + SENDMAIL.format(qid=QUEUE_ID, relay=RELAY, dsn=dsn, status=status))
        program.chmod(0o755)

    arm_delivery("2.0.0", "sent (250 2.0.0 OK 1793620741 x12 - gsmtp)")
    args = {"config_dir": str(conf), "sbin": str(bin_dir), "db_type": "hash",
            "main_set": ["relayhost=[smtp-relay.gmail.com]:587", "smtp_sasl_auth_enable=yes"],
            "maps": [{"path": str(conf / "smarthost_delivery_status_filter"), "content": "/x/ 4.7.1 $0\n"},
                     {"path": str(conf / "smarthost_generic"), "content": "a@b c@d\n", "indexed": True}],
            "local_senders": {"path": str(conf / "smarthost_local_senders"), "rewrite": "masquerade",
                              "domain": "example.com", "exclude": ["example.com"]},
            "sasl_map": str(conf / "smarthost_sasl_passwd"), "sasl_map_content": SASL_LINE % PASSWORD}
    return {"conf": conf, "bin": bin_dir, "args": args, "arm_delivery": arm_delivery}


def run_module(args, capsys, check=False, diff=True):
    extra = {"_ansible_check_mode": check, "_ansible_diff": diff}
    with patch_module_args(dict(args, **extra)), pytest.raises(SystemExit):
        postfix_apply.main()
    return json.loads(capsys.readouterr().out)


def calls(host):
    path = host["bin"] / "calls.log"
    return [line.split(" ", 1)[0] + (" " + line.split()[1] if len(line.split()) > 1 else "")
            for line in path.read_text().splitlines()] if path.exists() else []


def snapshot(conf):
    """Every file under the configuration directory with its bytes and mode."""
    return {name: ((conf / name).read_bytes(), (conf / name).stat().st_mode & 0o777) for name in sorted(os.listdir(conf))}


def no_secret(result, *secrets):
    text = json.dumps(result)
    return not any(secret in text for secret in secrets)


def with_delivery(args, host):
    return dict(args, test_delivery={"sender": "mta@example.com", "recipient": "relay-test@example.net",
                                     "timeout": 5, "sendmail": str(host["bin"] / "sendmail"),
                                     "log_file": str(host["bin"] / "mail.log")})


def test_argument_spec_is_the_documentation():
    assert postfix_apply.ARGUMENT_SPEC == argument_spec_from_doc(postfix_apply.DOCUMENTATION,
                                                                 secret=("sasl_map_content",))


def test_local_senders_table_is_the_roles_former_template():
    names = postfix_host.local_sender_names(["MTA.example.net.", "localhost", "example.com", "bad_name", "x.test"],
                                            ["other.test"], ["example.com"])
    assert names == ["mta.example.net", "other.test", "x.test"]
    assert postfix_host.local_senders_table(["mta.example.net"], "address", address="alerts@example.com") == (
        "# Managed by smarthost.relay.postfix (Ansible): local changes are overwritten.\n"
        "# smtp_generic_maps (regexp table, case-insensitive): addresses of this host's local accounts (root, cron,\n"
        "# daemons), rewritten on the way out to the relay so that it accepts them; the null sender is never looked"
        " up.\n"
        "# Local names: localhost, localdomain (with subdomains), mta.example.net.\n"
        "# relay_settings.local_senders: sent as alerts@example.com.\n"
        "/^[^@]+@((.+\\.)?localhost|(.+\\.)?localdomain|mta\\.example\\.net)$/ alerts@example.com\n")
    assert postfix_host.local_senders_table([], "masquerade", domain="example.com").splitlines()[-2:] == [
        "# relay_settings.local_senders: masqueraded to example.com (the user stays).",
        "/^([^@]+)@((.+\\.)?localhost|(.+\\.)?localdomain)$/ ${1}@example.com"]


def test_a_change_backs_up_writes_indexes_checks_reloads_and_tests_in_that_order(host, capsys):
    conf = host["conf"]
    result = run_module(with_delivery(host["args"], host), capsys)
    assert not result.get("failed") and result["changed"], result
    assert result["action"] == "reload" and result["main_cf_changed"] and not result["master_cf_changed"]
    assert result["test_delivery"]["delivered"] and result["test_delivery"]["queue_id"] == QUEUE_ID
    main = (conf / "main.cf").read_text()
    assert "relayhost = [smtp-relay.gmail.com]:587" in main and "smtp_sasl_auth_enable = yes" in main
    assert (conf / "smarthost_generic.db").read_text() == "a@b c@d\n"
    assert (conf / "smarthost_sasl_passwd").read_text() == SASL_LINE % PASSWORD
    for name, mode in (("smarthost_sasl_passwd", 0o600), ("smarthost_sasl_passwd.db", 0o600), ("main.cf", 0o644),
                       ("smarthost_generic", 0o644), ("smarthost_local_senders", 0o644)):
        assert (conf / name).stat().st_mode & 0o777 == mode, name
    # The local senders' table carries the names of the configuration being installed.
    assert result["local_names"] == ["mta.example.net"]
    assert "mta\\.example\\.net" in (conf / "smarthost_local_senders").read_text()
    # postconf on a scratch copy, postmap of the changed maps, then check, reload: nothing restarted.
    order = calls(host)
    assert order[:3] == ["postconf -c"] * 3  # -e, then -xh twice on the scratch copy for the names
    steps = [c for c in order if not c.startswith("postconf")]
    assert steps[:2] == ["postmap hash:%s" % (conf / "smarthost_generic"),
                         "postmap hash:%s" % (conf / "smarthost_sasl_passwd")]
    assert steps[2:] == ["postfix check", "postfix reload"]
    assert not any(c.startswith("systemctl") for c in order)
    # One backup of main.cf with the old bytes; the password map's backup is gone; no temporary file stays.
    backup = result["backups"][str(conf / "main.cf")]
    assert backup.startswith(str(conf / "main.cf.")) and backup.endswith("~")
    assert (conf / os.path.basename(backup)).read_text() == MAIN
    assert str(conf / "smarthost_sasl_passwd") not in result["backups"]
    leftovers = [name for name in os.listdir(conf) if name.startswith(".") or
                 (name.startswith("smarthost_sasl_passwd.") and name.endswith("~"))]
    assert not leftovers
    assert no_secret(result, PASSWORD, OLD_PASSWORD)


def test_nothing_differs_nothing_written_nothing_reloaded(host, capsys):
    run_module(host["args"], capsys)
    before = snapshot(host["conf"])
    (host["bin"] / "calls.log").unlink()
    args = dict(host["args"], main_set=[])  # the role computes no change once main.cf has the settings
    result = run_module(args, capsys)
    assert result["changed"] is False and result["action"] == "none" and not result.get("diff")
    assert snapshot(host["conf"]) == before
    assert not [c for c in calls(host) if not c.startswith("postconf")]  # only postconf -xh, for the names
    # The same settings computed again (postconf makes no change to the bytes): still nothing to do.
    result = run_module(host["args"], capsys)
    assert result["changed"] is False and snapshot(host["conf"]) == before


def test_check_mode_reports_and_diffs_but_writes_nothing_and_never_shows_the_password(host, capsys):
    before = snapshot(host["conf"])
    result = run_module(with_delivery(host["args"], host), capsys, check=True)
    assert result["changed"] is True and not result.get("failed")
    assert snapshot(host["conf"]) == before
    assert not [c for c in calls(host) if not c.startswith("postconf")]
    headers = [d["after_header"] for d in result["diff"]]
    assert str(host["conf"] / "main.cf") in headers and str(host["conf"] / "smarthost_generic") in headers
    assert str(host["conf"] / "smarthost_sasl_passwd") not in headers
    main = [d for d in result["diff"] if d["after_header"].endswith("main.cf")][0]
    assert "relayhost = [smtp-relay.gmail.com]:587" in main["after"] and main["before"] == MAIN
    assert str(host["conf"] / "smarthost_sasl_passwd") in result["would_write"]
    assert "test_delivery" not in result and not (host["bin"] / "mail.log").read_text()
    assert no_secret(result, PASSWORD, OLD_PASSWORD)


def test_wrong_mode_of_the_password_database_is_fixed_by_indexing_again(host, capsys):
    run_module(host["args"], capsys)
    (host["conf"] / "smarthost_sasl_passwd.db").chmod(0o644)
    (host["bin"] / "calls.log").unlink()
    result = run_module(dict(host["args"], main_set=[]), capsys)
    assert result["changed"] and result["indexed"] == [str(host["conf"] / "smarthost_sasl_passwd")]
    assert (host["conf"] / "smarthost_sasl_passwd.db").stat().st_mode & 0o777 == 0o600
    assert result["action"] == "none"  # the map itself did not change: nothing to reload


def test_restart_instead_of_reload(host, capsys):
    result = run_module(dict(host["args"], main_set=["inet_interfaces=all"], restart=True), capsys)
    assert result["action"] == "restart"
    order = calls(host)
    assert "systemctl restart" in order and "postfix reload" not in order
    assert order.index("postfix check") < order.index("systemctl restart")


def rollback_case(host, capsys, fail, args=None):
    before = snapshot(host["conf"])
    (host["bin"] / "journal.txt").write_text("postfix/master[1]: warning: something\n"
                                             "postfix/postfix-script[2]: fatal: config variable inet_interfaces: "
                                             "host not found: bogus.invalid\n")
    (host["bin"] / fail).touch()
    result = run_module(args or host["args"], capsys)
    assert result["failed"] and result["rolled_back"], result
    assert before_without_backups(snapshot(host["conf"]), before) == before
    assert no_secret(result, PASSWORD, OLD_PASSWORD)
    return result


def before_without_backups(now, before):
    """The files now, minus the non-secret backups a rollback keeps (Ansible's backup=true keeps them too)."""
    kept = {name: value for name, value in now.items() if not name.endswith("~")}
    assert set(kept) == set(before), (sorted(kept), sorted(before))
    return {name: now[name] for name in before}


def test_failed_postfix_check_rolls_back_and_reloads(host, capsys):
    result = rollback_case(host, capsys, "check.fail")
    assert result["msg"] == (
        'Postfix was left on its previous configuration (rolled back) because "Check the new configuration with '
        'postfix check" failed: non-zero return code | postfix/postfix-script: fatal: check failed | '
        'postfix/postfix-script[2]: fatal: config variable inet_interfaces: host not found: bogus.invalid')
    assert result["step"] == postfix_host.STEP_CHECK
    order = calls(host)
    tail = order[order.index("postfix check"):]
    # the restored password map indexed again, then Postfix running: reloaded
    assert tail == ["postfix check", "postmap hash:%s" % (host["conf"] / "smarthost_sasl_passwd"), "postfix status",
                    "postfix reload", "journalctl --quiet"]
    # created files gone (maps and the generic map's database), the password map back with its old content
    for name in ("smarthost_generic", "smarthost_generic.db", "smarthost_local_senders",
                 "smarthost_delivery_status_filter"):
        assert not (host["conf"] / name).exists(), name
    assert (host["conf"] / "smarthost_sasl_passwd").read_text() == SASL_LINE % OLD_PASSWORD
    assert not [n for n in os.listdir(host["conf"]) if n.startswith("smarthost_sasl_passwd.") and n.endswith("~")]


def test_failed_reload_rolls_back_and_restarts_a_postfix_that_is_not_running(host, capsys):
    (host["bin"] / "status.stopped").touch()
    result = rollback_case(host, capsys, "reload.fail")
    assert '"Reload Postfix (queued mail stays queued)" failed: non-zero return code' in result["msg"]
    assert result["msg"].endswith("| postfix/postfix-script[2]: fatal: config variable inet_interfaces: host not "
                                  "found: bogus.invalid")
    order = calls(host)
    assert order[-3:] == ["postfix status", "systemctl restart", "journalctl --quiet"]


def test_failed_restart_is_undone_with_a_restart(host, capsys):
    result = rollback_case(host, capsys, "restart.fail",
                           dict(host["args"], main_set=["inet_interfaces=bogus.invalid"], restart=True))
    assert '"Restart Postfix (inet_interfaces or inet_protocols changed)" failed: Unable to restart service ' \
           'postfix: Job for postfix.service failed.' in result["msg"]
    order = calls(host)
    assert order.count("systemctl restart") == 2 and "postfix reload" not in order


def test_failed_postmap_rolls_back_without_reading_the_journal(host, capsys):
    result = rollback_case(host, capsys, "postmap.fail")
    assert result["msg"].startswith('Postfix was left on its previous configuration (rolled back) because "Index the '
                                    'address maps with postmap" failed: non-zero return code | postmap: fatal: open ')
    assert "journalctl --quiet" not in calls(host) and "|" not in result["msg"].split("postmap: fatal")[1]
    assert "postfix check" not in calls(host)


def test_refused_test_message_rolls_back_with_the_doctors_diagnosis(host, capsys):
    host["arm_delivery"]("4.7.8", "deferred (SASL authentication failed; server %s said: %s)" % (RELAY, BAD_LOGIN))
    before = snapshot(host["conf"])
    result = run_module(with_delivery(host["args"], host), capsys)
    assert result["failed"] and result["rolled_back"]
    assert result["msg"].startswith('Postfix was left on its previous configuration (rolled back) because "Send a '
                                    "test message through the relay and wait for the relay's answer\" failed: the "
                                    "relay did not accept the test message")
    assert "relay doctor: bad_credentials" in result["msg"] and "relay_auth_password" in result["msg"]
    assert result["test_delivery"]["removed"] and calls(host)[-4:] == [
        "postsuper -d", "postmap hash:%s" % (host["conf"] / "smarthost_sasl_passwd"), "postfix status", "postfix reload"]
    assert before_without_backups(snapshot(host["conf"]), before) == before
    assert no_secret(result, PASSWORD, OLD_PASSWORD)


def test_a_new_password_map_is_removed_on_rollback(host, capsys):
    for name in ("smarthost_sasl_passwd", "smarthost_sasl_passwd.db"):
        (host["conf"] / name).unlink()
    result = rollback_case(host, capsys, "check.fail")
    assert not [n for n in os.listdir(host["conf"]) if n.startswith("smarthost_sasl_passwd")]
    assert result["written"] == []


def test_failure_before_any_write_changes_nothing(host, capsys):
    before = snapshot(host["conf"])
    (host["bin"] / "postconf.fail").touch()
    result = run_module(host["args"], capsys)
    assert result["failed"] and result["rolled_back"] is False
    assert result["msg"] == ('Postfix was not changed because "Build the new main.cf and master.cf with postconf in a '
                             'scratch copy" failed: non-zero return code | postconf: fatal: bad parameter')
    assert snapshot(host["conf"]) == before


def test_auth_off_removes_the_password_map_and_obsolete_files_after_success(host, capsys):
    old = host["conf"] / "smarthost_reply_filter"
    old.write_text("/x/ 450 4.4.5 $0\n")
    args = dict(host["args"], sasl_map_content=None, remove=[str(old)], main_remove=["smtp_sasl_password_maps"])
    result = run_module(args, capsys)
    assert not result.get("failed") and result["changed"]
    assert sorted(result["removed"]) == sorted([str(old), str(host["conf"] / "smarthost_sasl_passwd"),
                                                str(host["conf"] / "smarthost_sasl_passwd.db")])
    assert not old.exists() and not (host["conf"] / "smarthost_sasl_passwd").exists()
    # and removals alone (nothing else differs) are a change without a reload
    old.write_text("again\n")
    (host["bin"] / "calls.log").unlink()
    result = run_module(dict(args, main_set=[], main_remove=[]), capsys)
    assert result["changed"] and result["removed"] == [str(old)] and result["action"] == "none"


def test_the_password_is_censored_by_no_log(host, capsys):
    """AnsibleModule removes a no_log option's value from whatever the module returns."""
    assert postfix_apply.ARGUMENT_SPEC["sasl_map_content"]["no_log"] is True
    (host["bin"] / "check.fail").touch()
    (host["bin"] / "journal.txt").write_text("fatal: %s" % (SASL_LINE % PASSWORD))
    result = run_module(host["args"], capsys)
    assert result["failed"] and no_secret(result, SASL_LINE % PASSWORD)


def fake_proc(root, processes):
    """A /proc with ``{pid: (ppid, comm)}``; comm may hold blanks and parentheses, as the kernel allows."""
    for pid, (ppid, comm) in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "stat").write_text("%d (%s) S %d %d 0 0" % (pid, comm, ppid, ppid))
    (root / "self").mkdir(exist_ok=True)


def test_master_children_are_this_masters_relay_workers(tmp_path):
    queue = tmp_path / "spool"
    (queue / "pid").mkdir(parents=True)
    (queue / "pid" / "master.pid").write_text("%11d\n" % 100)
    fake_proc(tmp_path / "proc", {100: (1, "master"), 101: (100, "qmgr"), 102: (100, "smtp"), 103: (100, "pickup"),
                                  104: (100, "tlsproxy"), 105: (200, "smtp"), 106: (100, "trivial-rewrite"),
                                  107: (100, "x (smtp) y")})

    def run(argv, umask=None):  # pylint: disable=unused-argument
        assert argv == ["/usr/sbin/postconf", "-c", "/etc/postfix", "-h", "queue_directory"]
        return 0, "%s\n" % queue, ""

    master = postfix_host.master_pid(run, "/usr/sbin", "/etc/postfix")
    assert master == 100
    found = postfix_host.master_children(master, proc=str(tmp_path / "proc"))
    assert found == {101, 102, 104, 106}  # not pickup, not another master's smtp
    (queue / "pid" / "master.pid").unlink()
    assert postfix_host.master_pid(run, "/usr/sbin", "/etc/postfix") is None
    assert postfix_host.master_children(None, proc=str(tmp_path / "proc")) == set()


def test_reload_waits_until_the_workers_started_before_it_are_gone():
    seen, now = [{1, 2, 3}, {2, 3, 9}, {3, 9}, {9}], [0.0]
    applier = postfix_host.Applier.__new__(postfix_host.Applier)
    applier.params = {"restart": False}
    applier.postfix = "/usr/sbin/postfix"
    applier.run = lambda argv, umask=None: (0, "", "")
    applier.clock = lambda: now[0]
    applier.sleep = lambda seconds: now.__setitem__(0, now[0] + seconds)
    applier.workers = lambda: seen.pop(0) if len(seen) > 1 else seen[0]
    applier.reload_or_restart()
    assert applier.action == "reload" and seen == [{9}] and now[0] == pytest.approx(0.4)
    # never longer than RELOAD_SETTLE_SECONDS, whatever still runs
    seen[:] = [{1}]
    now[0] = 0.0
    applier.reload_or_restart()
    assert now[0] == pytest.approx(postfix_host.RELOAD_SETTLE_SECONDS, abs=0.3)
