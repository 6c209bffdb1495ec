#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts the quote simulator (2,000 symbols on
# 127.0.0.1:8081) and mdagg polling every symbol every 50 ms into ./out. Ctrl+C drains.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target mdagg mdagg-sim

# Its own session, so Ctrl+C reaches only mdagg and the simulator keeps answering the drain.
setsid ./build/mdagg-sim --listen 127.0.0.1:8081 --symbols 2000 > build/demo-sim.log 2>&1 &
sim_pid=$!
trap 'kill -TERM "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q '"listening"' build/demo-sim.log 2>/dev/null && break
  kill -0 "$sim_pid" 2>/dev/null || { cat build/demo-sim.log >&2; exit 1; }
  sleep 0.05
done

echo "mdagg: polling 2,000 symbols every 50 ms into ./out; press Ctrl+C to drain" >&2
status=0
./build/mdagg --config config/demo.yaml || status=$?
echo "mdagg exited with $status; output:" >&2
ls -l out >&2 || true
exit "$status"
