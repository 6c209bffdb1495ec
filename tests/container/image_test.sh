#!/usr/bin/env bash
# Builds the Dockerfile for real and runs the image's entrypoint as PID 1, without a Docker
# engine or a registry:
#   1. a Debian 12 base from debootstrap (minbase), imported with podman and cached per week;
#   2. `buildah bud --isolation chroot --storage-driver vfs` of the Dockerfile on that base;
#   3. checks of the image config (non-root user, exec-form entrypoint, STOPSIGNAL) and of the
#      runtime stage (no compiler, the binaries run with only the shipped libraries);
#   4. the entrypoint started as PID 1 of its own PID namespace in the image's root file system,
#      as the image's user, polling the simulator from the same image; SIGTERM; it must drain
#      within its budget, exit 0 and leave complete files with every polled quote.
# PID 1 has no default signal actions: a daemon that relied on SIGTERM's default would never
# stop here, so this catches one that only exits by accident.
#
# Root only (debootstrap, chroot, namespaces). Env: MDAGG_CI_CACHE (default
# /var/cache/mdagg-ci) holds the base and the container storage; JOBS compiler jobs;
# MDAGG_KEEP_IMAGE=1 keeps the built image, MDAGG_TEST_IMAGE=NAME tests a kept one instead.
# --base-only: step 1 alone (.ci/run makes the base while the fuzzer runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then echo "image_test: must run as root" >&2; exit 1; fi
bash scripts/setup-container.sh

cache=${MDAGG_CI_CACHE:-/var/cache/mdagg-ci}
mkdir -p "$cache"
# A storage of our own: vfs works on any file system and inside containers, and the default
# storage may already be set up with another driver.
store=(--root "$cache/containers" --runroot /run/mdagg-ci/containers --storage-driver vfs)
log() { echo "image_test: $(( $(date +%s) - start )) s: $*" >&2; }

work=$(mktemp -d /tmp/mdagg-image-test.XXXXXX)
image="localhost/mdagg-image-test:$$"
container="" mnt="" sim_pid="" unshare_pid="" daemon_pid="" built=""
cleanup() {
  local status=$?
  set +e
  for pid in "$daemon_pid" "$unshare_pid" "$sim_pid"; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  [ -n "$mnt" ] && buildah "${store[@]}" umount "$container" >/dev/null
  [ -n "$container" ] && buildah "${store[@]}" rm "$container" >/dev/null
  [ -n "$built" ] && [ -z "${MDAGG_KEEP_IMAGE:-}" ] && buildah "${store[@]}" rmi -f "$built" >/dev/null 2>&1
  # Stage images and dangling layers are several GB each under vfs; the base stays cached.
  buildah "${store[@]}" rmi --prune >/dev/null 2>&1
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "---- $f (last 30 lines)"; tail -n 30 "$f"; }; done >&2
  fi
  rm -rf "$work"
  log "finished with status $status"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. the base image, cached per ISO week and recipe -----------------------------------
suite=bookworm
mirror=http://deb.debian.org/debian
recipe="debootstrap --variant=minbase $suite $mirror; $suite-updates; $suite-security; upgrade"
key="$(date -u +%G-w%V)-$(echo "$recipe" | sha256sum | cut -c1-12)"
base_image="localhost/mdagg-ci-base:$suite-$key"
base_tar="$cache/base-$suite-$key.tar"
(
  # One run at a time makes the base; the others wait and reuse it.
  flock 9
  if [ ! -s "$base_tar" ]; then
    log "making the $suite base with debootstrap (cached in $base_tar)"
    rootfs="$work/rootfs"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" > "$work/debootstrap.log" 2>&1
    cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
SOURCES
    chroot "$rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq \
      && apt-get clean && rm -rf /var/lib/apt/lists/*' >> "$work/debootstrap.log" 2>&1
    tar --numeric-owner -C "$rootfs" -cf "$base_tar.tmp" .
    mv "$base_tar.tmp" "$base_tar"
    rm -rf "$rootfs"
    find "$cache" -maxdepth 1 -name "base-$suite-*.tar" ! -name "$(basename "$base_tar")" -delete
  fi
  if ! podman "${store[@]}" image exists "$base_image"; then
    log "importing $base_tar as $base_image"
    for old in $(podman "${store[@]}" images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/mdagg-ci-base:' || true); do
      podman "${store[@]}" rmi -f "$old" >/dev/null
    done
    podman "${store[@]}" import --quiet "$base_tar" "$base_image" >/dev/null
  fi
) 9> "$cache/base.lock"
if [ "${1:-}" = --base-only ]; then log "base $base_image ready"; exit 0; fi

# ---- 2. the image -------------------------------------------------------------------------
if [ -n "${MDAGG_TEST_IMAGE:-}" ]; then
  image=$MDAGG_TEST_IMAGE  # an image built earlier in this storage: test it, keep it
  log "testing $image without building"
else
  log "building the Dockerfile on $base_image"
  build_start=$(date +%s)
  buildah "${store[@]}" bud --isolation chroot --pull=never --layers=false \
    --build-arg BASE="$base_image" --build-arg JOBS="${JOBS:-$(nproc)}" \
    -t "$image" -f Dockerfile . > "$work/build.log" 2>&1 || { tail -n 60 "$work/build.log" >&2; exit 1; }
  log "image built in $(( $(date +%s) - build_start )) s"
  built=$image
fi

# ---- 3. the image's config and contents ---------------------------------------------------
config=$(buildah "${store[@]}" inspect --type image "$image" | jq -c '.OCIv1.config')
check() {  # check DESCRIPTION JQ_FILTER: the filter must be true of the image config
  jq -e "$2" <<<"$config" >/dev/null || { echo "image_test: FAIL: $1; config: $config" >&2; exit 1; }
}
check "runs as a numeric non-root user" '.User | test("^[1-9][0-9]*(:[0-9]+)?$")'
check "exec-form entrypoint is the daemon" '.Entrypoint == ["/usr/local/bin/mdagg"]'
check "default command runs the default config" '.Cmd == ["--config", "/etc/mdagg/config.yaml"]'
check "STOPSIGNAL SIGTERM" '.StopSignal == "SIGTERM"'
user=$(jq -r .User <<<"$config")
workdir=$(jq -r '.WorkingDir // "/"' <<<"$config")
mapfile -t entrypoint < <(jq -r '.Entrypoint[]' <<<"$config")
mapfile -t image_env < <(jq -r '.Env // [] | .[]' <<<"$config")
[ "${user%%:*}" != 0 ] || { echo "image_test: FAIL: image runs as root" >&2; exit 1; }

container=$(buildah "${store[@]}" from --pull=never "$image")
mnt=$(buildah "${store[@]}" mount "$container")
for tool in g++ cc cmake ninja; do
  if [ -e "$mnt/usr/bin/$tool" ]; then echo "image_test: FAIL: runtime image contains /usr/bin/$tool" >&2; exit 1; fi
done
chroot --userspec="$user" "$mnt" /usr/local/bin/mdagg --version
# HTTPS venues are verified against the system trust store, which ca-certificates fills.
[ -s "$mnt/etc/ssl/certs/ca-certificates.crt" ] || { echo "image_test: FAIL: no CA certificates in the image" >&2; exit 1; }
chroot --userspec="$user" "$mnt" /usr/local/bin/mdagg --check-config /etc/mdagg/config.yaml
[ "$(stat -c %u "$mnt$workdir")" = "${user%%:*}" ] || { echo "image_test: FAIL: $workdir not owned by the image user" >&2; exit 1; }

# ---- 4. the entrypoint as PID 1 -----------------------------------------------------------
symbols=300
chroot --userspec="$user" "$mnt" /usr/local/bin/mdagg-sim --listen 127.0.0.1:0 --symbols "$symbols" \
  > "$work/sim.log" 2>&1 &
sim_pid=$!
port=""
for _ in $(seq 200); do
  port=$(jq -r 'select(.event == "listening") | .port' "$work/sim.log" 2>/dev/null | head -n1)
  [ -n "$port" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { echo "image_test: FAIL: simulator exited" >&2; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { echo "image_test: FAIL: simulator did not listen" >&2; exit 1; }

grace_ms=5000
cat > "$mnt/etc/mdagg/pid1-test.yaml" <<YAML
shutdown: { grace: ${grace_ms}ms }
log: { level: info, summary_every: 1s }
output: { dir: $workdir/out, flush_every: 200ms }
sources:
  - name: sim
    url: "http://127.0.0.1:$port/quotes/{symbol}"
    interval: 200ms
    symbols: { prefix: STOCK_, count: $symbols }
    fields: { symbol: /symbol, bid: /bidPrice, ask: /askPrice, seq: /seq }
YAML

# A fresh PID namespace with its own /proc; chroot and env exec in turn, so the entrypoint
# keeps PID 1. env -i: exactly the image's environment, in the image's working directory.
unshare --pid --fork --mount-proc="$mnt/proc" \
  chroot --userspec="$user" "$mnt" /usr/bin/env -i -C "$workdir" "${image_env[@]}" \
  "${entrypoint[@]}" --config /etc/mdagg/pid1-test.yaml > "$work/daemon.log" 2> "$work/daemon-stderr.log" &
unshare_pid=$!
for _ in $(seq 200); do
  daemon_pid=$(cat "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null | awk '{print $1}')
  [ -n "$daemon_pid" ] && break
  sleep 0.05
done
[ -n "$daemon_pid" ] || { echo "image_test: FAIL: the entrypoint did not start" >&2; exit 1; }

# Wait until every symbol answered a few times (generous: the machine may be loaded).
polled=false
for _ in $(seq 240); do
  kill -0 "$unshare_pid" 2>/dev/null || { echo "image_test: FAIL: the daemon exited early" >&2; exit 1; }
  if curl -fsS "http://127.0.0.1:$port/stats" 2>/dev/null |
      jq -e --argjson n "$symbols" '(.per_symbol | length) == $n and ([.per_symbol[]] | min) >= 3' >/dev/null; then
    polled=true
    break
  fi
  sleep 0.25
done
$polled || { echo "image_test: FAIL: not every symbol was polled" >&2; exit 1; }

read -r _ _ ns_pid < <(grep '^NSpid:' "/proc/$daemon_pid/status" | awk '{print $1, $2, $NF}')
[ "$ns_pid" = 1 ] || { echo "image_test: FAIL: the entrypoint is PID $ns_pid in its namespace, not 1" >&2; exit 1; }
[ "$(readlink "/proc/$daemon_pid/exe")" = "$mnt/usr/local/bin/mdagg" ] ||
  { echo "image_test: FAIL: PID 1 is $(readlink "/proc/$daemon_pid/exe"), not mdagg" >&2; exit 1; }
uid=$(awk '/^Uid:/ {print $2}' "/proc/$daemon_pid/status")
[ "$uid" = "${user%%:*}" ] || { echo "image_test: FAIL: PID 1 runs as uid $uid" >&2; exit 1; }
log "mdagg is PID 1 (host PID $daemon_pid, uid $uid); sending SIGTERM"

term_at=$(date +%s%N)
kill -TERM "$daemon_pid"
exited=false
for _ in $(seq $(( (grace_ms + 5000) / 50 ))); do
  kill -0 "$unshare_pid" 2>/dev/null || { exited=true; break; }
  sleep 0.05
done
$exited || { echo "image_test: FAIL: PID 1 did not exit within $(( grace_ms + 5000 )) ms of SIGTERM" >&2; exit 1; }
status=0
wait "$unshare_pid" || status=$?
unshare_pid="" daemon_pid=""
stop_ms=$(( ($(date +%s%N) - term_at) / 1000000 ))
[ "$status" = 0 ] || { echo "image_test: FAIL: exit status $status after SIGTERM" >&2; exit 1; }
drain=$(jq -c 'select(.msg == "drain complete")' "$work/daemon.log")
[ -n "$drain" ] || { echo "image_test: FAIL: no \"drain complete\" line" >&2; exit 1; }
jq -e --argjson budget "$grace_ms" '.drain_ms < $budget and .exit_code == 0' <<<"$drain" >/dev/null ||
  { echo "image_test: FAIL: drain over budget: $drain" >&2; exit 1; }
jq -e . "$work/daemon.log" > /dev/null || { echo "image_test: FAIL: a log line is not JSON" >&2; exit 1; }

# The files: finished (.jsonl, no .part), newline-terminated, every line a JSON object, and
# every response the simulator wrote is a quote in them.
out="$mnt$workdir/out"
if compgen -G "$out/*.part" > /dev/null; then echo "image_test: FAIL: unfinished files: $(ls "$out")" >&2; exit 1; fi
quotes=0 bars=0
for kind in quotes bars; do
  files=("$out"/"$kind"-*.jsonl)
  [ ${#files[@]} = 1 ] && [ -s "${files[0]}" ] || { echo "image_test: FAIL: expected one non-empty $kind file in $out" >&2; exit 1; }
  [ "$(tail -c1 "${files[0]}" | od -An -c | tr -d ' ')" = '\n' ] || { echo "image_test: FAIL: ${files[0]} ends mid-line" >&2; exit 1; }
  n=$(jq -R 'fromjson | select(type == "object") | 1' "${files[0]}" | wc -l) ||
    { echo "image_test: FAIL: ${files[0]} has a line that is not JSON" >&2; exit 1; }
  [ "$n" = "$(wc -l < "${files[0]}")" ] || { echo "image_test: FAIL: ${files[0]} has lines that are not objects" >&2; exit 1; }
  if [ "$kind" = quotes ]; then quotes=$n; else bars=$n; fi
done
responses=$(curl -fsS "http://127.0.0.1:$port/stats" | jq .responses)
[ "$responses" = "$quotes" ] || { echo "image_test: FAIL: simulator wrote $responses responses, the files hold $quotes quotes" >&2; exit 1; }
log "PASS: stopped $stop_ms ms after SIGTERM ($(jq .drain_ms <<<"$drain") ms drain of a ${grace_ms} ms budget); $quotes quotes, $bars bars, all complete"
