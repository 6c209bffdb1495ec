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
# are (no Release build). LINGER (default 20ms, the sink's) and COMPRESSION (default none) set the sink,
# PARTITIONS (default 32) the quote topic's partitions.
# VARIANTS="SPEC SPEC..." measures several sink settings in the same runs (the order rotating
# from run to run), each against the run's phase without Kafka. A SPEC is comma-separated
# KEY=VALUE: linger, compression, acks, idempotence, partitions (of the quote topic), mdagg (the
# daemon's binary: an A/B of two builds) or a librdkafka property (a key with a dot), e.g.
# VARIANTS="linger=5ms linger=20ms,compression=lz4 mdagg=/tmp/old/mdagg".
# preload=LIB starts the daemon with LD_PRELOAD=LIB (e.g. an allocator); kafka=off makes a
# variant a phase without Kafka. A Kafka variant's ratio is against the kafka=off variant with
# the same mdagg and preload when one is measured, else against the plain phase without Kafka:
# VARIANTS="preload=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 kafka=off,preload=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 linger=20ms"
# compares the allocators with and without Kafka in the same runs.
# Each run also measures the floor (FLOOR=0 skips it): bench/kafka_floor.c, a bare paced
# rd_kafka_producev loop with the sink's settings and headers at the schedule's rate, against the
# same mock, with the first Kafka variant's linger and partitions. Its CPU per record is what any
# librdkafka client pays; 1 + floor / (CPU per record without Kafka) is the lowest ratio a sink
# built on this librdkafka could reach.
# Per variant it also prints where the CPU went, per record: librdkafka's main thread
# (rdk:main), its broker threads (rdk:broker*), the delivery-report thread (mdagg-kafka-dr) and
# the rest (the io threads: polling, the strand's formatting and produce), and the broker
# threads' wake-ups per batch-sized unit (voluntary context switches per second).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
pollers=${1:-2000}
interval=${2:-50ms}
secs=${3:-10}
runs=${4:-3}
warmup=${WARMUP:-3}
linger=${LINGER:-20ms}
compression=${COMPRESSION:-none}
partitions=${PARTITIONS:-32}
variants=${VARIANTS:-"linger=$linger,compression=$compression,partitions=$partitions"}
bench_interval_ms "$interval"
bench_binaries ON mdagg mdagg-sim mdagg-kafka-mock
bench_workdir
if [ "${FLOOR:-1}" != 0 ]; then
  cc -O2 -Wall -Wextra -Werror -o build-bench/kafka_floor bench/kafka_floor.c -lrdkafka -lpthread
fi

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

# Nanoseconds on CPU and voluntary context switches of the process's threads, by group:
# "main broker dr other cs_broker" (schedstat is exact where stat counts clock ticks).
thread_split() {  # PID
  local t comm ns cs main=0 broker=0 dr=0 other=0 cs_broker=0
  for t in /proc/"$1"/task/*; do
    comm=$(cat "$t/comm" 2>/dev/null) || continue
    ns=$(awk '{print $1}' "$t/schedstat" 2>/dev/null || echo 0)
    case "$comm" in
      rdk:main) main=$((main + ns)) ;;
      rdk:broker*)
        broker=$((broker + ns))
        cs=$(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status" 2>/dev/null || echo 0)
        cs_broker=$((cs_broker + cs)) ;;
      mdagg-kafka-dr) dr=$((dr + ns)) ;;
      *) other=$((other + ns)) ;;
    esac
  done
  echo "$main $broker $dr $other $cs_broker"
}

mock_bin=$bin/mdagg-kafka-mock
[ -x "$mock_bin" ] || mock_bin=$bin/tests/kafka/mdagg-kafka-mock
: > "$work/mock.control"  # commands would go here; the mock runs until killed
# A variant's setting: variant_get SPEC KEY DEFAULT.
variant_get() {
  local kv
  for kv in ${1//,/ }; do [ "${kv%%=*}" = "$2" ] && { echo "${kv#*=}"; return; }; done
  echo "$3"
}
# Whether a variant has the Kafka sink ("" is the plain phase without it).
has_kafka() { [ -n "$1" ] && [ "$(variant_get "$1" kafka on)" != off ]; }
# The variant without Kafka a variant's ratio is against: same mdagg and preload, else plain.
base_of() {
  local b
  for b in "${specs[@]}"; do
    has_kafka "$b" && continue
    [ "$(variant_get "$b" mdagg -)" = "$(variant_get "$1" mdagg -)" ] &&
      [ "$(variant_get "$b" preload -)" = "$(variant_get "$1" preload -)" ] && { echo "$b"; return; }
  done
  echo plain
}
# One quote topic per partition count a variant asks for: md.quotes.pN.
quote_topics=()
for p in $(for v in $variants; do variant_get "$v" partitions "$partitions"; done | sort -un); do
  quote_topics+=(--topic "md.quotes.p$p:$p")
done
"$mock_bin" --brokers 3 "${quote_topics[@]}" --topic md.bars:4 --topic md.events:2 --control "$work/mock.control" \
  > "$work/mock.out" 2> "$work/mock.err" &
mock_pid=$!
for _ in $(seq 200); do [ -s "$work/mock.out" ] && break; sleep 0.05; done
bootstraps=$(head -1 "$work/mock.out")
[ -n "$bootstraps" ] || { echo "kafka_bench: mdagg-kafka-mock did not start: $(cat "$work/mock.err")" >&2; exit 1; }
bench_start_sim "$pollers"

write_config() {  # VARIANT ("" = without Kafka)
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
  has_kafka "$1" || return 0
  cat >> "$work/bench.yaml" <<YAML
kafka:
  brokers: "$bootstraps"
  topics: { quotes: md.quotes.p$(variant_get "$1" partitions "$partitions"), bars: md.bars, events: md.events }
  linger: $(variant_get "$1" linger "$linger")
  compression: $(variant_get "$1" compression "$compression")
  acks: $(variant_get "$1" acks all)
  idempotence: $(variant_get "$1" idempotence true)
YAML
  local kv props=""
  for kv in ${1//,/ }; do
    [[ "${kv%%=*}" == *.* && "${kv%%=*}" != */* ]] && props+="    \"${kv%%=*}\": \"${kv#*=}\""$'\n'
  done
  [ -z "$props" ] || printf '  properties:\n%s' "$props" >> "$work/bench.yaml"
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
# producer_us (per record delivered), p50_ms, p99_ms, dropped, and split (us per record delivered: rdk:main,
# rdk:broker*, mdagg-kafka-dr, the rest; broker threads' voluntary switches per s).
measure() {  # VARIANT ("" = without Kafka)
  write_config "$1"
  rm -rf "$work/out"
  local daemon
  daemon=$(variant_get "$1" mdagg "$bin/mdagg")
  # Emptied before the start: the background child truncates it only once it runs, and the
  # port search below must not find the previous phase's daemon.
  : > "$work/mdagg.out"
  local preload
  preload=$(variant_get "$1" preload "")
  env ${preload:+LD_PRELOAD="$preload"} "$daemon" --config "$work/bench.yaml" >> "$work/mdagg.out" 2>&1 &
  local pid=$! c0 c1 k0 k1 s0 s1 t0 t1
  # A loaded machine may take a while to start 2,000 pollers; the line may be read half written.
  admin_port=
  for _ in $(seq 600); do
    admin_port=$(grep '"admin listening"' "$work/mdagg.out" 2>/dev/null | head -1 | jq -r .port 2>/dev/null || true)
    [[ "$admin_port" =~ ^[0-9]+$ ]] && break
    sleep 0.05
  done
  [[ "$admin_port" =~ ^[0-9]+$ ]] || { echo "kafka_bench: mdagg did not start: $(tail -3 "$work/mdagg.out")" >&2; exit 1; }
  sleep "$warmup"
  scrape > "$work/m0"; c0=$(cpu_ticks $pid); k0=$(thread_ticks $pid '^(rdk:|mdagg-kafka)'); s0=$(thread_split $pid); t0=$(date +%s.%N)
  sleep "$secs"
  scrape > "$work/m1"; c1=$(cpu_ticks $pid); k1=$(thread_ticks $pid '^(rdk:|mdagg-kafka)'); s1=$(thread_split $pid); t1=$(date +%s.%N)
  kill -TERM $pid
  drain_exit=0
  wait $pid || drain_exit=$?
  local elapsed quotes
  elapsed=$(echo "$t1 - $t0" | bc -l)
  # Records the files took (quotes, bars and stale marks): the same work in both phases.
  quotes=$(echo "$(sample "$work/m1" 'mdagg_sink_records_total') - $(sample "$work/m0" 'mdagg_sink_records_total')" | bc -l)
  quotes_s=$(echo "$quotes / $elapsed" | bc -l)
  cpu_us=$(echo "($c1 - $c0) * 1000000 / $ticks / $quotes" | bc -l)
  if has_kafka "$1"; then
    local d0 d1 delivered
    d0=0 d1=0
    for s in quotes bars events; do
      d0=$(echo "$d0 + $(sample "$work/m0" "mdagg_sink_records_delivered_total{sink=\"kafka\",stream=\"$s\"}")" | bc -l)
      d1=$(echo "$d1 + $(sample "$work/m1" "mdagg_sink_records_delivered_total{sink=\"kafka\",stream=\"$s\"}")" | bc -l)
    done
    delivered=$(echo "$d1 - $d0" | bc -l)
    delivered_s=$(echo "$delivered / $elapsed" | bc -l)
    producer_us=$(echo "($k1 - $k0) * 1000000 / $ticks / $delivered" | bc -l)
    split=$(echo "$s0 $s1" | awk -v d="$delivered" -v e="$elapsed" \
      '{ printf "main %.2f broker %.2f dr %.2f rest %.2f us/record, broker wake-ups %.0f/s",
         ($6-$1)/1000/d, ($7-$2)/1000/d, ($8-$3)/1000/d, ($9-$4)/1000/d, ($10-$5)/e }')
    p50_ms=$(latency_quantile "$work/m0" "$work/m1" 0.5)
    p99_ms=$(latency_quantile "$work/m0" "$work/m1" 0.99)
    # Any drain line: one that ran out of its budget (exit 3, a starved machine) is reported, not fatal.
    dropped=$(grep -E '"msg":"drain (complete|finished|incomplete)' "$work/mdagg.out" | tail -1 |
      jq -r '.kafka.dropped + .kafka.undelivered' || true)
    dropped="${dropped:-?} (exit $drain_exit)"
  fi
}

sched=$(echo "$pollers * 1000 / $interval_ms" | bc -l)
read -r -a specs <<< "$variants"
floors=""
declare -A bq=() bc_=() results=() kq=() kc=() kd=() kp=() k50=() k99=() kdrop=() ksplit=()
for run in $(seq "$runs"); do
  # Without Kafka, then the variants, rotated by one per run (so drifting load falls on all alike).
  phases=("" "${specs[@]}")
  n=${#phases[@]}
  for k in $(seq 0 $((n - 1))); do
    v=${phases[$(((k + run - 1) % n))]}
    measure "$v"
    if ! has_kafka "$v"; then
      bq["${v:-plain}"]=$quotes_s bc_["${v:-plain}"]=$cpu_us  # (an array key cannot be empty)
    else
      kq["$v"]=$quotes_s kc["$v"]=$cpu_us kd["$v"]=$delivered_s kp["$v"]=$producer_us
      k50["$v"]=$p50_ms k99["$v"]=$p99_ms kdrop["$v"]=$dropped ksplit["$v"]=$split
    fi
  done
  if [ "${FLOOR:-1}" != 0 ]; then
    fv=plain
    for v in "${specs[@]}"; do has_kafka "$v" && { fv=$v; break; }; done
    fl=$(variant_get "$fv" linger "$linger") fp=$(variant_get "$fv" partitions "$partitions")
    floor=$(./build-bench/kafka_floor "$bootstraps" "md.quotes.p$fp" "$sched" "${fl%ms}" "$warmup" "$secs" 2>/dev/null)
    floor_us=$(jq -r .us_per_record <<< "$floor")
    printf 'run %d floor (bare producev loop, 2 headers, linger %s, %s partitions): %.2f us CPU/record (producing thread %.2f, report thread %.2f, librdkafka threads %.2f) at %.0f records/s; lowest ratio 1 + floor / without = %.2f\n' \
      "$run" "$fl" "$fp" "$floor_us" "$(jq -r .producev_us <<< "$floor")" "$(jq -r .dr_us <<< "$floor")" \
      "$(jq -r .librdkafka_us <<< "$floor")" "$(jq -r .delivered_per_s <<< "$floor")" \
      "$(echo "1 + $floor_us / ${bc_[plain]}" | bc -l)"
    floors+="$floor_us $(echo "1 + $floor_us / ${bc_[plain]}" | bc -l)"$'\n'
  fi
  for v in "${specs[@]}"; do
    b=$(base_of "$v")
    if ! has_kafka "$v"; then
      printf 'run %d [%s]: without Kafka %.0f records/s, %.2f us CPU/record (plain: %.2f)\n' \
        "$run" "$v" "${bq[$v]}" "${bc_[$v]}" "${bc_[plain]}"
      results["$v"]+="${bq[$v]} ${bc_[$v]} 0 0 $(echo "${bc_[$v]} / ${bc_[plain]}" | bc -l) 0 0 0"$'\n'
      continue
    fi
    p_quotes_s=${bq[$b]} p_cpu_us=${bc_[$b]}
    ratio=$(echo "${kc[$v]} / $p_cpu_us" | bc -l)
    printf 'run %d [%s]: schedule %.0f quotes/s; without Kafka %.0f records/s, %.2f us CPU/record; with Kafka %.0f records/s (%.0f delivered/s), %.2f us CPU/record, ratio %.2f; producer (rdk:* + delivery-report thread) %.2f us CPU/record (%s); receive -> delivery report p50 %s ms, p99 %s ms; lost at the drain %s\n' \
      "$run" "$v" "$sched" "$p_quotes_s" "$p_cpu_us" "${kq[$v]}" "${kd[$v]}" "${kc[$v]}" "$ratio" "${kp[$v]}" "${ksplit[$v]}" "${k50[$v]}" "${k99[$v]}" "${kdrop[$v]}"
    results["$v"]+="$p_quotes_s ${p_cpu_us} ${kq[$v]} ${kc[$v]} $ratio ${kp[$v]} ${k50[$v]} ${k99[$v]}"$'\n'
  done
done
kill -TERM $sim_pid $mock_pid 2>/dev/null || true

names=(records_per_s_without cpu_us_per_record_without records_per_s_with cpu_us_per_record_with cpu_ratio
       producer_us_per_record delivery_p50_ms delivery_p99_ms)
for v in "${specs[@]}"; do
  printf '%s' "${results[$v]}" |
    print_medians "median of $runs runs (schedule $(printf '%.0f' "$sched") quotes/s, $v):" "${names[@]}"
done
[ -z "$floors" ] || printf '%s' "$floors" |
  print_medians "median of $runs runs, floor (bare producev loop):" floor_us_per_record lowest_ratio
