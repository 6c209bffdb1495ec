#!/usr/bin/env bash
# Benchmark of the output writer alone (no network): records/s and bytes/s FileSink sustains,
# CPU per record on the producer side (the aggregator strand: format + enqueue) and on the
# writer side (writer and compressor threads: write, fdatasync, rotate, compress), against
# the daemon's need: 2,000 pollers at 50 ms = 40,000 quotes/s. `dd` writing with fdatasync
# to the same directory in the same run gives the disk's raw bandwidth for comparison.
# Usage: bash bench/writer_bench.sh [SECONDS=5] [DIR=a fresh temp dir]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
work=${2:-$PWD/build-bench/writer-bench-out}  # on the disk the build is on, not a tmpfs
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

bash scripts/setup.sh
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DMDAGG_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target mdagg-writer-bench >/dev/null
bench=./build-bench/mdagg-writer-bench

dd_out=$(dd if=/dev/zero of="$work/bench-dd" bs=1M count=256 conv=fdatasync 2>&1 | tail -1)
echo "disk baseline (dd 256 MiB, fdatasync): $dd_out"
rm -f "$work/bench-dd"

need=40000
run() {
  local name=$1; shift
  rm -rf "$work/bench-$name"
  local line
  line=$("$bench" "$work/bench-$name" "$@" | tail -1)
  echo "$line" | jq -c .
  rm -rf "$work/bench-$name"
}
echo "-- sustained maximum (producer blocks when the queue is full)"
for fmt in jsonl csv; do run "max-$fmt" max "$secs" 0 "$fmt" none; done
for z in gzip zstd; do run "max-$z" max "$secs" 0 jsonl "$z"; done
echo "-- paced at the daemon's need: $need quotes/s (2,000 pollers @ 50 ms)"
run paced paced "$secs" "$need" jsonl none
run paced-zstd paced "$secs" "$need" jsonl zstd
