#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: relay_test_delivery
short_description: Send one test message through the MTA to Google's SMTP relay and report the relay's answer
version_added: 0.1.0
description:
  - Submits one message with the MTA's own tool and follows it to the relay's answer. The roles run it after they
    changed the configuration, and roll the change back when it fails.
  - Postfix (O(mta=postfix)) gets the message from C(sendmail -i); the module follows it by its Message-ID and queue
    id through the mail log (the journal when systemd runs, else the classic log file, or O(log_file)). A message
    the relay did not take is removed from the queue with C(postsuper -d) (that message only), so that it is not
    retried after a rollback.
  - Sendmail (O(mta=sendmail)) delivers it at once with the sendmail.cf on disk (C(sendmail -Am -odi -v)) in a
    private queue directory under O(queue_parent), which is removed afterwards, so the daemon, its queue and its
    configuration are never involved and nothing is retried. Sendmail's verbose transcript is read; what the client
    sent (the SMTP AUTH exchange) is never returned.
  - qmail (O(mta=qmail)) gets it from C(qmail-inject); the module finds its number (its file under C(queue/mess), or
    qmail-send's C(info msg) line) and follows qmail-send's log O(log_file) to the end of the remote delivery.
    qmail has no tool to delete a message safely while qmail-send runs, so a test message it deferred stays queued
    and is retried.
  - When the relay does not take the message, the relay's reply is named by the same catalogue as
    M(smarthost.relay.relay_doctor) (class, SMTP stage, cause, and the variable that fixes it), in RV(diagnosis)
    and in the failure message.
author: smarthost.relay maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smarthost.relay._attributes
attributes:
  check_mode:
    support: full
    details: Check mode sends nothing and says so (RV(status) is V(not sent)).
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run sends a message to O(recipient); it changes no configuration, so it reports no change.
  platform:
    platforms: posix
options:
  mta:
    description:
      - The MTA that sends the message.
    type: str
    choices: [postfix, sendmail, qmail]
    required: true
  sender:
    description:
      - The envelope sender.
    type: str
    required: true
  recipient:
    description:
      - The one recipient.
    type: str
    required: true
  timeout:
    description:
      - Seconds to wait for the relay's answer (for Sendmail, also the connect and greeting timeouts; at least 5).
    type: int
    default: 60
  sendmail:
    description:
      - The C(sendmail) program (Postfix's or Sendmail's).
    type: path
    default: /usr/sbin/sendmail
  postsuper:
    description:
      - Postfix's C(postsuper), which removes a test message the relay did not take; C(postqueue) in the same
        directory asks for another attempt when one told nothing (a timeout, a 421).
    type: path
    default: /usr/sbin/postsuper
  queue_parent:
    description:
      - Where Sendmail's private queue directory for the test message is made.
    type: path
    default: /var/spool
  qmail_dir:
    description:
      - qmail's home.
    type: path
    default: /var/qmail
  log_file:
    description:
      - The log to follow the message in. For qmail, qmail-send's log (multilog's C(current) or a syslog file);
        without a readable one, a message that left the queue in time counts as V(unconfirmed).
      - For Postfix, a file to read instead of the journal or the classic mail log. Sendmail does not use it.
    type: path
notes:
  - Needs root (C(become)) to submit as any sender, read the log and remove a message from the queue.
"""

EXAMPLES = r"""
- name: Send a test message through Postfix and the relay
  smarthost.relay.relay_test_delivery:
    mta: postfix
    sender: mta1@example.com
    recipient: relay-check@example.net
  become: true
  register: test_delivery

- name: The same through qmail, following qmail-send's multilog
  smarthost.relay.relay_test_delivery:
    mta: qmail
    sender: postmaster@example.com
    recipient: relay-check@example.net
    timeout: 120
    log_file: /var/log/qmail/current
  become: true
"""

RETURN = r"""
status:
  description:
    - V(sent) the relay accepted the message; V(unconfirmed) (qmail without a readable log) it left the queue in
      time; V(deferred) or V(bounced) the relay (or the way to it) refused it; V(timeout) no answer in time;
      V(not submitted) the MTA's tool refused the message; V(not sent) check mode.
  returned: always
  type: str
  sample: deferred
delivered:
  description: Whether the relay took the message (RV(status) V(sent) or V(unconfirmed)).
  returned: always
  type: bool
detail:
  description:
    - What the MTA logged or said about the delivery (Postfix's C(status=) text, Sendmail's status line, qmail-remote's
      report with its C(_) and C(/) decoded).
  returned: always
  type: str
  sample: "host relay.example[192.0.2.1] said: 535-5.7.8 Username and Password not accepted. ... (in reply to AUTH command)"
message_id:
  description: The test message's Message-ID.
  returned: always
  type: str
sender:
  description: The envelope sender.
  returned: always
  type: str
recipient:
  description: The recipient.
  returned: always
  type: str
queue_id:
  description: Postfix's queue id or qmail's message number of the test message, when the log named it.
  returned: when not in check mode
  type: str
removed:
  description:
    - Whether the test message was removed after a failure (Postfix's C(postsuper -d); Sendmail's private queue).
  returned: when not in check mode
  type: bool
log_source:
  description: Where the message was followed (V(journal) or a file); null when there was none.
  returned: when not in check mode
  type: str
ended:
  description: qmail only, whether qmail-send logged the end of the message.
  returned: when O(mta=qmail) and the message was submitted
  type: bool
transcript:
  description: Sendmail only, the last lines of its verbose transcript, without what the client sent.
  returned: when O(mta=sendmail) and Sendmail answered
  type: list
  elements: str
diagnosis:
  description:
    - When the relay did not take the message, the relay doctor's reading of the reply, as in
      M(smarthost.relay.relay_doctor)'s C(classes) (C(class), C(title), C(severity), C(cause), C(console), C(fixes)
      with C(variable), C(value) and C(why), C(stage), C(catalogue), C(reply), and C(verbatim) or C(note) where
      they apply).
  returned: when the MTA logged a failure
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.relay.plugins.module_utils._relay import delivery

ARGUMENT_SPEC = {
    "mta": {"type": "str", "choices": ["postfix", "sendmail", "qmail"], "required": True},
    "sender": {"type": "str", "required": True},
    "recipient": {"type": "str", "required": True},
    "timeout": {"type": "int", "default": 60},
    "sendmail": {"type": "path", "default": "/usr/sbin/sendmail"},
    "postsuper": {"type": "path", "default": "/usr/sbin/postsuper"},
    "queue_parent": {"type": "path", "default": "/var/spool"},
    "qmail_dir": {"type": "path", "default": "/var/qmail"},
    "log_file": {"type": "path"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if module.check_mode:
        module.exit_json(changed=False, status="not sent", delivered=False, detail="", message_id="",
                         sender=params["sender"], recipient=params["recipient"],
                         msg="check mode: no test message sent to %s" % params["recipient"])
    report = delivery.deliver(params["mta"], params)
    if not report["delivered"]:
        module.fail_json(changed=False, **report)
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
