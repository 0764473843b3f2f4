#!/usr/bin/env bash
# Part "browser": Chromium on a page from http://127.0.0.1:16270 calling mxedge at
# http://127.0.0.1:16280 (E2E_DIRECT=1: Dendrite directly). Ports 16200-16299.
source "$(dirname "$0")/lib.sh"
new_workdir browser
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || die "${CHROMIUM:-/usr/bin/chromium} missing (apt-get install chromium)"
dendrite_build
npm_ready
dendrite_start 16208
port_free 16270
port_free 16271
if [ "${E2E_DIRECT:-0}" = 1 ]; then
  BASE_URL=$DENDRITE_URL DIRECT=1 PAGE_PORT=16270 run_node "$E2E_DIR/browser/run.mjs"
  exit
fi
# The main edge: a small JSON body limit for the 413 check (the browser sends 100 KiB).
# Every Synapse worker role has a pool holding Dendrite (both edges).
mxedge_config "$WORK/mxedge.yaml" 16280 16290 "limits:
  max_json_body_size: 64K
$(workers_yaml "$DENDRITE_URL")"
mxedge_start mxedge "$WORK/mxedge.yaml" 16280 16290
base=$MXEDGE_URL
# A second edge with a tight rc_login for the 429 check (loopback is exempt by default: not here).
mxedge_config "$WORK/mxedge-rl.yaml" 16281 16291 "rate_limits:
  enabled: true
  rc_login:
    address: {per_second: 0.01, burst_count: 2}
  exempt:
    addresses: []
$(workers_yaml "$DENDRITE_URL")"
rl=
if mxedge_try mxedge-ratelimited "$WORK/mxedge-rl.yaml" 16281 16291; then rl=$MXEDGE_URL; fi
BASE_URL=$base RL_BASE_URL=$rl PAGE_PORT=16270 BIG_BYTES=102400 MXEDGE_LOG=$WORK/mxedge.log run_node "$E2E_DIR/browser/run.mjs"
expect_pool_traffic http://127.0.0.1:16290 readers creators
