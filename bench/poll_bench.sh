#!/usr/bin/env bash
# Benchmark: mdagg against mdagg-sim for N pollers at an interval, then three clients against the
# same simulator with the same connection count, in the same run, so CPU per request compares as
# a ratio on this machine:
#   - wrk flat out (back-to-back requests: each request carries the ACK of the last response,
#     and one epoll_wait returns hundreds of events);
#   - wrk paced to the same interval (its Lua delay() hook: a request `interval` after each
#     response), the same work as mdagg's schedule;
#   - bench/paced_client.c, a minimal paced epoll client: the floor for polling on a schedule
#     (the kernel ACKs each response on its own when the next request is not due for > 40 ms).
# Usage: bash bench/poll_bench.sh [POLLERS=2000] [INTERVAL=50ms] [SECONDS=10] [RUNS=3]
# Prints one figure set per run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
pollers=${1:-2000}
interval=${2:-50ms}
secs=${3:-10}
runs=${4:-3}
case "$interval" in
  *ms) interval_ms=${interval%ms} ;;
  *) echo "INTERVAL must be in milliseconds, like 50ms" >&2; exit 2 ;;
esac

bash scripts/setup.sh
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DMDAGG_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target mdagg mdagg-sim >/dev/null
cc -O2 -Wall -Wextra -Werror -o build-bench/paced_client bench/paced_client.c
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start_sim() {
  ./build-bench/mdagg-sim --listen 127.0.0.1:0 --symbols "$pollers" > "$work/sim.out" 2>&1 &
  sim_pid=$!
  for _ in $(seq 200); do grep -q listening "$work/sim.out" && break; sleep 0.05; done
  port=$(head -1 "$work/sim.out" | jq -r .port)
}

results=()
for run in $(seq "$runs"); do
  start_sim
  cat > "$work/bench.yaml" <<YAML
log: { level: warn, summary_every: 1s }
output: { dir: $work/out, flush_every: 1s, quotes: true, bar_interval: 1s }
sources:
  - name: sim
    url: "http://127.0.0.1:$port/quotes/{symbol}"
    interval: $interval
    symbols: { prefix: STOCK_, count: $pollers }
    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty,
              exchange_time: { pointer: /time, unit: ms }, seq: /seq }
YAML
  sed -i 's/level: warn/level: info/' "$work/bench.yaml"
  ./build-bench/mdagg --config "$work/bench.yaml" > "$work/mdagg.out" 2>&1 &
  mdagg_pid=$!
  sleep 2  # warm-up: connections open, phases settle
  # The simulator's count of responses written is the daemon's count of polls answered.
  responses() { curl -s "http://127.0.0.1:$port/stats" | jq .responses; }
  c0=$(cpu_ticks $mdagg_pid); t0=$(date +%s.%N); p0=$(responses)
  sleep "$secs"
  c1=$(cpu_ticks $mdagg_pid); t1=$(date +%s.%N); p1=$(responses)
  rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$mdagg_pid/status")
  kill -TERM $mdagg_pid; wait $mdagg_pid || true
  drain_ms=$(grep '"drain complete"' "$work/mdagg.out" | jq -r .drain_ms)
  lateness=$(grep '"summary"' "$work/mdagg.out" | tail -n +3 | jq -s '[ (map(.tick_lateness_p50_ms) | sort | .[length/2|floor]), (map(.tick_lateness_p99_ms) | sort | .[length/2|floor]) ] | @tsv' -r)
  polls=$((p1 - p0))
  elapsed=$(echo "$t1 - $t0" | bc -l)
  mdagg_us=$(echo "($c1 - $c0) * 1000000 / $ticks / $polls" | bc -l)
  polls_s=$(echo "$polls / $elapsed" | bc -l)
  sched=$(echo "$pollers * 1000 / $interval_ms" | bc -l)

  # The floor: the minimal paced client, 2 s warm-up like the daemon's.
  floor=$(./build-bench/paced_client 127.0.0.1 "$port" "$pollers" "$interval_ms" 2 "$secs")
  floor_us=$(echo "$floor" | jq .cpu_us_per_response)
  floor_rps=$(echo "$floor" | jq .responses_per_s)

  # wrk: same server, same connection count, one thread, for the same time; flat out, then
  # paced. Its CPU includes its connects, well under 1% of 400,000 requests.
  run_wrk() {  # extra wrk arguments...
    /usr/bin/time -f "%U %S" -o "$work/wrk.time" wrk -t1 -c"$pollers" -d"${secs}s" "$@" \
      "http://127.0.0.1:$port/quotes/STOCK_1" > "$work/wrk.out" 2>&1 || true
    local n
    n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
    echo "$n $(awk -v n="$n" '{print ($1 + $2) * 1000000 / n}' "$work/wrk.time")"
  }
  read -r wrk_req wrk_us < <(run_wrk)
  echo "function delay() return $interval_ms end" > "$work/paced.lua"
  read -r paced_req paced_us < <(run_wrk -s "$work/paced.lua")
  kill -TERM $sim_pid; wait $sim_pid || true
  ratio=$(echo "$mdagg_us / $wrk_us" | bc -l)
  paced_ratio=$(echo "$mdagg_us / $paced_us" | bc -l)
  floor_ratio=$(echo "$mdagg_us / $floor_us" | bc -l)
  floor_vs_wrk=$(echo "$floor_us / $wrk_us" | bc -l)  # what pacing alone costs
  printf 'run %d: polls/s %.0f of %.0f scheduled, mdagg %.2f us CPU/poll; wrk flat out %.2f us CPU/req (%s req), ratio %.2f; wrk paced %.2f us (%.0f req/s), ratio %.2f; paced floor client %.2f us (%.0f req/s), ratio %.2f (floor itself %.2f of wrk flat out); peak RSS %.1f MiB, tick lateness p50/p99 %s ms, drain %s ms\n' \
    "$run" "$polls_s" "$sched" "$mdagg_us" "$wrk_us" "$wrk_req" "$ratio" "$paced_us" "$(echo "$paced_req / $secs" | bc -l)" "$paced_ratio" \
    "$floor_us" "$floor_rps" "$floor_ratio" "$floor_vs_wrk" "$(echo "$rss_kib/1024" | bc -l)" "$(echo $lateness | tr ' ' '/')" "$drain_ms"
  results+=("$polls_s $mdagg_us $wrk_us $ratio $paced_us $paced_ratio $floor_us $floor_ratio $floor_vs_wrk $rss_kib $drain_ms")
  rm -rf "$work/out"
done

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
names=(polls_per_s mdagg_us_per_poll wrk_us_per_req cpu_ratio wrk_paced_us_per_req paced_ratio
       floor_us_per_req floor_ratio floor_vs_wrk peak_rss_kib drain_ms)
line="median of $runs runs (schedule $(printf '%.0f' "$sched") polls/s):"
for i in "${!names[@]}"; do
  m=$(printf '%s\n' "${results[@]}" | awk -v f=$((i + 1)) '{ print $f }' | median)
  line+=" ${names[$i]}=$(printf '%.2f' "$m")"
done
echo "$line"
