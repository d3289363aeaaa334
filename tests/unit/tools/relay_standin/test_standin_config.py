# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Configuration: schema validation, the shipped example, live reload."""

from __future__ import annotations

import hashlib
import os
import smtplib
import subprocess
import sys

import pytest

from relay_standin import cli, engine
from relay_standin.config import ConfigError, ConfigSource, load_settings, settings_from_mapping
from relay_standin.testing import (TOOLS_DIR, StandinProcess, config_bytes, loopback_config, message, wait_for_config,
                                   write_config)

EXAMPLE = TOOLS_DIR / "relay_standin" / "example-config.yml"


def test_example_config_is_valid():
    settings = load_settings(EXAMPLE)
    assert settings.listeners() == {"smtp": 25, "smtps": 465, "submission": 587}
    assert settings.listen == ("0.0.0.0", "::")
    assert settings.tls_cert.is_absolute()


def test_defaults(tmp_path):
    settings = settings_from_mapping({"ports": {"smtps": None}}, tmp_path)
    assert settings.allowed_senders == "domain_addresses"
    assert settings.quota.values["customer_peak_recipients"] == 9000
    assert settings.record is None and settings.faults == ()
    assert settings.reply_layout == "multiline" and settings.max_recipients_per_transaction == 100
    assert (settings.dos.max_new_connections, settings.dos.window_seconds, settings.dos.generic_helo,
            settings.dos.generic_helo_names) == (60, 60.0, True, ())
    assert settings.helo_fqdn_required is False


def test_dos_and_layout_settings(tmp_path):
    settings = settings_from_mapping({"ports": {"smtps": None}, "reply_layout": "single_line",
                                      "dos": {"max_new_connections": None, "window_seconds": 10,
                                              "generic_helo": False, "generic_helo_names": ["Box.Test."]},
                                      "limits": {"max_recipients_per_transaction": None}}, tmp_path)
    assert settings.reply_layout == "single_line" and settings.max_recipients_per_transaction is None
    assert (settings.dos.max_new_connections, settings.dos.window_seconds, settings.dos.generic_helo,
            settings.dos.generic_helo_names) == (None, 10.0, False, ("box.test",))


def test_relative_paths_follow_the_config_file(tmp_path):
    settings = settings_from_mapping({"tls": {"cert": "pki/relay.pem", "key": "pki/relay.key"},
                                      "record": "out/record.jsonl"}, tmp_path)
    assert settings.tls_cert == tmp_path / "pki" / "relay.pem"
    assert settings.record == tmp_path / "out" / "record.jsonl"


@pytest.mark.parametrize("mapping, message_part", [
    ({"bogus": 1}, "unknown key"),
    ({"allowed_senders": "everyone"}, "allowed_senders"),
    ({"allowlist": ["10.0.0.0/15"], "ports": {"smtps": None}}, "allowlist"),
    ({"allowlist": ["10.0.0.1/24"], "ports": {"smtps": None}}, "host bits"),
    ({"allowlist": ["fd00::/111"], "ports": {"smtps": None}}, "allowlist"),
    ({"tls": {"cert": "a.pem"}}, "both cert and key"),
    ({"require_tls": True, "ports": {"smtps": None}}, "need tls"),
    ({"auth_required": True, "ports": {"smtps": None}}, "need tls"),
    ({}, "smtps"),
    ({"ports": {"imap": 143}}, "unknown listener"),
    ({"ports": {"smtp": 70000, "smtps": None}}, "port number"),
    ({"licenses": 0, "ports": {"smtps": None}}, "licenses"),
    ({"limits": {"peak_window_seconds": 0}, "ports": {"smtps": None}}, "peak_window_seconds"),
    ({"limits": {"hourly": 5}, "ports": {"smtps": None}}, "unknown key"),
    ({"faults": [{"stage": "lunch"}], "ports": {"smtps": None}}, "stage"),
    ({"faults": [{"stage": "mail", "reply": "250 OK"}], "ports": {"smtps": None}}, "4xx or 5xx"),
    ({"faults": [{"stage": "mail", "action": "explode"}], "ports": {"smtps": None}}, "action"),
    ({"faults": [{"stage": "mail", "times": 0}], "ports": {"smtps": None}}, "times"),
    ({"faults": [{"stage": "mail", "ports": [2525]}], "ports": {"smtps": None}}, "ports"),
    ({"faults": [{"action": "unlisten", "stage": "mail"}], "ports": {"smtps": None}}, "unlisten"),
    ({"users": ["alice"], "ports": {"smtps": None}}, "users"),
    ({"reply_layout": "wrapped", "ports": {"smtps": None}}, "reply_layout"),
    ({"dos": {"burst": 5}, "ports": {"smtps": None}}, "unknown key"),
    ({"dos": {"max_new_connections": 0}, "ports": {"smtps": None}}, "max_new_connections"),
    ({"dos": {"window_seconds": 0}, "ports": {"smtps": None}}, "window_seconds"),
    ({"dos": {"generic_helo": "yes"}, "ports": {"smtps": None}}, "generic_helo"),
    ({"dos": [], "ports": {"smtps": None}}, "dos must be a mapping"),
    ({"helo_fqdn_required": 1, "ports": {"smtps": None}}, "helo_fqdn_required"),
    ({"limits": {"max_recipients_per_transaction": 0}, "ports": {"smtps": None}}, "max_recipients"),
    ({"faults": [{"stage": "mail", "reply": ["550-5.7.1 a", "550-5.7.1 b"]}], "ports": {"smtps": None}}, "'-'"),
    ({"faults": [{"stage": "mail", "reply_key": "nope"}], "ports": {"smtps": None}}, "reply catalogue"),
])
def test_invalid_configs_are_refused(tmp_path, mapping, message_part):
    with pytest.raises(ConfigError, match=message_part):
        settings_from_mapping(mapping, tmp_path)


def test_config_source_notices_every_rewrite(tmp_path):
    path = write_config(tmp_path / "config.yml", {"ports": {"smtps": None}})
    source = ConfigSource(path)
    assert source.changed()
    source.load()
    assert not source.changed()
    write_config(path, {"ports": {"smtps": None}})
    assert source.changed()


def test_broken_reload_keeps_previous_settings(relay_standin_factory, relay_client):
    standin = relay_standin_factory(allowlist=["127.0.0.1"])
    with pytest.raises(ValueError, match="allowed_senders"):
        standin.reconfigure(allowed_senders="nobody")
    client = relay_client.connect(standin)
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()


def test_subprocess_server_rereads_config_at_new_connection(tmp_path, relay_pki, relay_client):
    config = loopback_config(tmp_path, relay_pki, allowlist=["127.0.0.1"], domains=["example.org"])
    with StandinProcess(tmp_path, config) as standin:
        client = relay_client.connect(standin)
        assert client.mail("alice@example.com")[0] == 550
        client.quit()
        standin.reconfigure(domains=["example.com"])   # no wait: checked at the next connection
        client = relay_client.connect(standin)
        assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
        client.quit()
        standin.wait_for_connections(2)
        assert [t["verdict"] for t in standin.transactions()] == ["refused", "accepted"]
    assert standin.process.returncode == 0
    with pytest.raises(ConnectionRefusedError):     # stopped: nothing listens any more
        smtplib.SMTP("127.0.0.1", standin.port_for(587), local_hostname="mta.example.com", timeout=2)


def test_serve_refuses_bad_config(tmp_path, capsys):
    path = write_config(tmp_path / "bad.yml", {"listen": ["127.0.0.1"], "nonsense": True})
    assert cli.main(["serve", "--config", str(path)]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_check_config_cli(tmp_path, capsys):
    assert cli.main(["check-config", "--config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.startswith("ok:")
    bad_path = write_config(tmp_path / "bad.yml", {"allowed_senders": "x"})
    assert cli.main(["check-config", "--config", str(bad_path)]) == 2
    assert "allowed_senders" in capsys.readouterr().err


def test_engine_path_override(tmp_path, monkeypatch):
    monkeypatch.setenv(engine.ENGINE_PATH_ENV, str(tmp_path))
    assert engine.engine_path() == tmp_path.resolve()
    monkeypatch.delenv(engine.ENGINE_PATH_ENV)
    assert (engine.engine_path() / "_relay" / "session.py").is_file()
    env = dict(os.environ, PYTHONPATH=str(TOOLS_DIR), RELAY_STANDIN_ENGINE_PATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", "import relay_standin.engine"], capture_output=True, text=True,
                            env=env, check=False)
    assert result.returncode != 0 and "RELAY_STANDIN_ENGINE_PATH" in result.stderr


def test_status_names_the_config_in_force_and_the_ports_listening(relay_standin_factory):
    """A server in its own process, which sees the file only by polling it."""
    standin = relay_standin_factory(process=True, allowlist=["127.0.0.1"])
    first = standin.status()
    assert first["config_sha256"] == hashlib.sha256(standin.config_path.read_bytes()).hexdigest()
    assert first["listening"] == standin.ports and first["config_error"] is None
    down = standin.apply(restart_epoch=7, faults=[{"action": "unlisten", "ports": [587]}])
    assert down["restart_epoch"] == 7 and "submission" not in down["listening"] and down["reloads"] == 1
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", standin.port_for(587), local_hostname="mta.example.com", timeout=2)
    up = standin.apply(faults=[])
    assert up["listening"]["submission"] == standin.port_for(587) and up["reloads"] == 2


def test_waiting_for_a_refused_config_names_the_error(relay_standin_factory):
    standin = relay_standin_factory(process=True, allowlist=["127.0.0.1"])
    refused = dict(standin.config, allowed_senders="nobody")
    write_config(standin.config_path, refused)
    with pytest.raises(TimeoutError, match="config_error.*allowed_senders"):
        wait_for_config(standin.status, config_bytes(refused), timeout=3)
