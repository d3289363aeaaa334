# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ports, TLS and the test CA: 25 and 587 offer STARTTLS, 465 is implicit
TLS; "require TLS" refuses MAIL before STARTTLS; clients verify the
certificate for real."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from relay_standin.pytest_plugin import DEFAULT_LOGIN as LOGIN
from relay_standin.testing import catalogue_key, ipv6_loopback_available, message


@pytest.mark.parametrize("port", [25, 465, 587])
def test_each_port_relays_a_message(relay_standin, relay_client, port):
    client = relay_client.connect(relay_standin, port=port, login=LOGIN)
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = relay_standin.transactions()
    assert (record["port"], record["tls"], record["verdict"]) == (port, True, "accepted")
    assert record["tls_mode"] == ("implicit" if port == 465 else "starttls")
    assert record["tls_version"].startswith("TLSv1.")


@pytest.mark.parametrize("port", [25, 587])
def test_starttls_offered_on_plain_ports_but_not_after_tls(relay_standin, relay_client, port):
    client = relay_client.connect(relay_standin, port=port, starttls=False)
    assert client.has_extn("starttls")
    client.starttls(context=relay_client.context())
    client.ehlo("mta.example.com")
    assert not client.has_extn("starttls")
    assert client.docmd("STARTTLS")[0] == 503
    client.quit()


def test_implicit_tls_port_does_not_offer_starttls(relay_standin, relay_client):
    client = relay_client.connect(relay_standin, port=465)
    assert not client.has_extn("starttls")
    assert client.has_extn("auth")
    client.quit()


def test_require_tls_refuses_mail_before_starttls(relay_standin_factory, relay_client):
    standin = relay_standin_factory(require_tls=True, allowlist=["127.0.0.1"])
    client = relay_client.connect(standin, port=587, starttls=False)
    code, text = client.mail("alice@example.com")
    assert code == 530 and text.startswith(b"5.7.0 Must issue a STARTTLS command first.")
    assert catalogue_key((code, text)) == "starttls_first"
    client.quit()
    [record] = standin.transactions()
    assert (record["verdict"], record["code"], record["stage"], record["tls"]) == ("refused", 530, "mail", False)


def test_require_tls_accepts_mail_after_starttls(relay_standin_factory, relay_client):
    standin = relay_standin_factory(require_tls=True, allowlist=["127.0.0.1"])
    client = relay_client.connect(standin, port=587)
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()


def test_without_require_tls_plain_mail_is_accepted(relay_standin, relay_client):
    client = relay_client.connect(relay_standin, port=25, starttls=False)
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = relay_standin.transactions()
    assert (record["tls"], record["tls_version"], record["port"]) == (False, None, 25)


def test_auth_not_advertised_in_plaintext_and_refused_before_tls(relay_standin, relay_client):
    client = relay_client.connect(relay_standin, port=587, starttls=False)
    assert not client.has_extn("auth")
    code, text = client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXB3")
    assert code == 530 and text.startswith(b"5.7.0 Must issue a STARTTLS command first.")
    assert catalogue_key((code, text)) == "starttls_first"
    client.quit()


def test_auth_advertised_after_starttls(relay_standin, relay_client):
    client = relay_client.connect(relay_standin, port=587)
    assert set(client.esmtp_features["auth"].split()) == {"LOGIN", "PLAIN"}
    client.quit()


@pytest.mark.parametrize("port", [465, 587])
def test_certificate_from_the_test_ca_verifies(relay_standin, relay_client, port):
    client = relay_client.connect(relay_standin, port=port)
    sock = client.sock
    assert sock.getpeercert()["subject"][-1][0][1] == "relay.smarthost.test"
    client.quit()


@pytest.mark.parametrize("port", [465, 587])
def test_certificate_not_trusted_by_another_ca(relay_standin, relay_client, port):
    with pytest.raises(ssl.SSLCertVerificationError):
        relay_client.connect(relay_standin, port=port, ca="untrusted-ca.pem")


@pytest.mark.parametrize("port", [465, 587])
def test_impostor_certificate_switched_in_live_fails_verification(relay_standin, relay_client, relay_pki, port):
    relay_standin.reconfigure(tls={"cert": str(relay_pki / "untrusted.pem"), "key": str(relay_pki / "untrusted.key")})
    with pytest.raises(ssl.SSLCertVerificationError):
        relay_client.connect(relay_standin, port=port)
    client = relay_client.connect(relay_standin, port=port, ca="untrusted-ca.pem")
    client.quit()


def test_hostname_mismatch_fails_verification(relay_standin, relay_client):
    context = relay_client.context()
    client = smtplib.SMTP("127.0.0.1", relay_standin.port_for(587), local_hostname="mta.example.com", timeout=10)
    client.ehlo()
    with pytest.raises(ssl.SSLCertVerificationError):
        _starttls_as(client, context, "wrong.name.test")


def _starttls_as(client, context, server_hostname):
    """STARTTLS verifying the certificate for ``server_hostname``."""
    code, dummy = client.docmd("STARTTLS")
    assert code == 220
    client.sock = context.wrap_socket(client.sock, server_hostname=server_hostname)


def test_ipv6_loopback_connection(relay_standin_factory, relay_client):
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback")
    standin = relay_standin_factory(listen=["127.0.0.1", "::1"], allowlist=["::1"])
    client = relay_client.connect(standin, port=465, host="::1")
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = standin.transactions()
    assert record["client_ip"] == "::1"
