#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: postfix_apply
short_description: Apply a Postfix configuration change in one step, checked, reloaded, tested and rolled back on failure
version_added: 0.1.0
description:
  - Builds the candidate C(main.cf) and C(master.cf) with Postfix's own C(postconf -c <scratch copy>) (O(main_set)
    with C(-e), O(main_remove) with C(-X), O(master_set) with C(-M), O(master_remove) with C(-M -X)), so that every
    setting it is not told about stays as it is, and compares them, the maps O(maps), the local senders' table
    O(local_senders) and the password map O(sasl_map) with what is on disk (content, owner root:root, mode; indexed
    maps also their database). When nothing differs it changes nothing and reloads nothing.
  - Otherwise it backs up every file it replaces (C(<file>.<pid>.<date>~), as Ansible's C(backup)), writes each one
    atomically (a temporary file in the same directory, owner and mode set, then renamed), runs C(postmap) on the
    indexed maps that changed or lack their database, then C(postfix check), C(postfix reload) (a restart of
    O(service) when O(restart)), and the test delivery O(test_delivery) (the code of
    M(smarthost.relay.relay_test_delivery)).
  - "When a step fails after the first write, every file is put back from its backup, the files this run created are
    removed, the restored maps are indexed again, Postfix is restarted (when a restart was attempted or it does not
    run) or reloaded, and the task fails with
    C(Postfix was left on its previous configuration (rolled back) because \"<step>\" failed: <detail> | <Postfix's
    complaint>); the complaint is the last fatal, error or warning line of the mail facility in the journal since the
    check began (for the check, reload and restart steps)."
  - Once everything worked, the backup of the password map is removed (secrets are not kept in backups), and so are
    the paths of O(remove) and, when O(sasl_map) is given without O(sasl_map_content), the password map and its
    databases.
author: smarthost.relay maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smarthost.relay._attributes
attributes:
  check_mode:
    support: full
    details: Check mode builds the candidate in a scratch copy, compares and reports, and writes nothing.
  diff_mode:
    support: partial
    details: The diff shows C(main.cf), C(master.cf) and the maps; never the password map.
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  config_dir:
    description:
      - Postfix's configuration directory.
    type: path
    default: /etc/postfix
  sbin:
    description:
      - The directory of C(postconf), C(postmap), C(postfix) and C(postsuper).
    type: path
    default: /usr/sbin
  service:
    description:
      - The service restarted when O(restart) is true.
    type: str
    default: postfix
  main_set:
    description:
      - C(name=value) settings for C(postconf -e).
    type: list
    elements: str
    default: []
  main_remove:
    description:
      - Setting names for C(postconf -X).
    type: list
    elements: str
    default: []
  master_set:
    description:
      - C(service/type=entry) services for C(postconf -M).
    type: list
    elements: str
    default: []
  master_remove:
    description:
      - C(service/type) services for C(postconf -M -X).
    type: list
    elements: str
    default: []
  restart:
    description:
      - Restart O(service) instead of C(postfix reload) when something changed (Postfix applies C(inet_interfaces)
        and C(inet_protocols) only at a restart).
    type: bool
    default: false
  db_type:
    description:
      - The map type C(postmap) builds (Postfix's C(default_database_type)).
    type: str
    default: hash
  maps:
    description:
      - Map files, root:root 0644.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - The file.
        type: path
        required: true
      content:
        description:
          - Its content.
        type: str
        required: true
      indexed:
        description:
          - Whether C(postmap) indexes it (O(db_type)).
        type: bool
        default: false
  local_senders:
    description:
      - The regexp table that rewrites the addresses of this host's local accounts (root@, cron, daemons) at the
        names the candidate configuration gives (C($myhostname), C($myorigin), C($mydestination)), C(localhost) and
        C(localdomain) with their subdomains, and O(local_senders.names). Not given, no such table.
    type: dict
    suboptions:
      path:
        description:
          - The table's file, root:root 0644.
        type: path
        required: true
      rewrite:
        description:
          - V(masquerade) keeps the user and puts O(local_senders.domain); V(address) sends as O(local_senders.address).
        type: str
        choices: [masquerade, address]
        required: true
      address:
        description:
          - The address for V(address).
        type: str
        default: ""
      domain:
        description:
          - The domain for V(masquerade).
        type: str
        default: ""
      names:
        description:
          - Further names whose addresses are local accounts'.
        type: list
        elements: str
        default: []
      exclude:
        description:
          - Names never taken as local (the customer's domains).
        type: list
        elements: str
        default: []
  sasl_map:
    description:
      - The SMTP AUTH password map, root:root 0600 with its database (indexed with O(db_type)).
    type: path
  sasl_map_content:
    description:
      - The password map's content; never returned, logged or shown in a diff. Without it, O(sasl_map) and its
        databases are removed.
    type: str
  remove:
    description:
      - Files removed once everything worked (files of earlier versions of the role).
    type: list
    elements: path
    default: []
  test_delivery:
    description:
      - When given and the configuration changed, one test message through the relay after the reload; the relay must
        accept it, else the change is rolled back.
    type: dict
    suboptions:
      sender:
        description:
          - The envelope sender.
        type: str
        required: true
      recipient:
        description:
          - The recipient.
        type: str
        required: true
      timeout:
        description:
          - Seconds to wait for the relay's answer.
        type: int
        default: 60
      sendmail:
        description:
          - Postfix's C(sendmail).
        type: path
        default: /usr/sbin/sendmail
      postsuper:
        description:
          - Postfix's C(postsuper) (default C(<sbin>/postsuper)).
        type: path
      log_file:
        description:
          - A mail log to read instead of the journal or the classic mail log.
        type: path
notes:
  - Needs root (C(become)).
  - The password map's content is a C(no_log) option; the module never returns it nor puts it in a diff or message.
"""

EXAMPLES = r"""
- name: Point Postfix at the relay, check, reload and test in one step
  smarthost.relay.postfix_apply:
    main_set:
      - relayhost=[smtp-relay.gmail.com]:587
      - smtp_sasl_auth_enable=yes
      - smtp_sasl_password_maps=hash:/etc/postfix/smarthost_sasl_passwd
    sasl_map: /etc/postfix/smarthost_sasl_passwd
    sasl_map_content: "[smtp-relay.gmail.com]:587 relay@example.com:{{ vault_relay_password }}\n"
    test_delivery:
      sender: relay@example.com
      recipient: postmaster@example.com
  become: true
"""

RETURN = r"""
written:
  description: The files written (the password map's path too, never its content).
  returned: success
  type: list
  elements: str
backups:
  description: The backup of each replaced file (the password map's is removed once the change worked).
  returned: always
  type: dict
  sample: {"/etc/postfix/main.cf": "/etc/postfix/main.cf.4242.2026-12-06@17:30:00~"}
indexed:
  description: The maps indexed with C(postmap).
  returned: always
  type: list
  elements: str
removed:
  description: The files removed (O(remove), the password map without O(sasl_map_content)).
  returned: always
  type: list
  elements: str
action:
  description: V(reload), V(restart) or V(none).
  returned: always
  type: str
main_cf_changed:
  description: Whether C(main.cf) was written.
  returned: always
  type: bool
master_cf_changed:
  description: Whether C(master.cf) was written.
  returned: always
  type: bool
local_names:
  description: The names taken as local for O(local_senders).
  returned: when O(local_senders) is given
  type: list
  elements: str
test_delivery:
  description: The test delivery's report, as M(smarthost.relay.relay_test_delivery) returns it.
  returned: when the test delivery ran
  type: dict
would_write:
  description: The files whose content or owner/mode differ (check mode, or nothing to do).
  returned: in check mode and when nothing changed
  type: list
  elements: str
would_index:
  description: The maps C(postmap) would index.
  returned: in check mode and when nothing changed
  type: list
  elements: str
would_remove:
  description: The files that would be removed.
  returned: in check mode and when nothing changed
  type: list
  elements: str
step:
  description: The step that failed.
  returned: failure
  type: str
  sample: Check the new configuration with postfix check
error:
  description: What the step said.
  returned: failure
  type: str
log_line:
  description: Postfix's complaint from the journal, or empty.
  returned: failure after the first write
  type: str
rolled_back:
  description: Whether files had been written and were put back.
  returned: failure
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.relay.plugins.module_utils._relay import postfix_host

ARGUMENT_SPEC = {
    "config_dir": {"type": "path", "default": "/etc/postfix"},
    "sbin": {"type": "path", "default": "/usr/sbin"},
    "service": {"type": "str", "default": "postfix"},
    "main_set": {"type": "list", "elements": "str", "default": []},
    "main_remove": {"type": "list", "elements": "str", "default": []},
    "master_set": {"type": "list", "elements": "str", "default": []},
    "master_remove": {"type": "list", "elements": "str", "default": []},
    "restart": {"type": "bool", "default": False},
    "db_type": {"type": "str", "default": "hash"},
    "maps": {"type": "list", "elements": "dict", "default": [], "options": {
        "path": {"type": "path", "required": True},
        "content": {"type": "str", "required": True},
        "indexed": {"type": "bool", "default": False},
    }},
    "local_senders": {"type": "dict", "options": {
        "path": {"type": "path", "required": True},
        "rewrite": {"type": "str", "choices": ["masquerade", "address"], "required": True},
        "address": {"type": "str", "default": ""},
        "domain": {"type": "str", "default": ""},
        "names": {"type": "list", "elements": "str", "default": []},
        "exclude": {"type": "list", "elements": "str", "default": []},
    }},
    "sasl_map": {"type": "path"},
    "sasl_map_content": {"type": "str", "no_log": True},
    "remove": {"type": "list", "elements": "path", "default": []},
    "test_delivery": {"type": "dict", "options": {
        "sender": {"type": "str", "required": True},
        "recipient": {"type": "str", "required": True},
        "timeout": {"type": "int", "default": 60},
        "sendmail": {"type": "path", "default": "/usr/sbin/sendmail"},
        "postsuper": {"type": "path"},
        "log_file": {"type": "path"},
    }},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        plan = postfix_host.plan(module.params)
    except postfix_host.StepFailed as exc:
        module.fail_json(msg='Postfix was not changed because "%s" failed: %s' % (exc.step, exc.error),
                         step=exc.step, error=exc.error, rolled_back=False)
    diff = plan.diff() if module._diff else None
    if module.check_mode or not plan.changed:
        module.exit_json(changed=plan.changed, written=[], backups={}, indexed=[], removed=[], action="none",
                         would_write=[f.path for f in plan.config_changes], would_index=[f.path for f in plan.index],
                         would_remove=plan.remove, main_cf_changed=False, master_cf_changed=False,
                         local_names=plan.local_names, **({"diff": diff} if diff else {}))
    try:
        result = postfix_host.Applier(plan).apply()
    except postfix_host.RolledBack as exc:
        module.fail_json(msg=exc.msg, step=exc.failure.step, error=exc.failure.error, log_line=exc.log_line,
                         rolled_back=True, **exc.result)
    module.exit_json(changed=True, **dict(result, **({"diff": diff} if diff else {})))


if __name__ == "__main__":
    main()
