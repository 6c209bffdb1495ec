#!/usr/bin/env bash
# Benchmark of the Kafka sink (issue 16): mdagg polling mdagg-sim at POLLERS x 1/INTERVAL
# quotes/s (default 2,000 every 50 ms: 40,000/s) into mdagg-kafka-mock (3 brokers, librdkafka's
# mock cluster on loopback TCP), against the same daemon without a `kafka:` section, in the
# same run (each run measures both, the order alternating from run to run so drifting load
# on a shared machine falls on both alike). Per phase: WARMUP s, then SECONDS s measured.
#   - CPU per record (what the files took) of the whole daemon with Kafka and without, and their ratio (target <= 1.2);
#   - producer CPU per record: the daemon's librdkafka threads (rdk:*) and the sink's delivery
#     report thread (mdagg-kafka-dr), per record delivered; formatting and producev run on the
#     aggregator strand and show only in the ratio;
#   - receive time -> delivery report p50/p99 from mdagg_sink_delivery_latency_seconds over the
#     measured window (target p99 < 50 ms + linger with healthy brokers);
#   - the rates reached (a loaded machine may not reach the schedule: the figures are per quote).
# Usage: bash bench/kafka_bench.sh [POLLERS=2000] [INTERVAL=50ms] [SECONDS=10] [RUNS=3]
# BENCH_BUILD=DIR uses mdagg, mdagg-sim and mdagg-kafka-mock from a build directory as they
# are (no Release build). LINGER (default 5ms) and COMPRESSION (default none) set the sink.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
pollers=${1:-2000}
interval=${2:-50ms}
secs=${3:-10}
runs=${4:-3}
warmup=${WARMUP:-3}
linger=${LINGER:-5ms}
compression=${COMPRESSION:-none}
bench_interval_ms "$interval"
bench_binaries ON mdagg mdagg-sim mdagg-kafka-mock
bench_workdir

# CPU ticks of the process's threads whose name matches the pattern.
thread_ticks() {  # PID REGEX
  local sum=0 t comm
  for t in /proc/"$1"/task/*; do
    comm=$(cat "$t/comm" 2>/dev/null) || continue
    [[ "$comm" =~ $2 ]] || continue
    sum=$((sum + $(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)))
  done
  echo $sum
}

mock_bin=$bin/mdagg-kafka-mock
[ -x "$mock_bin" ] || mock_bin=$bin/tests/kafka/mdagg-kafka-mock
: > "$work/mock.control"  # commands would go here; the mock runs until killed
"$mock_bin" --brokers 3 --topic md.quotes:32 --topic md.bars:4 --topic md.events:2 --control "$work/mock.control" \
  > "$work/mock.out" 2> "$work/mock.err" &
mock_pid=$!
for _ in $(seq 200); do [ -s "$work/mock.out" ] && break; sleep 0.05; done
bootstraps=$(head -1 "$work/mock.out")
[ -n "$bootstraps" ] || { echo "kafka_bench: mdagg-kafka-mock did not start: $(cat "$work/mock.err")" >&2; exit 1; }
bench_start_sim "$pollers"

write_config() {  # WITH_KAFKA(0|1)
  cat > "$work/bench.yaml" <<YAML
log: { level: info, summary_every: 1s }
output: { dir: $work/out, flush_every: 1s, quotes: true, bar_interval: 1s }
admin: { listen: "127.0.0.1:0" }
sources:
  - name: sim
    url: "http://127.0.0.1:$port/quotes/{symbol}"
    interval: $interval
    symbols: { prefix: STOCK_, count: $pollers }
    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty,
              exchange_time: { pointer: /time, unit: ms }, seq: /seq }
YAML
  if [ "$1" = 1 ]; then
    cat >> "$work/bench.yaml" <<YAML
kafka:
  brokers: "$bootstraps"
  topics: { quotes: md.quotes, bars: md.bars, events: md.events }
  linger: $linger
  compression: $compression
YAML
  fi
}

scrape() { curl -s "http://127.0.0.1:$admin_port/metrics"; }
# One sample's value from a scrape, 0 when absent.
sample() {  # FILE SERIES
  awk -v s="$2" 'index($0, s " ") == 1 { print $NF; found = 1 } END { if (!found) print 0 }' "$1"
}
# Quantile Q (ms) of the delivery latency histogram between two scrapes, interpolated within
# its bucket as Prometheus's histogram_quantile does (the buckets are powers of two).
latency_quantile() {  # BEFORE AFTER Q
  awk -v q="$3" '
    /^mdagg_sink_delivery_latency_seconds_bucket\{sink="kafka"/ {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      if (FILENAME == ARGV[1]) before[le] = $NF; else { after[le] = $NF; order[++n] = le }
    }
    END {
      total = after["+Inf"] - before["+Inf"]
      if (total <= 0) { print "nan"; exit }
      rank = q * total; lower = 0; below = 0
      for (i = 1; i <= n; ++i) {
        le = order[i]; count = after[le] - before[le]
        if (count >= rank) {
          if (le == "+Inf") { print lower * 1000; exit }
          printf "%.3f\n", (lower + (le - lower) * (count > below ? (rank - below) / (count - below) : 1)) * 1000
          exit
        }
        lower = le; below = count
      }
    }' "$1" "$2"
}

# Runs one phase; sets quotes_s (records/s into the files), cpu_us (per record), and with Kafka also delivered_s,
# producer_us (per record delivered), p50_ms, p99_ms, dropped.
measure() {  # WITH_KAFKA
  write_config "$1"
  rm -rf "$work/out"
  "$bin/mdagg" --config "$work/bench.yaml" > "$work/mdagg.out" 2>&1 &
  local pid=$! q0 q1 c0 c1 k0 k1 t0 t1
  # A loaded machine may take a while to start 2,000 pollers; the line may be read half written.
  admin_port=
  for _ in $(seq 600); do
    admin_port=$(grep '"admin listening"' "$work/mdagg.out" 2>/dev/null | head -1 | jq -r .port 2>/dev/null || true)
    [[ "$admin_port" =~ ^[0-9]+$ ]] && break
    sleep 0.05
  done
  [[ "$admin_port" =~ ^[0-9]+$ ]] || { echo "kafka_bench: mdagg did not start: $(tail -3 "$work/mdagg.out")" >&2; exit 1; }
  sleep "$warmup"
  scrape > "$work/m0"; c0=$(cpu_ticks $pid); k0=$(thread_ticks $pid '^(rdk:|mdagg-kafka)'); t0=$(date +%s.%N)
  sleep "$secs"
  scrape > "$work/m1"; c1=$(cpu_ticks $pid); k1=$(thread_ticks $pid '^(rdk:|mdagg-kafka)'); t1=$(date +%s.%N)
  kill -TERM $pid
  drain_exit=0
  wait $pid || drain_exit=$?
  local elapsed quotes
  elapsed=$(echo "$t1 - $t0" | bc -l)
  # Records the files took (quotes, bars and stale marks): the same work in both phases.
  quotes=$(echo "$(sample "$work/m1" 'mdagg_sink_records_total') - $(sample "$work/m0" 'mdagg_sink_records_total')" | bc -l)
  quotes_s=$(echo "$quotes / $elapsed" | bc -l)
  cpu_us=$(echo "($c1 - $c0) * 1000000 / $ticks / $quotes" | bc -l)
  if [ "$1" = 1 ]; then
    local d0 d1 delivered
    d0=0 d1=0
    for s in quotes bars events; do
      d0=$(echo "$d0 + $(sample "$work/m0" "mdagg_sink_records_delivered_total{sink=\"kafka\",stream=\"$s\"}")" | bc -l)
      d1=$(echo "$d1 + $(sample "$work/m1" "mdagg_sink_records_delivered_total{sink=\"kafka\",stream=\"$s\"}")" | bc -l)
    done
    delivered=$(echo "$d1 - $d0" | bc -l)
    delivered_s=$(echo "$delivered / $elapsed" | bc -l)
    producer_us=$(echo "($k1 - $k0) * 1000000 / $ticks / $delivered" | bc -l)
    p50_ms=$(latency_quantile "$work/m0" "$work/m1" 0.5)
    p99_ms=$(latency_quantile "$work/m0" "$work/m1" 0.99)
    # Any drain line: one that ran out of its budget (exit 3, a starved machine) is reported, not fatal.
    dropped=$(grep -E '"msg":"drain (complete|finished|incomplete)' "$work/mdagg.out" | tail -1 |
      jq -r '.kafka.dropped + .kafka.undelivered' || true)
    dropped="${dropped:-?} (exit $drain_exit)"
  fi
}

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
sched=$(echo "$pollers * 1000 / $interval_ms" | bc -l)
results=()
for run in $(seq "$runs"); do
  order="0 1"
  [ $((run % 2)) = 0 ] && order="1 0"
  for with in $order; do
    measure "$with"
    if [ "$with" = 1 ]; then
      k_quotes_s=$quotes_s k_cpu_us=$cpu_us
    else
      p_quotes_s=$quotes_s p_cpu_us=$cpu_us
    fi
  done
  ratio=$(echo "$k_cpu_us / $p_cpu_us" | bc -l)
  printf 'run %d: schedule %.0f quotes/s; without Kafka %.0f records/s, %.2f us CPU/record; with Kafka %.0f records/s (%.0f delivered/s), %.2f us CPU/record, ratio %.2f; producer (rdk:* + delivery-report thread) %.2f us CPU/record; receive -> delivery report p50 %s ms, p99 %s ms (linger %s); lost at the drain %s\n' \
    "$run" "$sched" "$p_quotes_s" "$p_cpu_us" "$k_quotes_s" "$delivered_s" "$k_cpu_us" "$ratio" "$producer_us" "$p50_ms" "$p99_ms" "$linger" "$dropped"
  results+=("$p_quotes_s $p_cpu_us $k_quotes_s $k_cpu_us $ratio $producer_us $p50_ms $p99_ms")
done
kill -TERM $sim_pid $mock_pid 2>/dev/null || true

names=(records_per_s_without cpu_us_per_record_without records_per_s_with cpu_us_per_record_with cpu_ratio
       producer_us_per_record delivery_p50_ms delivery_p99_ms)
line="median of $runs runs (schedule $(printf '%.0f' "$sched") quotes/s, linger $linger, compression $compression):"
for i in "${!names[@]}"; do
  m=$(printf '%s\n' "${results[@]}" | awk -v f=$((i + 1)) '{ print $f }' | median)
  line+=" ${names[$i]}=$(printf '%.2f' "$m")"
done
echo "$line"
