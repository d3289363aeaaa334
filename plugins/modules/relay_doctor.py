#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: relay_doctor
short_description: Explain why mail is stuck on its way to Google's SMTP relay
version_added: 0.1.0
description:
  - Reads the MTA's queue (C(postqueue -j); Sendmail's C(qf) files or C(mailq); C(qmail-qread) joined with
    qmail-send's log) and its mail log since O(window) seconds ago (the journal when systemd runs, else the classic
    file), and the relay guard's journal.
  - Names the cause of every relay reply or failure with one catalogue (code, enhanced status code and text; the SMTP
    stage kept), and gives per cause the service rule, the Admin console setting and the C(relay_*) or C(<mta>_*)
    variable to change, with the value this host needs when it is known (its egress address for the allowlist).
  - Changes nothing on the host; check mode runs the same read-only code.
  - With O(probe=true) it also asks the relay, from this host and with the role's relay settings, whether it would
    take a message. It connects, says EHLO with O(relay_helo_name), starts TLS verifying the certificate as
    configured (STARTTLS, or TLS from the first byte with O(relay_tls=implicit)), logs in when O(relay_auth) is on,
    gives C(MAIL FROM) O(probe_sender) and C(RCPT TO) O(probe_recipient), then C(RSET) and C(QUIT). It never sends
    C(DATA), so no message is sent. The first step that does not pass is named with the same catalogue, and a probe
    that stops raises the verdict to the cause's severity.
author: smarthost.relay maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smarthost.relay._attributes
attributes:
  check_mode:
    support: full
    details: Only reads; check mode returns the same report, and runs the probe too (the probe sends no message).
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  mta:
    description:
      - The MTA to examine; V(auto) finds Postfix, then qmail, then Sendmail.
    type: str
    choices: [auto, postfix, sendmail, qmail]
    default: auto
  window:
    description:
      - How far back to read the mail log, in seconds. The default covers the relay's 24-hour limit window.
    type: int
    default: 86400
  log_file:
    description:
      - A log file to read instead of the journal or the classic mail log (for example qmail-send's multilog
        C(current)).
    type: path
  egress_address:
    description:
      - The public address this host's mail leaves from, for the allowlist fix when the relay's reply does not
        name it.
    type: str
  guard:
    description:
      - Also read the relay guard's journal (C(smarthost-relay-guard)).
    type: bool
    default: true
  qmail_dir:
    description:
      - qmail's home.
    type: path
    default: /var/qmail
  sendmail_queue_dir:
    description:
      - Sendmail's queue directory.
    type: path
    default: /var/spool/mqueue
  probe:
    description:
      - Also probe the relay from this host (see the description); the result is in RV(probe).
    type: bool
    default: false
  probe_sender:
    description:
      - The probe's envelope sender (C(MAIL FROM)); V(<>) probes the null sender.
      - Unset, the SMTP AUTH user when O(relay_auth) is on; needed otherwise.
    type: str
  probe_recipient:
    description:
      - The probe's recipient (C(RCPT TO)); needed with O(probe=true). Nothing is sent to it.
    type: str
  probe_timeout:
    description:
      - Seconds to wait for the connection and for each reply.
    type: int
    default: 30
  relay_host:
    description:
      - The relay the probe connects to, and the name its certificate must carry (the role's O(relay_host)).
    type: str
    default: smtp-relay.gmail.com
  relay_port:
    description:
      - The relay's port; unset, 465 with O(relay_tls=implicit) and 587 otherwise (as the roles derive it).
    type: int
  relay_tls:
    description:
      - V(required) STARTTLS, the probe stops when the relay offers none; V(opportunistic) STARTTLS when offered;
        V(implicit) TLS from the first byte; V(none) no TLS.
    type: str
    choices: [none, opportunistic, required, implicit]
    default: required
  relay_tls_verify:
    description:
      - Verify the relay's certificate and name; unset, true with O(relay_tls=required) or O(relay_tls=implicit).
    type: bool
  relay_tls_ca_file:
    description:
      - CA bundle on this host to verify the relay with; unset or empty, the system's bundle.
    type: path
  relay_helo_name:
    description:
      - The name the probe gives in EHLO; empty, this host's fully qualified name.
    type: str
    default: ""
  relay_auth:
    description:
      - Log in with SMTP AUTH (PLAIN, one attempt) before C(MAIL FROM). Only inside TLS; without it the probe stops
        at AUTH (C(tls_required)) and never sends the password.
    type: bool
    default: false
  relay_auth_username:
    description:
      - The SMTP AUTH user.
    type: str
    default: ""
  relay_auth_password:
    description:
      - The SMTP AUTH password; only ever sent in the AUTH command, never in the result.
    type: str
    default: ""
notes:
  - Needs root (C(become)) to read the queue and the mail log.
  - The probe needs the relay's port open from this host, and counts as one connection against the relay's
    denial-of-service protection.
"""

EXAMPLES = r"""
- name: Why is mail stuck?
  smarthost.relay.relay_doctor:
    window: 3600
  become: true
  register: doctor

- name: Why is mail stuck, and would the relay take a message from this host now?
  smarthost.relay.relay_doctor:
    probe: true
    probe_sender: app@example.com
    probe_recipient: check@example.net
    relay_tls: required
    relay_helo_name: mta1.example.com
    relay_auth: true
    relay_auth_username: mta1@example.com
    relay_auth_password: "{{ vault_relay_auth_password }}"
  become: true
  register: doctor

- name: Fail when the relay takes nothing from this host
  ansible.builtin.assert:
    that: doctor.verdict != 'blocked'
    fail_msg: "{{ doctor.reasons | join('; ') }}"
"""

RETURN = r"""
mta:
  description: The MTA examined.
  returned: always
  type: str
  sample: postfix
verdict:
  description:
    - V(healthy) nothing is held for a relay reason and nothing bounced; V(blocked) mail is held for a cause that does
      not clear by itself and nothing reached the relay since; V(degraded) anything between.
  returned: always
  type: str
  sample: blocked
reasons:
  description: Why the verdict is not V(healthy).
  returned: always
  type: list
  elements: str
queue_size:
  description: Messages in the queue; null when the queue was not read (RV(queue_read)).
  returned: always
  type: int
queue_shown:
  description: The queue's cell in the doctor's tables, RV(queue_size) or V(not read).
  returned: always
  type: str
  sample: "3"
queue_read:
  description:
    - Whether the queue was read. V(false) only on qmail without C(qmail-qread) under O(qmail_dir) (the log and the
      relay guard's log are read all the same; the verdict is then never V(healthy)).
  returned: always
  type: bool
queue_note:
  description: Why the queue was not read, also among RV(reasons).
  returned: when RV(queue_read) is false
  type: str
  sample: "queue not read: qmail-qread missing"
queued_with_reason:
  description: Queued messages that carry the reason of a failed relay attempt; null when the queue was not read.
  returned: always
  type: int
deferred:
  description: Messages deferred in the window (each counted once per cause).
  returned: always
  type: int
bounced:
  description: Messages bounced in the window.
  returned: always
  type: int
classes:
  description:
    - One entry per cause seen, blocking causes first; each with C(class), C(title), C(severity), C(cause),
      C(console), C(fixes) (C(variable), C(value), C(why)), C(stage), C(catalogue), C(reply) (C(code), C(status),
      C(text)), C(queued), C(deferred), C(bounced), C(guard) (refusals the relay guard logged), C(oldest_age)
      (seconds), C(samples) (queue ids), for an unknown cause C(verbatim), and C(note) where the texts leave
      something out (Sendmail's lost connection names no step) or the session's TLS decided the class (a failure
      after Sendmail logged C(verify=FAIL) for the relay's certificate is C(tls_failure)).
  returned: always
  type: list
  elements: dict
last_success:
  description: The last delivery the relay accepted in the window (C(time), C(age), C(queue_id), C(recipient)).
  returned: always
  type: dict
log_source:
  description: Where the log was read (V(journal) or a file).
  returned: always
  type: str
since:
  description: Start of the window (Unix time).
  returned: always
  type: int
probe:
  description:
    - The probe's result. C(verdict) is V(ok) when the relay took C(RCPT TO), else the severity of the cause
      (V(blocked) or V(degraded)); C(stopped_at) the step it stopped at (V(CONNECT), V(EHLO), V(STARTTLS),
      V(AUTH), V(MAIL), V(RCPT)); C(diagnosis) the cause as in RV(classes) (C(class), C(title), C(severity),
      C(cause), C(console), C(fixes), C(stage), C(reply)); C(steps) every step with its C(code) and C(reply) lines,
      or its C(error); C(relay) the settings used (no password); C(sender) and C(recipient).
  returned: when O(probe=true)
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_host, doctor_probe

ARGUMENT_SPEC = {
    "mta": {"type": "str", "choices": ["auto", "postfix", "sendmail", "qmail"], "default": "auto"},
    "window": {"type": "int", "default": 86400},
    "log_file": {"type": "path"},
    "egress_address": {"type": "str"},
    "guard": {"type": "bool", "default": True},
    "qmail_dir": {"type": "path", "default": "/var/qmail"},
    "sendmail_queue_dir": {"type": "path", "default": "/var/spool/mqueue"},
    "probe": {"type": "bool", "default": False},
    "probe_sender": {"type": "str"},
    "probe_recipient": {"type": "str"},
    "probe_timeout": {"type": "int", "default": 30},
    "relay_host": {"type": "str", "default": "smtp-relay.gmail.com"},
    "relay_port": {"type": "int"},
    "relay_tls": {"type": "str", "choices": ["none", "opportunistic", "required", "implicit"], "default": "required"},
    "relay_tls_verify": {"type": "bool"},
    "relay_tls_ca_file": {"type": "path"},
    "relay_helo_name": {"type": "str", "default": ""},
    "relay_auth": {"type": "bool", "default": False},
    "relay_auth_username": {"type": "str", "default": ""},
    "relay_auth_password": {"type": "str", "default": "", "no_log": True},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    mta = params["mta"]
    if mta == "auto":
        mta = doctor_host.detect_mta(params["qmail_dir"])
        if mta is None:
            module.fail_json(msg="relay_doctor: no Postfix, qmail or Sendmail found on this host")
    paths = {"sendmail": {"queue_dir": params["sendmail_queue_dir"]}, "qmail": {"qmail_dir": params["qmail_dir"]}}
    now = time.time()

    def run(argv):
        command = module.get_bin_path(argv[0], opt_dirs=["/usr/sbin", "/sbin"]) or argv[0]
        return module.run_command([command] + list(argv[1:]), environ_update={"LC_ALL": "C"})

    try:
        report = doctor_host.examine(run, mta, now - params["window"], now, params["log_file"],
                                     params["egress_address"], params["guard"], **paths.get(mta, {}))
    except (RuntimeError, OSError) as exc:
        module.fail_json(msg="relay_doctor: %s" % exc, mta=mta)
    if params["probe"]:
        probe(module, report, mta)
    module.exit_json(changed=False, **report)


def probe(module, report, mta):
    """Probe the relay (no message is sent: check mode too) and fold the result into ``report``."""
    try:
        settings = doctor_probe.settings_from(module.params)
    except ValueError as exc:
        module.fail_json(msg="relay_doctor: %s" % exc, mta=mta)
    doctor_probe.merge(report, doctor_probe.run(settings, mta, module.params["egress_address"]))


if __name__ == "__main__":
    main()
