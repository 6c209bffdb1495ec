#!/usr/bin/env bash
# Installs mdagg's build and test dependencies from Debian 12 packages. Idempotent: it only
# calls apt-get when a package is missing, and uses sudo when not run as root.
# --build-only: only what building mdagg and mdagg-sim needs (the Dockerfile's build stage).
set -euo pipefail

build_packages=(
  g++ cmake ninja-build ccache pkg-config
  libboost1.81-dev libspdlog-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev
  zlib1g-dev libzstd-dev librdkafka-dev  # compressed segments; the Kafka sink
  libsimdjson-dev  # batch answers' stage 1 (src/mapping/simd_reader.hpp); bench/json_bench.sh
)
packages=(
  "${build_packages[@]}"
  libgtest-dev
  clang libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer ships in Debian's compiler-rt package
  kcat  # reads topics back in the Kafka tests
  curl jq wrk procps bc time
  python3  # bench/poll_latency.py: hedge_bench.sh's exact per-poll latencies
  ca-certificates  # OpenSSL's default trust store; the https examples in docs/ name its bundle
  openssl  # tests/tls/make_certs.sh makes the TLS test certificates at test time
)

need_promtool=false
if [ "${1:-}" = --build-only ]; then
  packages=("${build_packages[@]}")
else
  command -v promtool >/dev/null 2>&1 || need_promtool=true
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && [ "$need_promtool" = false ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The admin test validates /metrics with promtool. Debian ships it only inside the
# `prometheus` package, whose install would also start a Prometheus server; take the one
# binary out of the package instead.
if [ "$need_promtool" = true ]; then
  echo "setup: installing promtool (from Debian's prometheus package)" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && chmod 777 . && apt-get download -qq prometheus >/dev/null 2>&1)
  dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$tmp/promtool"
  $sudo install -m 0755 "$tmp/promtool" /usr/local/bin/promtool
  rm -rf "$tmp"
fi
