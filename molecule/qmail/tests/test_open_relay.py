# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Open relay (issue 9): the role's STARTTLS client is reachable from 127.0.0.1 only.

Whatever connects to stunnel is relayed to Google under this server's allowlisted address, so a listener on any
other address would make the host an open relay. srt-qmail-outsider shares the scenario network with the qmail
host (its packets reach the host: a refusal is the host's answer, not a missing route) and is none of the qmail
hosts; it must be refused every time. The qmail host itself gets an answer only on 127.0.0.1.
"""

from __future__ import annotations

import json
import shlex

import pytest

import relay_record

TRIES = 10
# Connects TRIES times to port 2525 of each address given; prints [address, result, first bytes] per try.
PROBE = r"""
import json, socket, sys
out = []
for address in sys.argv[2:]:
    for _ in range(int(sys.argv[1])):
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect((address, 2525))
            out.append([address, "connected", sock.recv(200).decode("ascii", "replace")])
        except ConnectionRefusedError:
            out.append([address, "refused", ""])
        except OSError as err:
            out.append([address, type(err).__name__, str(err)])
        finally:
            sock.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def qmail_host():
    return next(h for h in relay_record.group_hosts("qmail") if h.backend.name == "srt-qmail-tls")


@pytest.fixture(scope="module")
def outsider():
    return relay_record.group_hosts("outsider")[0]


def addresses(host):
    """The host's addresses on the scenario network (IPv6 link-local ones cannot be dialled without a scope)."""
    return [a for a in host.interface("eth0").addresses if not a.startswith("fe80")]


def probe(host, targets):
    result = host.run("python3 -c %s %d %s" % (shlex.quote(PROBE), TRIES, " ".join(targets)))
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def test_outsider_is_refused_every_time(qmail_host, outsider):
    targets = addresses(qmail_host)
    assert targets and not set(targets) & set(addresses(outsider))
    tries = probe(outsider, targets)
    assert len(tries) == TRIES * len(targets)
    # "refused" is a TCP reset from the qmail host: the outsider reaches it, nothing listens there
    assert {outcome for _address, outcome, _first in tries} == {"refused"}, tries


def test_nothing_reached_the_relay_from_the_outsider(outsider):
    outsider_ips = set(addresses(outsider))
    seen = {r.get("client_ip") for r in relay_record.read_record(relay_record.relay())}
    assert not seen & outsider_ips


def test_the_host_itself_gets_an_answer_on_loopback_only(qmail_host):
    tries = probe(qmail_host, ["127.0.0.1", "::1"] + addresses(qmail_host))
    by_address = {}
    for address, result, first in tries:
        by_address.setdefault(address, set()).add((result, first[:4]))
    assert by_address.pop("127.0.0.1") == {("connected", "220 ")}
    assert all(results == {("refused", "")} for results in by_address.values()), by_address


def test_only_one_listener_on_2525(qmail_host):
    # /proc/net/tcp{,6}: local address column, state 0A = LISTEN; 09DD = 2525, 0100007F = 127.0.0.1
    listeners = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in qmail_host.file(table).content_string.splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[1].endswith(":09DD"):
                listeners.append(fields[1])
    assert listeners == ["0100007F:09DD"]
