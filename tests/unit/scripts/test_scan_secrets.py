# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/scan_secrets.py: which passwords it collects, where it finds them, its exit status.

The script is loaded from its file (scripts/ is not a package) and run on a tree built in tmp_path.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

MOLECULE_YML = """\
provisioner:
  inventory:
    host_vars:
      mta:
        relay_auth_password: host-var-Secret-1
        relay_auth_password_note: not-a-password
    group_vars:
      relay:
        relay_standin_config:
          users:
            app@example.com: standin-Secret-2
            templated@example.com: "{{ lookup('env', 'X') }}"
"""
CONVERGE_YML = """\
- name: Converge
  hosts: all
  vars:
    relay_auth_password: converge-Secret-3
    relay_auth_username: app@example.com
"""


def _load():
    spec = importlib.util.spec_from_file_location("scan_secrets", ROOT / "scripts" / "scan_secrets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scan_secrets = _load()


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "molecule" / "one").mkdir(parents=True)
    (tmp_path / "molecule" / "one" / "molecule.yml").write_text(MOLECULE_YML)
    (tmp_path / "molecule" / "one" / "converge.yml").write_text(CONVERGE_YML)
    (tmp_path / ".cache" / "demo").mkdir(parents=True)
    (tmp_path / ".cache" / "demo" / "secrets.yml").write_text('relay_auth_password: "demo-Secret-4"\n')
    (tmp_path / ".cache" / "logs").mkdir()
    return tmp_path


def test_collects_inventory_users_vars_and_secrets_files(tree):
    secrets = scan_secrets.collect_secrets(tree)
    assert sorted(secrets) == ["converge-Secret-3", "demo-Secret-4", "host-var-Secret-1", "standin-Secret-2"]
    assert secrets["standin-Secret-2"] == "molecule/one/molecule.yml: users.app@example.com"
    assert secrets["demo-Secret-4"] == ".cache/demo/secrets.yml: relay_auth_password"


def test_clean_logs_pass(tree):
    (tree / ".cache" / "logs" / "molecule-one.log").write_text("ok: [mta] => {\"censored\": \"...no_log...\"}\n")
    assert scan_secrets.scan(scan_secrets.collect_secrets(tree), [tree / ".cache" / "logs"]) == []


def test_plain_and_base64_leaks_are_counted_per_file(tree):
    logs = tree / ".cache" / "logs"
    (logs / "nested").mkdir()
    (logs / "molecule-one.log").write_text("password=converge-Secret-3 again converge-Secret-3\n")
    encoded = base64.b64encode(b"standin-Secret-2").decode()
    (logs / "nested" / "ansible.log").write_bytes(b"\x00binary AUTH " + encoded.encode() + b"\n")
    hits = scan_secrets.scan(scan_secrets.collect_secrets(tree), [logs])
    assert sorted((Path(path).name, count, source) for path, count, source in hits) == [
        ("ansible.log", 1, "molecule/one/molecule.yml: users.app@example.com"),
        ("molecule-one.log", 2, "molecule/one/converge.yml: relay_auth_password"),
    ]


def test_main_exit_status_and_report_never_prints_the_secret(tree, monkeypatch, capsys):
    monkeypatch.delenv("ANSIBLE_LOG_PATH", raising=False)
    extra = tree / "ansible.log"
    extra.write_text("nothing here\n")
    assert scan_secrets.main([str(extra)], root=tree) == 0
    extra.write_text("-vvv output with demo-Secret-4 in it\n")
    assert scan_secrets.main([str(extra)], root=tree) == 1
    out = capsys.readouterr().out
    assert "SECRET LEAKED: %s" % extra in out and ".cache/demo/secrets.yml" in out
    assert "demo-Secret-4" not in out


def test_no_secrets_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("ANSIBLE_LOG_PATH", raising=False)
    assert scan_secrets.main([], root=tmp_path) == 2


def test_the_checkout_has_test_bed_passwords():
    secrets = scan_secrets.collect_secrets(ROOT)
    assert any(source.startswith("molecule/") for source in secrets.values())
