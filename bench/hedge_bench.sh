#!/usr/bin/env bash
# Benchmark: hedged requests (issue 15, docs/polling.md#hedged-requests). mdagg against one
# mdagg-sim serving two listeners (127.0.0.1: the url's host, 127.0.0.2: its mirror; one book).
#   1. Tail: a Pareto latency on the url's listener (scale 2 ms, shape 1.5, cap 2 s), a healthy
#      mirror, POLLERS pollers every 100 ms, timeout 100 ms; without `hedge:`, with
#      `after: 20ms` and with `after: p95` (max_extra 5% both): poll latency p50/p99/p99.9 (from
#      mdagg's poll-duration histogram over the measured window: upper bounds of its buckets,
#      ~19% wide), timeouts, and extra requests (the mirror's requests / the url's).
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
scrape() { curl -s "http://127.0.0.1:$admin/metrics" | grep -E '^mdagg_source_(poll_duration_seconds_bucket|polls_total|hedges_total)' > "$1"; }
# Quantile Q of the histogram between two scrapes: the upper bound of the bucket holding it, ms.
quantile() {  # BEFORE AFTER Q
  join <(grep poll_duration_seconds_bucket "$1" | sed -E 's/.*le="([^"]+)".* ([0-9.e+]+)$/\1 \2/' | sort) \
       <(grep poll_duration_seconds_bucket "$2" | sed -E 's/.*le="([^"]+)".* ([0-9.e+]+)$/\1 \2/' | sort) |
    awk '{ print ($1 == "+Inf") ? 1e9 : $1, $3 - $2 }' | sort -g |
    awk -v q="$3" '{ le[NR] = $1; c[NR] = $2; if ($2 > total) total = $2 }
      END { for (i = 1; i <= NR; i++) if (c[i] >= q * total) { printf "%.1f", le[i] * 1000; exit } }'
}
counter() {  # FILE SERIES-REGEX
  grep -E "$2" "$1" | awk '{ s += $NF } END { print s + 0 }'
}

run() {  # LABEL HEDGE; sets the row's figures
  write_config "$2"
  "$bin/mdagg" --config "$work/bench.yaml" > "$work/mdagg.out" 2>&1 &
  mdagg_pid=$!
  for _ in $(seq 200); do grep -q '"admin listening"' "$work/mdagg.out" && break; sleep 0.05; done
  admin=$(grep '"admin listening"' "$work/mdagg.out" | head -1 | jq -r .port)
  sleep "$warmup"
  scrape "$work/m0"; local l0=$(listener 0 requests) l1=$(listener 1 requests) c0=$(cpu_ticks $mdagg_pid)
  sleep "$secs"
  scrape "$work/m1"; local l0b=$(listener 0 requests) l1b=$(listener 1 requests) c1=$(cpu_ticks $mdagg_pid)
  kill -TERM $mdagg_pid; wait $mdagg_pid || true
  rm -rf "$work/out"
  local done0 done1 to0 to1
  done0=$(counter "$work/m0" 'polls_total\{.*outcome="(completed|failed|timed_out)"')
  done1=$(counter "$work/m1" 'polls_total\{.*outcome="(completed|failed|timed_out)"')
  to0=$(counter "$work/m0" 'outcome="timed_out"'); to1=$(counter "$work/m1" 'outcome="timed_out"')
  local polls=$((done1 - done0)) first=$((l0b - l0)) extra=$((l1b - l1))
  printf '| %s | %s | %s | %s | %.3f%% | %.2f%% | %.1f |\n' "$1" \
    "$(quantile "$work/m0" "$work/m1" 0.5)" "$(quantile "$work/m0" "$work/m1" 0.99)" \
    "$(quantile "$work/m0" "$work/m1" 0.999)" "$(echo "($to1 - $to0) * 100 / $polls" | bc -l)" \
    "$(echo "$extra * 100 / $first" | bc -l)" "$(echo "($c1 - $c0) * 1000000 / $ticks / $polls" | bc -l)"
}

echo "$pollers pollers every 100 ms (timeout 100 ms), ${secs} s measured after ${warmup} s; $(nproc) cores"
echo
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
