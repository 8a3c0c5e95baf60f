#!/bin/sh
# Profile the spawned `salon` (or janus / reflector) during a harness run
# with Linux `perf` (apt-get install linux-perf; needs root or
# perf_event_paranoid <= 1).
#   scripts/perf-profile.sh SCENARIO [TARGET] [SECONDS]
# TARGET: salon (default), salon-epoll, janus, reflector. Waits for the SUT
# to appear, lets the ramp finish, records SECONDS (default 15) with call
# graphs, and prints the top of a flat profile to stdout. Output files go to
# perf/out/profile-<scenario>-<target>.*
set -eu
cd "$(dirname "$0")/.."
scenario=${1:?scenario name, e.g. national-2020-peak}
target=${2:-salon}
secs=${3:-15}
out=perf/out/profile-$scenario-$target
mkdir -p perf/out
case $target in
  salon|salon-*) proc=salon ;;
  janus) proc=janus ;;
  reflector*) proc=reflector ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
if [ "$target" = janus ]; then args="--compare janus"; else args="--compare $target"; fi
target/release/salon-perf run --scenario "perf/scenarios/$scenario.toml" $args --tolerate-failures --quiet \
    --out "$out" > "$out.txt" 2> "$out.err" &
harness=$!
# The SUT is a descendant of our harness (a grandchild when the harness
# re-executes itself in the network namespace).
descends() { p=$1; while [ "$p" -gt 1 ]; do [ "$p" = "$harness" ] && return 0; p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null || echo 1); done; return 1; }
pid=""
for _ in $(seq 1 100); do
  for c in $(pgrep -x "$proc" || true); do descends "$c" && pid=$c; done
  [ -n "$pid" ] && break
  sleep 0.2
done
[ -n "$pid" ] || { echo "no $proc process" >&2; kill "$harness"; exit 1; }
ramp=$(target/release/salon-perf check --scenario "perf/scenarios/$scenario.toml" | sed -n 's/.*ramp \([0-9.]*\) s.*/\1/p')
sleep "$(echo "$ramp + 3" | bc)"
perf record -F 499 -g -p "$pid" -o "$out.perf.data" -- sleep "$secs" 2> "$out.perf.err"
wait "$harness" || true
perf report -i "$out.perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | grep '%' | head -40
