#!/usr/bin/env bash
# The demo: real MTAs in containers relaying through a local stand-in for smtp-relay.gmail.com.
#   scripts/demo.sh        set everything up, start the containers, run playbooks/site.yml, send mail, show the record,
#                          then run the relay doctor (playbooks/doctor.yml) on the demo's hosts and show its table
#   scripts/demo.sh stuck  after `up`: the relay's password changes, mail is held, the doctor names the cause and its
#                          fix, the fix is applied (site.yml with the new password) and the held mail leaves
#   scripts/demo.sh down   remove the demo's containers and network
# Re-running is fast and idempotent: images and containers are reused, site.yml changes nothing the second time.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NETWORK=srt-demo RELAY=srt-demo-relay
MTAS=(postfix sendmail)
DEMO=$CACHE/demo

down() {
    local names=("$RELAY")
    for mta in "${MTAS[@]}"; do names+=("srt-demo-$mta"); done
    podman rm -f -t 2 "${names[@]}" >/dev/null 2>&1 || true
    podman network rm -f "$NETWORK" >/dev/null 2>&1 || true
    purge_stale_dns
    say "demo removed"
}

write_secrets() {
    # One AUTH password per machine, never committed: the stand-in knows it as a user, the MTAs log in with it.
    umask 077
    [[ -s $DEMO/secrets.yml ]] || printf 'relay_auth_password: "%s"\n' "$(openssl rand -hex 16)" >"$DEMO/secrets.yml"
    PASSWORD=$(sed -n 's/^relay_auth_password: "\(.*\)"$/\1/p' "$DEMO/secrets.yml")
}

write_relay_config() {
    # The stand-in's users log in with password $1; the file is reloaded by the stand-in when it changes. A new
    # $2 (restart_epoch) closes every connection opened before, as a relay restart would.
    local subnet etc=$DEMO/relay/etc
    subnet=$(podman network inspect "$NETWORK" --format '{{range .Subnets}}{{.Subnet}} {{end}}' | awk '{print $1}')
    # written beside and renamed: the stand-in reloads on a change and must never read half a file
    cat >"$etc/config.yml.new" <<YAML
hostname: relay.smarthost.test
tls: {cert: /etc/relay-standin/cert.pem, key: /etc/relay-standin/key.pem}
record: /var/lib/relay-standin/record.jsonl
require_tls: true
allowlist: ["$subnet"]
users:
  postfix@example.com: "$1"
  sendmail@example.com: "$1"
allowed_senders: domain_addresses
domains: [example.com]
licenses: 100
restart_epoch: ${2:-0}
YAML
    chmod 600 "$etc/config.yml.new" && mv "$etc/config.yml.new" "$etc/config.yml"
}

start_relay() {
    local etc=$DEMO/relay/etc var=$DEMO/relay/var
    mkdir -p "$etc" "$var"
    podman network exists "$NETWORK" || { purge_stale_dns && podman network create "$NETWORK" >/dev/null; }
    cp "$PKI/relay.pem" "$etc/cert.pem" && cp "$PKI/relay.key" "$etc/key.pem" && chmod 600 "$etc"/*.pem
    write_relay_config "$PASSWORD"
    if ! podman container exists "$RELAY"; then
        # A new stand-in starts a new record: an earlier demo's containers had other addresses.
        rm -f "$var/record.jsonl"
        podman run -d --name "$RELAY" --network "$NETWORK" --network-alias relay.smarthost.test \
            -v "$ROOT:/opt/smarthost:ro" -v "$etc:/etc/relay-standin" -v "$var:/var/lib/relay-standin" \
            localhost/smarthost-relay:latest >/dev/null
    fi
    podman start "$RELAY" >/dev/null
}

start_mtas() {
    for mta in "${MTAS[@]}"; do
        local name=srt-demo-$mta
        podman container exists "$name" ||
            podman run -d --name "$name" --hostname "$mta.example.com" --network "$NETWORK" --systemd=always \
                localhost/smarthost-debian:12 /sbin/init >/dev/null
        podman start "$name" >/dev/null
    done
}

show_table() {
    local map=()
    for mta in "${MTAS[@]}"; do
        map+=("$(podman inspect "srt-demo-$mta" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')=srt-demo-$mta=$mta")
    done
    PYTHONPATH="$ROOT/tools" python3 "$ROOT/scripts/relay_table.py" "$DEMO/relay/var/record.jsonl" "${map[@]}"
}

run_doctor() {
    # The relay doctor over the demo's hosts (read-only; the containers are entered as root already). Its reports go
    # to $DEMO/doctor; it exits non-zero when a host is blocked, which fails the demo after the table is shown.
    # With $1 (healthy, or blocked CLASS FIX) every host must have that verdict (report_shows); for blocked, the
    # causes with their fixes are shown too.
    local inventory=$ROOT/tests/bed/demo/inventory.yml log=$CACHE/logs/demo-doctor.log
    local report=$DEMO/doctor rc=0
    rm -rf "$report"
    ansible-playbook -i "$inventory" -e doctor_become=false -e "doctor_report_dir=$report" \
        "$ROOT/playbooks/doctor.yml" >"$log" 2>&1 || rc=$?
    [[ -s $report/doctor.md ]] || { tail -n 40 "$log"; die "the relay doctor wrote no report; full log: $log"; }
    sed -n '/^| host |/,/^$/p' "$report/doctor.md"
    if [[ ${1:-} == blocked ]]; then
        sed -n '/^## Causes/,$p' "$report/doctor.md"
    elif ((rc != 0)); then
        die "the relay doctor found a blocked host; causes and fixes in $report/doctor.md, log: $log"
    fi
    (($# == 0)) || report_shows "$@" || die "the report is not what the demo shows; report: $report/doctor.md"
}

report_shows() {
    # Every demo host is in the doctor's JSON report with verdict $1; with $2 and $3, each holds mail for class $2,
    # whose fixes name the variable $3.
    python3 - "$DEMO/doctor/doctor.json" "${#MTAS[@]}" "$@" <<'PY'
import json
import sys

hosts = json.load(open(sys.argv[1]))["hosts"]
count, verdict, klass, fix = (sys.argv[2:] + [None, None])[:4]
if len(hosts) != int(count):
    sys.exit("%d host(s) in the report, not %s" % (len(hosts), count))
for name, report in sorted(hosts.items()):
    found = next((row for row in report["classes"] if row["class"] == klass), None)
    if report["verdict"] != verdict:
        sys.exit("%s: verdict %s, not %s" % (name, report["verdict"], verdict))
    if klass and not (found and found["queued"]):
        sys.exit("%s: no mail held for %s" % (name, klass))
    if klass and fix not in [f["variable"] for f in found["fixes"]]:
        sys.exit("%s: the fixes of %s do not name %s" % (name, klass, fix))
PY
}

wait_for() {
    # Poll "$@" every second until it succeeds; fail naming $1 (what was awaited) after $2 seconds.
    local what=$1 limit=$2 start=$SECONDS
    shift 2
    until "$@"; do
        ((SECONDS - start < limit)) || die "waited ${limit}s for $what"
        sleep 1
    done
}

config_loaded() {
    # The stand-in's status names the digest of the config file on disk: it runs with it.
    local want
    want=$(sha256sum "$DEMO/relay/etc/config.yml" | cut -d' ' -f1)
    grep -q "\"config_sha256\": \"$want\"" "$DEMO/relay/var/status.json" 2>/dev/null
}

deferred_for() {
    # Every demo host's mail log holds a deferral of the message to $1 (Postfix's status=deferred, Sendmail's
    # stat=Deferred).
    local mta log
    for mta in "${MTAS[@]}"; do
        log=$(podman exec "srt-demo-$mta" journalctl -q SYSLOG_FACILITY=2)
        grep -q -e "to=<\?$1>\?,.*status=deferred" -e "to=<\?$1>\?,.*stat=Deferred" <<<"$log" || return 1
    done
}

accepted_for() {
    # The stand-in's record holds $2 accepted messages to recipient $1.
    local count
    count=$(PYTHONPATH="$ROOT/tools" python3 -c '
import sys
from relay_standin.records import load, transactions
print(sum(1 for t in transactions(load(sys.argv[1]))
          if t.get("verdict") == "accepted" and sys.argv[2] in t.get("recipients", [])))
' "$DEMO/relay/var/record.jsonl" "$1")
    ((count >= $2))
}

send_from_hosts() {
    # One message from each demo host to $1, handed to its MTA's sendmail program as a local program would.
    for mta in "${MTAS[@]}"; do
        printf 'From: %s@example.com\nTo: %s\nSubject: demo: held while the password is wrong\n\nsent by demo.sh stuck\n' \
            "$mta" "$1" | podman exec -i "srt-demo-$mta" /usr/sbin/sendmail -f "$mta@example.com" "$1"
    done
}

flush_queues() {
    podman exec srt-demo-postfix postqueue -f
    # -bH: forget the relay's host status, so the run tries it at once
    podman exec srt-demo-sendmail sh -c 'sendmail -bH >/dev/null; sendmail -q -O MinQueueAge=0'
}

delivered_for() {
    # accepted_for $1 $2, with the queues flushed every 15 s meanwhile (the demo's Sendmail waits 5 minutes before
    # it retries a message by itself)
    accepted_for "$1" "$2" && return 0
    ((SECONDS - LAST_FLUSH < 15)) || { flush_queues; LAST_FLUSH=$SECONDS; }
    return 1
}

stuck() {
    if [[ ! -s $DEMO/secrets.yml ]] || ! podman container exists "$RELAY"; then die "run scripts/demo.sh first"; fi
    write_secrets
    # Whatever happens below, the stand-in ends with the password secrets.yml holds (the old one, or the new one
    # once the fix is applied), so that `up` finds the demo consistent.
    trap 'write_secrets; write_relay_config "$PASSWORD"' EXIT
    local new recipient
    new=$(openssl rand -hex 16)
    recipient=stuck-$(date +%s)@example.net
    say "the relay's password for both users is reset (as in the Admin console) and its open connections are closed;" \
        "the hosts still log in with the old password"
    write_relay_config "$new" "$(date +%s)"
    wait_for "the stand-in to load its new config" 30 config_loaded
    send_from_hosts "$recipient"
    say "one message from each host to $recipient; waiting until both MTAs have deferred it"
    wait_for "both MTAs to defer the message" 120 deferred_for "$recipient"
    say "the relay doctor on the demo's hosts (reports in $DEMO/doctor):"
    run_doctor blocked bad_credentials relay_auth_password
    say "the fix it names: the new password goes into $DEMO/secrets.yml (a vault in real life), site.yml runs again"
    printf 'relay_auth_password: "%s"\n' "$new" >"$DEMO/secrets.yml.new" && mv "$DEMO/secrets.yml.new" "$DEMO/secrets.yml"
    local log=$CACHE/logs/demo-site.log
    ansible-playbook -i "$ROOT/tests/bed/demo/inventory.yml" -e "@$DEMO/secrets.yml" "$ROOT/playbooks/site.yml" \
        >"$log" 2>&1 || { tail -n 40 "$log"; die "site.yml failed; full log: $log"; }
    grep -A10 '^PLAY RECAP' "$log" | sed '/^$/q'
    LAST_FLUSH=-15
    wait_for "the held messages to reach the relay" 120 delivered_for "$recipient" "${#MTAS[@]}"
    say "the held messages reached the relay:"
    show_table
    say "the relay doctor again:"
    run_doctor healthy
}

up() {
    "$ROOT/scripts/setup.sh"
    mkdir -p "$DEMO"
    write_secrets
    say "starting the relay stand-in and one container per MTA on network $NETWORK"
    start_relay
    start_mtas
    local inventory=$ROOT/tests/bed/demo/inventory.yml log=$CACHE/logs/demo-site.log
    ansible-playbook -i "$inventory" "$ROOT/molecule/resources/trust_test_ca.yml" >"$CACHE/logs/demo-prepare.log"
    say "running playbooks/site.yml (log: $log)"
    ansible-playbook -i "$inventory" -e "@$DEMO/secrets.yml" "$ROOT/playbooks/site.yml" >"$log" 2>&1 ||
        { tail -n 40 "$log"; die "site.yml failed; full log: $log"; }
    grep -A10 '^PLAY RECAP' "$log" | sed '/^$/q'
    say "what the relay stand-in received:"
    show_table
    say "the relay doctor on the demo's hosts (reports in $DEMO/doctor):"
    run_doctor
}

case ${1:-up} in
    up) up ;;
    stuck) stuck ;;
    down) down ;;
    *) die "usage: $0 [up|stuck|down]" ;;
esac
