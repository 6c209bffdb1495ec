#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++, ASan + UBSan) and runs each for a bounded time on a
# scratch copy of its seed corpus, so new inputs never land in the repo. A crash, a sanitizer
# report or a violated property fails the run and leaves the input in $FUZZ_BUILD_DIR.
# Usage: bash scripts/fuzz.sh [SECONDS per target, default 60]   env: FUZZ_BUILD_DIR (build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

seconds=${1:-60}
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMDAGG_FUZZ=ON \
  >/dev/null
cmake --build "$build_dir" -j "$(nproc)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in mapping; do
  mkdir -p "$work/$target"
  cp tests/fuzz/corpus/"$target"/* "$work/$target"/
  echo "== fuzzing $target for ${seconds}s"
  # -use_value_profile helps it through the parsers' many character comparisons.
  "$build_dir/tests/fuzz/${target}_fuzz" "$work/$target" \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -use_value_profile=1 -print_final_stats=1 -artifact_prefix="$build_dir/${target}-"
done
