#!/usr/bin/env bash
# Run the whole test suite (what .ci/run runs). Sets everything up first.
#   scripts/test.sh                 every tier
#   scripts/test.sh unit            the fast tier only (< 2 min)
#   scripts/test.sh lint molecule   chosen tiers
# Tiers: unit lint sanity build molecule. SMARTHOST_SCENARIOS="bed postfix" limits molecule;
# SMARTHOST_MOLECULE_JOBS=1 runs its scenarios one at a time; SMARTHOST_MOLECULE_VERBOSE=0 drops -vvv --diff.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_TIERS=(unit lint sanity build molecule)
# Scenario matrix: bed and postfix run Debian 11, 12 and 13 hosts; sendmail runs Debian 12 (sendmail-smoke: 11 and 13); qmail runs Debian 12.
# Longest first, so that two at a time finish close together.
SCENARIOS=${SMARTHOST_SCENARIOS:-reliability existing postfix qmail sendmail security sendmail-smoke bed}
JOBS=${SMARTHOST_MOLECULE_JOBS:-2}

tiers=("$@")
((${#tiers[@]})) || tiers=("${ALL_TIERS[@]}")

needs_images=0
for t in "${tiers[@]}"; do
    [[ " ${ALL_TIERS[*]} " == *" $t "* ]] || die "unknown tier $t (tiers: ${ALL_TIERS[*]})"
    [[ $t == molecule ]] && needs_images=1
done
if ((needs_images)); then "$ROOT/scripts/setup.sh"; else "$ROOT/scripts/setup.sh" --no-images; fi

remove_leftovers() {
    # A killed run may leave containers and networks behind: remove those of the scenarios about to
    # run, by name (srt-<scenario>-…, networks srt-<scenario> and srt-<scenario>-…), and nothing else.
    local s ids nets
    for s in $SCENARIOS; do
        mapfile -t ids < <(podman ps -a --format '{{.Names}}' | grep -E "^${SMARTHOST_PREFIX}-(${s}|${s//_/-})(-|\$)" || true)
        ((${#ids[@]} == 0)) || podman rm -f -t 2 "${ids[@]}" >/dev/null
        mapfile -t nets < <(podman network ls --format '{{.Name}}' | grep -E "^${SMARTHOST_PREFIX}-(${s}|${s//_/-})(-|\$)" || true)
        ((${#nets[@]} == 0)) || podman network rm -f "${nets[@]}" >/dev/null
    done
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
    local source pip_version
    source=$("$1/bin/python" -c 'import ansible_test, pathlib; print(pathlib.Path(ansible_test.__file__).parent)')
    pip_version=$(sed -n "s/.*pip='\([0-9.]*\)'.*/\1/p" "$source/_internal/python_requirements.py" | head -n 1)
    [[ -n $pip_version ]] || die "cannot tell which pip ansible-test bootstraps"
    mkdir -p "$HOME/.ansible/test/cache"
    cp "$ROOT/tests/bed/ansible_test_get_pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
}

tier_sanity() {
    # ansible-test needs the collection under ansible_collections/<ns>/<name>: copy the tracked tree.
    local venv dest=$CACHE/sanity/ansible_collections/smarthost/relay
    venv=$(sanity_venv)
    install_pip_bootstrap "$venv"
    rm -rf "$CACHE/sanity" && mkdir -p "$dest"
    git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$dest"
    # validate-modules needs pwsh for the Exchange .ps1 modules, which this machine cannot have: it runs
    # on the Python modules and doc stubs only (the .ps1 are parsed by tests/unit instead).
    (cd "$dest" && git init -q && git add -A && export PATH=$venv/bin:$PATH &&
        ansible-test sanity --local --python 3.11 --color no --skip-test validate-modules &&
        ansible-test sanity --local --python 3.11 --color no --test validate-modules plugins/modules/*.py)
}

tier_build() {
    pytest -q -p no:cacheprovider tests/integration
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
    if { if ((JOBS == 1)); then molecule test -s "$s" 2>&1 | tee "$log"; else molecule test -s "$s" >"$log" 2>&1; fi; }; then
        say "scenario $s passed in $((SECONDS - start))s"
    else
        ((JOBS == 1)) || { say "scenario $s: last lines of its output"; tail -n 200 "$log"; }
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
# Containers matter only to the molecule tier; other tiers leave running scenarios alone.
((needs_images)) && remove_leftovers
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
((needs_images)) && remove_leftovers
printf '%s\n' "${summary[@]}"
echo "tiers: $passed passed, $failed failed"
((failed == 0))
