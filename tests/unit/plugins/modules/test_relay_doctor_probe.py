# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smarthost.relay.relay_doctor's probe against the relay stand-in on loopback (a healthy Postfix host faked around
it): a healthy probe walks every step and leaves no message in the stand-in's record, also in check mode; each cause
the stand-in can induce is named at its step with its fix; the password is never in the result."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from relay_standin.pytest_plugin import DEFAULT_PASSWORD, DEFAULT_USER
from relay_standin.testing import free_port

from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_host, doctor_probe
from ansible_collections.smarthost.relay.plugins.modules import relay_doctor

WRONG_PASSWORD = "wrong-pw-7Qx9"
SENDER = "app@example.com"
RECIPIENT = "check@example.net"
HELO = "mta1.example.com"
HEALTHY_STEPS = ["CONNECT", "EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "RSET", "QUIT"]


@pytest.fixture
def healthy_host(tmp_path, monkeypatch):
    """A Postfix host with an empty queue and an empty log: whatever the verdict says comes from the probe."""
    log = tmp_path / "mail.log"
    log.write_text("")

    def run_command(self, argv, **kwargs):  # pylint: disable=unused-argument
        return (0, "", "") if argv[0].endswith("postqueue") else (1, "", "not here")

    monkeypatch.setattr("ansible.module_utils.basic.AnsibleModule.run_command", run_command)
    monkeypatch.setattr(doctor_host, "has_journal", lambda: False)
    monkeypatch.setattr(doctor_host, "detect_mta", lambda *a, **k: "postfix")
    return str(log)


@pytest.fixture
def start_relay(relay_standin_factory):
    """``start_relay(**config)``: a stand-in with alice as a user and 127.0.0.1 allowlisted, ``config`` on top."""
    def start(tls=True, **config):
        settings = {"users": {DEFAULT_USER: DEFAULT_PASSWORD}, "allowlist": ["127.0.0.1"]}
        settings.update(config)
        return relay_standin_factory(tls=tls, **settings)
    return start


def probe_args(relay_pki, log, port, **changes):
    """The module's arguments: the doctor on the faked host, the probe as a Postfix role would set it up."""
    args = {"log_file": log, "probe": True, "probe_sender": SENDER, "probe_recipient": RECIPIENT,
            "probe_timeout": 10, "relay_host": "127.0.0.1", "relay_port": port, "relay_tls": "required",
            "relay_tls_ca_file": str(relay_pki / "ca.pem"), "relay_helo_name": HELO, "relay_auth": True,
            "relay_auth_username": DEFAULT_USER, "relay_auth_password": DEFAULT_PASSWORD}
    args.update(changes)
    return args


def run_module(args, capsys):
    """The module's result, and its output as printed (to look for the password in)."""
    with patch_module_args(args), pytest.raises(SystemExit):
        relay_doctor.main()
    out = capsys.readouterr().out
    return json.loads(out), out


def assert_no_password(out, *passwords):
    """Neither password in the output, nor the mask Ansible puts where a no_log value stood (so nothing was
    hidden after the fact either)."""
    for password in passwords:
        assert password not in out
    assert doctor_probe.HIDDEN not in out


def assert_nothing_sent(standin, session=True):
    """The stand-in saw the session end (``session``: it got as far as SMTP) and kept no message: no accepted
    transaction, no size, no message id."""
    records = standin.wait_for(lambda found: any(r.get("kind") == "connection" for r in found) or not session)
    transactions = [r for r in records if r.get("kind") == "transaction"]
    assert all(t["verdict"] != "accepted" and not t.get("size") and not t.get("message_id") for t in transactions)
    return transactions


@pytest.mark.parametrize("check_mode", [False, True])
def test_healthy_probe_walks_every_step_and_sends_nothing(start_relay, relay_pki, healthy_host, capsys,
                                                          check_mode):
    standin = start_relay(auth_required=True)
    args = probe_args(relay_pki, healthy_host, standin.port_for(587), _ansible_check_mode=check_mode)
    result, out = run_module(args, capsys)
    probe = result["probe"]
    assert result["changed"] is False and result["verdict"] == "healthy" and result["reasons"] == []
    assert (probe["verdict"], probe["stopped_at"], probe["diagnosis"]) == ("ok", None, None)
    assert [step["step"] for step in probe["steps"]] == HEALTHY_STEPS
    assert [step["code"] for step in probe["steps"]] == [220, 250, 220, 250, 235, 250, 250, 250, 221]
    assert probe["relay"] == {"host": "127.0.0.1", "port": standin.port_for(587), "tls": "required",
                              "tls_verify": True, "tls_ca_file": str(relay_pki / "ca.pem"), "helo": HELO,
                              "auth": True, "auth_username": DEFAULT_USER}
    assert_no_password(out, DEFAULT_PASSWORD)
    [transaction] = assert_nothing_sent(standin)
    assert (transaction["verdict"], transaction["sender"], transaction["recipients"]) == (
        "abandoned", SENDER, [RECIPIENT])
    assert (transaction["helo"], transaction["auth_user"], transaction["tls"]) == (HELO, DEFAULT_USER, True)
    assert standin.connections()[0]["end"] == "quit"


def test_healthy_probe_with_implicit_tls(start_relay, relay_pki, healthy_host, capsys):
    standin = start_relay()
    args = probe_args(relay_pki, healthy_host, standin.port_for(465), relay_tls="implicit")
    result, dummy = run_module(args, capsys)
    probe = result["probe"]
    assert probe["verdict"] == "ok"
    assert [step["step"] for step in probe["steps"]] == ["CONNECT", "EHLO", "AUTH", "MAIL", "RCPT", "RSET", "QUIT"]
    [transaction] = assert_nothing_sent(standin)
    assert transaction["tls_mode"] == "implicit"


# (id, the stand-in's config, the probe's changes, where it stops, the class, the probe's verdict)
CAUSES = [
    ("allowlist", {"allowlist": ["10.9.8.0/24"]}, {}, "MAIL", "allowlist", "blocked"),
    ("bad-credentials", {}, {"relay_auth_password": WRONG_PASSWORD}, "AUTH", "bad_credentials", "blocked"),
    ("auth-required", {"auth_required": True}, {"relay_auth": False}, "MAIL", "auth_required", "blocked"),
    ("tls-required", {"require_tls": True}, {"relay_tls": "none", "relay_auth": False}, "MAIL", "tls_required",
     "blocked"),
    ("auth-without-tls", {}, {"relay_tls": "none"}, "AUTH", "tls_required", "blocked"),
    ("unregistered-sender", {"allowed_senders": "registered_users"}, {}, "MAIL", "unregistered_sender", "blocked"),
    ("sender-outside-domains", {}, {"probe_sender": "app@elsewhere.test"}, "MAIL", "sender_domain", "blocked"),
    ("null-sender", {}, {"probe_sender": "<>", "relay_auth": False, "relay_helo_name": "mta1.elsewhere.test"},
     "MAIL", "null_sender", "blocked"),
    ("user-daily-limit", {"faults": [{"stage": "mail", "reply_key": "user_daily"}]}, {}, "MAIL", "user_daily_limit",
     "blocked"),
    ("customer-daily-limit", {"faults": [{"stage": "rcpt", "reply_key": "customer_daily"}]}, {}, "RCPT",
     "customer_daily_limit", "blocked"),
    ("peak-limit", {"faults": [{"stage": "rcpt", "reply_key": "customer_peak"}]}, {}, "RCPT", "peak_limit",
     "degraded"),
    ("too-many-recipients", {"faults": [{"stage": "rcpt", "reply_key": "too_many_recipients"}]}, {}, "RCPT",
     "too_many_recipients", "degraded"),
    ("dos-generic-helo", {}, {"relay_helo_name": "localhost"}, "EHLO", "dos_helo", "degraded"),
    ("helo-invalid", {}, {"relay_helo_name": "mta1_example.com"}, "EHLO", "helo_name", "blocked"),
    ("starttls-refused", {"faults": [{"stage": "starttls", "reply": "454 4.7.0 TLS not available due to local "
                                      "problem"}]}, {}, "STARTTLS", "tls_failure", "blocked"),
]


@pytest.mark.parametrize("config,changes,stage,key,verdict", [case[1:] for case in CAUSES],
                         ids=[case[0] for case in CAUSES])
# pylint: disable-next=too-many-arguments,too-many-positional-arguments
def test_each_cause_is_named_at_its_step(start_relay, relay_pki, healthy_host, capsys, config, changes, stage, key,
                                         verdict):
    standin = start_relay(**config)
    result, out = run_module(probe_args(relay_pki, healthy_host, standin.port_for(587), **changes), capsys)
    probe = result["probe"]
    assert (probe["stopped_at"], probe["diagnosis"]["class"], probe["verdict"]) == (stage, key, verdict), probe
    assert probe["diagnosis"]["stage"] == stage and probe["diagnosis"]["fixes"]
    assert probe["steps"][-1]["step"] in (stage, "QUIT")
    assert result["verdict"] == verdict
    assert "probe stopped at %s: %s" % (stage, probe["diagnosis"]["title"]) in result["reasons"]
    assert_no_password(out, DEFAULT_PASSWORD, WRONG_PASSWORD)
    assert_nothing_sent(standin)


def test_allowlist_fix_names_the_address_the_relay_saw(start_relay, relay_pki, healthy_host, capsys):
    standin = start_relay(allowlist=["10.9.8.0/24"])
    result, dummy = run_module(probe_args(relay_pki, healthy_host, standin.port_for(587)), capsys)
    diagnosis = result["probe"]["diagnosis"]
    assert diagnosis["reply"]["code"] == 550 and diagnosis["catalogue"] == "relay_denied"
    assert diagnosis["fixes"][0] == {"variable": "relay_allowlist", "value": "127.0.0.1/32",
                                     "why": "list the address the relay saw in the setting and in relay_allowlist"}


@pytest.mark.parametrize("port,tls,stage", [(587, "required", "STARTTLS"), (465, "implicit", "CONNECT")])
# pylint: disable-next=too-many-arguments,too-many-positional-arguments
def test_impostor_certificate_is_a_tls_failure(start_relay, relay_pki, healthy_host, capsys, port, tls, stage):
    standin = start_relay()
    standin.reconfigure(tls={"cert": str(relay_pki / "untrusted.pem"), "key": str(relay_pki / "untrusted.key")})
    result, out = run_module(probe_args(relay_pki, healthy_host, standin.port_for(port), relay_tls=tls), capsys)
    probe = result["probe"]
    assert (probe["stopped_at"], probe["diagnosis"]["class"], result["verdict"]) == (stage, "tls_failure", "blocked")
    assert "certificate verify failed" in probe["steps"][-1]["error"]
    assert "AUTH" not in [step["step"] for step in probe["steps"]]
    assert_no_password(out, DEFAULT_PASSWORD)
    assert_nothing_sent(standin, session=tls != "implicit")  # an implicit TLS handshake that failed is no session


def test_relay_without_starttls_when_tls_is_required(start_relay, relay_pki, healthy_host, capsys):
    standin = start_relay(tls=False)
    result, dummy = run_module(probe_args(relay_pki, healthy_host, standin.port_for(587)), capsys)
    probe = result["probe"]
    assert (probe["stopped_at"], probe["diagnosis"]["class"]) == ("STARTTLS", "tls_failure")
    assert [step["step"] for step in probe["steps"]] == ["CONNECT", "EHLO", "STARTTLS", "RSET", "QUIT"]
    assert_nothing_sent(standin)


def test_no_password_in_the_clear(start_relay, relay_pki, healthy_host, capsys):
    """AUTH without TLS stops before the password is sent: the stand-in saw no AUTH at all."""
    standin = start_relay()
    result, dummy = run_module(probe_args(relay_pki, healthy_host, standin.port_for(587), relay_tls="none"), capsys)
    probe = result["probe"]
    assert (probe["stopped_at"], probe["diagnosis"]["class"]) == ("AUTH", "tls_required")
    assert probe["steps"][2] == {"step": "AUTH", "code": None, "error": doctor_probe.CLEAR_TEXT_AUTH}
    [connection] = standin.wait_for_connections(1)
    assert (connection["auth_failures"], connection["auth_user"], connection["end"]) == (0, None, "quit")


def test_unreachable_relay(relay_pki, healthy_host, capsys):
    result, out = run_module(probe_args(relay_pki, healthy_host, free_port()), capsys)
    probe = result["probe"]
    assert (probe["stopped_at"], probe["diagnosis"]["class"]) == ("CONNECT", "unreachable")
    assert result["verdict"] == "blocked"
    assert probe["steps"] == [{"step": "CONNECT", "code": None, "error": "connect to the relay: connection refused"}]
    assert_no_password(out, DEFAULT_PASSWORD)


def test_probe_needs_a_recipient(healthy_host, relay_pki, capsys):
    args = probe_args(relay_pki, healthy_host, free_port())
    del args["probe_recipient"]
    result, dummy = run_module(args, capsys)
    assert result["failed"] and "probe_recipient" in result["msg"]


def test_no_probe_no_probe_key(healthy_host, capsys):
    result, dummy = run_module({"log_file": healthy_host}, capsys)
    assert "probe" not in result and result["verdict"] == "healthy"


def test_run_keeps_the_password_out_before_ansible_masks_anything(start_relay, relay_pki):
    """The module_utils result itself (no AnsibleModule masking) holds neither password."""
    standin = start_relay()
    for password in (DEFAULT_PASSWORD, WRONG_PASSWORD):
        settings = doctor_probe.Settings("127.0.0.1", standin.port_for(587), "required", True,
                                         str(relay_pki / "ca.pem"), HELO, True, DEFAULT_USER, password, SENDER,
                                         RECIPIENT, 10)
        text = json.dumps(doctor_probe.run(settings, "postfix"))
        assert password not in text and doctor_probe.HIDDEN not in text
