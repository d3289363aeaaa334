# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bare Debian 11/12/13 containers relay through the stand-in; the stand-in's record says how."""

from __future__ import annotations

import pytest

import relay_record

CLIENTS = relay_record.group_hosts("clients")
SWAKS = ["swaks", "--server", "relay.smarthost.test", "--from", "app@example.com", "--to", "someone@example.net",
         "--tls-verify", "--tls-ca-path", "/etc/ssl/certs/ca-certificates.crt"]


@pytest.fixture(scope="module")
def relay():
    return relay_record.relay()


def swaks(client, *args, message_id):
    return client.run(" ".join(SWAKS + list(args) + ["--header", "'Message-Id: %s'" % message_id]))


@pytest.mark.parametrize("client", CLIENTS, ids=lambda h: h.backend.name)
def test_submission_starttls_auth_verified(client, relay):
    mid = relay_record.unique_id("587")
    result = swaks(client, "--port", "587", "--tls", "--auth", "PLAIN", "--auth-user", "swaks@example.com",
                   "--auth-password", "swaks-secret-pw", "--ehlo", "mta.example.com", message_id=mid)
    assert result.rc == 0, result.stdout + result.stderr
    [record] = relay_record.wait_for_transactions(relay, message_id=mid)
    assert record["verdict"] == "accepted"
    assert record["port"] == 587 and record["tls"] is True
    assert record["auth_user"] == "swaks@example.com"
    assert record["helo"] == "mta.example.com"
    assert record["sender"] == "app@example.com" and record["recipients"] == ["someone@example.net"]


@pytest.mark.parametrize("client", CLIENTS, ids=lambda h: h.backend.name)
def test_implicit_tls_465_allowlisted(client, relay):
    mid = relay_record.unique_id("465")
    result = swaks(client, "--port", "465", "--tlsc", "--ehlo", "mta.example.com", message_id=mid)
    assert result.rc == 0, result.stdout + result.stderr
    [record] = relay_record.wait_for_transactions(relay, message_id=mid)
    assert record["verdict"] == "accepted"
    assert record["port"] == 465 and record["tls"] is True
    assert record["auth_user"] is None
    assert record["client_ip"] in client.interface("eth0").addresses


@pytest.mark.parametrize("client", CLIENTS, ids=lambda h: h.backend.name)
def test_plaintext_refused_when_tls_required(client, relay):
    before = len(relay_record.transactions(relay, port=25))
    result = client.run("swaks --server relay.smarthost.test --port 25 --from app@example.com "
                        "--to someone@example.net --ehlo mta.example.com")
    assert result.rc != 0
    assert "530" in result.stdout, result.stdout
    refused = relay_record.wait_for_transactions(relay, count=before + 1, port=25)
    assert refused and refused[-1]["verdict"] == "refused" and refused[-1]["tls"] is False


@pytest.mark.parametrize("client", CLIENTS, ids=lambda h: h.backend.name)
def test_verification_refuses_a_certificate_from_another_ca(client, relay):
    mid = relay_record.unique_id("wrong-ca")
    result = client.run(" ".join(SWAKS[:-1] + ["/usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt", "--port", "587",
                                               "--tls", "--header", "'Message-Id: %s'" % mid]))
    assert result.rc != 0, result.stdout
    assert not relay_record.transactions(relay, message_id=mid)
