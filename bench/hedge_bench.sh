#!/usr/bin/env bash
# Benchmark: hedged requests (issue 15, docs/polling.md#hedged-requests). mdagg against one
# mdagg-sim serving two listeners (127.0.0.1: the url's host, 127.0.0.2: its mirror; one book).
#   1. Tail: a Pareto latency on the url's listener (scale 2 ms, shape 1.5, cap 2 s), a healthy
#      mirror, POLLERS pollers every 100 ms, timeout 100 ms; without `hedge:`, with
#      `after: 20ms` and with `after: p95` (max_extra 5% both): poll latency p50/p99/p99.9,
#      exact: tick to quote received, per poll, from the quote records (bench/poll_latency.py;
#      polls without a quote rank last, shown as ">100"), timeouts, and extra requests (the
#      mirror's requests / the url's). A check line per run compares the records with mdagg's
#      own histogram and late-answer count.
#   2. Cost: no fault, the same pollers with and without `hedge: { after: 20ms }` configured:
#      CPU per poll (mdagg's utime+stime / polls answered). No hedge fires on a healthy run.
# Usage: bash bench/hedge_bench.sh [POLLERS=500] [SECONDS=20]
# BENCH_BUILD=DIR uses mdagg and mdagg-sim from a build directory as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
pollers=${1:-500}
secs=${2:-20}
warmup=4
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ -n "${BENCH_BUILD:-}" ]; then
  bin=$BENCH_BUILD
else
  bash scripts/setup.sh
  cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DMDAGG_TESTS=OFF >/dev/null
  cmake --build build-bench -j "$(nproc)" --target mdagg mdagg-sim >/dev/null
  bin=./build-bench
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$bin/mdagg-sim" --listen 127.0.0.1:0 --listen 127.0.0.2:0 --control 127.0.0.1:0 --symbols "$pollers" \
  > "$work/sim.out" 2>&1 &
sim_pid=$!
for _ in $(seq 200); do grep -q listening "$work/sim.out" && break; sleep 0.05; done
port=$(grep listening "$work/sim.out" | head -1 | jq -r .port)
mirror_port=$(grep listening "$work/sim.out" | head -1 | jq -r '.listeners[1].port')
control=$(grep listening "$work/sim.out" | head -1 | jq -r .control_port)
listener() { curl -s "http://127.0.0.1:$control/stats" | jq ".listeners[$1].$2"; }
fault() {  # on|off: the Pareto tail on the url's listener
  if [ "$1" = on ]; then
    curl -s -X POST "http://127.0.0.1:$control/control/listeners/0/faults" \
      -d '{"kind":"latency","distribution":"pareto","min":"2ms","max":"2s","alpha":1.5}' >/dev/null
  else
    curl -s -X DELETE "http://127.0.0.1:$control/control/listeners/0/faults" >/dev/null
  fi
}

write_config() {  # HEDGE ("" for none)
  cat > "$work/bench.yaml" <<YAML
log: { level: info, summary_every: 5s }
admin: { listen: "127.0.0.1:0" }
output: { dir: $work/out, flush_every: 1s, quotes: true }
sources:
  - name: sim
    url: "http://127.0.0.1:$port/quotes/{symbol}"
    mirrors: ["http://127.0.0.2:$mirror_port/quotes/{symbol}"]
    interval: 100ms
    timeout: 100ms
$([ -n "$1" ] && echo "    hedge: $1")
    symbols: { prefix: STOCK_, count: $pollers }
    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, seq: /seq }
YAML
}

# mdagg's /metrics, one source: the poll-duration buckets and the counters used below.
# (Its power-of-two buckets are too coarse for the quantiles: bench/poll_latency.py says why.)
scrape() { curl -s "http://127.0.0.1:$admin/metrics" | grep -E '^mdagg_source_(poll_duration_seconds_bucket|polls_total|hedges_total|late_answers_total|tick_lateness_seconds_bucket)' > "$1"; }
clock() { python3 bench/poll_latency.py clock; }  # CLOCK_MONOTONIC and CLOCK_REALTIME, ns
counter() {  # FILE SERIES-REGEX
  grep -E "$2" "$1" | awk '{ s += $NF } END { print s + 0 }'
}

run() {  # LABEL HEDGE; sets the row's figures
  write_config "$2"
  "$bin/mdagg" --config "$work/bench.yaml" > "$work/mdagg.out" 2>&1 &
  mdagg_pid=$!
  for _ in $(seq 200); do grep -q '"admin listening"' "$work/mdagg.out" && break; sleep 0.05; done
  admin=$(grep '"admin listening"' "$work/mdagg.out" | head -1 | jq -r .port)
  [ -n "$admin" ] || { echo "$1: mdagg did not start within 10 s: $(tail -3 "$work/mdagg.out")" >&2; exit 1; }
  sleep "$warmup"
  local k0; k0=$(clock)
  scrape "$work/m0"; local l0=$(listener 0 requests) l1=$(listener 1 requests) c0=$(cpu_ticks $mdagg_pid)
  sleep "$secs"
  local k1; k1=$(clock)
  scrape "$work/m1"; local l0b=$(listener 0 requests) l1b=$(listener 1 requests) c1=$(cpu_ticks $mdagg_pid)
  kill -TERM $mdagg_pid; wait $mdagg_pid || true  # the drain writes every quote
  local done0 done1 to0 to1 fail0 fail1
  done0=$(counter "$work/m0" 'polls_total\{.*outcome="(completed|failed|timed_out)"')
  done1=$(counter "$work/m1" 'polls_total\{.*outcome="(completed|failed|timed_out)"')
  to0=$(counter "$work/m0" 'polls_total\{.*outcome="timed_out"'); to1=$(counter "$work/m1" 'polls_total\{.*outcome="timed_out"')
  fail0=$(counter "$work/m0" 'polls_total\{.*outcome="failed"'); fail1=$(counter "$work/m1" 'polls_total\{.*outcome="failed"')
  local late=$(( $(counter "$work/m1" 'late_answers_total\{.*outcome="delivered"') - $(counter "$work/m0" 'late_answers_total\{.*outcome="delivered"') ))
  local polls=$((done1 - done0)) first=$((l0b - l0)) extra=$((l1b - l1))
  # The window by tick: [k0, k1) in CLOCK_MONOTONIC; the wall clock's offset from it, at k0.
  local r p50 p99 p999 n recs found gap dup woke_late
  r=$(python3 bench/poll_latency.py stats "$work/out" sim 100 "${k0% *}" "${k1% *}" \
        "$(( ${k0#* } - ${k0% *} ))" "$(( to1 - to0 + fail1 - fail0 ))" "$work/m0" "$work/m1" 100)
  read -r p50 p99 p999 n recs found gap dup woke_late <<< "$r"
  rm -rf "$work/out"
  printf '| %s | %s | %s | %s | %.3f%% | %.2f%% | %.1f |\n' "$1" "$p50" "$p99" "$p999" \
    "$(echo "($to1 - $to0) * 100 / $polls" | bc -l)" \
    "$(echo "$extra * 100 / $first" | bc -l)" "$(echo "($c1 - $c0) * 1000000 / $ticks / $polls" | bc -l)"
  checks+=("$1: $n polls ticked in the window ($polls ended by mdagg's count), $recs quotes, $((fail1 - fail0)) failed; quotes after the next tick $found (mdagg's late answers: $late); same tick twice: $dup; records vs mdagg's histogram (bench/poll_latency.py): $gap% of polls beyond the tick lateness, ticks woken over 2 ms late: $woke_late%")
}

echo "$pollers pollers every 100 ms (timeout 100 ms), ${secs} s measured after ${warmup} s; $(nproc) cores"
echo
checks=()
command -v python3 >/dev/null || { echo "bench/hedge_bench.sh needs python3 (bench/poll_latency.py)" >&2; exit 2; }
echo "| run | p50 ms | p99 ms | p99.9 ms | timeouts | extra requests | CPU us/poll |"
echo "|---|---|---|---|---|---|---|"
fault on
run "Pareto, no hedge" ""
run "Pareto, after: 20ms" "{ after: 20ms, max_extra: 5% }"
run "Pareto, after: p95" "{ after: p95, max_extra: 5% }"
fault off
run "healthy, no hedge" ""
run "healthy, hedge: after 20ms" "{ after: 20ms, max_extra: 5% }"
kill -TERM $sim_pid; wait $sim_pid || true
echo
printf 'check: %s\n' "${checks[@]}"
