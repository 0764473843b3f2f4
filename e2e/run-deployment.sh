#!/usr/bin/env bash
# Part "deployment": mxedge in front of a Synapse + MAS + Element Call + Element Web deployment.
# Dendrite (federation on, for the OpenID userinfo endpoint) stands as the homeserver, LiveKit's real
# SFU behind /livekit/sfu, the MAS and lk-jwt-service stand-ins (e2e/standins) behind MAS's host and
# /livekit/jwt, a static file server as Element Web; Chromium with livekit-client joins the call
# through mxedge. mxedge itself is started, signalled and stopped by deployment/run.mjs.
# Ports 16500-16599.
source "$(dirname "$0")/lib.sh"
new_workdir deployment
[ -x "$MXEDGE_BIN" ] || die "$MXEDGE_BIN missing: run 'make build' (or 'make e2e') first"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || die "${CHROMIUM:-/usr/bin/chromium} missing (apt-get install chromium)"
dendrite_build
livekit_build
standins_build
npm_ready
DENDRITE_FEDERATION=1 dendrite_start 16508
livekit_start 16570 16571 16572
standin_start mas 16561 -public-base http://auth.e2e.test/ -homeserver "$DENDRITE_URL"
# lk-jwt-service checks OpenID tokens at the homeserver's public address: through mxedge.
standin_start lk-jwt 16562 -homeserver http://127.0.0.1:16580 -livekit-url ws://127.0.0.1:16580/livekit/sfu \
  -key "$LIVEKIT_KEY" -secret "$LIVEKIT_SECRET"
for p in 16580 16590 16563 16564; do port_free "$p"; done
MXEDGE_BIN=$MXEDGE_BIN WORK=$WORK DENDRITE_URL=$DENDRITE_URL SERVER_NAME=$SERVER_NAME \
  MAS_URL=http://127.0.0.1:16561 LKJWT_URL=http://127.0.0.1:16562 LIVEKIT_DIRECT_URL=$LIVEKIT_URL \
  run_node "$E2E_DIR/deployment/run.mjs" || rc=$?
livekit_stop
exit "${rc:-0}"
