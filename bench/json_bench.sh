#!/usr/bin/env bash
# The daemon's JSON reader against simdjson On Demand (bench/json_bench.cpp): an OKX-like
# all-instruments answer (ALL entries, PICK configured) and a single ~150-byte quote.
# Needs libsimdjson-dev (Debian 12: 3.0.1) and a Release build of the daemon's libraries.
# Usage: bash bench/json_bench.sh [RUNS=3]   env: ALL=700 PICK=20 REPS=7 ITERS=300
#        BENCH_BUILD=DIR (default build/) holds libmdagg_*.a
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
build=${BENCH_BUILD:-build}
[ -f /usr/include/simdjson.h ] || { echo "needs libsimdjson-dev (apt-get install libsimdjson-dev)" >&2; exit 2; }
cmake --build "$build" -j1 --target mdagg_mapping mdagg_sim mdagg_http mdagg_decimal mdagg_common mdagg_config mdagg_asio >/dev/null
mkdir -p "$build/bench"
g++ -std=c++20 -O3 -DNDEBUG -Wall -Wextra -Werror -Iinclude -Isrc/sim -Isrc/mapping bench/json_bench.cpp -o "$build/bench/json_bench" \
  "$build/libmdagg_mapping.a" "$build/libmdagg_sim.a" "$build/libmdagg_http.a" "$build/libmdagg_config.a" "$build/libmdagg_decimal.a" \
  "$build/libmdagg_common.a" "$build/libmdagg_asio.a" -lsimdjson -lyaml-cpp -lssl -lcrypto -lz -lpthread
results=()
for run in $(seq "$runs"); do
  line=$("$build/bench/json_bench")
  echo "run $run: $line"
  results+=("$line")
done
printf '%s\n' "${results[@]}" | jq -s -c '
  def med(f): map(f) | sort | .[length / 2 | floor];
  {median_of: length, body_bytes: .[0].body_bytes, entries: .[0].entries, picked: .[0].picked,
   ours_us: med(.ours_us), simdjson_us: med(.simdjson_us), ours_over_simdjson: med(.ours_over_simdjson),
   ours_all_us: med(.ours_all_us), simdjson_all_us: med(.simdjson_all_us), ours_scan_only_us: med(.ours_scan_only_us), simdjson_scan_only_us: med(.simdjson_scan_only_us),
   single_bytes: .[0].single_bytes, ours_single_us: med(.ours_single_us), simdjson_single_us: med(.simdjson_single_us),
   simdjson_single_validating_walk_us: med(.simdjson_single_validating_walk_us),
   read_ours_us: med(.read_ours_us), read_ondemand_us: med(.read_ondemand_us), read_stage1_us: med(.read_stage1_us),
   read_single_ours_us: med(.read_single_ours_us), read_single_stage1_us: med(.read_single_stage1_us)}'
