#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: sendmail_cf_build
short_description: Build a new sendmail.cf from sendmail.mc beside the live one and check it
version_added: 0.1.0
description:
  - Runs C(m4) on O(mc) (in its directory) into a new file O(dest), never into the live O(cf), and checks the new
    file. The role C(smarthost.relay.sendmail) installs it as O(cf) when RV(differs) is true.
  - "The checks: C(sendmail -C <dest> -bt) reads it without a complaint (readcf's errors fail it);
    C(sendmail -C <dest> -bv) O(probe_address) routes a remote address to the relay mailer and O(relay_host); and
    the file carries the smart host O(relay_host), the relay mailer's port O(relay_port) and a C(Timeout.datafinal)
    of at least O(min_datafinal) seconds (a line of O(mc) after the role's include could override them)."
  - With O(local_sender), the envelope senders C(root@$j) and a bare C(root) must leave through the relay mailer as
    O(local_sender), and the null sender C(<>) as itself (C(sendmail -C <dest> -bt), C(/try relay)).
  - When a step fails, the task fails naming it (RV(step), RV(error)); O(dest) is removed and O(cf) is never touched.
author: smarthost.relay maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smarthost.relay._attributes
attributes:
  check_mode:
    support: full
    details: Check mode builds and checks the same way and reports RV(differs), but removes O(dest) in any case.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: O(dest) stays only while the build differs from O(cf), so a second run after O(cf) was replaced leaves nothing.
  platform:
    platforms: posix
options:
  mc:
    description:
      - C(sendmail.mc).
    type: path
    required: true
  cf:
    description:
      - The live C(sendmail.cf), only read to compare.
    type: path
    required: true
  dest:
    description:
      - Where the new C(sendmail.cf) is written. It is removed again unless it differs from O(cf).
    type: path
    required: true
  sendmail:
    description:
      - Sendmail's C(sendmail) program.
    type: path
    default: /usr/sbin/sendmail
  m4:
    description:
      - The C(m4) program (looked for in E(PATH) when not a path).
    type: str
    default: m4
  relay_host:
    description:
      - The smart host the new file must send through (C(DS[<relay_host>]) or C(DSrelay:[<relay_host>])).
    type: str
    required: true
  relay_port:
    description:
      - The port the relay mailer must connect to (C(A=TCP $h <relay_port>)).
    type: int
    required: true
  min_datafinal:
    description:
      - The least C(Timeout.datafinal), in seconds.
    type: int
    default: 3600
  probe_address:
    description:
      - The remote address given to C(sendmail -bv).
    type: str
    default: smarthost-relay-probe@relay-check.invalid
  local_sender:
    description:
      - What C(root@<this host>) and a bare C(root) must leave as through the relay mailer; empty, not checked.
    type: str
    default: ""
notes:
  - Needs root (C(become)) to write beside O(cf) and to let Sendmail read the new file.
  - m4 stamps every build with its date in a comment, so RV(differs) compares everything but comments and blank
    lines.
"""

EXAMPLES = r"""
- name: Build a new sendmail.cf and check it
  smarthost.relay.sendmail_cf_build:
    mc: /etc/mail/sendmail.mc
    cf: /etc/mail/sendmail.cf
    dest: /etc/mail/sendmail.cf.smarthost-new
    relay_host: 127.0.0.1
    relay_port: 2525
    local_sender: root@example.com
  become: true
  register: sendmail_cf
"""

RETURN = r"""
path:
  description: The new file, O(dest); it stays only when RV(differs) is true and not in check mode.
  returned: always
  type: str
  sample: /etc/mail/sendmail.cf.smarthost-new
differs:
  description: Whether the new file differs from O(cf) in anything but comments and blank lines.
  returned: always
  type: bool
m4_messages:
  description: What m4 printed on its error output without failing the build.
  returned: success
  type: list
  elements: str
senders:
  description:
    - With O(local_sender), what C(root@$j) (C(local_sender)), a bare C(root) (C(bare_sender)) and the null sender
      (C(null_sender)) leave as through the relay mailer.
  returned: success and O(local_sender) is not empty
  type: dict
  sample: {"local_sender": "root@example.com", "bare_sender": "root@example.com", "null_sender": "<>"}
step:
  description: The step that failed (the command, or C(smart host), C(relay mailer), C(Timeout.datafinal)).
  returned: failure
  type: str
  sample: sendmail -C /etc/mail/sendmail.cf.smarthost-new -bt
error:
  description: Why it failed (the program's complaint, or what the new file has instead).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.relay.plugins.module_utils._relay import sendmail_host

ARGUMENT_SPEC = {
    "mc": {"type": "path", "required": True},
    "cf": {"type": "path", "required": True},
    "dest": {"type": "path", "required": True},
    "sendmail": {"type": "path", "default": "/usr/sbin/sendmail"},
    "m4": {"type": "str", "default": "m4"},
    "relay_host": {"type": "str", "required": True},
    "relay_port": {"type": "int", "required": True},
    "min_datafinal": {"type": "int", "default": 3600},
    "probe_address": {"type": "str", "default": "smarthost-relay-probe@relay-check.invalid"},
    "local_sender": {"type": "str", "default": ""},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    settings = {name: module.params[name] for name in sendmail_host.BUILD_SETTINGS}
    try:
        built = sendmail_host.build_cf(settings, keep=not module.check_mode)
    except sendmail_host.CheckFailed as exc:
        module.fail_json(changed=False, msg="%s failed: %s" % (exc.step, exc.error), step=exc.step, error=exc.error,
                         path=settings["dest"], differs=False)
    module.exit_json(changed=built["differs"], **built)


if __name__ == "__main__":
    main()
