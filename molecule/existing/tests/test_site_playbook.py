# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole site playbook in check and diff mode reports nothing to change (molecule's idempotence step has
run it for real), and the SMTP AUTH password appears in no output and no log of any run."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import relay_record
from conftest import LOG_PATH

SCENARIO = Path(__file__).resolve().parents[1]
PASSWORD = "existing-Relay-pw-5a3f"  # the test bed's credential (molecule.yml)
HOSTS = ("srt-existing-postfix", "srt-existing-sendmail")


def recap(output, host):
    for line in output.splitlines():
        if line.startswith(host + " ") and "ok=" in line:
            return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}
    raise AssertionError("no recap for %s:\n%s" % (host, output[-3000:]))


@pytest.fixture(scope="module")
def check_run():
    result = relay_record.run_playbook(SCENARIO / "converge.yml", "--check", "--diff", "-v")
    return result.returncode, result.stdout + result.stderr


def test_check_mode_reports_nothing_to_change(check_run):
    returncode, output = check_run
    assert returncode == 0, output[-3000:]
    for host in HOSTS:
        counts = recap(output, host)
        assert (counts["changed"], counts["failed"], counts["unreachable"]) == (0, 0, 0), host
    assert PASSWORD not in output


def test_no_password_in_any_log(check_run):
    assert LOG_PATH, "the scenario sets ANSIBLE_LOG_PATH"
    text = Path(LOG_PATH).read_text(encoding="utf-8", errors="replace")
    # converge, idempotence and the check run above all logged here.
    assert text.count("PLAY RECAP") >= 3
    for secret in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode()):
        assert secret not in text


def test_password_only_in_root_only_files(postfix):
    found = postfix.check_output("grep -rlF %s /etc /root /tmp /var/tmp || true" % PASSWORD).split()
    assert sorted(found) == ["/etc/postfix/smarthost_sasl_passwd", "/etc/postfix/smarthost_sasl_passwd.db"]
    for path in found:
        f = postfix.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600), path
