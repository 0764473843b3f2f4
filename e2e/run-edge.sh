#!/usr/bin/env bash
# Part "edge": admin gate by peer address, rate limits through the SDK, SIGHUP and SIGTERM during
# the client scenario's long-polls. mxedge processes are started (and stopped by PID) by
# edge/run.mjs. Ports 16300-16399.
source "$(dirname "$0")/lib.sh"
new_workdir edge
[ -x "$MXEDGE_BIN" ] || die "$MXEDGE_BIN missing: run 'make build' (or 'make e2e') first"
dendrite_build
npm_ready
dendrite_start 16308
for p in 16380 16381 16390 16391; do port_free "$p"; done
MXEDGE_BIN=$MXEDGE_BIN DENDRITE_URL=$DENDRITE_URL WORK=$WORK SERVER_NAME=$SERVER_NAME \
  run_node "$E2E_DIR/edge/run.mjs"
