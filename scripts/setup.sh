#!/usr/bin/env bash
# Installs mdagg's build and test dependencies from Debian 12 packages. Idempotent: it only
# calls apt-get when a package is missing, and uses sudo when not run as root.
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config
  libboost1.81-dev libspdlog-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev
  libgtest-dev
  clang libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer ships in Debian's compiler-rt package
  zlib1g-dev libzstd-dev
  curl jq wrk procps bc time
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
