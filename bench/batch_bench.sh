#!/usr/bin/env bash
# Benchmark (issue 14): the same SYMBOLS every INTERVAL polled one symbol per request and in
# batches of BATCH (Binance's bookTicker?symbols=[...] shape, the binance_book_ticker_batch
# preset's), in the same run against the same mdagg-sim: CPU per quote and per request,
# requests/s, quotes/s and peak RSS of mdagg; with wrk against the same two targets in the same
# run (one connection per poller, flat out) as the yardstick for CPU per request. Then an
# all-instruments answer (OKX's tickers shape, the okx_tickers preset: ALL entries of which
# PICK are configured, ~250 KB at 700) every ALL_INTERVAL: CPU per answer and per entry.
# Usage: bash bench/batch_bench.sh [SYMBOLS=2000] [INTERVAL=50ms] [SECONDS=10] [RUNS=3]
#   env: BATCH=100 ALL=700 PICK=20 ALL_INTERVAL=100ms
# The all-instruments figure includes the daemon's fixed cost per second spread over its few
# answers; the same schedule with a PICK-entry answer is measured too, and the difference is
# what the big answer itself costs. The big answer is measured with each batch reader
# (simdjson, the default, and MDAGG_BATCH_READER=reference: the hand-written reader alone).
# Prints one figure set per run and the medians.
# BENCH_BUILD=DIR uses mdagg and mdagg-sim from a build directory as they are (no Release build).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
symbols=${1:-2000}
interval=${2:-50ms}
secs=${3:-10}
runs=${4:-3}
batch=${BATCH:-100}
all=${ALL:-700}
pick=${PICK:-20}
all_interval=${ALL_INTERVAL:-100ms}
bench_interval_ms "$interval"
bench_binaries OFF mdagg mdagg-sim
bench_workdir
start_sim() { bench_start_sim "$1"; }  # SYMBOLS
# Requests answered, and quotes written (entries that took a seq: one per single answer; the
# simulator's `responses` counts quotes, not answers).
counts() { curl -s "http://127.0.0.1:$port/stats" | jq -r '"\(.requests) \([.per_symbol[]] | add)"'; }

write_config() {  # TARGET SYMBOLS INTERVAL [BATCH_BLOCK]
  cat > "$work/bench.yaml" <<YAML
runtime: { threads: 1 }
log: { level: info, summary_every: 1s }
output: { dir: $work/out, flush_every: 1s, quotes: true, bar_interval: 1s }
sources:
  - name: sim
    url: "http://127.0.0.1:$port$1"
    interval: $3
    symbols: { prefix: STOCK_, count: $2 }
${4:-}
YAML
}
single_fields='    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty, seq: /seq }'
# The binance_book_ticker_batch and okx_tickers presets' batch and fields blocks (the presets
# themselves name the venues' https hosts).
binance_batch="    batch: { items: \"\", symbol: /symbol, size: $batch, format: json }
    fields: { bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty, seq: /seq }"
okx_batch='    success: { pointer: /code, equals: "0" }
    max_body_bytes: 4194304
    batch: { items: /data, symbol: /instId }
    fields: { bid: /bidPx, ask: /askPx, bid_size: /bidSz, ask_size: /askSz, exchange_time: { pointer: /ts, unit: ms }, seq: /seq }'

# mdagg on $work/bench.yaml: WARMUP s, then SECONDS measured. Sets us_cpu (total CPU us),
# answers, quotes, elapsed, hwm_kib, failed.
measure() {  # WARMUP SECONDS
  env MDAGG_BATCH_READER="${batch_reader:-fast}" "$bin/mdagg" --config "$work/bench.yaml" > "$work/mdagg.out" 2>&1 &
  local pid=$! c0 c1 t0 t1 a0 a1 q0 q1
  sleep "$1"
  kill -0 $pid 2>/dev/null || { echo "mdagg exited: $(tail -3 "$work/mdagg.out")" >&2; exit 1; }
  c0=$(cpu_ticks $pid); t0=$(date +%s.%N); read -r a0 q0 < <(counts)
  sleep "$2"
  c1=$(cpu_ticks $pid); t1=$(date +%s.%N); read -r a1 q1 < <(counts)
  hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM $pid; wait $pid || true
  failed=$(grep -E '"drain (complete|finished)' "$work/mdagg.out" | jq -r '.polls_failed + .polls_timed_out' | tail -1)
  [[ "$failed" =~ ^[0-9]+$ ]] || failed="?"
  us_cpu=$(echo "($c1 - $c0) * 1000000 / $ticks" | bc -l)
  answers=$((a1 - a0)) quotes=$((q1 - q0))
  elapsed=$(echo "$t1 - $t0" | bc -l)
  rm -rf "$work/out"
}

# wrk flat out against one target with CONNECTIONS connections: CPU us per request.
wrk_us() {  # CONNECTIONS TARGET
  /usr/bin/time -f "%U %S" -o "$work/wrk.time" wrk -t1 -c"$1" -d"${secs}s" "http://127.0.0.1:$port$2" \
    > "$work/wrk.out" 2>&1 || true
  local n; n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  awk -v n="$n" '{print (n > 0 ? ($1 + $2) * 1000000 / n : "nan")}' "$work/wrk.time"
}

# The first request of the batch run, {symbols} spelled as the daemon spells it.
list=$(seq 0 $((batch - 1)) | awk '{printf "%s%%22STOCK_%d%%22", (NR > 1 ? "," : ""), $1}')
batch_target="/api/v3/ticker/bookTicker?symbols=%5B${list}%5D"
requests=$(( (symbols + batch - 1) / batch ))

results=()
for run in $(seq "$runs"); do
  start_sim "$symbols"
  write_config "/quotes/{symbol}" "$symbols" "$interval" "$single_fields"
  measure 3 "$secs"
  s_quote=$(echo "$us_cpu / $quotes" | bc -l) s_rps=$(echo "$answers / $elapsed" | bc -l)
  s_qps=$(echo "$quotes / $elapsed" | bc -l) s_rss=$hwm_kib s_failed=$failed
  write_config "/api/v3/ticker/bookTicker?symbols={symbols}" "$symbols" "$interval" "$binance_batch"
  measure 3 "$secs"
  b_quote=$(echo "$us_cpu / $quotes" | bc -l) b_req=$(echo "$us_cpu / $answers" | bc -l)
  b_rps=$(echo "$answers / $elapsed" | bc -l) b_qps=$(echo "$quotes / $elapsed" | bc -l) b_rss=$hwm_kib b_failed=$failed
  w_single=$(wrk_us "$symbols" "/quotes/STOCK_1")
  w_batch=$(wrk_us "$requests" "$batch_target")
  stop_sim

  start_sim "$all"
  body_bytes=$(curl -s "http://127.0.0.1:$port/api/v5/market/tickers?instType=SPOT" | wc -c)
  write_config "/api/v5/market/tickers?instType=SPOT" "$pick" "$all_interval" "$okx_batch"
  measure 3 "$secs"
  a_answer=$(echo "$us_cpu / $answers" | bc -l) a_rps=$(echo "$answers / $elapsed" | bc -l) a_failed=$failed
  a_entry=$(echo "$a_answer / $all" | bc -l)
  # The same with the hand-written reader alone (MDAGG_BATCH_READER=reference): what simdjson
  # saves per answer, in the same run.
  batch_reader=reference measure 3 "$secs"
  r_answer=$(echo "$us_cpu / $answers" | bc -l)
  w_all=$(wrk_us 1 "/api/v5/market/tickers?instType=SPOT")
  stop_sim
  # The same schedule with an answer of only the PICK configured entries: the daemon's fixed
  # cost per second (timers, summaries, flushes) spread over 10 answers/s, which the big
  # answer's figure includes.
  start_sim "$pick"
  write_config "/api/v5/market/tickers?instType=SPOT" "$pick" "$all_interval" "$okx_batch"
  measure 3 "$secs"
  p_answer=$(echo "$us_cpu / $answers" | bc -l)
  stop_sim

  ratio=$(echo "$b_quote / $s_quote" | bc -l)
  s_req=$s_quote  # one quote per request
  printf 'run %d: single: %.0f req/s, %.0f quotes/s, %.2f us CPU/quote (= per request), peak RSS %.1f MiB, %s failed; wrk flat out %.2f us/req (mdagg/wrk %.2f)\n' \
    "$run" "$s_rps" "$s_qps" "$s_quote" "$(echo "$s_rss/1024" | bc -l)" "$s_failed" "$w_single" "$(echo "$s_req / $w_single" | bc -l)"
  printf '       batched by %d: %.0f req/s, %.0f quotes/s, %.2f us CPU/quote, %.1f us CPU/request, peak RSS %.1f MiB, %s failed; wrk flat out on one batch target %.1f us/req (mdagg/wrk %.2f); batched/single CPU per quote %.3f\n' \
    "$batch" "$b_rps" "$b_qps" "$b_quote" "$b_req" "$(echo "$b_rss/1024" | bc -l)" "$b_failed" "$w_batch" "$(echo "$b_req / $w_batch" | bc -l)" "$ratio"
  printf '       all instruments: %d entries (%d bytes), %d configured, every %s: %.0f answers/s, %.0f us CPU/answer (%.2f us per entry; the hand-written reader alone %.0f us), %s failed; a %d-entry answer on the same schedule %.0f us, so the %d entries add %.0f us; wrk flat out %.0f us/req\n' \
    "$all" "$body_bytes" "$pick" "$all_interval" "$a_rps" "$a_answer" "$a_entry" "$r_answer" "$a_failed" "$pick" "$p_answer" "$all" \
    "$(echo "$a_answer - $p_answer" | bc -l)" "$w_all"
  results+=("$s_quote $b_quote $ratio $b_req $s_rps $b_rps $s_rss $b_rss $a_answer $a_entry $w_single $w_batch $w_all $body_bytes $p_answer $(echo "$a_answer - $p_answer" | bc -l) $r_answer $(echo "$r_answer - $p_answer" | bc -l)")
done

names=(single_us_per_quote batched_us_per_quote batched_over_single batched_us_per_request single_req_s batched_req_s
       single_peak_rss_kib batched_peak_rss_kib all_us_per_answer all_us_per_entry wrk_single_us_per_req
       wrk_batch_us_per_req wrk_all_us_per_req all_body_bytes small_answer_us all_extra_us_per_answer
       all_reference_reader_us_per_answer all_reference_reader_extra_us_per_answer)
line="median of $runs runs ($symbols symbols every $interval, batches of $batch; $all-entry answer every $all_interval):"
for i in "${!names[@]}"; do
  m=$(printf '%s\n' "${results[@]}" | awk -v f=$((i + 1)) '{ print $f }' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  line+=" ${names[$i]}=$(printf '%.3f' "$m")"
done
echo "$line"
