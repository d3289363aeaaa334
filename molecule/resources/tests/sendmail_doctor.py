# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A Sendmail host in the relay doctor's molecule proof (sendmail scenario: direct; reliability: behind the relay
guard): messages sent as a local program would, its queue and its log as the doctor reads them, a queue run, and
playbooks/doctor.yml on it with the probe."""

from __future__ import annotations

import re
import shlex
import uuid

import doctor_cases
import relay_record


class SendmailDoctorHost:
    """``host``: the testinfra host; ``user``: the envelope sender of its messages (the AUTH user); ``tag``: this
    module's run, in every recipient; ``prefix``: of the Message-IDs."""

    def __init__(self, host, user, tag, prefix="doctor", queue="/var/spool/mqueue"):
        self.host, self.user, self.tag, self.prefix, self.queue_dir = host, user, tag, prefix, queue

    def send(self, label, sender=None):
        """One message to ``<label>-<tag>@example.net`` with ``-N never`` (a bounce's notification would go through
        the relay: a message in the stand-in's record, a second refusal in the counts); returns its Message-ID."""
        sender = sender or self.user
        message_id = "<%s-%s.%s.%s@example.com>" % (self.prefix, label, self.tag, uuid.uuid4().hex[:6])
        recipient = "%s-%s@example.net" % (label, self.tag)
        body = "From: <%s>\nTo: <%s>\nSubject: doctor %s\nMessage-ID: %s\n\ndoctor\n" % (
            sender, recipient, label, message_id)
        self.host.check_output("printf %%s %s | /usr/sbin/sendmail -i -N never -f %s -- %s" % (
            shlex.quote(body), shlex.quote(sender), shlex.quote(recipient)))
        return message_id

    def log_events(self, since):
        """Sendmail's log since ``since`` as the doctor reads it."""
        return doctor_cases.journal_events(self.host, since, doctor_cases.doctor_parsers.sendmail_log)

    def wait_for_logged_deliveries(self, since, count):
        doctor_cases.wait_for_logged_deliveries(self.host, since, doctor_cases.doctor_parsers.sendmail_log, count)

    def log_lines(self, since, ids):
        """The raw log lines of these queue ids since ``since`` (for failure messages and the results)."""
        if not ids:
            return []
        pattern = "|".join(sorted(ids))
        return self.host.run("journalctl --quiet --no-pager -o cat --since @%d SYSLOG_FACILITY=2 | grep -E %s" % (
            since, shlex.quote(pattern))).stdout.splitlines()[-20:]

    def qf_files(self):
        """{file name: text} of the queue's qf files (in the queue directory, or its qf/ subdirectory)."""
        result = self.host.run("cd %s && for f in qf* qf/qf*; do [ -f \"$f\" ] && printf '==> %%s\\n' \"${f##*/}\" "
                               "&& cat \"$f\"; done; true" % self.queue_dir)
        assert result.rc == 0, result.stderr
        # qf files hold Sendmail's macro bytes (\201 …): read as the doctor reads them, undecodable bytes replaced
        out = result.stdout_bytes.decode("utf-8", "replace")
        files = {}
        for chunk in re.split(r"(?:^|\n)==> ", out)[1:]:
            name, _sep, text = chunk.partition("\n")
            files[name.strip()] = text
        return files

    def queued_ids(self):
        return {name[2:] for name in self.qf_files()}

    def flush(self):
        relay_record.sendmail_queue_run(self.host)

    def doctor(self, since, runs, recipient, check=False, probe_sender=None):
        """playbooks/doctor.yml on this host with the probe (the inventory's relay_* settings, to ``recipient``);
        in check mode without it."""
        return doctor_cases.run_doctor_probing(self.host.backend.name, since, runs, recipient, probe=not check,
                                               check=check, probe_sender=probe_sender)
