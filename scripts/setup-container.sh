#!/usr/bin/env bash
# Installs what the container image test (tests/container/image_test.sh) needs on top of
# scripts/setup.sh: buildah and podman to build and import images without a Docker engine,
# debootstrap to make the Debian 12 base locally (no registry is reachable). Idempotent.
set -euo pipefail

packages=(buildah podman debootstrap util-linux coreutils jq curl)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup-container: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
