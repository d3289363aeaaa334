# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Mail from both hosts reaches the relay the way their few relay_* variables say (molecule.yml), and the
administrator's own routing (aliases, virtual aliases, header checks) still applies to what goes there."""

from __future__ import annotations

from existing_mail import arrived, in_mailbox, mid, relayed_message, send

AUTH_USER = "pfx-app@example.com"


def client_ip(host):
    return host.interface("eth0").addresses[0]


def test_postfix_relays_on_587_with_starttls_and_auth(postfix, relay):
    message_id = mid("pfx")
    send(postfix, "it-ops@example.com", ["someone@example.net"], message_id)
    found = arrived(relay, message_id)[0]
    assert (found["port"], found["tls"], found["tls_mode"], found["auth_user"]) == (587, True, "starttls", AUTH_USER)
    # No relay_helo_name: Postfix introduces itself with its own name, as before.
    assert found["helo"] == postfix.check_output("postconf -h myhostname") == "pfx.corp.test"
    assert found["client_ip"] == client_ip(postfix)
    assert (found["sender"], found["recipients"]) == ("it-ops@example.com", ["someone@example.net"])


def test_sendmail_relays_on_587_with_starttls_allowlist_and_helo(sendmail, relay):
    message_id = mid("smx")
    send(sendmail, "it-ops@example.com", ["someone@example.net"], message_id)
    found = arrived(relay, message_id)[0]
    assert (found["port"], found["tls"], found["tls_mode"], found["auth_user"]) == (587, True, "starttls", None)
    assert (found["helo"], found["client_ip"]) == ("mail.example.com", client_ip(sendmail))
    assert (found["sender"], found["recipients"]) == ("it-ops@example.com", ["someone@example.net"])


def test_postfix_alias_to_a_remote_address_goes_through_the_relay(postfix, relay):
    message_id = mid("pfx-alias")
    send(postfix, "it-ops@example.com", ["oncall@localhost"], message_id)
    assert arrived(relay, message_id)[0]["recipients"] == ["pager@example.net"]


def test_postfix_virtual_alias_delivers_locally_and_through_the_relay(postfix, relay):
    message_id = mid("pfx-virtual")
    send(postfix, "it-ops@example.com", ["sales@corp.test"], message_id)
    assert arrived(relay, message_id)[0]["recipients"] == ["sales-archive@example.net"]
    assert in_mailbox(postfix, "alice", message_id)


def test_postfix_header_checks_still_apply_to_relayed_mail(postfix, relay):
    message_id = mid("pfx-header")
    send(postfix, "it-ops@example.com", ["someone@example.net"], message_id)
    assert "X-Corp-Checked: pfx" in relayed_message(relay, arrived(relay, message_id)[0])


def test_sendmail_alias_to_a_remote_address_goes_through_the_relay(sendmail, relay):
    message_id = mid("smx-alias")
    send(sendmail, "it-ops@example.com", ["oncall@localhost"], message_id)
    assert arrived(relay, message_id)[0]["recipients"] == ["pager@example.net"]
