#!/usr/bin/env bash
# Builds mdagg and runs the whole test suite (unit + integration with the real processes).
# Usage: bash scripts/test.sh        env: BUILD_DIR (default build), MDAGG_SANITIZE
# ("address,undefined" or "thread"), CTEST_ARGS (extra ctest arguments, e.g. "-R Daemon").
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMDAGG_SANITIZE="${MDAGG_SANITIZE:-}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"

# Unit tests run in parallel; integration tests are RUN_SERIAL (they load both cores).
# shellcheck disable=SC2086
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" ${CTEST_ARGS:-}
