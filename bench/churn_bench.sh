#!/usr/bin/env bash
# Memory under config churn: mdagg polls mdagg-sim, then its config is rewritten and reloaded
# (SIGHUP) STEPS times, each reload adding CHURN new symbols and removing the previous CHURN
# (a second source polls 50 fixed symbols throughout). Prints VmRSS and VmHWM after the start
# and after each reload in EVERY, and the growth from reload 1 to the last one.
# Usage: bash bench/churn_bench.sh [STEPS] [CHURN] [INTERVAL] [MDAGG] [MDAGG_SIM]
#        (defaults 100, 1000, 250ms, build/mdagg, build/mdagg-sim); env EVERY="1 10 50 100".
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-100}
churn=${2:-1000}
interval=${3:-250ms}
mdagg=${4:-build/mdagg}
sim=${5:-build/mdagg-sim}
every=" ${EVERY:-1 2 10 50 100} "
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d)
sim_pid="" mdagg_pid=""
cleanup() {
  [ -n "$mdagg_pid" ] && kill "$mdagg_pid" 2>/dev/null
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$sim" --listen 127.0.0.1:0 --symbols $(( churn * (steps + 2) )) > "$work/sim.out" 2>&1 &
sim_pid=$!
for _ in $(seq 200); do grep -q listening "$work/sim.out" && break; sleep 0.05; done
port=$(jq -r .port < <(head -1 "$work/sim.out"))

config() {  # $1: step
  local fields='fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty, exchange_time: { pointer: /time, unit: ms }, seq: /seq }'
  cat > "$work/mdagg.yaml.tmp" <<EOF
runtime: { threads: 1 }
shutdown: { grace: 5s, interrupt_grace: 5s }
log: { level: info, summary_every: 1h }
output: { dir: $work/out, flush_every: 200ms, bar_interval: 1s }
sources:
  - name: churn
    url: "http://127.0.0.1:$port/quotes/{symbol}"
    interval: $interval
    symbols: { prefix: STOCK_, start: $(( churn * ($1 + 1) )), count: $churn }
    $fields
  - name: fixed
    url: "http://127.0.0.1:$port/quotes/{symbol}"
    interval: $interval
    symbols: { prefix: STOCK_, start: 0, count: 50 }
    $fields
EOF
  mv "$work/mdagg.yaml.tmp" "$work/mdagg.yaml"
}

rss() { awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {printf "rss %d KiB, hwm %d KiB", r, h}' "/proc/$mdagg_pid/status"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$mdagg_pid/status"; }

config 0
"$mdagg" --config "$work/mdagg.yaml" > "$work/mdagg.out" 2>&1 &
mdagg_pid=$!
for _ in $(seq 300); do grep -q '"mdagg started"' "$work/mdagg.out" && break; sleep 0.05; done
sleep 1
echo "start: $(rss)"
first=0
for step in $(seq 1 "$steps"); do
  config "$step"
  kill -HUP "$mdagg_pid"
  for _ in $(seq 1500); do
    [ "$(grep -c '"config reloaded' "$work/mdagg.out")" -ge "$step" ] && break
    sleep 0.02
  done
  sleep 0.6  # two intervals: the new symbols are quoted, the retired pollers finish
  [ "$step" -eq 1 ] && first=$(rss_kib)
  case "$every" in *" $step "*) echo "reload $step: $(rss)" ;; esac
done
last=$(rss_kib)
echo "growth from reload 1 to reload $steps: $(echo "scale=3; ($last - $first) * 100 / $first" | bc -l) %"
kill -TERM "$mdagg_pid"
wait "$mdagg_pid" && echo "mdagg drained: exit 0" || echo "mdagg exit $?"
mdagg_pid=""
