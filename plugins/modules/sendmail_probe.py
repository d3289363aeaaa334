#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: sendmail_probe
short_description: Look at a host's Sendmail for the role smarthost.relay.sendmail (read only)
version_added: 0.1.0
description:
  - One read-only look at what the role C(smarthost.relay.sendmail) needs to decide what to do, instead of a task
    per file; it changes nothing.
  - Reads whether C(sendmail.mc) exists and defines the C(smtp) mailer, the live C(sendmail.cf)'s group, whether the
    m4 configuration kit has the C(check_cert_altnames) feature, the daemon's pid file, which of the role's files
    exist (never their content) and whether its private directories and maps are root's with the expected mode.
  - Asks the live C(sendmail.cf) for class C(w) (C(sendmail -C <cf> -bt), C($=w)), the names Sendmail takes as this
    host's own; asks C(dpkg-query) (or C(rpm)) which of O(packages) are missing, and C(systemctl) whether O(service)
    is enabled.
author: smarthost.relay maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smarthost.relay._attributes
attributes:
  check_mode:
    support: full
    details: Only reads; check mode runs the same code and returns the same result.
  diff_mode:
    support: none
  idempotent:
    support: full
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
      - The live C(sendmail.cf).
    type: path
    required: true
  cf_kit:
    description:
      - The m4 configuration kit (the directory with C(feature/), C(m4/), ...).
    type: path
    required: true
  pid_file:
    description:
      - The daemon's pid file.
    type: path
    required: true
  private_dir:
    description:
      - The role's directory for the SMTP AUTH map, which must be root's and C(0700).
    type: path
    required: true
  fragment:
    description:
      - The role's C(sendmail.mc) fragment.
    type: path
    required: true
  empty_ca_dir:
    description:
      - The role's empty CA directory, which must be root's and C(0755).
    type: path
    required: true
  authinfo:
    description:
      - The SMTP AUTH map's source.
    type: path
    required: true
  authinfo_maps:
    description:
      - Every name the role may have built the SMTP AUTH map under (each file is the name and O(map_suffix)).
    type: list
    elements: path
    default: []
  map_suffix:
    description:
      - The suffix C(makemap) gives the map's file (V(db) for C(hash) maps).
    type: str
    default: db
  genericstable:
    description:
      - The genericstable's source.
    type: path
    required: true
  genericstable_db:
    description:
      - The genericstable map, which must be root's and C(0644).
    type: path
    required: true
  sendmail:
    description:
      - Sendmail's C(sendmail) program.
    type: path
    default: /usr/sbin/sendmail
  service:
    description:
      - Sendmail's service.
    type: str
    default: sendmail
  packages:
    description:
      - The packages that must be installed.
    type: list
    elements: str
    default: []
notes:
  - Needs root (C(become)) to read the files and run C(sendmail -bt) with the live C(sendmail.cf).
"""

EXAMPLES = r"""
- name: Look at the host's Sendmail
  smarthost.relay.sendmail_probe:
    mc: /etc/mail/sendmail.mc
    cf: /etc/mail/sendmail.cf
    cf_kit: /usr/share/sendmail/cf
    pid_file: /run/sendmail/mta/sendmail.pid
    private_dir: /etc/mail/smarthost-relay
    fragment: /etc/mail/smarthost-relay.m4
    empty_ca_dir: /etc/mail/smarthost-relay/no-ca-certs
    authinfo: /etc/mail/smarthost-relay/authinfo
    authinfo_maps: [/etc/mail/smarthost-relay/authinfo-a, /etc/mail/smarthost-relay/authinfo-b]
    genericstable: /etc/mail/smarthost-relay-genericstable
    genericstable_db: /etc/mail/smarthost-relay-genericstable.db
    packages: [sendmail, sendmail-cf, m4]
  become: true
  register: sendmail_host
"""

RETURN = r"""
mc_exists:
  description: Whether O(mc) is a file.
  returned: always
  type: bool
mc_has_smtp_mailer:
  description: Whether O(mc) has a C(MAILER) line for the C(smtp) mailer.
  returned: always
  type: bool
cf_group:
  description: The group of O(cf) (V(root) when it does not exist or the group has no name).
  returned: always
  type: str
  sample: smmsp
cert_altnames:
  description: Whether the m4 kit has C(feature/check_cert_altnames.m4).
  returned: always
  type: bool
pid:
  description: The pid in O(pid_file); empty when the file is missing or holds no number.
  returned: always
  type: str
  sample: "1234"
running:
  description: Whether a process with RV(pid) exists.
  returned: always
  type: bool
fragment_exists:
  description: Whether O(fragment) exists.
  returned: always
  type: bool
daemon_stale:
  description:
    - Whether the daemon runs and O(cf) was written after its pid file, so it has not read that O(cf) (Sendmail
      writes its pid file when it starts and when a C(SIGHUP) makes it read its configuration again).
  returned: always
  type: bool
private_dir_ok:
  description: Whether O(private_dir) is owned by root:root with mode C(0700).
  returned: always
  type: bool
empty_ca_dir_ok:
  description: Whether O(empty_ca_dir) is owned by root:root with mode C(0755).
  returned: always
  type: bool
authinfo_source_exists:
  description: Whether O(authinfo) exists.
  returned: always
  type: bool
authinfo_exists:
  description: Whether O(authinfo) or the file of one of O(authinfo_maps) exists.
  returned: always
  type: bool
authinfo_found:
  description: The O(authinfo_maps) whose file exists.
  returned: always
  type: list
  elements: str
authinfo_map:
  description: The name the live O(cf) reads the SMTP AUTH map under (its C(Kauthinfo) line); empty without one.
  returned: always
  type: str
  sample: /etc/mail/smarthost-relay/authinfo-a
authinfo_db_ok:
  description: Whether the file of RV(authinfo_map) is owned by root:root with mode C(0600) (false without one).
  returned: always
  type: bool
authinfo_map_current:
  description: Whether the file of RV(authinfo_map) is not older than O(authinfo) (false when either is missing).
  returned: always
  type: bool
genericstable_exists:
  description: Whether O(genericstable) or O(genericstable_db) exists.
  returned: always
  type: bool
genericstable_db_ok:
  description: Whether O(genericstable_db) is owned by root:root with mode C(0644).
  returned: always
  type: bool
local_names:
  description:
    - Class C(w) of the live O(cf), lower case and sorted (this host's names, aliases and address literals); empty
      when Sendmail or O(cf) is missing or Sendmail does not answer.
  returned: always
  type: list
  elements: str
  sample: [localhost, mta.example.com, "[127.0.0.1]"]
packages_missing:
  description: The O(packages) that C(dpkg-query) or C(rpm) does not list as installed (all of them without either).
  returned: always
  type: list
  elements: str
enabled:
  description: Whether C(systemctl is-enabled) says O(service) is V(enabled), V(static) or V(alias) (false without systemctl).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.relay.plugins.module_utils._relay import sendmail_host

ARGUMENT_SPEC = {
    "mc": {"type": "path", "required": True},
    "cf": {"type": "path", "required": True},
    "cf_kit": {"type": "path", "required": True},
    "pid_file": {"type": "path", "required": True},
    "private_dir": {"type": "path", "required": True},
    "fragment": {"type": "path", "required": True},
    "empty_ca_dir": {"type": "path", "required": True},
    "authinfo": {"type": "path", "required": True},
    "authinfo_maps": {"type": "list", "elements": "path", "default": []},
    "map_suffix": {"type": "str", "default": "db"},
    "genericstable": {"type": "path", "required": True},
    "genericstable_db": {"type": "path", "required": True},
    "sendmail": {"type": "path", "default": "/usr/sbin/sendmail"},
    "service": {"type": "str", "default": "sendmail"},
    "packages": {"type": "list", "elements": "str", "default": []},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    paths = {name: params[name] for name in sendmail_host.PROBE_PATHS}
    found = sendmail_host.probe(paths, params["sendmail"], params["service"], params["packages"],
                                params["authinfo_maps"], params["map_suffix"])
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
