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
author: smarthost.relay maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smarthost.relay._attributes
attributes:
  check_mode:
    support: full
    details: Only reads; check mode returns the same report.
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
notes:
  - Needs root (C(become)) to read the queue and the mail log.
"""

EXAMPLES = r"""
- name: Why is mail stuck?
  smarthost.relay.relay_doctor:
    window: 3600
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
  description: Messages in the queue.
  returned: always
  type: int
queued_with_reason:
  description: Queued messages that carry the reason of a failed relay attempt.
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
      (seconds), C(samples) (queue ids) and, for an unknown cause, C(verbatim).
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
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.relay.plugins.module_utils._relay import doctor_host

ARGUMENT_SPEC = {
    "mta": {"type": "str", "choices": ["auto", "postfix", "sendmail", "qmail"], "default": "auto"},
    "window": {"type": "int", "default": 86400},
    "log_file": {"type": "path"},
    "egress_address": {"type": "str"},
    "guard": {"type": "bool", "default": True},
    "qmail_dir": {"type": "path", "default": "/var/qmail"},
    "sendmail_queue_dir": {"type": "path", "default": "/var/spool/mqueue"},
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
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
