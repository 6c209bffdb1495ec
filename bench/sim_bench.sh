#!/usr/bin/env bash
# The simulator's own cost: CPU microseconds per quote request under wrk's keep-alive load,
# for one or more mdagg-sim binaries measured in turn (A B A B ...), so a change to the
# request path can be compared with the binary before it on the same, equally noisy machine.
# Usage: bash bench/sim_bench.sh [CONNECTIONS] [SECONDS] [RUNS] [SIM_BINARY...]
#        (defaults 2000, 10, 2, build/mdagg-sim); env SIM_ARGS adds arguments (e.g. a --fault).
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-2000}
secs=${2:-10}
runs=${3:-2}
shift $(( $# < 3 ? $# : 3 ))
bins=("$@")
[ ${#bins[@]} -eq 0 ] && bins=(build/mdagg-sim)
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d)
sim_pid=""
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

for run in $(seq 1 "$runs"); do
  for bin in "${bins[@]}"; do
    # shellcheck disable=SC2086
    "$bin" --listen 127.0.0.1:0 --symbols 2000 ${SIM_ARGS:-} > "$work/sim.out" 2>&1 &
    sim_pid=$!
    for _ in $(seq 100); do grep -q listening "$work/sim.out" && break; sleep 0.05; done
    port=$(jq -r .port < <(head -1 "$work/sim.out"))
    before=$(cpu_ticks "$sim_pid")
    wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/quotes/STOCK_1" > "$work/wrk.out" 2>&1 || true
    after=$(cpu_ticks "$sim_pid")
    kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; sim_pid=""
    req=$(awk '/requests in/ {print $1}' "$work/wrk.out")
    printf 'run %d %s: %s requests, %.2f us sim CPU/request\n' "$run" "$bin" "$req" \
      "$(echo "($after - $before) * 1000000 / $hz / $req" | bc -l)"
  done
done
