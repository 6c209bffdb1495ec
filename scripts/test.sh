#!/usr/bin/env bash
# Builds mdagg and runs the whole test suite (unit + integration with the real processes).
# Usage: bash scripts/test.sh        env: BUILD_DIR (default build), MDAGG_SANITIZE
# ("address,undefined" or "thread"), MDAGG_BUILD_TYPE (default Release, what ships: -O3, where
# g++ 12 warns where -O2 does not; RelWithDebInfo with MDAGG_SANITIZE, so reports have line
# numbers), BUILD_TARGETS (default every target), CTEST_ARGS (extra ctest arguments, e.g.
# "-R Daemon").
# No test may skip: run as root, the tests that skipped because they must not run as root
# (file permissions) run again as an unprivileged user, and any test still skipped fails the
# run. MDAGG_ALLOW_SKIPS=1 only warns (a developer without root cannot mount a tmpfs).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# ccache keys hold absolute paths unless they are under CCACHE_BASEDIR: with the checkout as
# the base, a clone in another folder (CI's) reuses what an earlier clone compiled.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"

build_dir=${BUILD_DIR:-build}
build_type=Release
if [ -n "${MDAGG_SANITIZE:-}" ]; then build_type=RelWithDebInfo; fi
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${MDAGG_BUILD_TYPE:-$build_type}" \
  -DMDAGG_SANITIZE="${MDAGG_SANITIZE:-}" >/dev/null
# shellcheck disable=SC2086
cmake --build "$build_dir" -j "$(nproc)" ${BUILD_TARGETS:+--target $BUILD_TARGETS}

# Unit tests run in parallel; integration tests are RUN_SERIAL (they load both cores).
ctest_log=$(mktemp)
trap 'rm -f "$ctest_log"' EXIT
# shellcheck disable=SC2086
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" ${CTEST_ARGS:-} | tee "$ctest_log"

# ctest lists what did not run as "  12 - Suite.Name (Skipped)" (or Disabled, Not Run).
mapfile -t not_run < <(sed -n 's/^[[:space:]]*[0-9][0-9]* - \(.*\) (\(Skipped\|Disabled\|Not Run\))$/\1/p' "$ctest_log")
still_not_run=()
if [ "${#not_run[@]}" -gt 0 ] && [ "$(id -u)" -eq 0 ]; then
  # As nobody, from a directory and TMPDIR that user owns; the test binary is copied there
  # when the build directory is not readable by it.
  scratch=$(mktemp -d)
  chown 65534:65534 "$scratch"
  as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH="$PATH" HOME="$scratch" TMPDIR="$scratch"
             ASAN_OPTIONS="${ASAN_OPTIONS:-}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}" TSAN_OPTIONS="${TSAN_OPTIONS:-}")
  for name in "${not_run[@]}"; do
    mapfile -t cmd < <(ctest --test-dir "$build_dir" --show-only=json-v1 -R "^${name//./\\.}\$" |
                       jq -r '.tests[0].command[]')
    if [ "${#cmd[@]}" -eq 0 ]; then still_not_run+=("$name"); continue; fi
    if ! "${as_nobody[@]}" test -x "${cmd[0]}"; then
      cp "${cmd[0]}" "$scratch/" && chmod 755 "$scratch/$(basename "${cmd[0]}")"
      cmd[0]="$scratch/$(basename "${cmd[0]}")"
    fi
    echo "== as nobody: $name"
    out=$(cd "$scratch" && "${as_nobody[@]}" "${cmd[@]}" 2>&1) && rc=0 || rc=$?
    echo "$out" | tail -n 20
    if [ "$rc" -ne 0 ] || ! grep -q '^\[  PASSED  \] 1 test' <<<"$out" || grep -q '^\[  SKIPPED \]' <<<"$out"; then
      still_not_run+=("$name")
    fi
  done
  rm -rf "$scratch"
else
  still_not_run=("${not_run[@]}")
fi

if [ "${#still_not_run[@]}" -gt 0 ]; then
  printf 'test.sh: did not run or did not pass in any role: %s\n' "${still_not_run[@]}" >&2
  if [ "${MDAGG_ALLOW_SKIPS:-0}" != 1 ]; then exit 1; fi
fi
