# shellcheck shell=bash
# Common environment for the project's commands. Source it; do not run it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SMARTHOST_VENV:-$ROOT/.venv}
CACHE=$ROOT/.cache
COLLECTIONS=$CACHE/collections
PKI=$CACHE/pki

export CONTAINERS_CONF=$ROOT/tests/bed/containers.conf
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS
# Collections come from the venv's `ansible` package and this checkout; never from Galaxy.
export ANSIBLE_GALAXY_SERVER_LIST=""
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=true
export ANSIBLE_NOCOLOR=${ANSIBLE_NOCOLOR:-1}
export ANSIBLE_FORCE_COLOR=0
export ANSIBLE_HOST_KEY_CHECKING=false
export PY_COLORS=0
export PYTHONDONTWRITEBYTECODE=1
export SMARTHOST_ROOT=$ROOT SMARTHOST_PKI=$PKI
export PATH=$VENV/bin:$PATH

# Every container and network the project creates is named with this prefix,
# so a killed run's leftovers can be found and removed by name.
export SMARTHOST_PREFIX=srt

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Run a command with its output in a log file and an elapsed-time line on the terminal.
with_progress() {
    local label=$1 log=$2; shift 2
    local start=$SECONDS pid rc
    "$@" >"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [[ -t 2 ]]; then
            printf '\r    %s … %ds (%s)' "$label" $((SECONDS - start)) "$(tail -n 1 "$log" 2>/dev/null | cut -c1-60)" >&2
        fi
        sleep 1
    done
    wait "$pid" && rc=0 || rc=$?
    [[ -t 2 ]] && printf '\r\033[K' >&2
    if ((rc != 0)); then
        tail -n 30 "$log" >&2
        die "$label failed (exit $rc); full log: $log"
    fi
    say "$label done in $((SECONDS - start))s"
}

# The pip version ansible-test bootstraps (its get-pip file is named after it) for the venv of python $1.
ansible_test_pip_version() {
    local source version
    source=$("$1" -c 'import ansible_test, pathlib; print(pathlib.Path(ansible_test.__file__).parent)') || return 1
    version=$(sed -n "s/.*pip='\([0-9.]*\)'.*/\1/p" "$source/_internal/python_requirements.py" | head -n 1)
    [[ -n $version ]] && echo "$version"
}

# aardvark-dns (podman's DNS for container names) keeps one file per network, named after it. A file can outlive
# its network (seen after CI runs: the teardown of some containers never reached it), and aardvark still answers
# from it: a later network given the same subnet then resolves relay.smarthost.test, for the container that took a
# stale address, to that container itself or to another scenario's relay. Remove the files of this project's
# networks that no longer exist (by name, srt-*) and have aardvark read its files again.
purge_stale_dns() {
    local dir file name removed=0
    if ((EUID == 0)); then dir=/run/containers/networks/aardvark-dns; else dir=${XDG_RUNTIME_DIR:-/run/user/$EUID}/containers/networks/aardvark-dns; fi
    for file in "$dir/$SMARTHOST_PREFIX"-*; do
        [[ -f $file ]] || continue
        name=${file##*/}
        podman network exists "$name" && continue
        rm -f "$file" && removed=$((removed + 1)) && say "removed aardvark-dns's stale records of network $name"
    done
    ((removed == 0)) || [[ ! -s $dir/aardvark.pid ]] || kill -HUP "$(cat "$dir/aardvark.pid")" 2>/dev/null || true
}
