# Shared shell helpers for the e2e parts (sourced, never run). Bash only.
#
# Every process a part starts is recorded with `track NAME PID LOG` and stopped by PID in the EXIT
# trap, whatever happens (TERM, then KILL after 10 s). When the part fails, the logs of everything it
# started are printed. Loopback only; each part owns a fixed block of ports in 16000-16999.

set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$E2E_DIR/.." && pwd)
MXEDGE_BIN=${MXEDGE_BIN:-$ROOT/bin/mxedge}
DENDRITE_VERSION=v0.13.8
DENDRITE_CACHE=${MXEDGE_CACHE:-$HOME/.cache/mxedge}/dendrite
LIVEKIT_VERSION=v1.9.11
LIVEKIT_CACHE=${MXEDGE_CACHE:-$HOME/.cache/mxedge}/livekit
SERVER_NAME=e2e.test

_pids=() _names=() _logs=()

log() { printf '%s e2e[%s] %s\n' "$(date -u +%H:%M:%S)" "${PART:-?}" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# new_workdir PART: a fresh temp dir for this run (kept and printed on failure).
new_workdir() {
  PART=$1
  mkdir -p "$E2E_DIR/.work"
  WORK=$(mktemp -d "$E2E_DIR/.work/$PART.XXXXXX")
  trap _cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  log "work dir $WORK"
}

track() { _names+=("$1"); _pids+=("$2"); _logs+=("$3"); }

# stop_pid PID: TERM, wait up to 10 s, then KILL. Returns the exit status when it was our child.
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop in 10 s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

_cleanup() {
  local rc=$? i
  trap - EXIT
  trap "" INT TERM # finish stopping everything even when signalled again
  for ((i = ${#_pids[@]} - 1; i >= 0; i--)); do
    stop_pid "${_pids[$i]}"
  done
  if [ "$rc" -ne 0 ]; then
    for ((i = 0; i < ${#_logs[@]}; i++)); do
      [ -s "${_logs[$i]}" ] || continue
      printf '\n===== log of %s (last 80 lines of %s) =====\n' "${_names[$i]}" "${_logs[$i]}" >&2
      tail -n 80 "${_logs[$i]}" >&2
    done
    log "FAILED (rc=$rc); work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}

# port_free PORT: fail when something already listens on 127.0.0.1:PORT.
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    die "port $1 on 127.0.0.1 is already in use (another e2e run?)"
  fi
}

# wait_http URL PID SECONDS: poll until URL answers 2xx (returns 0), or the process dies or time runs
# out (logs why, returns 1).
wait_http() {
  local url=$1 pid=$2 secs=$3 start=$SECONDS
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "process $pid exited before $url answered"
      return 1
    fi
    if ((SECONDS - start >= secs)); then
      log "$url did not answer within ${secs}s"
      return 1
    fi
    sleep 0.2
  done
}

# dendrite_build: reuse the cached binaries, or go install them from the module proxy.
dendrite_build() {
  local bin=$DENDRITE_CACHE/bin
  mkdir -p "$DENDRITE_CACHE"
  (
    flock 9
    if [ -x "$bin/dendrite" ] && [ -x "$bin/generate-keys" ] && [ -x "$bin/create-account" ] &&
      "$bin/dendrite" -version 2>/dev/null | grep -q "${DENDRITE_VERSION#v}"; then
      log "dendrite $DENDRITE_VERSION cached in $bin"
      exit 0
    fi
    log "building dendrite $DENDRITE_VERSION into $bin (cold: a few minutes)"
    local tmp start=$SECONDS
    tmp=$(mktemp -d)
    # Outside any module, so the project's go.mod is untouched; cgo for SQLite.
    (cd "$tmp" && GOWORK=off GOFLAGS= CGO_ENABLED=1 GOBIN="$bin" go install \
      "github.com/matrix-org/dendrite/cmd/dendrite@$DENDRITE_VERSION" \
      "github.com/matrix-org/dendrite/cmd/generate-keys@$DENDRITE_VERSION" \
      "github.com/matrix-org/dendrite/cmd/create-account@$DENDRITE_VERSION")
    rm -rf "$tmp"
    log "dendrite built in $((SECONDS - start))s"
  ) 9>"$DENDRITE_CACHE/.lock"
}

# livekit_build: reuse the cached livekit-server (LiveKit's SFU), or go install it from the module
# proxy, like dendrite_build (outside any module; pure Go).
livekit_build() {
  local bin=$LIVEKIT_CACHE/bin
  mkdir -p "$LIVEKIT_CACHE"
  (
    flock 9
    if [ -x "$bin/livekit-server" ] &&
      "$bin/livekit-server" --version 2>/dev/null | grep -q "version ${LIVEKIT_VERSION#v}\$"; then
      log "livekit-server $LIVEKIT_VERSION cached in $bin"
      exit 0
    fi
    log "building livekit-server $LIVEKIT_VERSION into $bin (cold: about 5 minutes)"
    local tmp start=$SECONDS
    tmp=$(mktemp -d)
    (cd "$tmp" && GOWORK=off GOFLAGS= CGO_ENABLED=0 GOBIN="$bin" go install \
      "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION")
    rm -rf "$tmp"
    mv "$bin/server" "$bin/livekit-server"
    log "livekit-server built in $((SECONDS - start))s"
  ) 9>"$LIVEKIT_CACHE/.lock"
}

# dendrite_start PORT: a fresh Dendrite (SQLite, open registration, no rate limiting, 50 MiB media)
# on 127.0.0.1:PORT. Sets DENDRITE_URL and DENDRITE_PID. Federation is off unless
# DENDRITE_FEDERATION=1 (Dendrite then also serves /_matrix/federation/, e.g. the OpenID userinfo
# endpoint lk-jwt-service asks; with no peers and no key perspectives it reaches no other server).
dendrite_start() {
  local port=$1 dir=$WORK/dendrite bin=$DENDRITE_CACHE/bin disable_fed=true
  [ "${DENDRITE_FEDERATION:-0}" = 1 ] && disable_fed=false
  port_free "$port"
  mkdir -p "$dir"
  "$bin/generate-keys" --private-key "$dir/matrix_key.pem" >/dev/null
  cat >"$dir/dendrite.yaml" <<EOF
version: 2
global:
  server_name: $SERVER_NAME
  well_known_client_name: http://127.0.0.1:$port
  private_key: $dir/matrix_key.pem
  disable_federation: $disable_fed
  trusted_third_party_id_servers: []
  presence: {enable_inbound: false, enable_outbound: false}
  report_stats: {enabled: false}
  jetstream:
    in_memory: true
    storage_path: $dir
  cache: {max_size_estimated: 64mb, max_age: 1h}
app_service_api:
  config_files: []
client_api:
  registration_disabled: false
  guests_disabled: true
  # also enables /_synapse/admin/v1/register, which the edge part uses to probe the admin gate
  registration_shared_secret: e2e-shared-secret
  rate_limiting: {enabled: false}
federation_api:
  key_perspectives: []
  database: {connection_string: "file:$dir/federationapi.db"}
key_server:
  database: {connection_string: "file:$dir/keyserver.db"}
media_api:
  base_path: $dir/media
  max_file_size_bytes: 52428800
  database: {connection_string: "file:$dir/mediaapi.db"}
mscs:
  database: {connection_string: "file:$dir/mscs.db"}
relay_api:
  database: {connection_string: "file:$dir/relayapi.db"}
room_server:
  database: {connection_string: "file:$dir/roomserver.db"}
sync_api:
  database: {connection_string: "file:$dir/syncapi.db"}
  search: {enabled: false}
user_api:
  bcrypt_cost: 4
  account_database: {connection_string: "file:$dir/userapi.db"}
tracing: {enabled: false}
logging:
  - {type: std, level: info}
EOF
  (cd "$dir" && exec "$bin/dendrite" -config "$dir/dendrite.yaml" \
    -http-bind-address "127.0.0.1:$port" -really-enable-open-registration) >"$dir/dendrite.log" 2>&1 &
  DENDRITE_PID=$!
  track dendrite "$DENDRITE_PID" "$dir/dendrite.log"
  DENDRITE_URL=http://127.0.0.1:$port
  local start=$SECONDS
  wait_http "$DENDRITE_URL/_matrix/client/versions" "$DENDRITE_PID" 120 || die "dendrite did not start"
  log "dendrite pid $DENDRITE_PID ready at $DENDRITE_URL in $((SECONDS - start))s"
}

# livekit_start HTTP_PORT RTC_TCP_PORT RTC_UDP_PORT: LiveKit's SFU from a config file (no Redis,
# no external IP discovery), signalling on 127.0.0.1:HTTP_PORT, media on 127.0.0.1 (ICE candidates from
# the loopback interface only; the UDP port binds 127.0.0.1, while LiveKit has no bind address for its
# ICE/TCP listener, which listens on every address). Sets LIVEKIT_URL, LIVEKIT_PID, LIVEKIT_KEY and
# LIVEKIT_SECRET.
livekit_start() {
  local http=$1 tcp=$2 udp=$3 dir=$WORK/livekit
  port_free "$http"
  port_free "$tcp"
  mkdir -p "$dir"
  LIVEKIT_KEY=e2e-key
  LIVEKIT_SECRET=e2e-secret-0123456789abcdefghijklmnopqrstuvwxyz
  cat >"$dir/livekit.yaml" <<EOF
port: $http
bind_addresses: [127.0.0.1]
keys:
  $LIVEKIT_KEY: $LIVEKIT_SECRET
rtc:
  tcp_port: $tcp
  udp_port: $udp
  node_ip: 127.0.0.1
  use_external_ip: false
  enable_loopback_candidate: true
  interfaces: {includes: [lo]}
  ips: {includes: [127.0.0.1/32]}
room:
  auto_create: true
  empty_timeout: 60
logging:
  level: warn
EOF
  "$LIVEKIT_CACHE/bin/livekit-server" --config "$dir/livekit.yaml" >"$dir/livekit.log" 2>&1 &
  LIVEKIT_PID=$!
  track livekit "$LIVEKIT_PID" "$dir/livekit.log"
  LIVEKIT_URL=http://127.0.0.1:$http
  wait_http "$LIVEKIT_URL/" "$LIVEKIT_PID" 60 || die "livekit-server did not start"
  log "livekit-server pid $LIVEKIT_PID ready at $LIVEKIT_URL (rtc tcp $tcp, udp $udp)"
}

# livekit_stop: LiveKit waits for its participants to leave on the first signal; a second one makes
# it stop at once (its cmd/server). TERM, up to 2 s for a clean exit, then TERM again.
livekit_stop() {
  local i
  kill -TERM "$LIVEKIT_PID" 2>/dev/null || return 0
  for ((i = 0; i < 20; i++)); do
    kill -0 "$LIVEKIT_PID" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -TERM "$LIVEKIT_PID" 2>/dev/null || true
}

# standins_build: the MAS and lk-jwt-service stand-ins (e2e/standins, a Go module of its own so the
# project's go.mod gains no LiveKit dependency) into $E2E_DIR/.work/bin/standins, after their own
# unit tests (the top-level `go test ./...` does not reach a nested module). Its go.mod pins the
# versions livekit-server's go.mod has, and both builds use the same flags (no -trimpath, no cgo), so
# after livekit_build most packages come from the build cache.
standins_build() {
  mkdir -p "$E2E_DIR/.work/bin"
  local start=$SECONDS
  (cd "$E2E_DIR/standins" && export GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 &&
    go test -count=1 . >&2 &&
    go build -o "$E2E_DIR/.work/bin/standins" .) || die "testing or building the stand-ins failed"
  STANDINS_BIN=$E2E_DIR/.work/bin/standins
  log "stand-ins tested and built in $((SECONDS - start))s"
}

# standin_start NAME PORT ARGS...: one stand-in (mas or lk-jwt) on 127.0.0.1:PORT; waits until it
# answers GET /_standin/stats.
standin_start() {
  local name=$1 port=$2 logf=$WORK/standin-$1.log pid
  shift 2
  port_free "$port"
  "$STANDINS_BIN" "$name" -listen "127.0.0.1:$port" "$@" >"$logf" 2>&1 &
  pid=$!
  track "standin-$name" "$pid" "$logf"
  wait_http "http://127.0.0.1:$port/_standin/stats" "$pid" 30 || die "stand-in $name did not start"
  log "stand-in $name pid $pid ready on 127.0.0.1:$port"
}

# mxedge_config FILE HTTP_PORT OPS_PORT [EXTRA_YAML]: a config in front of $DENDRITE_URL.
mxedge_config() {
  local file=$1 http=$2 ops=$3 extra=${4:-}
  cat >"$file" <<EOF
server_name: $SERVER_NAME
upstream: $DENDRITE_URL
public_baseurl: http://127.0.0.1:$http/
listen:
  http: 127.0.0.1:$http
  ops: 127.0.0.1:$ops
log:
  level: info
  format: json
  access: true
$extra
EOF
}

# mxedge_try NAME CONFIG HTTP_PORT OPS_PORT: start bin/mxedge; on success set MXEDGE_PID and
# MXEDGE_URL and return 0; when it does not come up, print its log, stop it and return 1.
mxedge_try() {
  local name=$1 cfg=$2 http=$3 ops=$4 logf=$WORK/$1.log
  [ -x "$MXEDGE_BIN" ] || die "$MXEDGE_BIN missing: run 'make build' (or 'make e2e') first"
  port_free "$http"
  port_free "$ops"
  "$MXEDGE_BIN" run --config "$cfg" >>"$logf" 2>&1 &
  MXEDGE_PID=$!
  track "$name" "$MXEDGE_PID" "$logf"
  MXEDGE_URL=http://127.0.0.1:$http
  if ! wait_http "$MXEDGE_URL/_matrix/client/versions" "$MXEDGE_PID" 30; then
    stop_pid "$MXEDGE_PID"
    printf '===== %s did not start; its log: =====\n' "$name" >&2
    tail -n 40 "$logf" >&2
    return 1
  fi
  log "$name pid $MXEDGE_PID ready at $MXEDGE_URL"
}

# mxedge_start NAME CONFIG HTTP_PORT OPS_PORT: mxedge_try, and the part fails when it does not start.
mxedge_start() { mxedge_try "$@" || die "$1 did not start"; }

# run_node SCRIPT ARGS...: node in the background, waited for, so that a signal to the part runs
# the EXIT trap at once (which stops node by PID too) instead of after node has finished.
run_node() {
  node "$@" &
  local pid=$!
  track node "$pid" /dev/null
  wait "$pid"
}

# npm_ready: node_modules installed from the committed lock file.
npm_ready() {
  command -v node >/dev/null || die "node not on PATH"
  if [ ! -f "$E2E_DIR/node_modules/.package-lock.json" ] ||
    ! cmp -s "$E2E_DIR/package-lock.json" "$E2E_DIR/node_modules/.e2e-lock"; then
    log "npm ci"
    (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
    cp "$E2E_DIR/package-lock.json" "$E2E_DIR/node_modules/.e2e-lock"
  fi
}

# ---- Synapse worker roles (the client, browser, tls and workers parts) ----

# WORKER_ROLES: every role of `workers:`, with the pool each one gets in workers_yaml.
WORKER_ROLES="synchrotron:sync initial_synchrotron:initial client_reader:readers event_creator:creators
federation_inbound:fedin federation_reader:fedread media_repository:media events:events typing:typing
to_device:todevice account_data:accountdata receipts:receipts presence:presence push_rules:pushrules
device_lists:devicelists"

# workers_yaml URL [INDENT]: YAML with a pool per worker role, each of the one member URL, and
# `workers:` naming all 15 roles with the resolver on; for mxedge_config's EXTRA_YAML (the homeserver
# pool stays `upstream:`). Every pool holding Dendrite routes every request of a role to Dendrite
# through that role's pool, so mxedge's per-pool metrics show which roles a scenario used.
workers_yaml() {
  local url=$1 in=${2:-} rp
  echo "${in}upstreams:"
  for rp in $WORKER_ROLES; do echo "${in}  ${rp#*:}: {members: [$url]}"; done
  echo "${in}workers:"
  for rp in $WORKER_ROLES; do echo "${in}  ${rp%%:*}: ${rp#*:}"; done
  echo "${in}  resolver: {enabled: true}"
}

# pool_requests OPS_URL: one "POOL COUNT" line per pool, the requests mxedge sent to it (summed over
# its members), from mxedge_upstream_requests_total on the ops listener.
pool_requests() {
  curl -fsS --max-time 5 "$1/metrics" |
    awk '/^mxedge_upstream_requests_total\{/ {
      match($0, /pool="[^"]*"/); p = substr($0, RSTART + 6, RLENGTH - 7); n[p] += $NF
    } END { for (p in n) print p, n[p] }' | sort
}

# expect_pool_traffic OPS_URL POOL...: logs the requests of every pool and fails the part unless each
# named POOL got at least one (the scenario really went through those worker roles' pools).
expect_pool_traffic() {
  local ops=$1 counts p n
  shift
  counts=$(pool_requests "$ops") || die "no metrics from $ops"
  log "requests per pool: $(echo "$counts" | tr '\n' ' ')"
  for p in "$@"; do
    n=$(echo "$counts" | awk -v p="$p" '$1 == p { print $2 }')
    [ "${n:-0}" -gt 0 ] || die "pool $p got no requests (want > 0)"
  done
  log "PASS role pools used: $*"
}
