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

# Every capability the suite uses is checked after installing: a missing one fails here, with one line that
# names its Debian package (requirements/apt.txt) or the set-up step, not later as a test failure.
problems=()
need() { # need <problem line> <command …>: the command must succeed (quietly), else the line is reported
    local line=$1; shift
    "$@" >/dev/null 2>&1 || problems+=("$line")
}
need_package() { # need_package <Debian package> <what> <command …>
    local package=$1 what=$2; shift 2
    need "$what missing: install Debian package $package (requirements/apt.txt)" "$@"
}
report_problems() {
    ((${#problems[@]} == 0)) || { printf 'ERROR: %s\n' "${problems[@]}" >&2; exit 1; }
}

verify_debian_tools() {
    # Right after apt, before the slow pip step: a missing package fails in seconds.
    local support
    if command -v swaks >/dev/null; then
        support=$(swaks --support 2>&1 || true)
        [[ $support == *"=== TLS supported"* ]] ||
            problems+=("swaks cannot do TLS (STARTTLS, implicit TLS need Perl's Net::SSLeay): install Debian package libnet-ssleay-perl (requirements/apt.txt)")
        [[ $support == *"=== Basic AUTH supported"* ]] ||
            problems+=("swaks cannot do SMTP AUTH PLAIN/LOGIN (Perl's MIME::Base64): install Debian package perl (requirements/apt.txt)")
    else
        problems+=("swaks missing: install Debian package swaks (requirements/apt.txt)")
    fi
    need_package openssl openssl openssl version
    need_package openssh-client "ssh (ansible's ssh connection)" ssh -V
    need_package git git git --version
    need_package shellcheck shellcheck shellcheck --version
    need_package mmdebstrap mmdebstrap mmdebstrap --version
    need_package podman podman podman --version
    need_package runc runc runc --version
    need_package conmon conmon conmon --version
    need_package netavark netavark test -x /usr/lib/podman/netavark
    need_package aardvark-dns aardvark-dns test -x /usr/lib/podman/aardvark-dns
    need_package iptables iptables iptables --version
    need_package tar tar tar --version
    need_package procps ps ps -p $$
    need_package python3-venv "python3's venv module" python3 -c 'import ensurepip, venv'
    report_problems
    say "checked Debian tools: swaks (TLS, AUTH), openssl, ssh, git, shellcheck, mmdebstrap, podman, runc, conmon, netavark, aardvark-dns, iptables, tar, ps, python3 venv"
}

ENTRY_POINTS=(ansible-playbook ansible-test ansible-lint molecule pytest yamllint antsibull-changelog ansible-builder)

verify_project() {
    # The venv's entry points run --version, all at once (7 s of CPU: molecule, ansible-lint and ansible-playbook
    # take 1-2 s each), once per install of requirements/dev.txt: then a stamp records it, and later runs only
    # check that each is still there. --offline: ansible-lint looks up no newer version.
    local t tmp out pids=() names=() ran="" stamp=$VENV/.verified want checked="checked at install"
    want=$(cat "$VENV/.requirements.sha256")
    tmp=$(mktemp -d)
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        for t in "${ENTRY_POINTS[@]}"; do
            need "$VENV/bin/$t is missing: redo the pip step: rm $VENV/.requirements.sha256 && scripts/setup.sh" test -x "$VENV/bin/$t"
        done
    else
        checked="ran --version"
        for t in "${ENTRY_POINTS[@]}"; do
            local args=(--version)
            [[ $t == ansible-lint ]] && args=(--offline --version)
            (cd "$tmp" && exec timeout 120 "$VENV/bin/$t" "${args[@]}") >"$tmp/$t.out" 2>&1 &
            pids+=($!) names+=("$t")
        done
    fi
    need "the test PKI is incomplete in $PKI: remove that directory and rerun scripts/setup.sh" \
        test -f "$PKI/ca.pem" -a -f "$PKI/relay.pem" -a -f "$PKI/untrusted.pem"
    need "ansible-test's pip bootstrap tests/bed/ansible_test_get_pip.py is missing from the checkout" \
        test -s "$ROOT/tests/bed/ansible_test_get_pip.py"
    need "cannot tell which pip ansible-test bootstraps (ansible_test/_internal/python_requirements.py changed?)" \
        ansible_test_pip_version "$VENV/bin/python"
    if ((images)); then
        # The project's podman configuration must run a container, not only be installed (runc, conmon, netavark).
        ran=", a container run"
        out=$(timeout 60 podman run --rm localhost/smarthost-debian:12 true 2>&1) ||
            problems+=("podman cannot run localhost/smarthost-debian:12 with $CONTAINERS_CONF: $(tail -n 1 <<<"$out") (Debian packages podman runc conmon netavark, requirements/apt.txt)")
    fi
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" ||
            problems+=("$VENV/bin/${names[$i]} --version failed ($(tail -n 1 "$tmp/${names[$i]}.out")): redo the pip step: rm $VENV/.requirements.sha256 && scripts/setup.sh")
    done
    rm -rf "$tmp"
    report_problems
    echo "$want" >"$stamp"
    say "checked: venv entry points ($checked), test PKI, ansible-test bootstrap$ran"
}

mkdir -p "$CACHE/logs"
install_apt_packages
verify_debian_tools
install_venv
link_collection
make_pki
if ((images)); then
    "$ROOT/scripts/build-images.sh" "${image_args[@]}"
fi
verify_project
say "setup complete"
