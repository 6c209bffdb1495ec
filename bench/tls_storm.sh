#!/usr/bin/env bash
# Overload over TLS: mdagg polling POLLERS symbols every INTERVAL over HTTPS against one
# mdagg-sim, a schedule beyond what the simulator can serve on this machine (2,000 every 50 ms
# asks 40,000 polls/s; a 2-core machine serves ~16,000). What matters is not the rate but
# that it degrades gracefully: every poller connects (the connect gate queues the handshakes
# beyond its limit instead of letting them time out in a storm), every symbol keeps getting
# quotes, polls beyond capacity are skipped ticks, and the simulator runs about one full
# handshake per poller. Prints each summary line's figures, then: distinct symbols quoted in
# the last 5 s (from the output records), the simulator's handshakes, resumptions and failed
# handshakes, peak RSS.
# Usage: BENCH_BUILD=DIR bash bench/tls_storm.sh [POLLERS=2000] [INTERVAL=50ms] [SECONDS=12]
set -euo pipefail
cd "$(dirname "$0")/.."
pollers=${1:-2000}
interval=${2:-50ms}
secs=${3:-12}
bin=${BENCH_BUILD:?BENCH_BUILD=DIR: a build directory with mdagg and mdagg-sim}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
bash tests/tls/make_certs.sh "$work/certs" >/dev/null
"$bin/mdagg-sim" --listen 127.0.0.1:0 --symbols "$pollers" --tls-cert "$work/certs/server.pem" \
  --tls-key "$work/certs/server.key" > "$work/sim.out" 2>&1 &
sim_pid=$!
for _ in $(seq 200); do grep -q listening "$work/sim.out" && break; sleep 0.05; done
port=$(head -1 "$work/sim.out" | jq -r .port)
cat > "$work/storm.yaml" <<YAML
log: { level: info, summary_every: 1s }
output: { dir: $work/out, flush_every: 1s, quotes: true, bar_interval: 1s }
sources:
  - name: sim
    url: "https://127.0.0.1:$port/quotes/{symbol}"
    tls: { ca_file: $work/certs/ca.pem }
    interval: $interval
    symbols: { prefix: STOCK_, count: $pollers }
    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, bid_size: /bidQty, ask_size: /askQty,
              exchange_time: { pointer: /time, unit: ms }, seq: /seq }
YAML
"$bin/mdagg" --config "$work/storm.yaml" > "$work/mdagg.out" 2>&1 &
mdagg_pid=$!
sleep "$secs"
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$mdagg_pid/status")
stats=$(curl -s --cacert "$work/certs/ca.pem" "https://127.0.0.1:$port/stats")
kill -TERM $mdagg_pid; wait $mdagg_pid || true
grep '"summary"' "$work/mdagg.out" |
  jq -c '{polls_per_s: (.polls_per_s|floor), completed, failed, timed_out, skipped_ticks, symbols_quoted,
          tls_handshakes, tls_resumptions, errors}'
cutoff=$(date -u -d "@$(( $(date +%s) - 6 ))" +%Y-%m-%dT%H:%M:%S)
recent=$(cat "$work"/out/quotes-* 2>/dev/null | jq -r --arg c "$cutoff" 'select(.type=="quote" and .receive_time >= $c) | .symbol' | sort -u | wc -l)
echo "symbols quoted in the last ~5 s: $recent of $pollers"
echo "sim: $(echo "$stats" | jq -c '{responses, tls}')"
echo "peak RSS $(echo "$hwm_kib / 1024" | bc -l | xargs printf '%.1f') MiB"
