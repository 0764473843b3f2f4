#!/usr/bin/env bash
# Part "client": the matrix-js-sdk scenario against a fresh Dendrite, through mxedge
# (E2E_DIRECT=1: against Dendrite directly). mxedge has a pool for every Synapse worker role, each
# holding Dendrite, and the part checks that the scenario's requests went through the role pools.
# Ports 16100-16199.
source "$(dirname "$0")/lib.sh"
new_workdir client
dendrite_build
npm_ready
dendrite_start 16108
base=$DENDRITE_URL
if [ "${E2E_DIRECT:-0}" != 1 ]; then
  mxedge_config "$WORK/mxedge.yaml" 16180 16190 "$(workers_yaml "$DENDRITE_URL")"
  mxedge_start mxedge "$WORK/mxedge.yaml" 16180 16190
  base=$MXEDGE_URL
fi
log "scenario against $base"
BASE_URL=$base PREFIX=client run_node "$E2E_DIR/client/scenario.mjs"
[ "${E2E_DIRECT:-0}" = 1 ] || expect_pool_traffic http://127.0.0.1:16190 sync initial readers creators media typing pushrules
