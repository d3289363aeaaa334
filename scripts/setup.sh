#!/usr/bin/env bash
# Set up everything the project needs on a Debian 12 controller (as root):
# apt packages, the pinned venv, the collection path, the test PKI and the images.
# Every step is skipped when its result is already current. Usage:
#   scripts/setup.sh [--no-images] [--force-images]
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

images=1 image_args=()
for arg in "$@"; do
    case $arg in
        --no-images) images=0 ;;
        --force-images) image_args+=(--force) ;;
        *) die "unknown option $arg" ;;
    esac
done

install_apt_packages() {
    local wanted missing=()
    mapfile -t wanted < <(grep -v '^\s*#' "$ROOT/requirements/apt.txt" | grep -v '^\s*$')
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        say "apt packages present"
        return
    fi
    ((EUID == 0)) || die "installing ${missing[*]} needs root"
    say "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_venv() {
    local stamp=$VENV/.requirements.sha256 want
    want=$(sha256sum "$ROOT/requirements/dev.txt" | cut -d' ' -f1)
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        say "venv current ($VENV)"
        return
    fi
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    with_progress "pip install -r requirements/dev.txt" "$CACHE/logs/pip.log" \
        "$VENV/bin/pip" install --disable-pip-version-check -r "$ROOT/requirements/dev.txt"
    echo "$want" >"$stamp"
}

link_collection() {
    local link=$COLLECTIONS/ansible_collections/smarthost/relay
    mkdir -p "$(dirname "$link")"
    [[ -L $link && $(readlink "$link") == "$ROOT" ]] || ln -sfn "$ROOT" "$link"
}

make_pki() {
    if [[ -f $PKI/ca.pem && -f $PKI/relay.pem && -f $PKI/untrusted.pem ]]; then
        say "test PKI present ($PKI)"
        return
    fi
    say "generating the test PKI in $PKI"
    PYTHONPATH=$ROOT/tools python3 -m relay_standin pki --out "$PKI"
}

mkdir -p "$CACHE/logs"
install_apt_packages
install_venv
link_collection
make_pki
if ((images)); then
    "$ROOT/scripts/build-images.sh" "${image_args[@]}"
fi
say "setup complete"
