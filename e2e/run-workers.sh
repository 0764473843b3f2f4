#!/usr/bin/env bash
# Part "workers": Synapse worker routing against a real Dendrite. mxedge's sync and creators pools hold
# two relays (workers/relay.mjs: forward to Dendrite, record method, path and a hash of the token of
# every request); the homeserver pool is a third relay, so every whoami the resolver asks is recorded
# too. workers/run.mjs registers users with matrix-js-sdk and checks where their requests went; it
# starts (and kills, and restarts) relays 1 and 2 itself. Ports 16600-16699.
source "$(dirname "$0")/lib.sh"
new_workdir workers
[ -x "$MXEDGE_BIN" ] || die "$MXEDGE_BIN missing: run 'make build' (or 'make e2e') first"
dendrite_build
npm_ready
dendrite_start 16608
for p in 16610 16611 16612; do port_free "$p"; done
node "$E2E_DIR/workers/relay.mjs" relay0 16610 "$DENDRITE_URL" "$WORK/relay0.jsonl" >"$WORK/relay0.log" 2>&1 &
track relay0 $! "$WORK/relay0.log"
wait_http http://127.0.0.1:16610/_matrix/client/versions "$!" 10 || die "relay0 did not start"
health="health: {path: /_matrix/client/versions, interval: 1s, timeout: 1s}"
r1=http://127.0.0.1:16611 r2=http://127.0.0.1:16612
mxedge_config "$WORK/mxedge.yaml" 16680 16690 "upstreams:
  sync: {members: [$r1, $r2], $health}
  creators: {members: [$r1, $r2], $health}
workers:
  synchrotron: sync
  event_creator: creators
  resolver: {enabled: true}"
sed -i "s|^upstream: .*|upstream: http://127.0.0.1:16610|" "$WORK/mxedge.yaml"
mxedge_start mxedge "$WORK/mxedge.yaml" 16680 16690
BASE_URL=$MXEDGE_URL OPS_URL=http://127.0.0.1:16690 WORK=$WORK RELAY1=$r1 RELAY2=$r2 DENDRITE_URL=$DENDRITE_URL \
  run_node "$E2E_DIR/workers/run.mjs"
