#!/usr/bin/env bash
# Run the whole test suite (what .ci/run runs). Sets everything up first.
#   scripts/test.sh                 every tier
#   scripts/test.sh unit            the fast tier only (< 2 min)
#   scripts/test.sh lint molecule   chosen tiers
# Tiers: unit lint sanity build molecule fresh. SMARTHOST_SCENARIOS="swaks postfix" limits molecule;
# SMARTHOST_MOLECULE_JOBS=1 runs its scenarios one at a time; SMARTHOST_MOLECULE_VERBOSE=0 drops -vvv --diff.
# sanity: ansible-test sanity, then the integration targets (tests/integration/targets); SMARTHOST_SANITY_PARTS=integration
# runs the targets alone, SMARTHOST_INTEGRATION_TARGETS="relay_settings_check ..." only those.
# fresh: the README's set-up and SMARTHOST_FRESH_TIERS (default "unit lint build"; sanity fits too) in a new Debian 12
# container with only the checkout copied in; its whole log in .cache/logs/fresh.log.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_TIERS=(unit lint sanity build molecule fresh)
# Scenario matrix: swaks and postfix run Debian 11, 12 and 13 hosts; sendmail runs Debian 12 (sendmail-smoke: 11 and 13); qmail runs Debian 12.
# Longest first, so that two at a time finish close together.
# Two at a time, in this order: Postfix's timing tests (the bulk's connection reuse, the doctor's log reads) failed
# twice on 2026-12-07 while the reliability scenario's fault matrix ran beside them; reliability now pairs with
# sendmail (proven together), and the sum stays as before.
SCENARIOS=${SMARTHOST_SCENARIOS:-existing postfix qmail security sendmail-smoke swaks sendmail reliability}
JOBS=${SMARTHOST_MOLECULE_JOBS:-2}
FRESH_TIERS=${SMARTHOST_FRESH_TIERS:-unit lint build}
FRESH_IMAGE=localhost/smarthost-debian:12
FRESH_NAME=$SMARTHOST_PREFIX-fresh

tiers=("$@")
((${#tiers[@]})) || tiers=("${ALL_TIERS[@]}")

# Containers of a killed run are removed by name before and after: the scenarios' for molecule, srt-fresh for fresh.
needs_images=0 leftovers=()
for t in "${tiers[@]}"; do
    [[ " ${ALL_TIERS[*]} " == *" $t "* ]] || die "unknown tier $t (tiers: ${ALL_TIERS[*]})"
    [[ $t == molecule ]] && needs_images=1 && read -ra leftovers <<<"${leftovers[*]} $SCENARIOS"
    [[ $t == fresh ]] && leftovers+=(fresh)
done
if ((needs_images)); then "$ROOT/scripts/setup.sh"; else "$ROOT/scripts/setup.sh" --no-images; fi
# fresh alone needs only its own image.
[[ " ${tiers[*]} " == *" fresh "* ]] && ((!needs_images)) && "$ROOT/scripts/build-images.sh" debian12

owner_of() {
    # The scenario (or tier) a container or network name belongs to: the longest known name N with the name
    # equal to srt-N or starting srt-N-, so that srt-sendmail-smoke-deb11 is sendmail-smoke's, never sendmail's.
    local name=$1 known best="" k
    known=$(find "$ROOT/molecule" -mindepth 1 -maxdepth 1 -type d ! -name resources -printf '%f\n')
    for k in $known fresh; do
        [[ $name == "$SMARTHOST_PREFIX-$k" || $name == "$SMARTHOST_PREFIX-$k-"* ]] && ((${#k} > ${#best})) && best=$k
    done
    echo "$best"
}

remove_leftovers() {
    # A killed run may leave containers and networks behind: remove those of the scenarios (and the fresh
    # tier) about to run, by name (srt-<name>, srt-<name>-…, networks likewise), and nothing else.
    local wanted=" $* " name ids=() nets=()
    while read -r name; do
        [[ -n $name && $wanted == *" $(owner_of "$name") "* ]] && ids+=("$name")
    done < <(podman ps -a --format '{{.Names}}')
    ((${#ids[@]} == 0)) || podman rm -f -t 2 "${ids[@]}" >/dev/null
    while read -r name; do
        [[ -n $name && $wanted == *" $(owner_of "$name") "* ]] && nets+=("$name")
    done < <(podman network ls --format '{{.Name}}')
    ((${#nets[@]} == 0)) || podman network rm -f "${nets[@]}" >/dev/null
    purge_stale_dns
    rm -rf "$CACHE/sanity"
}

tier_unit() {
    pytest -q -p no:cacheprovider -n 2 tests/unit
}

tier_lint() {
    yamllint -s .
    ansible-lint --offline --profile production
}

sanity_venv() {
    # ansible-test cannot bootstrap its own venvs offline (its get-pip comes from a host we cannot reach),
    # so its pinned sanity requirements go into a venv of their own and the tests run --local there.
    local venv=$CACHE/sanity-venv reqs stamp want
    reqs=$(python -c 'import ansible_test, pathlib; print(pathlib.Path(ansible_test.__file__).parent / "_data/requirements")')
    want=$(cat "$ROOT/requirements/dev.txt" "$reqs"/sanity.*.txt | sha256sum | cut -d' ' -f1)
    stamp=$venv/.requirements.sha256
    if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
        rm -rf "$venv" && python3 -m venv "$venv"
        local req_args=()
        for req in "$reqs"/sanity.*.txt; do req_args+=(-r "$req"); done
        "$venv/bin/pip" install -q --disable-pip-version-check "$(grep '^ansible-core==' "$ROOT/requirements/dev.txt")" \
            netaddr PyYAML aiosmtpd "${req_args[@]}"
        echo "$want" >"$stamp"
    fi
    echo "$venv"
}

install_pip_bootstrap() {
    local pip_version
    pip_version=$(ansible_test_pip_version "$1/bin/python") || die "cannot tell which pip ansible-test bootstraps"
    mkdir -p "$HOME/.ansible/test/cache"
    cp "$ROOT/tests/bed/ansible_test_get_pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
}

sanity_tests() {
    # validate-modules needs pwsh for the Exchange .ps1 modules, which this machine cannot have: it runs
    # on the Python modules and doc stubs only (the .ps1 are parsed by tests/unit instead).
    ansible-test sanity --local --python 3.11 --color no --skip-test validate-modules &&
        ansible-test sanity --local --python 3.11 --color no --test validate-modules plugins/modules/*.py
}

integration_targets() {
    # One target per controller-side plugin, run --local in the sanity venv (ansible-core, netaddr): the targets
    # only run plugins on the controller, on testhost (connection local), and connect to nothing.
    # The targets provoke refusals on purpose, so their output (in .cache/logs/integration.log) is shown only when
    # a target fails.
    local start=$SECONDS targets log=$CACHE/logs/integration.log
    read -ra targets <<<"${SMARTHOST_INTEGRATION_TARGETS:-}"
    mkdir -p "$CACHE/logs"
    if ! ansible-test integration --local --python 3.11 --color no "${targets[@]}" >"$log" 2>&1; then
        tail -n 80 "$log"
        say "integration targets FAILED after $((SECONDS - start))s (whole output: $log)"
        return 1
    fi
    say "integration targets passed in $((SECONDS - start))s ($(grep -c '^TASK' "$log") tasks; output: $log)"
}

tier_sanity() {
    # ansible-test needs the collection under ansible_collections/<ns>/<name>: copy the tracked tree.
    local venv dest=$CACHE/sanity/ansible_collections/smarthost/relay parts=${SMARTHOST_SANITY_PARTS:-sanity integration}
    venv=$(sanity_venv)
    install_pip_bootstrap "$venv"
    rm -rf "$CACHE/sanity" && mkdir -p "$dest"
    git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$dest"
    (cd "$dest" && git init -q && git add -A && export PATH=$venv/bin:$PATH &&
        { [[ " $parts " != *" sanity "* ]] || sanity_tests; } &&
        { [[ " $parts " != *" integration "* ]] || integration_targets; })
}

tier_build() {
    pytest -q -p no:cacheprovider tests/integration
}

fresh_step() {
    # fresh_step <label> <command …>: one step of the fresh tier, its output appended to the log.
    local label=$1 start=$SECONDS rc; shift
    printf '\n==> fresh: %s\n' "$label" >>"$FRESH_LOG"
    "$@" >>"$FRESH_LOG" 2>&1 && rc=0 || rc=$?
    if ((rc != 0)); then
        say "fresh: $label FAILED after $((SECONDS - start))s (exit $rc); last lines of $FRESH_LOG:"
        tail -n 15 "$FRESH_LOG" >&2
        return 1
    fi
    say "fresh: $label done in $((SECONDS - start))s"
}

tier_fresh() {
    # A machine that never saw the project: a new container of the project's Debian 12 image, only the
    # checkout's files copied in (git ls-files: no .venv, no .cache, no .git), then the README's set-up
    # (apt-get update + install, pip, PKI; no images) and the fast tiers, as root, from Debian's mirror and PyPI.
    local -x FRESH_LOG=$CACHE/logs/fresh.log
    local dir=/root/smarthost-relay env=() v trust=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt} rc=0 inner
    read -ra inner <<<"$FRESH_TIERS"
    # Until systemd has booted (it mounts /tmp, among others): its bus first, then the end of start-up.
    # shellcheck disable=SC2016 # expanded by the container's shell
    local wait_systemd='for i in $(seq 120); do
        state=$(systemctl is-system-running --wait 2>&1) && break
        case $state in degraded) break ;; esac; sleep 1; done; echo "systemd: $state"
        case $state in running | degraded) ;; *) exit 1 ;; esac'
    mkdir -p "$CACHE/logs" && : >"$FRESH_LOG"
    say "fresh: full log in $FRESH_LOG (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    # Proxy settings of this machine, if any, go in: the container reaches the network as the host does.
    for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        [[ -n ${!v:-} ]] && env+=(-e "$v=${!v}")
    done
    podman rm -f -t 2 "$FRESH_NAME" >/dev/null 2>&1
    fresh_step "start $FRESH_NAME from $FRESH_IMAGE" \
        podman run -d --name "$FRESH_NAME" --hostname smarthost-fresh --systemd=always "${env[@]}" "$FRESH_IMAGE" &&
        fresh_step "wait for systemd" podman exec "$FRESH_NAME" sh -c "$wait_systemd" &&
        # The CAs this machine trusts (a TLS-inspecting proxy's, say): without them pip cannot reach PyPI
        # from here. Debian's update-ca-certificates adds them to the container's own store; nothing else.
        { [[ ! -s $trust ]] || fresh_step "trust the CAs this machine trusts ($trust)" \
            sh -c "podman exec -i $FRESH_NAME sh -c 'cat >/usr/local/share/ca-certificates/smarthost-host.crt && update-ca-certificates' <'$trust'"; } &&
        fresh_step "copy the checkout (git ls-files: $(git ls-files -co --exclude-standard | wc -l) files)" \
            sh -c "git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf - |
                podman exec -i $FRESH_NAME sh -c 'mkdir -p $dir && tar -xf - -C $dir'" &&
        fresh_step "bash scripts/setup.sh --no-images (apt, venv, PKI)" \
            podman exec -w "$dir" "$FRESH_NAME" timeout 1800 bash scripts/setup.sh --no-images &&
        # A new user has a clone: its git index, as `git clone` gives (ansible-lint and sanity read it).
        fresh_step "git init (the clone's index)" podman exec -w "$dir" "$FRESH_NAME" sh -c 'git init -q && git add -A' &&
        fresh_step "bash scripts/test.sh $FRESH_TIERS" \
            podman exec -w "$dir" "$FRESH_NAME" timeout 2700 bash scripts/test.sh "${inner[@]}" || rc=1
    # On the terminal: the set-up's check lines, the failed tests (at most 20) and the inner run's tier summary.
    { grep -E '^(ERROR: |FAILED tests/|ERROR tests/)' "$FRESH_LOG" | head -n 20
        grep -E '^([a-z]+: (passed in|FAILED after) [0-9]+s|tiers: .*)$' "$FRESH_LOG"; } | sed 's/^/    fresh /' >&2
    podman rm -f -t 2 "$FRESH_NAME" >/dev/null 2>&1
    say "fresh: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    return $rc
}

run_scenario() {
    # One `molecule test`, its full output in .cache/logs/molecule-<scenario>.log (also on stdout when alone).
    local s=$1 start=$SECONDS log=$CACHE/logs/molecule-$1.log
    # `molecule test` deletes its ephemeral files at the end; the scenarios' ANSIBLE_LOG_PATH there is a
    # link into .cache/logs, so the secret scan also reads the verifiers' own playbook runs.
    local -x MOLECULE_EPHEMERAL_DIRECTORY=$CACHE/molecule/$s
    mkdir -p "$MOLECULE_EPHEMERAL_DIRECTORY" && : >"$CACHE/logs/ansible-$s.log"
    ln -sfn "$CACHE/logs/ansible-$s.log" "$MOLECULE_EPHEMERAL_DIRECTORY/ansible.log"
    say "molecule test -s $s (full output: $log)"
    # A scenario that ran before may have left its DNS records behind, on the subnet this one is about to take.
    purge_stale_dns
    if { if ((JOBS == 1)); then molecule test -s "$s" 2>&1 | tee "$log"; else molecule test -s "$s" >"$log" 2>&1; fi; }; then
        say "scenario $s passed in $((SECONDS - start))s"
    else
        if ((JOBS > 1)); then
            say "scenario $s: its failed tests and last lines (whole output: $log)"
            # testinfra's per-test lines and pytest's assertion lines, then the tail (molecule's destroy).
            grep -E '(FAILED|ERROR)( |$)|^E  |^[a-z_/]+\.py:[0-9]+: ' "$log" | head -n 80
            tail -n 40 "$log"
        fi
        say "scenario $s FAILED after $((SECONDS - start))s"
        return 1
    fi
}

tier_molecule() {
    # Scenarios run JOBS at a time (SMARTHOST_MOLECULE_JOBS, default 2): much of a scenario is waiting on
    # package downloads, systemd and the MTAs' queues, so two share 2 cores well. Their names never collide.
    local s rc=0 running=0
    mkdir -p "$CACHE/logs"
    # Every playbook run of every scenario, the verifiers' own included, at -vvv with diffs: the secret scan
    # below then reads the most talkative output there is. SMARTHOST_MOLECULE_VERBOSE=0: the scenarios' own level.
    if [[ ${SMARTHOST_MOLECULE_VERBOSE:-1} == 1 ]]; then
        local -x ANSIBLE_VERBOSITY=3 ANSIBLE_DIFF_ALWAYS=true
    fi
    for s in $SCENARIOS; do
        if ((running >= JOBS)); then
            wait -n || rc=1
            running=$((running - 1))
        fi
        run_scenario "$s" &
        running=$((running + 1))
    done
    while ((running > 0)); do
        wait -n || rc=1
        running=$((running - 1))
    done
    say "secret scan of every log under $CACHE/logs"
    python "$ROOT/scripts/scan_secrets.py" || rc=1
    return $rc
}

cd "$ROOT"
# Containers matter only to the molecule and fresh tiers; other tiers leave running containers alone.
((${#leftovers[@]})) && remove_leftovers "${leftovers[@]}"
passed=0 failed=0 summary=()
for t in "${tiers[@]}"; do
    say "tier $t"
    start=$SECONDS
    if "tier_$t"; then
        passed=$((passed + 1)) summary+=("$t: passed in $((SECONDS - start))s")
    else
        failed=$((failed + 1)) summary+=("$t: FAILED after $((SECONDS - start))s")
    fi
done
((${#leftovers[@]})) && remove_leftovers "${leftovers[@]}"
printf '%s\n' "${summary[@]}"
echo "tiers: $passed passed, $failed failed"
((failed == 0))
