#!/usr/bin/env bash
# Part "tls": the client scenario over HTTPS through mxedge, (1) with a certificate issued by Pebble
# over ACME (HTTP-01), (2) in files mode with a test CA; the client trusts only the issuing CA.
# E2E_DIRECT=1: only the files-mode scenario, against Dendrite's own TLS listener (checks the suite).
# Both mxedges have a pool for every Synapse worker role, each holding Dendrite, and the part checks
# that the scenario's requests went through the role pools. Ports 16400-16499.
source "$(dirname "$0")/lib.sh"
new_workdir tls
command -v openssl >/dev/null || die "openssl missing"
dendrite_build
npm_ready
NAME=matrix.e2e.test

# A test CA and two leaves: Pebble's own HTTPS listener, and mxedge's files mode.
ca=$WORK/ca
mkdir -p "$ca"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=mxedge e2e test CA" \
  -keyout "$ca/ca.key" -out "$ca/ca.pem" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
leaf() { # leaf NAME SAN
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$ca/$1.key" -out "$ca/$1.csr" 2>/dev/null
  openssl x509 -req -in "$ca/$1.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca.key" -CAcreateserial -days 1 \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2") -out "$ca/$1.crt" 2>/dev/null
  cat "$ca/$1.crt" "$ca/ca.pem" >"$ca/$1.chain.pem"
}
leaf pebble "DNS:localhost,IP:127.0.0.1"
leaf "$NAME" "DNS:$NAME,DNS:$SERVER_NAME"

# wait_https URL CAFILE PID SECONDS: until URL answers 2xx over TLS verified against CAFILE only.
wait_https() {
  local url=$1 cafile=$2 pid=$3 secs=$4 start=$SECONDS
  until curl -fsS -o /dev/null --max-time 3 --cacert "$cafile" --resolve "$NAME:${url##*:}:127.0.0.1" \
    "$url/_matrix/client/versions" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { log "process $pid exited before $url answered"; return 1; }
    ((SECONDS - start < secs)) || { log "$url did not answer within ${secs}s"; return 1; }
    sleep 0.5
  done
}

if [ "${E2E_DIRECT:-0}" = 1 ]; then
  dir=$WORK/dendrite-tls
  mkdir -p "$dir"
  dendrite_start 16408
  # a second Dendrite process is not needed: restart this one with TLS on 16444 as well
  stop_pid "$DENDRITE_PID"
  (cd "$WORK/dendrite" && exec "$DENDRITE_CACHE/bin/dendrite" -config "$WORK/dendrite/dendrite.yaml" \
    -http-bind-address 127.0.0.1:16408 -https-bind-address 127.0.0.1:16444 \
    -tls-cert "$ca/$NAME.chain.pem" -tls-key "$ca/$NAME.key" -really-enable-open-registration) \
    >>"$WORK/dendrite/dendrite.log" 2>&1 &
  DENDRITE_PID=$!
  track dendrite-tls "$DENDRITE_PID" "$WORK/dendrite/dendrite.log"
  wait_https "https://$NAME:16444" "$ca/ca.pem" "$DENDRITE_PID" 60 || die "dendrite TLS did not start"
  BASE_URL=https://$NAME:16444 CA_FILE=$ca/ca.pem PREFIX=tls-direct run_node "$E2E_DIR/tls/run.mjs"
  exit
fi

[ -x "$MXEDGE_BIN" ] || die "$MXEDGE_BIN missing: run 'make build' (or 'make e2e') first"
command -v pebble >/dev/null || die "pebble missing (apt-get install pebble)"
command -v pebble-challtestsrv >/dev/null || die "pebble-challtestsrv missing (apt-get install pebble)"
dendrite_start 16408
rc=0

# ---- (1) ACME against Pebble ----
pb=$WORK/pebble
mkdir -p "$pb"
for p in 16414 16415 16480 16443 16490 16455; do port_free "$p"; done
# DNS for Pebble's validation: every name is 127.0.0.1.
pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 127.0.0.1:16453 -http01 "" -https01 "" \
  -tlsalpn01 "" -management 127.0.0.1:16455 >"$pb/challtestsrv.log" 2>&1 &
track challtestsrv $! "$pb/challtestsrv.log"
cat >"$pb/pebble.json" <<EOF
{"pebble": {"listenAddress": "127.0.0.1:16414", "managementListenAddress": "127.0.0.1:16415",
  "certificate": "$ca/pebble.chain.pem", "privateKey": "$ca/pebble.key",
  "httpPort": 16480, "tlsPort": 16443, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$pb/pebble.json" -dnsserver 127.0.0.1:16453 \
  >"$pb/pebble.log" 2>&1 &
PEBBLE_PID=$!
track pebble "$PEBBLE_PID" "$pb/pebble.log"
start=$SECONDS
until curl -fsS --cacert "$ca/ca.pem" -o "$pb/root.pem" https://127.0.0.1:16415/roots/0 2>/dev/null; do
  kill -0 "$PEBBLE_PID" 2>/dev/null || die "pebble exited"
  ((SECONDS - start < 30)) || die "pebble did not answer in 30 s"
  sleep 0.2
done
log "pebble ready; issuing root saved"

cat >"$WORK/mxedge-acme.yaml" <<EOF
server_name: $SERVER_NAME
upstream: $DENDRITE_URL
public_baseurl: https://$NAME:16443/
listen:
  http: 127.0.0.1:16480
  https: 127.0.0.1:16443
  ops: 127.0.0.1:16490
tls:
  mode: acme
  domains: [$NAME]
  email: admin@$SERVER_NAME
  acme_ca: https://127.0.0.1:16414/dir
  acme_ca_root: $ca/ca.pem
  challenges: [http-01, tls-alpn-01]
  storage: $WORK/certmagic
  hsts: 31536000
log: {level: info, format: json, access: true}
$(workers_yaml "$DENDRITE_URL")
EOF
"$MXEDGE_BIN" run --config "$WORK/mxedge-acme.yaml" >"$WORK/mxedge-acme.log" 2>&1 &
pid=$!
track mxedge-acme "$pid" "$WORK/mxedge-acme.log"
start=$SECONDS
if wait_https "https://$NAME:16443" "$pb/root.pem" "$pid" 90; then
  log "mxedge (acme) serving a Pebble certificate after $((SECONDS - start))s"
  BASE_URL=https://$NAME:16443 CA_FILE=$pb/root.pem HTTP_URL=http://$NAME:16480 HSTS=31536000 PREFIX=tls-acme \
    run_node "$E2E_DIR/tls/run.mjs" || rc=1
  (expect_pool_traffic http://127.0.0.1:16490 sync initial readers creators media typing pushrules) || rc=1
else
  echo "FAIL tls-acme mxedge did not serve a certificate issued by Pebble"
  tail -n 40 "$WORK/mxedge-acme.log" >&2
  rc=1
fi
stop_pid "$pid"

# ---- (2) files mode with the test CA ----
for p in 16481 16444 16491; do port_free "$p"; done
cat >"$WORK/mxedge-files.yaml" <<EOF
server_name: $SERVER_NAME
upstream: $DENDRITE_URL
public_baseurl: https://$NAME:16444/
listen:
  http: 127.0.0.1:16481
  https: 127.0.0.1:16444
  ops: 127.0.0.1:16491
tls:
  mode: files
  domains: [$NAME]
  cert_file: $ca/$NAME.chain.pem
  key_file: $ca/$NAME.key
  storage: $WORK/certmagic-files
log: {level: info, format: json, access: true}
$(workers_yaml "$DENDRITE_URL")
EOF
"$MXEDGE_BIN" run --config "$WORK/mxedge-files.yaml" >"$WORK/mxedge-files.log" 2>&1 &
pid=$!
track mxedge-files "$pid" "$WORK/mxedge-files.log"
if wait_https "https://$NAME:16444" "$ca/ca.pem" "$pid" 30; then
  BASE_URL=https://$NAME:16444 CA_FILE=$ca/ca.pem HTTP_URL=http://$NAME:16481 HSTS=31536000 PREFIX=tls-files \
    run_node "$E2E_DIR/tls/run.mjs" || rc=1
  (expect_pool_traffic http://127.0.0.1:16491 sync initial readers creators media typing pushrules) || rc=1
else
  echo "FAIL tls-files mxedge did not start in files mode"
  rc=1
fi
exit $rc
