#!/usr/bin/env bash
# Set up and run every Salon test: formatting, lints, the dependency policy
# (cargo deny), the Rust test suite (unit, virtual-time, bad-input, fuzz
# regressions), and the end-to-end tests in headless Chromium and Firefox
# ESR on both io backends.
#   ./scripts/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

step() { printf '\n=== %s\n' "$*"; }

step "setup: system packages (chromium and firefox-esr for the browser tests, nginx and openssl for the HTTPS ones, coturn for TURN, nftables for the UDP-blocked ones)"
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/firefox-esr ] || missing+=(firefox-esr)
# nginx: tests/e2e/nginx.test.mjs starts its own process from
# deploy/nginx/salon.conf; the system service is never used (a Debian image
# with policy-rc.d does not even start it).
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
# coturn and nftables: tests/e2e/turn.test.mjs starts its own turnserver
# from deploy/coturn/turnserver.conf (never the system service); it and
# udp-blocked.test.mjs (ICE-TCP) block a browser's UDP with nft.
[ -x /usr/bin/turnserver ] || missing+=(coturn)
command -v nft >/dev/null || missing+=(nftables)
# nginx's stream module: the same test splits port 443 by SNI
# (deploy/coturn/nginx-stream.conf).
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
# certutil: turn.test.mjs imports its test CA into Firefox's profile, for
# TURN over TLS.
command -v certutil >/dev/null || missing+=(libnss3-tools)
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null | tail -n1 || true
/usr/bin/firefox-esr --version 2>/dev/null | tail -n1 || true
/usr/sbin/nginx -v 2>&1 || true
/usr/bin/turnserver --version 2>&1 | head -n1 || true

step "setup: the Prometheus project's Python client (its strict OpenMetrics parser checks /metrics in tests/e2e/metrics.test.mjs)"
python3 -c 'import prometheus_client' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check 'prometheus-client==0.21.1'

step "setup: node packages for the browser tests"
# puppeteer-core downloads no browser; the variable makes sure nothing does.
(cd tests/e2e && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
(cd signaling-gateway/web && npm ci --no-audit --no-fund --loglevel=error)

# A clean checkout builds once: incremental caches only take disk (2.3 GB
# of the 8.5 GB a full build took before the profile change in Cargo.toml;
# the CI runner ran out of disk, docs/decisions.md).
export CARGO_INCREMENTAL=0

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo deny: licenses, bans, sources (advisories by hand: see deny.toml)"
# A fresh machine has no cargo-deny: build it from crates.io (~10 min on 2
# cores), at the version deny.toml was written for.
if ! command -v cargo-deny >/dev/null; then
    cargo install --locked --version 0.20.2 cargo-deny
fi
cargo deny --locked check licenses bans sources

step "build the salon binary and the load harness (for the perf smoke test and the browser tests)"
cargo build --locked -p salon-gateway --bin salon
cargo build --locked -p salon-perf --bin salon-perf
export SALON_BIN="$root/target/debug/salon"
export SALON_PERF_BIN="$root/target/debug/salon-perf"

step "cargo test (workspace)"
cargo test --workspace --locked

for backend in uring epoll; do
    step "browser end-to-end tests, io backend: $backend"
    (cd tests/e2e && SALON_IO_BACKEND=$backend node --test --test-concurrency=1 ./*.test.mjs)
done

step "all tests passed"
