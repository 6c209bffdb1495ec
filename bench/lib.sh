# The prologue the benchmarks share (poll_bench.sh, batch_bench.sh, kafka_bench.sh). Sourced
# after `set -euo pipefail` and a cd to the repository; defines functions, runs nothing but
# the clock-tick query.

# INTERVAL such as 50ms: sets interval_ms, or exits 2.
bench_interval_ms() {
  case "$1" in
    *ms) interval_ms=${1%ms} ;;
    *) echo "INTERVAL must be in milliseconds, like 50ms" >&2; exit 2 ;;
  esac
}

# The binaries: BENCH_BUILD=DIR uses them as they are, else a Release build in build-bench
# (the test targets too with TESTS=ON). Sets bin; build-bench exists either way. Raises the
# descriptor limit: a connection per poller.
bench_binaries() {  # TESTS(ON|OFF) TARGET...
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  local tests=$1
  shift
  if [ -n "${BENCH_BUILD:-}" ]; then
    bin=$BENCH_BUILD
    mkdir -p build-bench
  else
    bash scripts/setup.sh
    cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DMDAGG_TESTS="$tests" >/dev/null
    cmake --build build-bench -j "$(nproc)" --target "$@" >/dev/null
    bin=./build-bench
  fi
}

# A scratch folder in $work, removed at exit (KEEP=1 keeps it), and the background jobs killed.
bench_workdir() {
  work=$(mktemp -d)
  trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
}

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # PID: user + system clock ticks

# mdagg-sim on an ephemeral port with SYMBOLS symbols and any further options: sets sim_pid, port.
bench_start_sim() {  # SYMBOLS [OPTION...]
  "$bin/mdagg-sim" --listen 127.0.0.1:0 --symbols "$@" > "$work/sim.out" 2>&1 &
  sim_pid=$!
  for _ in $(seq 200); do grep -q listening "$work/sim.out" && break; sleep 0.05; done
  port=$(head -1 "$work/sim.out" | jq -r .port)
}
stop_sim() { kill -TERM $sim_pid; wait $sim_pid || true; }

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# PREFIX NAME... < ROWS: one line, PREFIX then NAME=median for each column of the rows (one run
# a row, columns in NAME order).
print_medians() {
  local rows line=$1 i=1 name
  shift
  rows=$(cat)
  for name in "$@"; do
    line+=" $name=$(printf '%.2f' "$(printf '%s\n' "$rows" | awk -v f=$i 'NF { print $f }' | median)")"
    i=$((i + 1))
  done
  echo "$line"
}
