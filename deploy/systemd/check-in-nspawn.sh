#!/usr/bin/env bash
# Check deploy/systemd/salon.service under a real systemd: a Debian 12
# system booted with systemd-nspawn (its own network namespace: loopback
# only), the unit installed as the install guide says, then:
#   1. it starts, sandboxed: transient user, no capability, no_new_privs,
#      a seccomp filter; /healthz answers; the worker runs on io_uring;
#   2. two synthetic participants (salon-perf: ICE, DTLS, SRTP) meet through it;
#   3. `systemctl reload` reloads the policy;
#   4. a media worker panic (fault injection) exits 70 and systemd restarts it;
#   5. with io_uring removed from the filter, salon falls back to epoll, says
#      why, and still carries a meeting;
#   6. binding 443/80 fails without https-in-salon.conf and works with it,
#      with CAP_NET_BIND_SERVICE only;
#   7. a static `salon` user is used when it exists (group-readable key);
#   8. systemd-analyze security's score.
# Not run by CI (root, debootstrap, ~3 min): run it by hand after changing
# the unit. Needs root, debootstrap and systemd-container (installed if
# missing), and built binaries:
#   cargo build -p salon-gateway --bin salon && cargo build -p salon-perf --bin salon-perf
#   sudo deploy/systemd/check-in-nspawn.sh [ROOTFS]
# ROOTFS (default /var/tmp/salon-nspawn-rootfs) is made once and reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
rootfs=${1:-/var/tmp/salon-nspawn-rootfs}
salon_bin=${SALON_BIN:-$repo/target/debug/salon}
perf_bin=${SALON_PERF_BIN:-$repo/target/debug/salon-perf}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
command -v openssl >/dev/null || { echo "needs openssl" >&2; exit 2; }
for b in "$salon_bin" "$perf_bin"; do
    [ -x "$b" ] || { echo "missing $b (see the header)" >&2; exit 2; }
done
if ! command -v systemd-nspawn >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap systemd-container >/dev/null
fi
if [ ! -x "$rootfs/lib/systemd/systemd" ]; then
    echo "debootstrap bookworm into $rootfs (once)"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,procps,curl \
        bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
fi

failures=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

# --- install, as docs/install.en.md says (loopback values) -------------------
# debootstrap's minbase has no /etc/hosts: `localhost` must resolve.
[ -s "$rootfs/etc/hosts" ] || printf '127.0.0.1 localhost\n::1 localhost\n' > "$rootfs/etc/hosts"
install -m 0755 "$salon_bin" "$rootfs/usr/local/bin/salon"
install -m 0755 "$perf_bin" "$rootfs/usr/local/bin/salon-perf"
rm -rf "$rootfs/etc/salon" "$rootfs/etc/systemd/system/salon.service.d"
install -d -m 0755 "$rootfs/etc/salon"
cp -r lua "$rootfs/etc/salon/lua"
# The synthetic participants carry no token: the anonymous policy, under
# the name the unit loads.
cp lua/open.lua "$rootfs/etc/salon/lua/policy.lua"
cp deploy/systemd/salon.service "$rootfs/etc/systemd/system/salon.service"
ln -sf /etc/systemd/system/salon.service "$rootfs/etc/systemd/system/multi-user.target.wants/salon.service"
( umask 022; head -c 32 /dev/urandom | base64 > "$rootfs/etc/salon/hs256.key" )
cat > "$rootfs/etc/salon/auth.toml" <<'EOF'
issuers = ["salon"]
audiences = ["salon"]
leeway_secs = 30

[[keys]]
id = "main"
issuers = ["salon"]
algorithms = ["HS256"]
secret_file = "hs256.key"
EOF
sed -e 's/salon\.example\.org/localhost/; s/203\.0\.113\.10/127.0.0.1/' \
    -e '/^SALON_OPTS=--listen 127/ s/$/ --enable-fault-injection/' \
    deploy/systemd/salon.env > "$rootfs/etc/salon/salon.env"
if [ -e "$rootfs/etc/passwd" ] && grep -q '^salon:' "$rootfs/etc/passwd"; then
    chroot "$rootfs" deluser --system salon >/dev/null 2>&1 || true
    chroot "$rootfs" delgroup --system salon >/dev/null 2>&1 || true
fi
cat > "$rootfs/etc/salon/meeting.toml" <<'EOF'
name = "nspawn"
rooms = 1
room_sizes = [2]
video_fraction = 1.0
join_rate = 10.0
duration_s = 3.0
EOF

# --- boot -------------------------------------------------------------------
log=$(mktemp)
systemd-nspawn -D "$rootfs" -b --register=no --keep-unit --private-network \
    --machine=salon-check --console=pipe >"$log" 2>&1 &
nspawn=$!
leader=""
cleanup() {
    if [ -n "$leader" ]; then
        nsenter -t "$leader" -a systemctl poweroff >/dev/null 2>&1 || true
    fi
    for _ in $(seq 50); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.2; done
    kill "$nspawn" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT
inside() { nsenter -t "$leader" -a "$@"; }
for _ in $(seq 150); do
    leader=$( (ps --ppid "$nspawn" -o pid= || true) | head -n1 | tr -d ' ')
    if [ -n "$leader" ]; then
        case $(inside systemctl is-system-running 2>/dev/null || true) in
            running | degraded) break ;;
        esac
    fi
    sleep 0.2
done
[ -n "$leader" ] || { cat "$log"; echo "the container did not boot" >&2; exit 1; }

prop() { inside systemctl show -p "$1" --value salon; }
main_pid() { local p; p=$(prop MainPID); [ "$p" != 0 ] || return 1; echo "$p"; }
host_pid() { # the service's main process, as this side sees it
    local inner p
    inner=$(main_pid) || { echo 0; return; }
    for p in $(pgrep -x salon); do
        if grep -Eq "^NSpid:.*[[:space:]]$inner\$" "/proc/$p/status" 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo 0
}
field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
healthy() {
    for _ in $(seq 100); do
        inside curl -sf http://127.0.0.1:9091/healthz >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
since=0
mark() { since=$(date +%s); sleep 1; }
logged() { # journald may take a moment to have the line
    for _ in $(seq 50); do
        inside journalctl -u salon --no-pager -o cat --since "@$since" | grep -Eq "$1" && return 0
        sleep 0.1
    done
    return 1
}
meeting() { # complete, no SRTP error, and >= 100 packets/s received (~480 here)
    local out
    out=$(inside salon-perf run --quiet --scenario /etc/salon/meeting.toml \
        --target http://localhost:8080/ --threads 1 2>&1) || true
    grep -Eq 'status +complete' <<<"$out" &&
        grep -Eq 'SRTP errors +[0-9]+ / 0$' <<<"$out" &&
        awk '/^packets in\/s/ { exit !($3 >= 100) }' <<<"$out"
}
http_code() { inside curl -sk -o /dev/null -w '%{http_code}' "$1"; }

# --- 1. sandboxed start -----------------------------------------------------
check "salon.service is active and /healthz answers" healthy
hp=$(host_pid)
uid=$(field "$hp" Uid)
check "runs as a transient user (uid $uid, in 61184-65519)" test "${uid:-0}" -ge 61184 -a "${uid:-0}" -le 65519
check "no capability (CapEff $(field "$hp" CapEff))" test "$(field "$hp" CapEff)" = 0000000000000000
check "no_new_privs" test "$(field "$hp" NoNewPrivs)" = 1
check "a seccomp filter (mode 2)" test "$(field "$hp" Seccomp)" = 2
echo "      LimitNOFILE: $(awk '/open files/ {print $4}' "/proc/$hp/limits") (65536 unless the host's hard limit is lower)"
check "io_uring allowed by the filter: backend=uring" logged 'backend=uring'

# --- 2. a meeting -------------------------------------------------------------
check "two participants exchange media (io_uring)" meeting

# --- 3. reload ----------------------------------------------------------------
mark
inside systemctl reload salon
sleep 1
check "systemctl reload: the policy is reloaded" logged 'policy reloaded'

# --- 4. status 70 and restart -------------------------------------------------
before=$(main_pid)
mark
inside systemctl kill -s SIGUSR2 --kill-whom=main salon
sleep 3
check "a media worker panic exits with status 70" logged 'status=70/SOFTWARE'
check "systemd restarted it (NRestarts $(prop NRestarts), MainPID $before -> $(main_pid))" \
    test "$(prop NRestarts)" = 1 -a "$(main_pid)" != "$before"
check "healthy after the restart" healthy

# --- 5. io_uring denied by the filter -----------------------------------------
mkdir -p "$rootfs/etc/systemd/system/salon.service.d"
printf '[Service]\nSystemCallFilter=~io_uring_setup io_uring_enter io_uring_register\n' \
    > "$rootfs/etc/systemd/system/salon.service.d/no-io-uring.conf"
inside systemctl daemon-reload
mark
inside systemctl restart salon
healthy || true
check "io_uring denied: the warning names EPERM" logged 'io_uring unavailable, falling back to epoll.*Operation not permitted'
check "io_uring denied: backend=epoll" logged 'backend=epoll'
check "two participants exchange media (epoll)" meeting
rm "$rootfs/etc/systemd/system/salon.service.d/no-io-uring.conf"

# --- 6. ports 443 and 80 ------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$rootfs/etc/salon/tls-key.pem" -out "$rootfs/etc/salon/tls-cert.pem" \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost -days 2 2>/dev/null
chmod 0644 "$rootfs/etc/salon/tls-key.pem" "$rootfs/etc/salon/tls-cert.pem"
cp "$rootfs/etc/salon/salon.env" "$rootfs/etc/salon/salon.env.behind-nginx"
echo 'SALON_OPTS=--listen 127.0.0.1:443 --redirect-http 127.0.0.1:80 --allowed-host localhost --tls-cert /etc/salon/tls-cert.pem --tls-key /etc/salon/tls-key.pem --media-ip 127.0.0.1 --media-port 10000 --admin-listen 127.0.0.1:9091' \
    > "$rootfs/etc/salon/salon.env"
inside systemctl daemon-reload
mark
inside systemctl restart salon || true
sleep 2
check "443/80 without the drop-in: Permission denied" logged 'Permission denied'
inside systemctl stop salon
inside systemctl reset-failed salon || true
cp deploy/systemd/https-in-salon.conf "$rootfs/etc/systemd/system/salon.service.d/"
inside systemctl daemon-reload
inside systemctl start salon
healthy || true
hp=$(host_pid)
check "with https-in-salon.conf: CAP_NET_BIND_SERVICE only (CapEff $(field "$hp" CapEff))" \
    test "$(field "$hp" CapEff)" = 0000000000000400
check "HTTPS on 443: 200" test "$(http_code https://localhost/)" = 200
check "HTTP on 80: 308" test "$(http_code http://localhost/Salle)" = 308
echo "      with the drop-in: $(inside systemd-analyze security salon --no-pager 2>/dev/null | tail -n1)"
rm "$rootfs/etc/systemd/system/salon.service.d/https-in-salon.conf"
mv "$rootfs/etc/salon/salon.env.behind-nginx" "$rootfs/etc/salon/salon.env"

# --- 7. a static user ---------------------------------------------------------
inside adduser --system --group --no-create-home --home /nonexistent salon >/dev/null 2>&1
inside sh -c 'chgrp salon /etc/salon/hs256.key && chmod 0640 /etc/salon/hs256.key'
inside systemctl daemon-reload
inside systemctl restart salon
healthy || true
hp=$(host_pid)
check "the static user salon is used (uid $(field "$hp" Uid)), and reads a 0640 root:salon key" \
    test "$(field "$hp" Uid)" = "$(inside id -u salon)"
inside systemctl stop salon
inside deluser --system salon >/dev/null 2>&1 || true

# --- 8. score -------------------------------------------------------------------
echo "      as shipped: $(inside systemd-analyze security salon --no-pager 2>/dev/null | tail -n1)"

if [ "$failures" = 0 ]; then echo "all checks passed"; else echo "$failures check(s) failed"; exit 1; fi
