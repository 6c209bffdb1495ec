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
#
# Two more modes, same arguments after the mode's name:
#   bash bench/poll_bench.sh idle [POLLERS=10000] [INTERVAL=500ms] [SECONDS=10] [RUNS=3]
#     Memory per idle poller: RSS of mdagg polling POLLERS symbols every INTERVAL (SECONDS after
#     every poller has answered at least once), per poller, and the same beyond a 100-poller
#     run (what each poller adds, without the daemon's fixed cost). The simulator's own memory
#     is not counted.
#   bash bench/poll_bench.sh threads [POLLERS=2000] [INTERVAL=50ms] [SECONDS=10] [RUNS=3]
#     runtime.threads: 2 against 1 in each run: CPU per poll on the same schedule (the cost
#     ratio); then the highest schedule each keeps (POLLERS times each step of RAMP, default
#     "1 1.5 2 2.5 3 4"), to show what a second io thread adds, with the simulator's CPU share
#     alongside (below ~100% of its one thread, it is not the bottleneck; on a 2-core machine
#     it still takes a core from mdagg's second thread). Each ramp step prints what limits it:
#     mdagg's threads' shares of a core (main = io thread 0 and the aggregator, io-N, other =
#     the file writer and the rest) and the simulator's, user+system.
#     BATCH=N polls N symbols per request (Binance's bookTicker?symbols=[...] shape, as
#     batch_bench.sh): POLLERS then counts symbols and the figures are quotes/s. The server's
#     cost per quote is then small, so mdagg's threads, not the simulator, can be the limit.
#   bash bench/poll_bench.sh tls [POLLERS=2000] [INTERVAL=50ms] [SECONDS=10] [RUNS=3]
#     HTTPS: per run, mdagg over plain HTTP then over TLS (`tls: { ca_file }`, https URL) against
#     the simulator with --tls-cert, then wrk over https flat out and paced: CPU per poll TLS vs
#     plain, TLS poll / paced wrk over TLS, start-up (launch until the simulator has answered
#     POLLERS polls: every poller's first poll, handshakes included), peak RSS, and the
#     simulator's handshakes vs resumptions. Certificates from tests/tls/make_certs.sh.
# BENCH_BUILD=DIR uses mdagg and mdagg-sim from a build directory as they are (no Release build).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
mode=ratios
case "${1:-}" in idle | threads | tls) mode=$1; shift ;; esac
default_pollers=2000 default_interval=50ms
[ "$mode" = idle ] && default_pollers=10000 default_interval=500ms
pollers=${1:-$default_pollers}
interval=${2:-$default_interval}
secs=${3:-10}
runs=${4:-3}
bench_interval_ms "$interval"
bench_binaries OFF mdagg mdagg-sim
cc -O2 -Wall -Wextra -Werror -o build-bench/paced_client bench/paced_client.c
bench_workdir

scheme=http sim_tls=() curl_tls=() source_tls=""
use_tls() {  # on|off: the simulator, mdagg's source and curl speak HTTPS with the test CA
  if [ "$1" = on ]; then
    [ -f "$work/certs/ca.pem" ] || bash tests/tls/make_certs.sh "$work/certs" >/dev/null
    scheme=https sim_tls=(--tls-cert "$work/certs/server.pem" --tls-key "$work/certs/server.key")
    curl_tls=(--cacert "$work/certs/ca.pem") source_tls="    tls: { ca_file: $work/certs/ca.pem }"
  else
    scheme=http sim_tls=() curl_tls=() source_tls=""
  fi
}
start_sim() { bench_start_sim "${1:-$pollers}" "${sim_tls[@]}"; }  # [SYMBOLS=POLLERS]
# The simulator's count of responses written is the daemon's count of polls answered.
sim_stats() { curl -s "${curl_tls[@]}" "$scheme://127.0.0.1:$port/stats"; }
responses() { sim_stats | jq .responses; }

batch=${BATCH:-0}  # threads mode: symbols per request (0: one per request)
write_config() {  # THREADS POLLERS INTERVAL
  local target="/quotes/{symbol}" batch_block=""
  local fields="symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty,"
  if [ "$batch" -gt 0 ]; then  # the binance_book_ticker_batch preset's shape
    target="/api/v3/ticker/bookTicker?symbols={symbols}"
    batch_block="    batch: { items: \"\", symbol: /symbol, size: $batch, format: json }"
    fields="bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty,"
  fi
  cat > "$work/bench.yaml" <<YAML
runtime: { threads: $1 }
log: { level: info, summary_every: 1s }
output: { dir: $work/out, flush_every: 1s, quotes: true, bar_interval: 1s }
sources:
  - name: sim
    url: "$scheme://127.0.0.1:$port$target"
$source_tls
    interval: $3
    symbols: { prefix: STOCK_, count: $2 }
$batch_block
    fields: { $fields
              exchange_time: { pointer: /time, unit: ms }, seq: /seq }
YAML
}

# Per-thread CPU clock ticks of PID: "TID NAME TICKS" lines.
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*/stat; do awk '{print $1, $2, $14 + $15}' "$t" 2>/dev/null || true; done
}
# Each thread's share of a core between two thread_ticks samples of PID over ELAPSED seconds:
# "main N% io-1 N% ... other N%" (main: the thread that runs io_context 0 and the aggregator;
# other: the file writer and the rest, summed).
thread_shares() {  # PID BEFORE AFTER ELAPSED
  awk -v pid="$1" -v el="$4" -v hz="$ticks" '
    NR == FNR { t0[$1] = $3; next }
    { d = ($3 - t0[$1]) * 100 / hz / el
      if ($1 == pid) main = d
      else if ($2 ~ /^\(mdagg-io-/) { n = $2; gsub(/[()]|mdagg-/, "", n); io[n] += d }
      else other += d }
    END { printf "main %.0f%%", main; for (n in io) printf " %s %.0f%%", n, io[n]; printf " other %.0f%%", other }' \
    <(printf '%s\n' "$2") <(printf '%s\n' "$3")
}

# Runs mdagg on $work/bench.yaml against the running simulator: WARMUP seconds, then SECONDS
# measured. Sets polls, elapsed, mdagg_us (CPU per poll), polls_s, sim_cpu (share of one core),
# rss_kib (VmRSS at the end), hwm_kib (VmHWM), drain_ms, lateness, failed.
measure_mdagg() {  # WARMUP SECONDS; also sets first_polls_ms (launch until POLLERS answered)
  local before launched now
  before=$(responses)
  launched=$(date +%s%N)
  "$bin/mdagg" --config "$work/bench.yaml" > "$work/mdagg.out" 2>&1 &
  mdagg_pid=$!
  first_polls_ms="?"
  while now=$(date +%s%N); (( now - launched < ${1} * 1000000000 )); do
    if (( $(responses) - before >= pollers )); then
      first_polls_ms=$(( (now - launched) / 1000000 )); break
    fi
    sleep 0.02
  done
  if ! kill -0 $mdagg_pid 2>/dev/null; then
    echo "mdagg exited at start ($scheme): $(tail -3 "$work/mdagg.out")" >&2; exit 1
  fi
  sleep "$(echo "$1 - ($(date +%s%N) - launched) / 1000000000" | bc -l | awk '{print ($1 > 0 ? $1 : 0)}')"
  local c0 c1 s0 s1 t0 t1 p0 p1 th0 th1 su0 su1
  # The count first, then the clocks: past saturation the simulator's accept queue overflows
  # and curl's connect can wait seconds for a SYN retransmit, which must not fall outside the
  # window the clocks measure.
  p0=$(responses); t0=$(date +%s.%N); c0=$(cpu_ticks $mdagg_pid); s0=$(cpu_ticks $sim_pid)
  th0=$(thread_ticks $mdagg_pid); su0=$(awk '{print $14}' /proc/$sim_pid/stat)
  sleep "$2"
  p1=$(responses); t1=$(date +%s.%N); c1=$(cpu_ticks $mdagg_pid); s1=$(cpu_ticks $sim_pid)
  th1=$(thread_ticks $mdagg_pid); su1=$(awk '{print $14}' /proc/$sim_pid/stat)
  rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$mdagg_pid/status")
  hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$mdagg_pid/status")
  kill -TERM $mdagg_pid; wait $mdagg_pid || true
  drain_ms=$(grep '"drain complete"' "$work/mdagg.out" | jq -r .drain_ms)
  failed=$(grep -E '"drain (complete|finished)' "$work/mdagg.out" | jq -r '.polls_failed + .polls_timed_out' | tail -1)
  [[ "$failed" =~ ^[0-9]+$ ]] || failed="?"  # the drain did not report (its watchdog fired)
  lateness=$(grep '"summary"' "$work/mdagg.out" | tail -n +3 | jq -s '[ (map(.tick_lateness_p50_ms) | sort | .[length/2|floor]), (map(.tick_lateness_p99_ms) | sort | .[length/2|floor]) ] | @tsv' -r)
  polls=$((p1 - p0))
  elapsed=$(echo "$t1 - $t0" | bc -l)
  mdagg_us=$(echo "($c1 - $c0) * 1000000 / $ticks / $polls" | bc -l)
  polls_s=$(echo "$polls / $elapsed" | bc -l)
  sim_cpu=$(echo "($s1 - $s0) * 100 / $ticks / $elapsed" | bc -l)
  sim_user=$(echo "($su1 - $su0) * 100 / $ticks / $elapsed" | bc -l)  # of sim_cpu: user space
  shares=$(thread_shares $mdagg_pid "$th0" "$th1" "$elapsed")
  rm -rf "$work/out"
}

# Median and range of column F of the results: "m (lo-hi)".
column_stats() {  # F FORMAT
  printf '%s\n' "${results[@]}" | awk -v f="$1" '{ print $f }' | sort -g |
    awk -v fmt="$2" '{ a[NR] = $1 } END { printf fmt " (" fmt "-" fmt ")", a[int((NR + 1) / 2)], a[1], a[NR] }'
}

if [ "$mode" = idle ]; then
  base=100
  results=()
  for run in $(seq "$runs"); do
    start_sim
    # The daemon's fixed cost: the same config with a hundred pollers.
    write_config 1 $base "$interval"
    measure_mdagg 3 2
    base_kib=$rss_kib
    write_config 1 "$pollers" "$interval"
    # Every poller has connected and answered by then: ticks are phased over one interval.
    measure_mdagg $(( 3 + 2 * interval_ms / 1000 )) "$secs"
    stop_sim
    per=$(echo "$rss_kib / $pollers" | bc -l)
    marginal=$(echo "($rss_kib - $base_kib) / ($pollers - $base)" | bc -l)
    printf 'run %d: %d pollers every %s: polls/s %.0f of %.0f scheduled, %s failed; RSS %.1f MiB (peak %.1f MiB), %.2f KiB per poller; %d pollers: RSS %.1f MiB; %.2f KiB per poller beyond them\n' \
      "$run" "$pollers" "$interval" "$polls_s" "$(echo "$pollers * 1000 / $interval_ms" | bc -l)" "$failed" \
      "$(echo "$rss_kib/1024" | bc -l)" "$(echo "$hwm_kib/1024" | bc -l)" "$per" "$base" "$(echo "$base_kib/1024" | bc -l)" "$marginal"
    results+=("$per $marginal $rss_kib $hwm_kib $base_kib")
  done
  echo "median (range) of $runs runs, $pollers idle pollers every $interval: RSS per poller $(column_stats 1 %.2f) KiB;" \
       "beyond $base pollers $(column_stats 2 %.2f) KiB; RSS $(column_stats 3 %.0f) KiB, peak $(column_stats 4 %.0f) KiB"
  exit 0
fi

if [ "$mode" = threads ]; then
  ramp=(${RAMP:-1 1.5 2 2.5 3 4})
  # The highest schedule a thread count keeps: >= 95% of the scheduled polls answered and
  # <= 5% of polls failed (timeouts on a busy machine), stepping the poller count up by RAMP (multiples of POLLERS). A
  # timeout is the interval, so past saturation polls time out and the step fails.
  sustained() {  # THREADS; sets best_s (polls/s), best_n (pollers), best_cpu (simulator %)
    best_s=0 best_n=0 best_cpu=0
    local m n
    for m in "${ramp[@]}"; do
      n=$(printf '%.0f' "$(echo "$pollers * $m" | bc -l)")
      write_config "$1" "$n" "$interval"
      measure_mdagg 2 "$secs"
      ramp_line+=" $1t/$n: $(printf '%.0f' "$polls_s")/s $failed failed, $shares, sim $(printf '%.0f%% (user %.0f%%)' "$sim_cpu" "$sim_user");"
      # A failed batch request loses its BATCH quotes.
      if [ "$failed" != "?" ] && (( $(echo "$polls_s >= 0.95 * $n * 1000 / $interval_ms && $failed * $(( batch > 0 ? batch : 1 )) <= 0.05 * $polls" | bc -l) )); then
        best_s=$polls_s best_n=$n best_cpu=$sim_cpu
      else
        break
      fi
    done
  }
  max_symbols=$(printf '%.0f' "$(echo "$pollers * ${ramp[-1]}" | bc -l)")
  results=()
  for run in $(seq "$runs"); do
    start_sim "$max_symbols"
    line="run $run:"
    row=()
    for threads in 1 2; do
      write_config $threads "$pollers" "$interval"
      measure_mdagg 2 "$secs"
      line+=" threads $threads: $(printf '%.0f polls/s, %.2f us CPU/poll, %s failed' "$polls_s" "$mdagg_us" "$failed") ($shares);"
      row+=("$mdagg_us")
    done
    cost_ratio=$(echo "${row[1]} / ${row[0]}" | bc -l)
    ramp_line=""
    for threads in 1 2; do
      sustained $threads
      line+=" sustained with $threads: $(printf '%.0f polls/s (%d pollers, simulator %.0f%% CPU);' "$best_s" "$best_n" "$best_cpu")"
      row+=("$best_s")
    done
    stop_sim
    gain=0  # 0: even the first step failed with one thread
    (( $(echo "${row[2]} > 0" | bc -l) )) && gain=$(echo "${row[3]} / ${row[2]}" | bc -l)
    printf '%s cost ratio 2/1 %.2f, sustained throughput 2/1 %.2f (steps:%s)\n' "$line" "$cost_ratio" "$gain" "${ramp_line%;}"
    results+=("$cost_ratio $gain ${row[0]} ${row[1]} ${row[2]} ${row[3]}")
  done
  echo "median (range) of $runs runs, $pollers pollers: CPU per poll with 2 io threads / 1 at $interval:" \
       "$(column_stats 1 %.2f) (1 thread $(column_stats 3 %.2f) us, 2 threads $(column_stats 4 %.2f) us);" \
       "sustained polls/s 2 threads / 1: $(column_stats 2 %.2f) (1 thread $(column_stats 5 %.0f), 2 threads $(column_stats 6 %.0f))"
  exit 0
fi

if [ "$mode" = tls ]; then
  results=()
  echo "function delay() return $interval_ms end" > "$work/paced.lua"
  for run in $(seq "$runs"); do
    use_tls off; start_sim; write_config 1 "$pollers" "$interval"
    measure_mdagg 2 "$secs"; plain_us=$mdagg_us; stop_sim
    use_tls on; start_sim; write_config 1 "$pollers" "$interval"
    measure_mdagg 3 "$secs"
    tls_us=$mdagg_us tls_rss=$hwm_kib tls_polls_s=$polls_s startup_ms=$first_polls_ms
    read -r hs res < <(sim_stats | jq -r '"\(.tls.handshakes) \(.tls.resumptions)"')
    wrk_cpu() {  # extra wrk arguments...: CPU us per request of wrk over https
      /usr/bin/time -f "%U %S" -o "$work/wrk.time" wrk -t1 -c"$pollers" -d"${secs}s" "$@" \
        "https://127.0.0.1:$port/quotes/STOCK_1" > "$work/wrk.out" 2>&1 || true
      local n; n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
      awk -v n="$n" '{print (n > 0 ? ($1 + $2) * 1000000 / n : "nan")}' "$work/wrk.time"
    }
    wrk_us=$(wrk_cpu); paced_us=$(wrk_cpu -s "$work/paced.lua")
    stop_sim
    printf 'run %d: TLS polls/s %.0f, %.2f us CPU/poll vs plain %.2f (ratio %.2f); wrk https flat %.2f us/req, paced %.2f us/req (TLS poll / paced %.2f); first %d polls in %s ms; peak RSS %.1f MiB; sim handshakes %s, resumptions %s, failed polls %s\n' \
      "$run" "$tls_polls_s" "$tls_us" "$plain_us" "$(echo "$tls_us / $plain_us" | bc -l)" "$wrk_us" "$paced_us" \
      "$(echo "$tls_us / $paced_us" | bc -l)" "$pollers" "$startup_ms" "$(echo "$tls_rss/1024" | bc -l)" "$hs" "$res" "$failed"
    results+=("$tls_us $plain_us $(echo "$tls_us / $plain_us" | bc -l) $paced_us $(echo "$tls_us / $paced_us" | bc -l) $tls_rss")
  done
  echo "median (range) of $runs runs, $pollers TLS pollers every $interval: CPU/poll $(column_stats 1 %.2f) us," \
       "plain $(column_stats 2 %.2f) us, TLS/plain $(column_stats 3 %.2f); paced wrk https $(column_stats 4 %.2f) us," \
       "TLS poll/paced wrk $(column_stats 5 %.2f); peak RSS $(column_stats 6 %.0f) KiB"
  exit 0
fi

results=()
for run in $(seq "$runs"); do
  start_sim
  write_config 1 "$pollers" "$interval"
  measure_mdagg 2 "$secs"  # warm-up: connections open, phases settle
  rss_kib=$hwm_kib
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
  stop_sim
  ratio=$(echo "$mdagg_us / $wrk_us" | bc -l)
  paced_ratio=$(echo "$mdagg_us / $paced_us" | bc -l)
  floor_ratio=$(echo "$mdagg_us / $floor_us" | bc -l)
  floor_vs_wrk=$(echo "$floor_us / $wrk_us" | bc -l)  # what pacing alone costs
  printf 'run %d: polls/s %.0f of %.0f scheduled, mdagg %.2f us CPU/poll; wrk flat out %.2f us CPU/req (%s req), ratio %.2f; wrk paced %.2f us (%.0f req/s), ratio %.2f; paced floor client %.2f us (%.0f req/s), ratio %.2f (floor itself %.2f of wrk flat out); peak RSS %.1f MiB, tick lateness p50/p99 %s ms, drain %s ms\n' \
    "$run" "$polls_s" "$sched" "$mdagg_us" "$wrk_us" "$wrk_req" "$ratio" "$paced_us" "$(echo "$paced_req / $secs" | bc -l)" "$paced_ratio" \
    "$floor_us" "$floor_rps" "$floor_ratio" "$floor_vs_wrk" "$(echo "$rss_kib/1024" | bc -l)" "$(echo $lateness | tr ' ' '/')" "$drain_ms"
  results+=("$polls_s $mdagg_us $wrk_us $ratio $paced_us $paced_ratio $floor_us $floor_ratio $floor_vs_wrk $rss_kib $drain_ms")
done

names=(polls_per_s mdagg_us_per_poll wrk_us_per_req cpu_ratio wrk_paced_us_per_req paced_ratio
       floor_us_per_req floor_ratio floor_vs_wrk peak_rss_kib drain_ms)
printf '%s\n' "${results[@]}" | print_medians "median of $runs runs (schedule $(printf '%.0f' "$sched") polls/s):" "${names[@]}"
