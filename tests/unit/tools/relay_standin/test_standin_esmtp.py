# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ESMTP as real MTAs speak it: the extensions Google advertises, and the
parameters Postfix and Sendmail send (a 555 to them is a stand-in bug)."""

from __future__ import annotations

import socket

import pytest

from relay_standin.testing import message

LOGIN = ("alice@example.com", "alice-pw")


@pytest.fixture
def standin(relay_standin_factory):
    return relay_standin_factory(allowlist=["127.0.0.1"], users={"alice@example.com": "alice-pw"})


def test_ehlo_advertises_what_google_does(standin, relay_client):
    client = relay_client.connect(standin, port=25, starttls=False)
    for keyword in ("size", "8bitmime", "starttls", "enhancedstatuscodes", "pipelining", "dsn", "smtputf8"):
        assert client.has_extn(keyword), keyword
    assert int(client.esmtp_features["size"]) > 10 * 1024 * 1024
    assert not client.has_extn("auth")
    client.quit()


def test_mail_parameters_of_real_mtas(standin, relay_client):
    client = relay_client.connect(standin, login=LOGIN)
    options = ["SIZE=%d" % len(message()), "BODY=8BITMIME", "AUTH=<>", "RET=HDRS", "ENVID=Q123+2Bx"]
    assert client.mail("alice@example.com", options) == (250, b"2.1.0 OK")
    assert client.rcpt("bob@remote.test", ["NOTIFY=SUCCESS,FAILURE,DELAY", "ORCPT=rfc822;bob@remote.test"])[0] == 250
    assert client.rcpt("carol@remote.test", ["NOTIFY=NEVER"])[0] == 250
    assert client.data(message())[0] == 250
    client.quit()
    [record] = standin.transactions()
    assert record["sender_params"] == options
    assert record["recipient_params"] == {
        "bob@remote.test": ["NOTIFY=SUCCESS,FAILURE,DELAY", "ORCPT=rfc822;bob@remote.test"],
        "carol@remote.test": ["NOTIFY=NEVER"],
    }


def test_auth_parameter_with_address(standin, relay_client):
    client = relay_client.connect(standin, login=LOGIN)
    assert client.mail("alice@example.com", ["AUTH=alice@example.com"])[0] == 250
    client.quit()


def test_smtputf8_and_8bit_body(standin, relay_client):
    client = relay_client.connect(standin)
    assert client.mail("jos\u00e9@example.com", ["SMTPUTF8", "BODY=8BITMIME"])[0] == 250
    assert client.rcpt("m\u00fcller@remote.test")[0] == 250
    body = "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode("utf-8")
    assert client.data(body)[0] == 250
    client.quit()


@pytest.mark.parametrize("command, params, code", [
    ("mail", ["RET=SOMETIMES"], 501),
    ("mail", ["FOO=bar"], 555),           # not advertised: refusing it is right
    ("mail", ["SIZE=999999999999"], 552),
    ("mail", ["BODY=BINARYMIME"], 501),   # not advertised
    ("rcpt", ["NOTIFY=MAYBE"], 501),
    ("rcpt", ["ORCPT=bob@remote.test"], 501),
])
def test_malformed_or_unadvertised_parameters_are_refused(standin, relay_client, command, params, code):
    client = relay_client.connect(standin)
    if command == "rcpt":
        assert client.mail("alice@example.com")[0] == 250
        assert client.rcpt("bob@remote.test", params)[0] == code
    else:
        assert client.mail("alice@example.com", params)[0] == code
    client.quit()


def test_helo_instead_of_ehlo(standin, relay_client):
    client = relay_client.connect(standin, port=25, ehlo=False, starttls=False)
    assert client.helo("mta.example.com")[0] == 250
    assert client.sendmail("alice@example.com", ["bob@remote.test"], message()) == {}
    client.quit()
    [record] = standin.transactions()
    assert (record["helo"], record["helo_verb"]) == ("mta.example.com", "HELO")


def test_pipelined_transaction(standin):
    with socket.create_connection(("127.0.0.1", standin.port_for(25)), timeout=5) as sock:
        stream = sock.makefile("rwb")
        assert stream.readline().startswith(b"220 ")
        stream.write(b"EHLO mta.example.com\r\n")
        stream.flush()
        while not stream.readline().startswith(b"250 "):
            pass
        stream.write(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<a@remote.test>\r\nRCPT TO:<b@remote.test>\r\n"
                     b"DATA\r\n")
        stream.flush()
        replies = [stream.readline()[:3] for dummy in range(4)]
        assert replies == [b"250", b"250", b"250", b"354"]
        stream.write(message() + b".\r\nQUIT\r\n")
        stream.flush()
        assert stream.readline().startswith(b"250 2.0.0 OK")
        assert stream.readline().startswith(b"221")


def test_dot_stuffing_and_size(standin, relay_client):
    client = relay_client.connect(standin)
    body = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n"
    assert client.sendmail("alice@example.com", ["bob@remote.test"], body) == {}
    client.quit()
    [record] = standin.transactions()
    assert record["size"] == len(body)
