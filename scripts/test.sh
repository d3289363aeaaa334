#!/usr/bin/env bash
# Run the whole test suite (what .ci/run runs). Sets everything up first.
#   scripts/test.sh                 every tier
#   scripts/test.sh unit            the fast tier only (< 2 min)
#   scripts/test.sh lint molecule   chosen tiers
# Tiers: unit lint sanity build molecule. SMARTHOST_SCENARIOS="bed postfix" limits molecule.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_TIERS=(unit lint sanity build molecule)
# Scenario matrix: every scenario on Debian 12; the bed scenario itself covers 11, 12 and 13.
SCENARIOS=${SMARTHOST_SCENARIOS:-bed}

tiers=("$@")
((${#tiers[@]})) || tiers=("${ALL_TIERS[@]}")

needs_images=0
for t in "${tiers[@]}"; do
    [[ " ${ALL_TIERS[*]} " == *" $t "* ]] || die "unknown tier $t (tiers: ${ALL_TIERS[*]})"
    [[ $t == molecule ]] && needs_images=1
done
if ((needs_images)); then "$ROOT/scripts/setup.sh"; else "$ROOT/scripts/setup.sh" --no-images; fi

remove_leftovers() {
    # A killed run may leave containers and networks behind: remove ours, by name.
    local ids nets
    ids=$(podman ps -a --format '{{.Names}}' | grep "^${SMARTHOST_PREFIX}-" || true)
    [[ -z $ids ]] || podman rm -f -t 2 $ids >/dev/null
    nets=$(podman network ls --format '{{.Name}}' | grep "^${SMARTHOST_PREFIX}-" || true)
    [[ -z $nets ]] || podman network rm -f $nets >/dev/null
    rm -rf "$HOME/.cache/molecule/relay" "$CACHE/sanity"
}

tier_unit() {
    pytest -q -p no:cacheprovider -n 2 tests/unit
}

tier_lint() {
    yamllint -s .
    ansible-lint --offline --profile production
}

tier_sanity() {
    # ansible-test needs the collection under ansible_collections/<ns>/<name>: copy the tracked tree.
    local dest=$CACHE/sanity/ansible_collections/smarthost/relay
    rm -rf "$CACHE/sanity" && mkdir -p "$dest"
    git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$dest"
    (cd "$dest" && git init -q && git add -A && ansible-test sanity --venv --python 3.11 --requirements)
}

tier_build() {
    pytest -q -p no:cacheprovider tests/integration
}

tier_molecule() {
    local s rc=0
    for s in $SCENARIOS; do
        say "molecule test -s $s"
        molecule test -s "$s" || rc=1
    done
    return $rc
}

cd "$ROOT"
remove_leftovers
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
remove_leftovers
printf '%s\n' "${summary[@]}"
echo "tiers: $passed passed, $failed failed"
((failed == 0))
