#!/usr/bin/env bash
# User-space instructions per poll: mdagg under callgrind polls mdagg-sim (native) with POLLERS
# pollers. Callgrind counts every instruction mdagg's threads execute in user space (pollers,
# mapping, aggregator, formatter, writer), none of the kernel's. Start-up and drain are left
# out: after WARMUP seconds the counters are zeroed (callgrind_control -z), WINDOW seconds later
# they are dumped, and the polls answered in between are the calls of QuoteMapper::map in that
# dump (the simulator's count of responses over about the same window is printed as a check). Instruction counts do not depend on the machine's
# speed, so the figure compares builds (branches) where CPU time would not.
# Usage: bash bench/callgrind_poll.sh [POLLERS=100] [INTERVAL=100ms] [WINDOW=10] [RUNS=3] [BUILD=build...]
#        Each BUILD is a configured build directory holding mdagg (the project's default build
#        type, RelWithDebInfo, unless configured otherwise); nothing is rebuilt. With several,
#        each run measures them in turn (A B A B ...) so that they share the machine's noise;
#        the first one's mdagg-sim serves them all. Env WARMUP (seconds, default 4).
# Env KEEP=PREFIX keeps the dumps (PREFIX.RUN.BUILD_INDEX).
# Prints one line per run and build, then per build the median and range.
# The figure moves with how far valgrind falls behind the schedule on a busy machine (fixed
# per-second work such as the 1 ms wheel timer spreads over fewer polls): compare medians of
# interleaved runs, not single runs.
set -euo pipefail
cd "$(dirname "$0")/.."
pollers=${1:-100}
interval=${2:-100ms}
window=${3:-10}
runs=${4:-3}
shift $(( $# < 4 ? $# : 4 ))
builds=("$@")
[ ${#builds[@]} -eq 0 ] && builds=(build)
warmup=${WARMUP:-4}
sim=${builds[0]}/mdagg-sim
for b in "${builds[@]}"; do [ -x "$b/mdagg" ] || { echo "no $b/mdagg: build it first" >&2; exit 2; }; done
[ -x "$sim" ] || { echo "no $sim: build it first" >&2; exit 2; }

work=$(mktemp -d)
sim_pid="" mdagg_pid=""
cleanup() {  # a kill of a process already gone must not end it early (set -e): the simulator outlived runs
  [ -n "$mdagg_pid" ] && kill "$mdagg_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

responses() { curl -s "http://127.0.0.1:$port/stats" | jq .responses; }

declare -A figures
for run in $(seq "$runs"); do
bi=0
for build in "${builds[@]}"; do
  bi=$((bi + 1))
  mdagg=$build/mdagg
  build_type=$(awk -F= '/^CMAKE_BUILD_TYPE:/ {print $2}' "$build/CMakeCache.txt" 2>/dev/null || echo unknown)
  "$sim" --listen 127.0.0.1:0 --symbols "$pollers" > "$work/sim.out" 2>&1 &
  sim_pid=$!
  for _ in $(seq 200); do grep -q listening "$work/sim.out" && break; sleep 0.05; done
  port=$(head -1 "$work/sim.out" | jq -r .port)
  [[ "$port" =~ ^[0-9]+$ ]] || { echo "the simulator did not start: $(head -3 "$work/sim.out")" >&2; exit 1; }
  cat > "$work/bench.yaml" <<YAML
runtime: { threads: ${THREADS:-1} }
log: { level: info, summary_every: 1s }
output: { dir: $work/out, flush_every: 1s, quotes: true, bar_interval: 1s }
sources:
  - name: sim
    url: "http://127.0.0.1:$port/quotes/{symbol}"
    interval: $interval
    symbols: { prefix: STOCK_, count: $pollers }
    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty,
              exchange_time: { pointer: /time, unit: ms }, seq: /seq }
YAML
  rm -f "$work"/cg.*
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" --dump-instr=no --compress-strings=no \
    "$mdagg" --config "$work/bench.yaml" > "$work/mdagg.out" 2> "$work/valgrind.err" &
  mdagg_pid=$!
  sleep "$warmup"
  # Each control command takes a moment to reach the process: the polls of that moment count
  # half in, half out.
  a0=$(responses); callgrind_control -z "$mdagg_pid" > /dev/null 2>&1; a1=$(responses)
  sleep "$window"
  b0=$(responses); callgrind_control -d "$mdagg_pid" > /dev/null 2>&1; b1=$(responses)
  kill -TERM "$mdagg_pid"; wait "$mdagg_pid" || true; mdagg_pid=""
  kill -TERM "$sim_pid"; wait "$sim_pid" || true; sim_pid=""
  sim_polls=$(( (b0 + b1) / 2 - (a0 + a1) / 2 ))
  dump=$(ls "$work"/cg.*.1 2>/dev/null | head -1)
  [ -n "$dump" ] || { echo "no callgrind dump; valgrind said:" >&2; tail "$work/valgrind.err" >&2; exit 1; }
  # KEEP=PREFIX keeps each dump as PREFIX.RUN.N (N: the build's index) for callgrind_annotate.
  [ -n "${KEEP:-}" ] && cp "$dump" "$KEEP.$run.$bi"
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  # Polls answered inside the profile's own window, exactly: the calls of QuoteMapper::map
  # (one per answered poll). The simulator's count over about the same window is the check.
  polls=$(awk '/^cfn=/ { m = index($0, "mdagg::QuoteMapper::map(") > 0; next }
               m && /^calls=/ { split($1, c, "="); n += c[2] } { m = 0 } END { print n + 0 }' "$dump")
  [ "$polls" -gt 0 ] || { echo "no QuoteMapper::map calls in the profile" >&2; exit 1; }
  failed=$(grep '"drain complete"' "$work/mdagg.out" | jq -r '.polls_failed + .polls_timed_out' || echo "?")
  per_poll=$(echo "$ir / $polls" | bc -l)
  printf 'run %d: %s Ir over %d polls (simulator: %d responses; %.0f polls/s, %.0f scheduled), %.0f instructions per poll; failed+timed_out in the whole run %s; build %s (%s)\n' \
    "$run" "$ir" "$polls" "$sim_polls" "$(echo "$polls / $window" | bc -l)" "$(echo "$pollers * 1000 / ${interval%ms}" | bc -l)" \
    "$per_poll" "$failed" "$build" "$build_type"
  figures[$build]+="$per_poll "
  rm -rf "$work/out"
done
done
for build in "${builds[@]}"; do
  printf '%s\n' ${figures[$build]} | sort -g | awk -v n="$runs" -v b="$build" '{ a[NR] = $1 } END {
    printf "%s: median of %d runs %.0f instructions per poll (range %.0f-%.0f, spread %.1f%%)\n",
           b, n, a[int((n + 1) / 2)], a[1], a[n], (a[n] - a[1]) * 100 / a[int((n + 1) / 2)] }'
done
