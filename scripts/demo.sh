#!/usr/bin/env bash
# The demo: real MTAs in containers relaying through a local stand-in for smtp-relay.gmail.com.
#   scripts/demo.sh        set everything up, start the containers, run playbooks/site.yml, send mail, show the record,
#                          then run the relay doctor (playbooks/doctor.yml) on the demo's hosts and show its table
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

start_relay() {
    local subnet etc=$DEMO/relay/etc var=$DEMO/relay/var
    mkdir -p "$etc" "$var"
    podman network exists "$NETWORK" || { purge_stale_dns && podman network create "$NETWORK" >/dev/null; }
    subnet=$(podman network inspect "$NETWORK" --format '{{range .Subnets}}{{.Subnet}} {{end}}' | awk '{print $1}')
    cp "$PKI/relay.pem" "$etc/cert.pem" && cp "$PKI/relay.key" "$etc/key.pem" && chmod 600 "$etc"/*.pem
    cat >"$etc/config.yml" <<YAML
hostname: relay.smarthost.test
tls: {cert: /etc/relay-standin/cert.pem, key: /etc/relay-standin/key.pem}
record: /var/lib/relay-standin/record.jsonl
require_tls: true
allowlist: ["$subnet"]
users:
  postfix@example.com: "$PASSWORD"
  sendmail@example.com: "$PASSWORD"
allowed_senders: domain_addresses
domains: [example.com]
licenses: 100
YAML
    chmod 600 "$etc/config.yml"
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
    # to $DEMO/doctor; it exits non-zero when a host is blocked: the table is shown first, then the demo fails.
    local inventory=$ROOT/tests/bed/demo/inventory.yml log=$CACHE/logs/demo-doctor.log report=$DEMO/doctor rc=0
    rm -rf "$report"
    ansible-playbook -i "$inventory" -e doctor_become=false -e "doctor_report_dir=$report" \
        "$ROOT/playbooks/doctor.yml" >"$log" 2>&1 || rc=$?
    [[ -s $report/doctor.md ]] || { tail -n 40 "$log"; die "the relay doctor wrote no report; full log: $log"; }
    sed -n '/^| host |/,/^$/p' "$report/doctor.md"
    ((rc == 0)) || die "the relay doctor found a blocked host; causes and fixes in $report/doctor.md, log: $log"
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
    down) down ;;
    *) die "usage: $0 [up|down]" ;;
esac
