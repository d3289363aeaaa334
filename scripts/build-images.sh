#!/usr/bin/env bash
# Build the test-bed images from Debian's mirror with mmdebstrap + podman import.
# An image is rebuilt only when it is missing or its recipe changed (the recipe's
# hash is stored in the image label smarthost.recipe). Usage:
#   scripts/build-images.sh [--force] [IMAGE ...]     IMAGE: debian11 debian12 debian13 relay
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# recipe-begin
MIRROR=${SMARTHOST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES=systemd,systemd-sysv,python3,python3-apt,netbase,ca-certificates,iproute2,procps
declare -A SUITE=([debian11]=bullseye [debian12]=bookworm [debian13]=trixie [relay]=bookworm)
declare -A TAG=(
    [debian11]=localhost/smarthost-debian:11
    [debian12]=localhost/smarthost-debian:12
    [debian13]=localhost/smarthost-debian:13
    [relay]=localhost/smarthost-relay:latest
)
# Base images: systemd as PID 1 and python3, nothing else of ours; the roles install the MTAs.
# Package lists stay in the images, as on a real host, so apt cache_valid_time behaves.
# The relay stand-in runs on Debian's own aiosmtpd, netaddr and yaml, from the project mounted read-only.
declare -A PACKAGES=(
    [debian11]=$BASE_PACKAGES [debian12]=$BASE_PACKAGES [debian13]=$BASE_PACKAGES
    [relay]="python3,python3-aiosmtpd,python3-netaddr,python3-yaml,netbase,ca-certificates,openssl,procps"
)
declare -A CHANGES=(
    [debian11]=systemd [debian12]=systemd [debian13]=systemd [relay]=relay
)

# shellcheck disable=SC2016 # $1 is the root directory, expanded by mmdebstrap's hook shell
HOSTNAME_HOOK='echo "smarthost-test" > "$1"/etc/hostname'

build_one() {
    local name=$1 hash=$2 tar
    tar=$CACHE/images/$name.tar
    mkdir -p "$CACHE/images"
    mmdebstrap --variant=minbase --include="${PACKAGES[$name]}" \
        --skip=cleanup/apt/lists \
        --customize-hook="$HOSTNAME_HOOK" \
        --format=tar "${SUITE[$name]}" "$tar" "$MIRROR"
    local changes=(--change "LABEL smarthost.recipe=$hash")
    if [[ ${CHANGES[$name]} == systemd ]]; then
        changes+=(--change 'ENV container=podman' --change 'STOPSIGNAL SIGRTMIN+3' --change 'CMD ["/sbin/init"]')
    else
        # The stand-in starts once its config has been written into the container (molecule's
        # prepare does that); it keeps no state worth a graceful stop.
        changes+=(--change 'ENV PYTHONPATH=/opt/smarthost/tools' --change 'STOPSIGNAL SIGKILL'
            --change 'CMD ["sh", "-c", "until [ -s /etc/relay-standin/config.yml ]; do sleep 0.2; done; exec python3 -m relay_standin serve --config /etc/relay-standin/config.yml"]')
    fi
    podman import "${changes[@]}" "$tar" "${TAG[$name]}"
    rm -f "$tar"
}
# recipe-end

force=0 wanted=()
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        debian11 | debian12 | debian13 | relay) wanted+=("$arg") ;;
        *) die "unknown image or option: $arg" ;;
    esac
done
((${#wanted[@]})) || wanted=(debian11 debian12 debian13 relay)

recipe_hash() {
    # The recipe is the code between the recipe markers, comments left out: a change there rebuilds.
    { sed -n '/^# recipe-begin/,/^# recipe-end/p' "${BASH_SOURCE[0]}" | grep -v '^\s*#'; echo "$1"; } |
        sha256sum | cut -c1-16
}

image_current() {
    local name=$1 want=$2 have
    have=$(podman image inspect --format '{{index .Labels "smarthost.recipe"}}' "${TAG[$name]}" 2>/dev/null) || return 1
    [[ $have == "$want" ]]
}

pids=() names=()
for name in "${wanted[@]}"; do
    hash=$(recipe_hash "$name")
    if ((!force)) && image_current "$name" "$hash"; then
        say "image ${TAG[$name]} current (recipe $hash)"
        continue
    fi
    say "building ${TAG[$name]} from ${SUITE[$name]} (recipe $hash)"
    build_one "$name" "$hash" >"$CACHE/logs/image-$name.log" 2>&1 &
    pids+=($!) names+=("$name")
done

start=$SECONDS failed=()
while :; do
    running=0
    for i in "${!pids[@]}"; do kill -0 "${pids[$i]}" 2>/dev/null && running=$((running + 1)); done
    ((running)) || break
    [[ -t 2 ]] && printf '\r    building %d image(s) … %ds' "$running" $((SECONDS - start)) >&2
    sleep 1
done
[[ -t 2 ]] && printf '\r\033[K' >&2
for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
        say "built ${TAG[${names[$i]}]} in $((SECONDS - start))s"
    else
        tail -n 20 "$CACHE/logs/image-${names[$i]}.log" >&2
        failed+=("${names[$i]}")
    fi
done
((${#failed[@]} == 0)) || die "image build failed: ${failed[*]} (logs in $CACHE/logs)"
