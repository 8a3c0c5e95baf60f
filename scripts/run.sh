#!/usr/bin/env bash
# Set up and run Salon on this machine: the gateway and mediad in one
# process, on localhost. Prints the URL to open and, without --auth-config,
# an agent (moderator) link with a dev token: open it to create a room; guests
# who open the plain room URL wait in its lobby (policy lua/policy.lua).
#   ./scripts/run.sh [salon flags...]    e.g. --listen 127.0.0.1:8080 --io-backend epoll
#   ./scripts/run.sh --policy lua/open.lua   anyone may create a room (no token)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
    echo "Salon needs a Rust toolchain (cargo): https://rustup.rs" >&2
    exit 1
fi
cargo build --release --locked -p salon-gateway --bin salon
exec ./target/release/salon "$@"
