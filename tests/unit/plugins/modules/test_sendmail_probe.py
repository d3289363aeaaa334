# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.sendmail_probe: its DOCUMENTATION is its argument spec and its RETURN names every key; on a fake
host tree under tmp_path it reports what is there, the same in check mode, and changes nothing.

PATH holds only fake ``dpkg-query``, ``rpm`` and ``systemctl`` (shell scripts using builtins), and Sendmail is a
fake that answers ``$=w``: the real programs run in the molecule scenarios only.
"""

from __future__ import annotations

import grp
import json
import os

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.smarthost.relay.plugins.module_utils._relay import sendmail_host
from ansible_collections.smarthost.relay.plugins.modules import sendmail_probe
from ansible_collections.smarthost.relay.plugins.plugin_utils._argspec import argument_spec_from_doc

SENDMAIL = """#!/bin/sh
[ "$3" = -bt ] || exit 64
echo "ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)"
echo "Enter <ruleset> <address>"
while read -r line; do
  [ "$line" = '$=w' ] && printf '> localhost\\nMTA.Example.COM\\n[127.0.0.1]\\nbad name!\\n'
done
echo "> "
"""
DPKG_QUERY = """#!/bin/sh
shift 3
for name in "$@"; do
  case "$name" in
    m4) ;;
    sendmail-cf) echo "$name deinstall ok config-files" ;;
    *) echo "$name install ok installed" ;;
  esac
done
"""
RPM = '#!/bin/sh\n[ "$3" = m4 ] && exit 1\nexit 0\n'
SYSTEMCTL = '#!/bin/sh\n[ "$2" = sendmail ] && echo enabled || echo disabled\n'
MC = "divert(-1)\nOSTYPE(`debian')dnl\ninclude(`/etc/mail/smarthost-relay.m4')dnl\nMAILER_DEFINITIONS\nMAILER(`smtp')dnl\n"
PACKAGES = ["sendmail", "sendmail-cf", "m4"]


def executable(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def host(tmp_path, monkeypatch):
    """An empty host tree and fake programs; ``args`` names every path of it, ``populate()`` fills it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    mail = tmp_path / "etc" / "mail"
    kit = tmp_path / "cf"
    args = {"mc": mail / "sendmail.mc", "cf": mail / "sendmail.cf", "cf_kit": kit, "pid_file": tmp_path / "sendmail.pid",
            "private_dir": mail / "smarthost-relay", "fragment": mail / "smarthost-relay.m4",
            "empty_ca_dir": mail / "smarthost-relay" / "no-ca-certs",
            "authinfo": mail / "smarthost-relay" / "authinfo", "authinfo_db": mail / "smarthost-relay" / "authinfo-b.db",
            "genericstable": mail / "smarthost-relay-genericstable",
            "genericstable_db": mail / "smarthost-relay-genericstable.db"}

    def populate():
        args["empty_ca_dir"].mkdir(parents=True)
        (kit / "feature").mkdir(parents=True)
        (kit / "feature" / "check_cert_altnames.m4").write_text("dnl\n")
        args["mc"].write_text(MC)
        args["cf"].write_text("V10/Berkeley\nKauthinfo hash -o %s\n" % str(args["authinfo_db"])[:-len(".db")])
        args["pid_file"].write_text("%d\n" % os.getpid())
        for name, mode in (("private_dir", 0o700), ("empty_ca_dir", 0o755), ("authinfo_db", 0o600),
                           ("genericstable_db", 0o644), ("fragment", 0o644)):
            if not args[name].exists():
                args[name].write_text("")
            args[name].chmod(mode)
        executable(bin_dir / "dpkg-query", DPKG_QUERY)
        executable(bin_dir / "systemctl", SYSTEMCTL)

    module_args = dict({name: str(path) for name, path in args.items() if name != "authinfo_db"},
                       authinfo_maps=[str(mail / "smarthost-relay" / name) for name in ("authinfo-a", "authinfo-b", "authinfo-c")],
                       sendmail=executable(tmp_path / "sendmail", SENDMAIL), packages=PACKAGES)
    return {"args": module_args, "paths": args, "bin": bin_dir, "populate": populate}


def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        sendmail_probe.main()
    return json.loads(capsys.readouterr().out)


def snapshot(root):
    """Every path under ``root`` with its mode and content, to show that nothing changed."""
    found = {}
    for directory, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            found[path] = (st.st_mode, st.st_mtime_ns, st.st_size)
    return found


def test_argument_spec_is_the_documentation():
    assert sendmail_probe.ARGUMENT_SPEC == argument_spec_from_doc(sendmail_probe.DOCUMENTATION)
    assert set(sendmail_probe.ARGUMENT_SPEC) >= set(sendmail_host.PROBE_PATHS)


def test_a_host_with_everything(host, capsys):
    host["populate"]()
    result = run_module(host["args"], capsys)
    root = os.getuid() == 0 and os.getgid() == 0
    assert result["changed"] is False and not result.get("failed")
    assert set(result) - {"changed", "invocation"} == set(yaml.safe_load(sendmail_probe.RETURN))
    assert result["mc_exists"] and result["mc_has_smtp_mailer"] and result["cert_altnames"]
    assert result["cf_group"] == grp.getgrgid(os.getgid()).gr_name
    assert result["pid"] == str(os.getpid()) and result["running"]
    assert result["fragment_exists"] and result["authinfo_exists"] and result["genericstable_exists"]
    assert result["authinfo_map"] == str(host["paths"]["authinfo_db"])[:-len(".db")]
    # root_only is owner and mode together: the files carry the right modes, so only the owner decides here.
    assert [result[key] for key in ("private_dir_ok", "empty_ca_dir_ok", "authinfo_db_ok", "genericstable_db_ok")] \
        == [root] * 4
    assert result["local_names"] == ["[127.0.0.1]", "localhost", "mta.example.com"]
    assert result["packages_missing"] == ["sendmail-cf", "m4"]
    assert result["enabled"] is True


def test_an_empty_host(host, capsys):
    result = run_module(dict(host["args"], service="other"), capsys)
    expected = dict.fromkeys(("mc_exists", "mc_has_smtp_mailer", "cert_altnames", "running", "fragment_exists",
                              "daemon_stale", "authinfo_source_exists", "authinfo_map_current",
                              "private_dir_ok", "empty_ca_dir_ok", "authinfo_exists", "authinfo_db_ok",
                              "genericstable_exists", "genericstable_db_ok", "enabled"), False)
    expected.update(cf_group="root", pid="", local_names=[], packages_missing=PACKAGES, authinfo_map="",
                    authinfo_found=[])
    assert {key: result[key] for key in expected} == expected


def test_check_mode_is_the_same_run_and_changes_nothing(host, capsys):
    host["populate"]()
    before = snapshot(host["paths"]["mc"].parent.parent.parent)
    real = run_module(host["args"], capsys)
    checked = run_module(dict(host["args"], _ansible_check_mode=True), capsys)
    assert checked == real
    assert snapshot(host["paths"]["mc"].parent.parent.parent) == before


@pytest.mark.parametrize("owner, mode, wanted, ok", [
    ((0, 0), 0o700, 0o700, True),
    ((0, 0), 0o750, 0o700, False),
    ((1000, 0), 0o600, 0o600, False),
    ((0, 8), 0o644, 0o644, False),
])
def test_root_only_is_owner_group_and_mode(owner, mode, wanted, ok):
    fake = os.stat_result((0o100000 | mode, 0, 0, 1, owner[0], owner[1], 0, 0, 0, 0))
    assert sendmail_host.root_only("/x", wanted, stat_path=lambda path: fake) is ok


def test_missing_file_is_not_root_only(tmp_path):
    assert sendmail_host.root_only(str(tmp_path / "nothing"), 0o600) is False


@pytest.mark.parametrize("content, expected", [
    ("", ("", False)),
    ("not a pid\n", ("", False)),
    ("4194305\n", ("4194305", False)),  # above the kernel's largest pid_max
    (None, ("", False)),
])
def test_daemon_reads_the_pid_file(tmp_path, content, expected):
    pid_file = tmp_path / "sendmail.pid"
    if content is not None:
        pid_file.write_text(content)
    assert sendmail_host.daemon(str(pid_file)) == expected


def test_packages_with_rpm_and_with_neither(host):
    assert sendmail_host.missing_packages(PACKAGES) == PACKAGES
    executable(host["bin"] / "rpm", RPM)
    assert sendmail_host.missing_packages(PACKAGES) == ["m4"]
    assert sendmail_host.missing_packages([]) == []


def test_mc_without_the_smtp_mailer(host, capsys):
    host["populate"]()
    host["paths"]["mc"].write_text(MC.replace("MAILER(`smtp')dnl\n", "dnl MAILER(local)\n"))
    result = run_module(host["args"], capsys)
    assert result["mc_exists"] and not result["mc_has_smtp_mailer"]


def test_local_names_need_sendmail_and_the_cf(host):
    host["populate"]()
    assert sendmail_host.local_names(str(host["bin"] / "no-sendmail"), host["args"]["cf"]) == []
    assert sendmail_host.local_names(host["args"]["sendmail"], host["args"]["cf"] + ".missing") == []


def touch(path, seconds):
    """Set ``path``'s modification time to ``seconds`` after the epoch."""
    os.utime(str(path), ns=(seconds * 10**9, seconds * 10**9))


def test_the_auth_map_is_the_one_the_live_cf_names(host, capsys):
    """The role builds new credentials under another name; the probe reports the name sendmail.cf reads, the
    role's names that have a map file, and whether the live map is as new as its source."""
    host["populate"]()
    private = host["paths"]["private_dir"]
    live, previous, source = host["paths"]["authinfo_db"], private / "authinfo-a.db", host["paths"]["authinfo"]
    previous.write_text("")
    source.write_text("AuthInfo:relay ...\n")
    touch(source, 1000), touch(live, 1000)
    result = run_module(host["args"], capsys)
    assert (result["authinfo_source_exists"], result["authinfo_exists"]) == (True, True)
    assert result["authinfo_map"] == str(live)[:-len(".db")] and result["authinfo_map_current"] is True
    assert sorted(result["authinfo_found"]) == [str(previous)[:-len(".db")], str(live)[:-len(".db")]]
    touch(source, 1001)  # new credentials written, the map not yet built from them
    assert run_module(host["args"], capsys)["authinfo_map_current"] is False
    live.unlink()
    assert run_module(host["args"], capsys)["authinfo_db_ok"] is False
    host["paths"]["cf"].write_text("V10/Berkeley\nKauthinfo-other hash /x\n")
    previous.unlink(), source.unlink()
    result = run_module(host["args"], capsys)
    assert (result["authinfo_exists"], result["authinfo_found"], result["authinfo_map"], result["authinfo_db_ok"],
            result["authinfo_map_current"]) == (False, [], "", False, False)


def test_a_daemon_that_has_not_read_the_cf_on_disk_is_stale(host, capsys):
    """Sendmail rewrites its pid file when it starts or reloads: a cf written after it is one it has not read."""
    host["populate"]()
    touch(host["paths"]["pid_file"], 2000), touch(host["paths"]["cf"], 1000)
    assert run_module(host["args"], capsys)["daemon_stale"] is False
    touch(host["paths"]["cf"], 3000)
    assert run_module(host["args"], capsys)["daemon_stale"] is True
    host["paths"]["pid_file"].write_text("not a pid\n")
    touch(host["paths"]["pid_file"], 2000)
    assert run_module(host["args"], capsys)["daemon_stale"] is False  # no daemon runs
