# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark harness: one command, one table (and JSON, Markdown) of what the collection costs.

    bash bench/run.sh [--sections policy,roles,throughput,pool,site] [--runs 3] [--roles postfix,sendmail,baseline]
                      [--site 1:5,5:5,20:5,20:20] [--site-image preinstalled|plain] [--site-connection podman,ssh]
                      [--messages 1000]
                      [--pool-runs qmail:1,qmail:20,sendmail:1,sendmail:4,qmail:20:noreuse] [--per-session 10]

Sections: policy (the controller checks for 10/1,000/10,000 ranges), roles (first converge, idempotent rerun,
check mode on a fresh and on a converged Debian 12 container, median of --runs rounds, each round one run per role in
an order that rotates; the role "baseline" is bench/playbooks/baseline_postfix.yml, the manual Postfix steps alone,
timed without check mode and reported as the ratio postfix / baseline), throughput (--messages messages
through each MTA until the stand-in accepted them, and the TCP connections used), pool (--messages messages through
the relay guard alone, in qmail-remote's sessions - one message each - and in Sendmail's - --per-session each -, the
relay connections they took and the stand-in's denial-of-service refusals, per --pool-runs STYLE:CONCURRENCY[:noreuse]),
site (site.yml against HOSTS:FORKS, on hosts with Postfix preinstalled unless --site-image plain; wall time and the
controller's CPU seconds). Not a pass/fail test. Nothing outside this machine is contacted but Debian's
mirror (package installs).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import yaml

import paths  # noqa: F401  pylint: disable=unused-import  # before relay_standin
import report as fmt
from rig import (BASE_IMAGE, CACHE, LOG, POSTFIX_IMAGE, ROOT, SSH_ENV, Rig, log, podman, postfix_image,
                 run_playbook, write_inventory)
from rounds import round_order
from relay_standin import inject

RESULTS = ROOT / "bench" / "results"
ROLE_PLAYBOOK = ROOT / "bench" / "playbooks" / "role.yml"
GUARD_PLAYBOOK = ROOT / "bench" / "playbooks" / "guard.yml"
# Roles that are playbooks of the bench's own, the floors the collection's roles are measured against.
BASELINES = {"baseline": ROOT / "bench" / "playbooks" / "baseline_postfix.yml"}
PHASE_ARGS = {"check_fresh": ("--check", "--diff"), "converge": (), "rerun": (), "check_converged": ("--check", "--diff")}
RELAY_VARS = {
    "relay_host": "relay.smarthost.test", "relay_tls": "required", "relay_auth": True,
    "relay_auth_username": "bench@example.com", "relay_domains": ["example.com"],
    "relay_helo_name": "bench.example.com", "relay_test_recipient": "",
    # The rig has no DNS for the bench's example.com senders.
    "sendmail_accept_unresolvable_domains": True,
    # Containers see the host's load average, which other engineers' runs drive past Sendmail's defaults
    # (QueueLA 8, RefuseLA 12 per CPU): it would stop delivering and refuse connections for load it does not cause.
    "sendmail_mc_extra": ["define(`confQUEUE_LA', `1000')", "define(`confREFUSE_LA', `1000')"],
}
NOTES = [
    "Every role run uses the same relay settings: port 587, STARTTLS with certificate verification, SMTP AUTH, "
    "HELO bench.example.com, against the relay stand-in (tools/relay_standin) in a container on the same network.",
    "Sendmail runs with QueueLA/RefuseLA 1000 (sendmail_mc_extra): containers see the shared host's load "
    "average, and Sendmail's defaults (8 and 12 per CPU) would make it stop delivering because of other "
    "engineers' workloads.",
    "qmail (role rows only): a container laid out as a qmail installation (molecule/resources/qmail_layout.yml: "
    "qmail's users, groups and directories, no qmail program, as qmail is in no reachable registry), so the figure "
    "is the role's and its relay guard's; relay_auth false and the bench network in relay_allowlist, since "
    "qmail-remote has no SMTP AUTH and the rule engine refuses it for qmail.",
    "Throughput: one SMTP session submits the messages to the MTA on 127.0.0.1:25 inside its container; the time "
    "runs from the first submission to the stand-in's record of the last accepted message; delivery: from the first "
    "accepted message to the last. Sendmail's role queues new mail by default (sendmail_delivery_mode queue) for its "
    "persistent queue runner, which starts a run every 15 s (sendmail_queue_interval p15s): the wait for that run "
    "is in the total, not in the delivery figure. 'sendmail background': sendmail_delivery_mode background, each "
    "message delivered at once through the relay guard's pooled connections.",
    "Policy: CPU seconds of the rule engine (allowlist check, the same with n/10 egress addresses, the whole profile "
    "check), median of the runs.",
    "Roles: each round runs every role once, each on a fresh container, in an order rotated by one every round "
    "(postfix, baseline; baseline, postfix; …); medians over the rounds. baseline: bench/playbooks/baseline_postfix.yml, "
    "the service document's manual Postfix steps alone (apt install as the role does it, relayhost, SASL password map "
    "and postmap, TLS with verification, reload), no check mode; the postfix / baseline row gives the ratio of the "
    "medians and each round's own.",
    "site.yml: fresh containers, postfix group, test message on (relay_test_recipient set); container start and "
    "CA trust are not timed. --site-image preinstalled (the default): the hosts run bench/postfix.Containerfile's "
    "image, Debian 12 with postfix, libsasl2-modules and ca-certificates installed, so the figure is the "
    "collection's and not apt's; plain: the bare test-bed image. Controller CPU: user + system seconds of "
    "ansible-playbook, its workers and the podman commands they ran (wait4), divided by the hosts. Over ssh: "
    "ANSIBLE_PIPELINING, ssh -o ControlMaster=auto -o ControlPersist=60s to each container's address as root with a "
    "key (openssh-server in the image); the ssh master processes run detached, so their CPU is not in the figure.",
    "Pool: the relay guard alone (smarthost.relay.relay_guard with the limit and refusal rules, the pool's defaults: "
    "at most 4 relay connections, 4 idle for 60 s) on a Debian 12 container, sessions from inside it to "
    "127.0.0.1:24 (bench/guard_sessions.py); the stand-in's denial-of-service rule at its default, 421 at HELO for "
    "more than 60 new connections a minute from one address. Each run starts with a restart of the guard (a cold "
    "pool) and ends with another (its connections closed, so the stand-in has recorded them all); connections are "
    "counted from the stand-in's record, time from the first session to the last accepted message. noreuse: the "
    "same with relay_guard_pool_max_idle 0 (one relay connection per session, as before the pool).",
]


def section_policy(args, rig, publish):  # pylint: disable=unused-argument
    target = CACHE / "policy.json"
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "policy_bench.py"), "--json", str(target)],
                         capture_output=True, text=True, check=True)
    log(out.stdout + out.stderr)
    results = json.loads(target.read_text())
    publish(results)
    return results


# qmail is in no reachable registry: its role runs on a container laid out as a qmail installation (users, groups,
# directories; no qmail program), as in molecule/qmail, so its figure is the role's and the relay guard's only.
# qmail-remote has no SMTP AUTH, so the rule engine refuses relay_auth for qmail: the relay knows the bench's
# network from its allowlist instead (the rig's stand-in allowlists it).
QMAIL_LAYOUT = ROOT / "molecule" / "resources" / "qmail_layout.yml"


def host_vars(rig, role):
    if role == "qmail":
        return dict(RELAY_VARS, relay_auth=False, relay_allowlist=[rig.subnet])
    return RELAY_VARS


def fresh_host(rig, name, role, overrides=None):
    rig.add_hosts([name])
    inventory = write_inventory(CACHE / ("%s.yml" % name), {role: [name]},
                                dict(host_vars(rig, role), **(overrides or {})))
    run_playbook(inventory, ROOT / "molecule" / "resources" / "trust_test_ca.yml")
    if role == "qmail":
        run_playbook(inventory, QMAIL_LAYOUT)
    return inventory


def role_phases(role, check_fresh):
    """The timed phases of one run; a baseline has no check mode."""
    if role in BASELINES:
        return ("converge", "rerun")
    return (("check_fresh",) if check_fresh else ()) + ("converge", "rerun", "check_converged")


def role_playbook(role):
    if role in BASELINES:
        return (BASELINES[role],)
    return (ROLE_PLAYBOOK, "-e", "bench_role=%s" % role)


def run_role(rig, role, index, check_fresh, record):
    """One run of a role on a fresh container: each phase's seconds (None if it failed) into record; the host's name."""
    name = "srt-bench-%s-%d" % (role, index)
    inventory = fresh_host(rig, name, role)
    for phase in role_phases(role, check_fresh):
        try:
            played = run_playbook(inventory, *role_playbook(role), *PHASE_ARGS[phase])
        except RuntimeError as error:  # reported in the table; the run log has the output
            record["samples"][phase].append(None)
            record["failures"].append("%s %s run %d failed: %s" % (role, phase, index + 1, str(error).splitlines()[0]))
            continue
        record["samples"][phase].append(round(played.seconds, 1))
        if phase == "rerun":
            record["rerun_changed"].append(played.changed.get(name, -1))
    return name, inventory


def role_results(record):
    out = {phase: {"median": _median([x for x in v if x is not None]), "samples": v}
           for phase, v in record["samples"].items()}
    out["rerun_changed"] = record["rerun_changed"] or [-1]
    out["failures"] = record["failures"]
    return out


def section_roles(args, rig, publish):
    records = {role: {"samples": {"check_fresh": [], "converge": [], "rerun": [], "check_converged": []},
                      "rerun_changed": [], "failures": []} for role in args.roles}
    results = {}
    for index in range(args.runs):
        if index and past(args.stop_by):
            for role in args.roles:
                records[role]["failures"].append("%s: %d of %d runs, the rest skipped past --stop-by" % (
                    role, index, args.runs))
                results[role] = role_results(records[role])
            publish(results)
            break
        for role in round_order(args.roles, index):
            name, inventory = run_role(rig, role, index, args.check_fresh, records[role])
            if "throughput" in args.sections and not args.parallel and role in MTA_VERSION:
                # goes on with the last converged host
                rig.remove_hosts(list(rig.converged.pop(role, ())[:1]))
                rig.converged[role] = (name, inventory)
            else:
                rig.remove_hosts([name])
            results[role] = role_results(records[role])
            publish(results)
    return results


def _median(values):
    return statistics.median(values) if values else None


MTA_VERSION = {"postfix": "postfix", "sendmail": "sendmail-bin"}
# What each MTA logs when it keeps a message queued for a later attempt.
DEFERRED = {"postfix": "status=deferred", "sendmail": "stat=Deferred"}


def mta_deferrals(name, role):
    journal = podman("exec", name, "journalctl", "--no-pager", "-o", "cat", check=False).stdout
    lines = [line for line in journal.splitlines() if DEFERRED[role] in line]
    return len(lines), lines[:3]


# Throughput runs per MTA role: its defaults, and for Sendmail also the other delivery mode the role offers.
# queue (the default) waits for the persistent queue runner's next run, which sends everything over one cached
# connection; background delivers each message at once, over the relay guard's pooled connections.
THROUGHPUT_VARIANTS = {
    "postfix": {"postfix": {}},
    "sendmail": {"sendmail": {}, "sendmail background": {"sendmail_delivery_mode": "background"}},
}


def throughput_host(rig, role, variant, overrides):
    """The converged host of the roles section when it fits (the role's defaults), else a fresh one."""
    if not overrides and role in rig.converged:
        return rig.converged.pop(role)
    name = "srt-bench-tp-%s" % variant.replace(" ", "-")
    inventory = fresh_host(rig, name, role, overrides)
    run_playbook(inventory, ROLE_PLAYBOOK, "-e", "bench_role=%s" % role)
    return name, inventory


def throughput_result(args, accepted, start, submitted, transactions):
    """Time from the first submission to each accepted message; the delivery phase from the first acceptance
    on (a queue-mode MTA sends nothing until its queue runner's next run)."""
    seconds = (accepted[-1] - start) if accepted else float("nan")
    delivery = (accepted[-1] - accepted[0]) if len(accepted) > 1 else float("nan")
    connections = len({t.get("connection") for t in transactions})
    return {
        "messages": args.messages, "accepted": len(accepted),
        "seconds": round(seconds, 2), "submit_seconds": round(submitted, 2),
        "seconds_99": round(accepted[int(0.99 * len(accepted)) - 1] - start, 2) if accepted else None,
        "messages_per_second": round(len(accepted) / seconds, 1) if accepted else 0,
        "first_accepted_seconds": round(accepted[0] - start, 2) if accepted else None,
        "delivery_seconds": round(delivery, 2),
        "delivery_messages_per_second": round((len(accepted) - 1) / delivery, 1) if len(accepted) > 1 else 0,
        "transactions": len(transactions), "connections": connections,
        "connections_per_1000": round(1000.0 * connections / max(1, len(accepted)), 1),
    }


def send_batch(args, rig, name, tag):
    """Submit the batch in one SMTP session inside the container; the stand-in's accepted times, sorted."""
    podman("exec", "-i", name, "sh", "-c", inject.INSTALL, stdin=inject.source())
    start = time.time()
    podman("exec", name, *inject.in_container("batch", tag, "bench@example.com", args.messages, "--id-domain",
                                              "bench.example.com", "--recipient-pool", 50, "--body", "bench",
                                              "--reconnect-for", 0))
    submitted = time.time() - start
    deadline = time.monotonic() + args.deadline
    while True:
        mine = [t for t in rig.transactions() if (t.get("message_id") or "").startswith("<%s." % tag)]
        accepted = sorted(t["time"] for t in mine if t.get("verdict") == "accepted")
        if len(accepted) >= args.messages or time.monotonic() > deadline:
            return start, submitted, accepted, mine
        time.sleep(1)


def section_throughput(args, rig, publish):
    results = {}
    for role in [r for r in args.roles if r in MTA_VERSION]:  # not the baselines
        for variant, overrides in THROUGHPUT_VARIANTS.get(role, {role: {}}).items():
            name, dummy = throughput_host(rig, role, variant, overrides)
            version = podman("exec", name, "dpkg-query", "-W", "-f", "${Version}", MTA_VERSION[role]).stdout.strip()
            tag = "tp-%s-%d" % (role, time.time_ns())
            start, submitted, accepted, mine = send_batch(args, rig, name, tag)
            deferred, examples = mta_deferrals(name, role)
            results[variant] = dict(throughput_result(args, accepted, start, submitted, mine), mta_version=version,
                                    role_vars=overrides, mta_deferred=deferred, mta_deferred_examples=examples)
            rig.remove_hosts([name])
            publish(results)
    return results


def guard_restart(name):
    """Restart the guard (its pooled connections close with QUIT) and wait until it answers again."""
    # back-to-back runs restart it more often than systemd's default start limit (5 in 10 s) allows
    podman("exec", name, "systemctl", "reset-failed", "smarthost-relay-guard", check=False)
    restarted = podman("exec", name, "systemctl", "restart", "smarthost-relay-guard", check=False)
    if restarted.returncode != 0:
        journal = podman("exec", name, "journalctl", "-u", "smarthost-relay-guard", "-n", "30", "--no-pager",
                         check=False).stdout
        raise RuntimeError("the relay guard on %s did not restart: %s\n%s" % (name, restarted.stderr, journal))
    deadline = time.monotonic() + 30
    probe = "import socket; socket.create_connection(('127.0.0.1', 24), timeout=2).close()"
    while podman("exec", name, "python3", "-c", probe, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the relay guard on %s did not come back" % name)
        time.sleep(0.5)


def guard_cpu_seconds(name):
    """CPU seconds (user + system) the guard's process has used since its last restart: one Python process, its
    sessions in threads under one interpreter lock, so one core is its ceiling whatever the concurrency."""
    script = ('pid=$(systemctl show -p MainPID --value smarthost-relay-guard); '
              'echo $(cut -d" " -f14,15 /proc/$pid/stat) $(getconf CLK_TCK)')
    user, system, ticks = podman("exec", name, "sh", "-c", script).stdout.split()
    return (int(user) + int(system)) / float(ticks)


def settled_records(rig, connections, timeout=30):
    """The stand-in's record once every connection in ``connections`` has its connection line."""
    deadline = time.monotonic() + timeout
    while True:
        records = rig.records()
        recorded = {r["connection"] for r in records if r.get("kind") == "connection"}
        if connections <= recorded or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def section_pool(args, rig, publish):
    name = "srt-bench-pool"
    inventory = fresh_host(rig, name, "guard")
    run_playbook(inventory, GUARD_PLAYBOOK)
    podman("cp", str(ROOT / "bench" / "guard_sessions.py"), "%s:/root/guard_sessions.py" % name)
    address = podman("inspect", name, "--format",
                     "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}").stdout.strip()
    pool_off = False
    results = []
    for style, concurrency, noreuse in args.pool_runs:
        if noreuse != pool_off:  # the role again, with the pool's reuse off (max_idle 0) or back at its default
            run_playbook(inventory, GUARD_PLAYBOOK, "-e",
                         json.dumps({"relay_guard_pool_max_idle": 0 if noreuse else 4}))
            pool_off = noreuse
        if noreuse or (results and results[-1]["noreuse"]):
            # a run without reuse fills the stand-in's DoS window (60 s): none starts with a burst of another's in it
            last = max((r["time"] for r in rig.records() if r.get("kind") == "connection"
                        and r.get("client_ip") == address), default=0)
            time.sleep(max(0.0, last + 61 - time.time()))
        guard_restart(name)
        tag = "pool-%s-%d-%d" % (style, concurrency, time.time_ns())
        start = time.time()
        out = podman("exec", name, "python3", "/root/guard_sessions.py", style, str(args.messages), tag,
                     "--concurrency", str(concurrency), "--per-session", str(args.per_session)).stdout
        client = json.loads(out)
        deadline = time.monotonic() + args.deadline
        while True:
            mine = [t for t in rig.transactions() if (t.get("message_id") or "").startswith("<%s." % tag)]
            accepted = sorted(t["time"] for t in mine if t.get("verdict") == "accepted")
            if len(accepted) >= client["sent"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        guard_cpu = guard_cpu_seconds(name)
        guard_restart(name)  # the pool's connections close: the stand-in records them
        records = settled_records(rig, {t["connection"] for t in mine})
        conns = [r for r in records if r.get("kind") == "connection" and r.get("client_ip") == address
                 and r["time"] - r.get("duration", 0) >= start]
        seconds = (accepted[-1] - start) if accepted else float("nan")
        results.append({
            "style": style, "concurrency": concurrency, "noreuse": noreuse,
            "messages_per_session": client["messages_per_session"], "sessions": client["sessions"],
            "messages": args.messages, "accepted": len(accepted), "refused_by_guard": client["refused"],
            "refusals": client["refusals"], "seconds": round(seconds, 2),
            "messages_per_second": round(len(accepted) / seconds, 1) if accepted else 0,
            "connections": len(conns), "carrying": sum(1 for r in conns if r.get("transactions")),
            "connections_per_1000": round(1000.0 * len(conns) / args.messages, 1),
            "most_on_one_connection": max((r.get("transactions") or 0 for r in conns), default=0),
            "dos_refusals": sum(1 for r in conns if r.get("dos")),
            "guard_cpu_seconds": round(guard_cpu, 2),
            # the most one core running nothing but the guard could pass at this cost per message
            "guard_ceiling_per_second": round(len(accepted) / guard_cpu, 1) if accepted and guard_cpu else None,
        })
        publish(results)
    rig.remove_hosts([name])
    return results


def parse_pool_runs(text):
    """STYLE:CONCURRENCY[:noreuse],… -> [(style, concurrency, noreuse)]."""
    runs = []
    for item in filter(None, text.split(",")):
        parts = item.split(":")
        if parts[0] not in ("qmail", "sendmail") or len(parts) not in (2, 3) or parts[2:] not in ([], ["noreuse"]):
            raise argparse.ArgumentTypeError("%r is not STYLE:CONCURRENCY[:noreuse] (STYLE qmail or sendmail)" % item)
        runs.append((parts[0], int(parts[1]), parts[2:] == ["noreuse"]))
    return runs


def section_site(args, rig, publish):
    results = []
    image = postfix_image() if args.site_image == "preinstalled" else BASE_IMAGE  # built before the clock runs
    for (hosts, forks), connection in ((run, c) for c in args.site_connection for run in args.site):
        if past(args.stop_by):
            skipped = (hosts, forks, connection, args.stop_by)
            print("site.yml %d hosts, forks %d over %s: skipped, past --stop-by %s" % skipped, file=sys.stderr)
            continue
        names = ["srt-bench-site-%02d" % n for n in range(hosts)]
        addresses = rig.add_hosts(names, image=image, ssh=connection == "ssh")
        inventory = write_inventory(CACHE / "site-inventory.yml", {"postfix": names},
                                    dict(RELAY_VARS, relay_test_recipient="site-test@example.net"), addresses)
        env = SSH_ENV if connection == "ssh" else None
        run_playbook(inventory, ROOT / "molecule" / "resources" / "trust_test_ca.yml", forks=20, env=env)
        played = run_playbook(inventory, ROOT / "playbooks" / "site.yml", forks=forks, env=env)
        results.append({"hosts": hosts, "forks": forks, "image": args.site_image, "connection": connection,
                        "seconds": round(played.seconds, 1),
                        "seconds_per_host": round(played.seconds / hosts, 1),
                        "cpu_seconds": round(played.cpu_seconds, 1),
                        "cpu_seconds_per_host": round(played.cpu_seconds / hosts, 2),
                        "changed_per_host": statistics.median(played.changed[n] for n in names)})
        rig.remove_hosts(names)
        publish(results)
    return results


def past(stop_by):
    return bool(stop_by) and datetime.now(timezone.utc).strftime("%H:%M") >= stop_by


def versions():
    def first_line(*cmd):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "?"
    import ansible.release  # pylint: disable=import-outside-toplevel
    galaxy = (ROOT / "galaxy.yml").read_text()
    return {"smarthost.relay": next(line.split(":", 1)[1].strip() for line in galaxy.splitlines()
                                    if line.startswith("version:")),
            "git": first_line("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
            "ansible-core": ansible.release.__version__,
            "podman": first_line("podman", "--version").replace("podman version ", ""),
            "python": sys.version.split()[0]}


FUNCS = (("policy", section_policy), ("roles", section_roles), ("throughput", section_throughput),
         ("pool", section_pool), ("site", section_site))


class Report:
    """The report, written out again whenever a measurement is added (a run stopped early keeps its figures)."""

    def __init__(self, args, header):
        self.args, self.data, self.lock, self.password = args, header, threading.Lock(), None

    def publish(self, name, results, before, start):
        with self.lock:
            if name == "policy":
                section = {"runs": results["runs"], "results": results["results"]}
            elif name == "roles" and name in self.data:  # --parallel: one part per role
                section = {"results": dict(self.data[name]["results"], **results),
                           "load_before": self.data[name]["load_before"]}
            else:
                section = {"results": results}
            section.setdefault("load_before", before)
            section.update(load_after=fmt.load_average(), seconds=round(time.monotonic() - start))
            self.data[name] = section
            self.write()

    def measure(self, job):
        name, func, args = job
        before, start = fmt.load_average(), time.monotonic()
        func(args, RIG, lambda partial: self.publish(name, partial, before, start))
        print("%s done in %d s" % (name, time.monotonic() - start), file=sys.stderr)

    def merge(self, path):
        earlier = json.loads(Path(path).read_text())
        for name in fmt.SECTIONS:
            if name in earlier and name not in self.args.sections:
                # a section merged into the earlier file keeps the run it was measured in
                self.data[name] = dict(earlier[name], run=earlier[name].get("run", earlier["date"]),
                                       git=earlier[name].get("git", earlier["machine"]["versions"]["git"]))

    def write(self):
        draft = fmt.format_text(self.data) + fmt.format_markdown(self.data) + json.dumps(self.data)
        self.data["password_in_output"] = fmt.count_secret([LOG.read_text(), draft], self.password)
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(self.data, indent=2) + "\n")
        out.with_suffix(".md").write_text(fmt.format_markdown(self.data))


RIG = Rig()


def stop(*dummy):
    if RIG.password:
        RIG.down()
    os._exit(143)  # now, not after the other threads' playbooks


def parse_site(text):
    return [tuple(int(n) for n in item.split(":")) for item in text.split(",") if item]


def parse_role_var(text):
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError("%r is not NAME=VALUE" % text)
    return name, yaml.safe_load(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(fmt.SECTIONS))
    parser.add_argument("--roles", default="postfix,sendmail", type=lambda s: s.split(","),
                        help="roles section: roles of the collection (postfix, sendmail, qmail: on a qmail layout without "
                             "qmail's programs), and baseline (the manual Postfix steps)")
    parser.add_argument("--site", default="1:5,5:5,20:5,20:20", type=parse_site, help="HOSTS:FORKS,…")
    parser.add_argument("--site-image", choices=("preinstalled", "plain"), default="preinstalled",
                        help="site section: hosts with Postfix installed already (%s, built when missing) or the "
                             "bare test-bed image" % POSTFIX_IMAGE)
    parser.add_argument("--site-connection", default="podman", type=lambda s: s.split(","),
                        help="site section: podman (containers.podman), ssh (pipelining, ControlPersist), or both")
    parser.add_argument("--runs", type=int, default=3, help="roles section: rounds (one run of each role each)")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--deadline", type=int, default=900, help="seconds to wait for the stand-in to accept all")
    parser.add_argument("--pool-runs", default="qmail:1,qmail:20,sendmail:1,sendmail:4,qmail:20:noreuse",
                        type=parse_pool_runs,
                        help="pool section: STYLE:CONCURRENCY[:noreuse],… (STYLE qmail: one message per session; "
                             "sendmail: --per-session per session; noreuse: the guard's pool.max_idle 0)")
    parser.add_argument("--per-session", type=int, default=10, help="pool section: messages per Sendmail session")
    parser.add_argument("--stop-by", metavar="HH:MM", help="UTC time after which no further site.yml run starts")
    parser.add_argument("--check-fresh", action="store_true", help="also time check mode on the fresh container")
    parser.add_argument("--parallel", action="store_true",
                        help="run the sections (and each role) at the same time: faster, but they load each other")
    parser.add_argument("--merge", action="append", default=[], metavar="JSON",
                        help="take the sections not run now from an earlier results file (marked with its run)")
    parser.add_argument("--role-var", action="append", default=[], metavar="NAME=YAML", type=parse_role_var,
                        help="a role variable for every host of the run (over the bench's own), e.g. "
                             "sendmail_queue_runners=1; named in the report's notes")
    parser.add_argument("--out", default=str(RESULTS / "latest"), help="writes OUT.json and OUT.md")
    parser.add_argument("--render", metavar="JSON", help="only print a results file's table and write its Markdown")
    args = parser.parse_args(argv)
    if args.render:
        data = json.loads(Path(args.render).read_text())
        Path(args.render).with_suffix(".md").write_text(fmt.format_markdown(data))
        print(fmt.format_text(data))
        return 0
    sections = args.sections = args.sections.split(",")
    RELAY_VARS.update(args.role_var)
    # A killed run (SIGTERM) still removes its containers; the figures so far are written already.
    signal.signal(signal.SIGTERM, stop)
    CACHE.mkdir(parents=True, exist_ok=True)
    LOG.write_text("")
    header = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"), "machine": fmt.machine(versions()),
              "notes": NOTES + (["--parallel: the sections (and the roles) ran at the same time and loaded each other; "
                                 "the timed role runs are one host each all the same."] if args.parallel else [])
              + (["Role variables of this run: %s." % ", ".join("%s=%s" % kv for kv in args.role_var)]
                 if args.role_var else [])}
    report = Report(args, header)
    try:
        if set(sections) - {"policy"}:
            RIG.up()
            report.password = RIG.password
        for path in args.merge:
            report.merge(path)
        jobs = [(name, func, args) for name, func in FUNCS if name in sections]
        if args.parallel:  # the roles one thread each too
            jobs = [job for job in jobs if job[0] != "roles"] + [
                ("roles", section_roles, argparse.Namespace(**dict(vars(args), roles=[role])))
                for role in (args.roles if "roles" in sections else ())]
        with ThreadPoolExecutor(len(jobs) if args.parallel else 1) as pool:
            list(pool.map(report.measure, jobs))
    finally:
        if report.password:  # the rig is up (a policy-only run leaves others' bench containers alone)
            RIG.down()
    report.write()
    print(fmt.format_text(report.data))
    return 0 if report.data["password_in_output"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
