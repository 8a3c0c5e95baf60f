#!/usr/bin/env bash
# Check the runtime stage of deploy/container/Containerfile under podman,
# with podman's default seccomp profile: the image runs as user 10001 from
# /etc/salon, its HEALTHCHECK passes, SIGTERM stops it with status 0, and
# salon falls back to epoll (the profile denies io_uring_setup: ENOSYS with
# Debian 12's containers-common, EPERM with Docker's) and carries a
# two-party meeting of synthetic participants (salon-perf: ICE, DTLS,
# SRTP).
#
# What it does not check: the build stage (the official Rust image cannot
# be pulled here, and a release build is long). The runtime stage is taken
# from the Containerfile as is, with two substitutions: a Debian 12
# base made locally with debootstrap for debian:bookworm-slim, and the
# `salon` binary given here for the build stage's.
#
# Not run by CI (root, podman, debootstrap). By hand:
#   cargo build -p salon-gateway --bin salon && cargo build -p salon-perf --bin salon-perf
#   sudo deploy/container/check-runtime-podman.sh [ROOTFS]
# ROOTFS (default /var/tmp/salon-podman-base) is made once and reused. Uses
# the host's network and ports 18380/tcp and 9091/tcp on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
rootfs=${1:-/var/tmp/salon-podman-base}
salon_bin=${SALON_BIN:-$repo/target/debug/salon}
perf_bin=${SALON_PERF_BIN:-$repo/target/debug/salon-perf}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
for b in "$salon_bin" "$perf_bin"; do
    [ -x "$b" ] || { echo "missing $b (see the header)" >&2; exit 2; }
done
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
for port in 18380 9091; do
    if ss -ltn | grep -q "127.0.0.1:$port "; then echo "127.0.0.1:$port is in use" >&2; exit 2; fi
done
# runc and cgroupfs: crun refuses hybrid cgroup hierarchies, and a machine
# without systemd as PID 1 has no systemd cgroup manager.
podman=(podman --runtime runc --cgroup-manager cgroupfs)
if [ ! -x "$rootfs/bin/bash" ]; then
    echo "debootstrap bookworm into $rootfs (once)"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
fi
base=localhost/salon-check-bookworm
if ! "${podman[@]}" image exists "$base"; then
    tar -C "$rootfs" -cf - . | "${podman[@]}" import -q - "$base" >/dev/null
fi

ctx=$(mktemp -d)
name=salon-check-$$
cleanup() {
    "${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true
    rm -rf "$ctx"
}
trap cleanup EXIT
cp "$salon_bin" "$ctx/salon"
cp -r lua "$ctx/lua"
awk '/^FROM docker.io\/library\/debian:bookworm-slim/ { on = 1 } on' deploy/container/Containerfile |
    sed -e "s|^FROM docker.io/library/debian:bookworm-slim|FROM $base|" \
        -e 's|^COPY --from=build /out/salon /usr/local/bin/salon|COPY salon /usr/local/bin/salon|' \
        > "$ctx/Containerfile"
[ "$(grep -c "^FROM $base\$\|^COPY salon /usr/local/bin/salon\$" "$ctx/Containerfile")" = 2 ] ||
    { echo "the Containerfile's runtime stage changed shape: update this script" >&2; exit 1; }
"${podman[@]}" build -q --format docker -f "$ctx/Containerfile" -t localhost/salon-check "$ctx" >/dev/null

failures=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

# The machine's hard limits may be lower than podman's defaults.
"${podman[@]}" run -d --name "$name" --network host \
    --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
    localhost/salon-check --listen 127.0.0.1:18380 --media-ip 127.0.0.1 --media-port 0 \
    --policy /etc/salon/lua/open.lua --admin-listen 127.0.0.1:9091 >/dev/null 2>&1
up() { for _ in $(seq 100); do curl -sf http://127.0.0.1:9091/healthz >/dev/null && return 0; sleep 0.1; done; return 1; }
logs() { "${podman[@]}" logs "$name" 2>&1; }
check "the container serves /healthz" up
check "runs as 10001 from /etc/salon" \
    test "$("${podman[@]}" inspect "$name" --format '{{.Config.User}} {{.Config.WorkingDir}}')" = "10001:10001 /etc/salon"
healthy() { "${podman[@]}" healthcheck run "$name" >/dev/null 2>&1; }
check "HEALTHCHECK passes" healthy
check "io_uring denied by the default profile: the warning" bash -c "$(declare -p podman); $(declare -f logs); name=$name; logs | grep -q 'io_uring unavailable, falling back to epoll'"
check "backend=epoll" bash -c "$(declare -p podman); $(declare -f logs); name=$name; logs | grep -q 'backend=epoll'"
out=$("$perf_bin" run --quiet --threads 1 --target http://127.0.0.1:18380/ --scenario /dev/stdin 2>&1 <<'EOF' || true
name = "podman"
rooms = 1
room_sizes = [2]
video_fraction = 1.0
join_rate = 10.0
duration_s = 3.0
EOF
)
check "two participants exchange media through it" bash -c '
    grep -Eq "status +complete" <<<"$1" &&
    grep -Eq "SRTP errors +[0-9]+ / 0$" <<<"$1" &&
    awk "/^packets in\\/s/ { exit !(\$3 >= 100) }" <<<"$1"' _ "$out"
"${podman[@]}" stop -t 10 "$name" >/dev/null 2>&1
check "SIGTERM: exit status 0" test "$("${podman[@]}" inspect "$name" --format '{{.State.ExitCode}}')" = 0
echo "      $(logs | grep -m1 'io_uring unavailable' | sed 's/^[^ ]* *//')"

if [ "$failures" = 0 ]; then echo "all checks passed"; else echo "$failures check(s) failed"; exit 1; fi
