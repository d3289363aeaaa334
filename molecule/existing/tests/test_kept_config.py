# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the administrator had configured before the roles came (prepare.yml, copied to /root/before-relay-role)
is still there and still works; the roles changed only what they own. The unrelated plays did their part."""

from __future__ import annotations

import re
from pathlib import Path

from existing_mail import in_mailbox, mid, send, smtp_greeting, smtp_rcpt_reply

BEFORE = "/root/before-relay-role"
ROLES = Path(__file__).resolve().parents[3] / "roles"
# The main.cf settings smarthost.relay.postfix sets for this inventory (roles/postfix/vars/main.yml,
# __postfix_main_settings): every other setting must keep its value.
POSTFIX_OWNED = {
    "relayhost", "inet_interfaces", "mynetworks", "smtpd_relay_restrictions", "smtp_tls_security_level",
    "smtp_tls_wrappermode", "smtp_tls_loglevel", "smtp_tls_CAfile", "smtp_tls_secure_cert_match",
    "smtp_sasl_auth_enable", "smtp_sasl_password_maps", "smtp_sasl_security_options",
    "smtp_sasl_tls_security_options", "smtp_sasl_mechanism_filter", "sender_dependent_default_transport_maps",
    "relay-null_destination_recipient_limit", "smtp_connection_cache_destinations",
    "smtp_connection_cache_time_limit", "smtp_tls_connection_reuse", "smtp_delivery_status_filter",
    "smtp_generic_maps",
}
POSTFIX_OWNED_SERVICES = {"relay-null/unix", "tlsproxy/unix"}
INCLUDE_LINE = "include(`/etc/mail/smarthost-relay.m4')dnl # smarthost.relay.sendmail"


def settings(text):
    return dict(line.split(" = ", 1) if " = " in line else (line.rstrip(" ="), "") for line in text.splitlines())


def services(text):
    """postconf -M output: {name/type: the entry, white space collapsed}."""
    entries = (line.split() for line in text.splitlines() if line.strip())
    return {"%s/%s" % (fields[0], fields[1]): " ".join(fields) for fields in entries}


def test_owned_postfix_settings_are_the_roles_own():
    role_vars = (ROLES / "postfix" / "vars" / "main.yml").read_text(encoding="utf-8")
    for name in POSTFIX_OWNED:
        assert name.replace("relay-null", "") in role_vars, name


def test_postfix_changed_only_the_settings_it_owns(postfix):
    before = settings(postfix.check_output("cat %s/postconf-n" % BEFORE))
    after = settings(postfix.check_output("postconf -n"))
    changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    assert changed - POSTFIX_OWNED == set()
    for name in ("smtpd_banner", "mydestination", "virtual_alias_maps", "header_checks", "message_size_limit",
                 "alias_maps", "myhostname"):
        assert after[name] == before[name], name
    # The old smarthost is replaced, as the role is there to do.
    assert (before["relayhost"], after["relayhost"]) == ("[old-smarthost.corp.test]:25", "[relay.smarthost.test]:587")


def test_postfix_master_cf_kept_every_service(postfix):
    before = services(postfix.check_output("cat %s/postconf-M" % BEFORE))
    after = services(postfix.check_output("postconf -M"))
    assert {name: entry for name, entry in after.items() if name not in POSTFIX_OWNED_SERVICES} \
        == {name: entry for name, entry in before.items() if name not in POSTFIX_OWNED_SERVICES}
    assert "2525/inet" in after


def test_postfix_maps_untouched_and_services_answer(postfix):
    for name, path in (("aliases", "/etc/aliases"), ("virtual", "/etc/postfix/virtual"),
                       ("header_checks", "/etc/postfix/header_checks")):
        assert postfix.run("cmp %s/%s %s" % (BEFORE, name, path)).rc == 0, path
    assert "ESMTP CorpMail" in smtp_greeting(postfix, 25)
    assert smtp_greeting(postfix, 2525).startswith("pfx.corp.test ESMTP")


def test_postfix_local_alias_still_delivers(postfix):
    message_id = mid("pfx-local")
    send(postfix, "it-ops@example.com", ["helpdesk@localhost"], message_id)
    assert in_mailbox(postfix, "alice", message_id)


def test_sendmail_mc_kept_apart_from_the_include(sendmail):
    before = sendmail.check_output("cat %s/sendmail.mc" % BEFORE).splitlines()
    after = sendmail.check_output("cat /etc/mail/sendmail.mc").splitlines()
    assert after.count(INCLUDE_LINE) == 1
    assert [line for line in after if line != INCLUDE_LINE] == before
    # The role's lines come before the mailers, after the administrator's.
    assert after.index("dnl # END corp local settings") < after.index(INCLUDE_LINE) < after.index("MAILER_DEFINITIONS")


def test_sendmail_files_untouched_and_local_settings_in_force(sendmail):
    for name in ("aliases", "access", "submit.mc"):
        assert sendmail.run("cmp %s/%s /etc/mail/%s" % (BEFORE, name, name)).rc == 0, name
    assert "CorpMail Sendmail" in smtp_greeting(sendmail, 25)
    assert re.match(r"^5\d\d ", smtp_rcpt_reply(sendmail, "blocked@example.com", "helpdesk@localhost"))
    assert smtp_rcpt_reply(sendmail, "it-ops@example.com", "helpdesk@localhost").startswith("250 ")


def test_sendmail_local_alias_still_delivers(sendmail):
    message_id = mid("smx-local")
    send(sendmail, "it-ops@example.com", ["helpdesk@localhost"], message_id)
    assert in_mailbox(sendmail, "alice", message_id, timeout=90)


def test_unrelated_plays_did_their_part(postfix, sendmail):
    for host in (postfix, sendmail):
        assert host.file("/etc/motd").content_string == "Corp server: managed by the site playbook\n"
        assert host.file("/etc/corp-site-version").content_string == "site-playbook=2026.11\n"
        # The line prepare left, then the plays' lines in play order; the tasks around include_role ran on both.
        assert host.file("/etc/corp-site.conf").content_string.splitlines() == [
            "owner=it-ops", "backup=nightly", "maintenance=mail-relay", "relay=relay.smarthost.test:587"]
