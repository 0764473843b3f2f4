// The deployment part: mxedge in front of a Synapse + MAS + Element Call + Element Web deployment,
// with real parts where they can be installed (Dendrite as the homeserver, LiveKit's SFU, Chromium
// with livekit-client, matrix-js-sdk) and stand-ins where they cannot (MAS, lk-jwt-service; see
// e2e/standins). mxedge is started (and stopped by PID) here, so the test can signal it and read its
// exit status.
//
//   MXEDGE_BIN=… WORK=… DENDRITE_URL=… MAS_URL=… LKJWT_URL=… LIVEKIT_KEY=… node deployment/run.mjs
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createClient } from "matrix-js-sdk";
import { chromium } from "playwright-core";
import { req, expect, expectStatus, register, Steps, sleep, CHROMIUM_FLAGS } from "../client/lib.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const env = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`${k} is required`);
    process.exit(2);
  }
  return v;
};
const bin = env("MXEDGE_BIN");
const work = env("WORK");
const dendrite = env("DENDRITE_URL");
const masURL = env("MAS_URL"); // the MAS stand-in itself, for its counters
const lkjwtURL = env("LKJWT_URL"); // the lk-jwt-service stand-in itself, for its counters
const livekitDirect = env("LIVEKIT_DIRECT_URL");
const serverName = process.env.SERVER_NAME || "e2e.test";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const HTTP = 16580;
const OPS = 16590;
const ELEMENT_PORT = 16563;
const PAGE_PORT = 16564;
const SHUTDOWN_S = 3; // timeouts.shutdown: how long tunnels may live on after SIGTERM
const MAS_HOST = "auth.e2e.test";
const MAS_BASE = `http://${MAS_HOST}/`;
const ELEMENT_HOST = "element.e2e.test";
const base = `http://127.0.0.1:${HTTP}`;
const opsBase = `http://127.0.0.1:${OPS}`;
const livekitURL = `ws://127.0.0.1:${HTTP}/livekit/sfu`;
const serviceURL = `${base}/livekit/jwt`;
const cfgFile = path.join(work, "mxedge.yaml");
const mxLog = path.join(work, "mxedge.log");

const steps = new Steps("deployment");

// ---- mxedge: config, start, signals ----
function writeConfig(generation) {
  fs.writeFileSync(
    cfgFile,
    `server_name: ${serverName}
public_baseurl: ${base}/
listen:
  http: 127.0.0.1:${HTTP}
  ops: 127.0.0.1:${OPS}
tls:
  mode: "off"
log:
  level: info
  format: json
  access: true
timeouts:
  shutdown: ${SHUTDOWN_S}s
upstreams:
  homeserver: {members: ["${dendrite}"]}
  mas: {members: ["${masURL}"]}
  lk-jwt: {members: ["${lkjwtURL}"], health: {path: /healthz, interval: 1s}}
  sfu: {members: ["${livekitDirect}"], balance: least_conn, health: {path: /, interval: 1s}}
  element: {members: ["http://127.0.0.1:${ELEMENT_PORT}"]}
mas:
  upstream: mas
  public_base: ${MAS_BASE}
rtc:
  jwt_upstream: lk-jwt
  sfu_upstream: sfu
routes:
  - {host: ${ELEMENT_HOST}, upstream: element}
well_known:
  client:
    org.mxedge.e2e.generation: ${generation}
`,
  );
}

let mx = null; // {proc, exited}
function killMxedge() {
  if (mx && mx.alive) {
    try {
      process.kill(mx.proc.pid, "SIGKILL");
    } catch {}
  }
}
process.on("exit", killMxedge);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

async function startMxedge() {
  const fd = fs.openSync(mxLog, "a");
  const proc = spawn(bin, ["run", "--config", cfgFile], { stdio: ["ignore", fd, fd] });
  fs.closeSync(fd);
  const m = { proc, alive: true };
  m.exited = new Promise((resolve) =>
    proc.on("exit", (code, signal) => {
      m.alive = false;
      resolve({ code, signal, at: Date.now() });
    }),
  );
  mx = m;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (!m.alive) throw new Error(`mxedge exited ${JSON.stringify(await m.exited)} before answering`);
    try {
      const r = await req(base, "GET", "/_matrix/client/versions", { timeoutMs: 2000 });
      if (r.status === 200) break;
    } catch {}
    if (Date.now() > deadline) throw new Error("mxedge did not answer /versions within 30 s");
    await sleep(100);
  }
  return `pid ${proc.pid} at ${base}`;
}

/** metric returns the sum of a metric's samples on mxedge's ops listener whose labels contain `match`. */
async function metric(name, match = "") {
  const r = await req(opsBase, "GET", "/metrics", { timeoutMs: 5000 });
  expectStatus(r, 200, "GET /metrics");
  let sum = 0;
  let seen = false;
  for (const line of r.body.toString("utf8").split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    if (match && !rest.includes(match)) continue;
    sum += Number(line.trim().split(/\s+/).pop());
    seen = true;
  }
  return seen ? sum : NaN;
}

/** waitUntil polls fn (a state read, not a timer) until it returns a truthy value. */
async function waitUntil(what, fn, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

const standinStats = async (u) => {
  const r = await req(u, "GET", "/_standin/stats", { timeoutMs: 5000 });
  expectStatus(r, 200, "stand-in stats");
  return r.json;
};

const countHeader = (raw, name) => raw.filter((v, i) => i % 2 === 0 && v.toLowerCase() === name).length;
const headerValues = (raw, name) => raw.filter((v, i) => i % 2 === 1 && raw[i - 1].toLowerCase() === name);

function jwtClaims(jwt) {
  const part = jwt.split(".")[1];
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

// ---- static servers: Element Web's files, and the test page with livekit-client ----
const elementHTML = fs.readFileSync(path.join(here, "element", "index.html"));
// Element Web's own headers (its documented nginx/Caddy setup): mxedge must pass them untouched.
const ELEMENT_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "x-frame-options": "SAMEORIGIN",
  "x-content-type-options": "nosniff",
  "content-security-policy": "frame-ancestors 'self'",
  "access-control-allow-origin": "https://element-static.e2e.test",
  "cache-control": "no-cache",
};
const elementServer = http.createServer((rq, rs) => {
  if (rq.method === "GET" && (rq.url === "/" || rq.url === "/index.html")) {
    rs.writeHead(200, { ...ELEMENT_HEADERS, "x-element-host-seen": rq.headers.host ?? "" });
    rs.end(elementHTML);
  } else {
    rs.writeHead(404, { "content-type": "text/plain" }).end("not found");
  }
});
const pageHTML = fs.readFileSync(path.join(here, "page.html"));
const lkBundle = fs.readFileSync(path.join(here, "..", "node_modules", "livekit-client", "dist", "livekit-client.umd.js"));
const pageServer = http.createServer((rq, rs) => {
  if (rq.url === "/") {
    rs.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).end(pageHTML);
  } else if (rq.url === "/livekit-client.umd.js") {
    rs.writeHead(200, { "content-type": "text/javascript" }).end(lkBundle);
  } else {
    rs.writeHead(404).end();
  }
});
for (const [s, p] of [
  [elementServer, ELEMENT_PORT],
  [pageServer, PAGE_PORT],
]) {
  await new Promise((res, rej) => s.listen(p, "127.0.0.1", res).on("error", rej));
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "mxedge-e2e-deploy-chromium-"));
let context;
let page;
const consoleLines = [];
const pageEvents = (who) => page.evaluate((w) => window.events[w] ?? [], who);
// waitEvent waits until participant `who` recorded an event for which pred(e, arg) holds; pred runs
// in the page, so it sees only its arguments.
const waitEvent = (who, pred, arg = null, ms = 15000) =>
  page.waitForFunction(
    ([w, src, a]) => (window.events[w] ?? []).some((e) => new Function("e", "arg", `return (${src})(e, arg)`)(e, a)),
    [who, pred.toString(), arg],
    { timeout: ms, polling: 50 },
  );

try {
  writeConfig(1);
  await steps.run("mxedge starts with the full deployment config", startMxedge);

  // ---- a. MAS: compat login through mxedge, discovery, well-known, transports ----
  const password = `pw-${Date.now()}`;
  const names = [`alice${process.pid}`, `bob${process.pid}`];
  const users = {}; // who -> {userId, deviceId, token, client}
  await steps.run(
    "two users registered on Dendrite",
    async () => {
      for (const n of names) await register(dendrite, n, password);
      return names.join(", ");
    },
    { needs: ["mxedge starts with the full deployment config"] },
  );

  await steps.run(
    "js-sdk loginFlows through mxedge come from MAS (OAuth-aware SSO hint)",
    async () => {
      const before = await standinStats(masURL);
      const c = createClient({ baseUrl: base });
      const { flows } = await c.loginFlows();
      const types = flows.map((f) => f.type);
      expect(types.includes("m.login.password"), `no m.login.password in ${JSON.stringify(flows)}`);
      const sso = flows.find((f) => f.type === "m.login.sso");
      expect(sso, `no m.login.sso in ${JSON.stringify(flows)}`);
      expect(sso.oauth_aware_preferred === true, `m.login.sso lacks oauth_aware_preferred: true: ${JSON.stringify(sso)}`);
      expect(sso["org.matrix.msc3824.delegated_oidc_compatibility"] === true, `m.login.sso lacks delegated_oidc_compatibility: ${JSON.stringify(sso)}`);
      const after = await standinStats(masURL);
      const k = "GET /_matrix/client/v3/login";
      expect((after.via_edge[k] ?? 0) === (before.via_edge[k] ?? 0) + 1, `MAS stand-in saw ${k} via mxedge ${after.via_edge[k] ?? 0} times, before ${before.via_edge[k] ?? 0}`);
      return `flows ${types.join(", ")}`;
    },
    { needs: ["mxedge starts with the full deployment config"] },
  );

  await steps.run(
    "compat password login through mxedge answered by MAS; its token works on the homeserver",
    async () => {
      const before = await standinStats(masURL);
      const k = "POST /_matrix/client/v3/login";
      for (const n of names) {
        const c = createClient({ baseUrl: base });
        const res = await c.loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: n }, password });
        expect(res.access_token && res.device_id, `login answered ${JSON.stringify(res)}`);
        const client = createClient({ baseUrl: base, accessToken: res.access_token, userId: res.user_id, deviceId: res.device_id });
        const who = await client.whoami();
        expect(who.user_id === res.user_id, `whoami through mxedge says ${who.user_id}, want ${res.user_id}`);
        users[n] = { userId: res.user_id, deviceId: res.device_id, token: res.access_token, client };
      }
      const after = await standinStats(masURL);
      const got = (after.via_edge[k] ?? 0) - (before.via_edge[k] ?? 0);
      expect(got === 2, `MAS stand-in saw ${got} logins via mxedge, want 2`);
      return `${names.length} logins reached MAS (X-Request-Id from mxedge), whoami through mxedge ok`;
    },
    { needs: ["two users registered on Dendrite"] },
  );

  await steps.run(
    "a wrong password through mxedge: MAS answers 403",
    async () => {
      const before = await standinStats(masURL);
      const r = await req(base, "POST", "/_matrix/client/v3/login", {
        body: { type: "m.login.password", identifier: { type: "m.id.user", user: names[0] }, password: "wrong" },
      });
      expectStatus(r, 403, "login with a wrong password");
      expect(r.json?.errcode === "M_FORBIDDEN", `errcode ${r.json?.errcode}, want M_FORBIDDEN`);
      const after = await standinStats(masURL);
      expect(after.total === before.total + 1, `MAS stand-in request count ${before.total} -> ${after.total}, want +1`);
      return "403 M_FORBIDDEN";
    },
    { needs: ["two users registered on Dendrite"] },
  );

  await steps.run(
    "client well-known through mxedge: MAS issuer and account, rtc_foci",
    async () => {
      const r = await req(base, "GET", "/.well-known/matrix/client");
      expectStatus(r, 200, "client well-known");
      const auth = r.json["org.matrix.msc2965.authentication"];
      expect(auth?.issuer === MAS_BASE, `issuer ${JSON.stringify(auth)}, want ${MAS_BASE}`);
      expect(auth?.account === `${MAS_BASE}account/`, `account ${JSON.stringify(auth)}, want ${MAS_BASE}account/`);
      const foci = r.json["org.matrix.msc4143.rtc_foci"];
      expect(
        Array.isArray(foci) && foci.length === 1 && foci[0].type === "livekit" && foci[0].livekit_service_url === serviceURL,
        `rtc_foci ${JSON.stringify(foci)}, want one livekit focus at ${serviceURL}`,
      );
      expect(r.json["org.mxedge.e2e.generation"] === 1, `generation ${r.json["org.mxedge.e2e.generation"]}, want 1`);
      return `issuer ${auth.issuer}, focus ${foci[0].livekit_service_url}`;
    },
    { needs: ["mxedge starts with the full deployment config"] },
  );

  await steps.run(
    "rtc transports through mxedge: the configured transport (Dendrite does not know the endpoint)",
    async () => {
      const u = users[names[0]];
      const p = "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports";
      const direct = await req(dendrite, "GET", p, { token: u.token });
      expect(direct.status === 404, `Dendrite itself answered ${direct.status}, want 404 (the check would prove nothing)`);
      const r = await req(base, "GET", p, { token: u.token });
      expectStatus(r, 200, "transports through mxedge");
      const t = r.json?.rtc_transports;
      expect(
        Array.isArray(t) && t.length === 1 && t[0].type === "livekit" && t[0].livekit_service_url === serviceURL,
        `rtc_transports ${JSON.stringify(r.json)}`,
      );
      return `Dendrite 404 ${direct.json?.errcode ?? ""}, mxedge 200 ${JSON.stringify(t)}`;
    },
    { needs: ["compat password login through mxedge answered by MAS; its token works on the homeserver"] },
  );

  await steps.run(
    "OpenID discovery on MAS's host through mxedge, one Access-Control-Allow-Origin",
    async () => {
      const before = await standinStats(masURL);
      const r = await req(base, "GET", "/.well-known/openid-configuration", {
        headers: { host: MAS_HOST, origin: "https://app.element.io" },
      });
      expectStatus(r, 200, "discovery");
      const d = r.json;
      expect(d.issuer === MAS_BASE, `issuer ${d.issuer}, want exactly ${MAS_BASE}`);
      for (const k of ["authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"]) {
        expect(typeof d[k] === "string" && d[k].startsWith(MAS_BASE), `${k} ${d[k]} not under ${MAS_BASE}`);
      }
      expect(d.response_types_supported?.includes("code"), `response_types_supported ${d.response_types_supported}`);
      expect(d.response_modes_supported?.includes("query") && d.response_modes_supported.includes("fragment"), `response_modes_supported ${d.response_modes_supported}`);
      expect(d.grant_types_supported?.includes("authorization_code") && d.grant_types_supported.includes("refresh_token"), `grant_types_supported ${d.grant_types_supported}`);
      expect(d.code_challenge_methods_supported?.includes("S256"), `code_challenge_methods_supported ${d.code_challenge_methods_supported}`);
      const n = countHeader(r.rawHeaders, "access-control-allow-origin");
      expect(n === 1, `${n} Access-Control-Allow-Origin fields (${headerValues(r.rawHeaders, "access-control-allow-origin")}), want exactly 1`);
      const after = await standinStats(masURL);
      const k = "GET /.well-known/openid-configuration";
      expect((after.via_edge[k] ?? 0) === (before.via_edge[k] ?? 0) + 1, `MAS stand-in did not see the discovery request via mxedge`);
      // The same path on the Matrix host is not MAS's: it must not reach the MAS stand-in.
      const other = await req(base, "GET", "/.well-known/openid-configuration");
      const after2 = await standinStats(masURL);
      expect(after2.total === after.total, `the Matrix host's /.well-known/openid-configuration (${other.status}) reached MAS`);
      return `issuer ${d.issuer}, ACAO ${headerValues(r.rawHeaders, "access-control-allow-origin")}`;
    },
    { needs: ["mxedge starts with the full deployment config"] },
  );

  // ---- f. Element Web's static files on their own host ----
  await steps.run(
    "Element Web route: index.html byte for byte with the file server's own headers",
    async () => {
      const r = await req(base, "GET", "/", { headers: { host: ELEMENT_HOST, origin: "https://other.e2e.test" } });
      expectStatus(r, 200, "GET / on the Element host");
      expect(r.body.equals(elementHTML), `body differs from element/index.html (${r.body.length} bytes)`);
      for (const [k, v] of Object.entries(ELEMENT_HEADERS)) {
        const got = headerValues(r.rawHeaders, k);
        expect(got.length === 1 && got[0] === v, `${k}: got ${JSON.stringify(got)}, want exactly [${JSON.stringify(v)}]`);
      }
      const mine = ["access-control-allow-methods", "access-control-allow-headers"].filter((h) => countHeader(r.rawHeaders, h) > 0);
      expect(mine.length === 0, `mxedge added its Matrix CORS headers on a cors: upstream route: ${mine}`);
      expect(r.headers["x-element-host-seen"]?.startsWith(ELEMENT_HOST), `the file server saw Host ${r.headers["x-element-host-seen"]}`);
      return `${r.body.length} bytes, ${Object.keys(ELEMENT_HEADERS).length} upstream headers untouched`;
    },
    { needs: ["mxedge starts with the full deployment config"] },
  );

  // ---- mxedge check against this deployment ----
  await steps.run(
    "mxedge check passes against the deployment (MAS, MatrixRTC, lk-jwt, userinfo), token redacted",
    async () => {
      const token = users[names[0]].token;
      const args = ["check", "--json", "--insecure-http", "--no-federation", "--server-name", serverName,
        "--resolve", `${MAS_HOST}:80:127.0.0.1:${HTTP}`, base];
      const { code, out } = await new Promise((resolve, reject) => {
        const p = spawn(bin, args, { env: { ...process.env, MXEDGE_CHECK_ACCESS_TOKEN: token }, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.stderr.on("data", (d) => (out += d));
        p.on("error", reject);
        p.on("exit", (code) => resolve({ code, out }));
      });
      expect(!out.includes(token), "mxedge check printed the access token");
      let report;
      try {
        report = JSON.parse(out);
      } catch {
        throw new Error(`mxedge check (exit ${code}) printed no JSON report: ${out.slice(0, 2000)}`);
      }
      const bad = report.checks.filter((c) => c.status === "fail").map((c) => `${c.id}: ${c.detail}`);
      expect(bad.length === 0 && code === 0, `mxedge check exit ${code}, failed: ${bad.join("; ")}`);
      const want = ["access_token", "mas_discovery", "mas_issuer", "mas_metadata", "mas_compat_login", "rtc_transports", "rtc_transports_agree", "lk_jwt_health", "openid_userinfo"];
      const passed = new Set(report.checks.filter((c) => c.status === "pass").map((c) => c.id));
      const missing = want.filter((id) => !passed.has(id));
      expect(missing.length === 0, `checks not passed: ${missing.join(", ")} (report: ${JSON.stringify(report.checks.map((c) => [c.id, c.status]))})`);
      return `${report.passed} passed, ${report.skipped} skipped (${report.checks.filter((c) => c.status === "skip").map((c) => c.id).join(", ")})`;
    },
    { needs: ["compat password login through mxedge answered by MAS; its token works on the homeserver"] },
  );

  // ---- b. lk-jwt-service: OpenID token -> LiveKit token, through mxedge ----
  let roomId;
  const lk = {}; // who -> {jwt, url, claims}
  await steps.run(
    "a Matrix room for the call (created, joined through mxedge)",
    async () => {
      const [a, b] = names.map((n) => users[n]);
      const r = await a.client.createRoom({ name: "call", invite: [b.userId] });
      await b.client.joinRoom(r.room_id);
      roomId = r.room_id;
      return roomId;
    },
    { needs: ["compat password login through mxedge answered by MAS; its token works on the homeserver"] },
  );

  await steps.run(
    "lk-jwt /sfu/get through mxedge: OpenID token checked via mxedge, LiveKit JWT and URL",
    async () => {
      const h = await req(base, "GET", "/livekit/jwt/healthz");
      expectStatus(h, 200, "GET /livekit/jwt/healthz");
      const logBefore = fs.readFileSync(mxLog, "utf8").length;
      for (const n of names) {
        const u = users[n];
        const openid = await u.client.getOpenIdToken();
        expect(openid.access_token && openid.matrix_server_name === serverName, `getOpenIdToken: ${JSON.stringify(openid)}`);
        const r = await req(base, "POST", "/livekit/jwt/sfu/get", { body: { room: roomId, openid_token: openid, device_id: u.deviceId } });
        expectStatus(r, 200, `sfu/get for ${n}`);
        expect(r.json.url === livekitURL, `url ${r.json.url}, want ${livekitURL}`);
        const c = jwtClaims(r.json.jwt);
        expect(c.sub === `${u.userId}:${u.deviceId}`, `identity ${c.sub}, want ${u.userId}:${u.deviceId}`);
        expect(c.video?.roomJoin === true && c.video.room, `grant ${JSON.stringify(c.video)}`);
        lk[n] = { jwt: r.json.jwt, url: r.json.url, claims: c };
      }
      expect(lk[names[0]].claims.video.room === lk[names[1]].claims.video.room, "the two users got different LiveKit rooms");
      // The stand-in checked each OpenID token at the homeserver through mxedge (its access log).
      const lines = fs
        .readFileSync(mxLog, "utf8")
        .slice(logBefore)
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l))
        .filter((j) => j.path?.startsWith("/_matrix/federation/v1/openid/userinfo"));
      expect(lines.length === 2 && lines.every((j) => j.status === 200), `userinfo requests in mxedge's access log: ${JSON.stringify(lines)}`);
      expect(lines.every((j) => !j.path.includes(users[names[0]].token)), "a token was logged");
      return `room ${lk[names[0]].claims.video.room}, identities ${names.map((n) => lk[n].claims.sub).join(", ")}`;
    },
    { needs: ["a Matrix room for the call (created, joined through mxedge)"] },
  );

  await steps.run(
    "lk-jwt /get_token (MSC4195 body) through mxedge",
    async () => {
      const u = users[names[0]];
      const openid = await u.client.getOpenIdToken();
      const r = await req(base, "POST", "/livekit/jwt/get_token", {
        body: {
          room_id: roomId,
          slot_id: "m.call#ROOM",
          openid_token: openid,
          member: { id: `${u.deviceId}-m`, claimed_user_id: u.userId, claimed_device_id: u.deviceId },
        },
      });
      expectStatus(r, 200, "get_token");
      expect(r.json.url === livekitURL && jwtClaims(r.json.jwt).video.room === lk[names[0]].claims.video.room, `get_token answered ${JSON.stringify(r.json)}`);
      return "same LiveKit room as /sfu/get";
    },
    { needs: ["lk-jwt /sfu/get through mxedge: OpenID token checked via mxedge, LiveKit JWT and URL"] },
  );

  await steps.run(
    "lk-jwt with a bad OpenID token: 401 M_UNAUTHORIZED",
    async () => {
      const u = users[names[0]];
      const r = await req(base, "POST", "/livekit/jwt/sfu/get", {
        body: {
          room: roomId,
          openid_token: { access_token: "not-a-token", token_type: "Bearer", matrix_server_name: serverName, expires_in: 3600 },
          device_id: u.deviceId,
        },
      });
      expectStatus(r, 401, "sfu/get with a bad OpenID token");
      expect(r.json?.errcode === "M_UNAUTHORIZED", `errcode ${r.json?.errcode}`);
      return "401 M_UNAUTHORIZED";
    },
    { needs: ["a Matrix room for the call (created, joined through mxedge)"] },
  );

  // ---- c. Chromium + livekit-client through mxedge's WebSocket tunnel ----
  const [A, B] = names;
  await steps.run(
    "chromium loads the livekit-client page",
    async () => {
      fs.accessSync(chromiumPath, fs.constants.X_OK);
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: chromiumPath,
        headless: true,
        args: [
          ...CHROMIUM_FLAGS,
          // WebRTC on loopback: gather 127.0.0.1 too, and no mDNS names for host candidates (which
          // would multicast on the machine's network).
          "--allow-loopback-in-peer-connection",
          "--disable-features=WebRtcHideLocalIpsWithMdns",
          "--autoplay-policy=no-user-gesture-required",
        ],
      });
      page = await context.newPage();
      page.on("console", (m) => consoleLines.push(`console.${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e}`));
      await page.goto(`http://127.0.0.1:${PAGE_PORT}/`);
      await page.waitForFunction(() => window.ready === true && !!window.LivekitClient);
      return `${context.browser()?.version() ?? ""}, livekit-client ${await page.evaluate(() => window.LivekitClient.version)}`;
    },
    { needs: ["lk-jwt /sfu/get through mxedge: OpenID token checked via mxedge, LiveKit JWT and URL"] },
  );

  await steps.run(
    "both users join the LiveKit room through mxedge and see each other",
    async () => {
      const tunnels0 = await metric("mxedge_websocket_tunnels_open");
      for (const n of names) {
        const j = await page.evaluate(([w, url, t]) => window.join(w, url, t), [n, lk[n].url, lk[n].jwt]);
        expect(j.identity === lk[n].claims.sub, `joined as ${j.identity}`);
      }
      await waitEvent(A, (e) => e.type === "participantConnected");
      const ra = await page.evaluate((w) => window.remotes(w), A);
      const rb = await page.evaluate((w) => window.remotes(w), B);
      expect(ra.includes(lk[B].claims.sub), `${A} sees ${ra}, want ${lk[B].claims.sub}`);
      expect(rb.includes(lk[A].claims.sub), `${B} sees ${rb}, want ${lk[A].claims.sub}`);
      const tunnels = await waitUntil("two WebSocket tunnels open in mxedge", async () => {
        const n = await metric("mxedge_websocket_tunnels_open");
        return n - (tunnels0 || 0) >= 2 ? n : 0;
      });
      return `${A} sees ${ra}; ${B} sees ${rb}; mxedge_websocket_tunnels_open ${tunnels}`;
    },
    { needs: ["chromium loads the livekit-client page"] },
  );

  await steps.run(
    "data message from one participant reaches the other (media path on loopback)",
    async () => {
      await page.evaluate(([w, t]) => window.send(w, t), [A, "hello-1"]);
      await waitEvent(B, (e) => e.type === "data" && e.detail.text === "hello-1");
      const ev = (await pageEvents(B)).find((e) => e.type === "data" && e.detail.text === "hello-1");
      expect(ev.detail.from === lk[A].claims.sub, `from ${ev.detail.from}`);
      // The media path: every selected ICE pair runs from 127.0.0.1 to LiveKit's UDP or TCP port on
      // 127.0.0.1 (the page's sockets listen on any address; loopback is the source the kernel picks).
      const pairs = await page.evaluate(() => window.icePairs());
      expect(pairs.length > 0, "no selected ICE candidate pair");
      const bad = pairs.filter((p) => !p.local.startsWith("127.0.0.1:") || !/^127\.0\.0\.1:(16572\/udp|16571\/tcp) /.test(p.remote));
      expect(bad.length === 0, `ICE pairs not on loopback to LiveKit: ${JSON.stringify(bad)}`);
      return `"hello-1" from ${ev.detail.from}; ICE ${[...new Set(pairs.map((p) => `${p.local} -> ${p.remote}`))].join(", ")}`;
    },
    { needs: ["both users join the LiveKit room through mxedge and see each other"] },
  );

  // ---- d. SIGHUP while connected ----
  await steps.run(
    "SIGHUP with a changed config while connected: reload succeeds, the room stays up",
    async () => {
      const ok0 = await metric("mxedge_config_reloads_total", 'result="success"');
      const tunnels0 = await metric("mxedge_websocket_tunnels_total");
      writeConfig(2);
      mx.proc.kill("SIGHUP");
      const ok1 = await waitUntil("mxedge_config_reloads_total{result=success} +1", async () => {
        const n = await metric("mxedge_config_reloads_total", 'result="success"');
        return n === ok0 + 1 ? n : 0;
      });
      expect((await metric("mxedge_config_last_reload_successful")) === 1, "mxedge_config_last_reload_successful is not 1");
      const wk = await req(base, "GET", "/.well-known/matrix/client");
      expect(wk.json?.["org.mxedge.e2e.generation"] === 2, `the new config is not served: generation ${wk.json?.["org.mxedge.e2e.generation"]}`);
      // A signalling round trip for each side after the reload: B publishes a track (request and
      // answer over B's WebSocket), A is told of it (over A's WebSocket).
      await page.evaluate((w) => window.publishTone(w), B);
      await waitEvent(A, (e, id) => e.type === "trackPublished" && e.detail.startsWith(id), lk[B].claims.sub);
      await page.evaluate(([w, t]) => window.send(w, t), [B, "after-reload"]);
      await waitEvent(A, (e) => e.type === "data" && e.detail.text === "after-reload");
      for (const n of names) {
        const bad = (await pageEvents(n)).filter((e) => ["disconnected", "reconnecting", "signalReconnecting", "reconnected"].includes(e.type));
        expect(bad.length === 0, `${n} saw ${JSON.stringify(bad)} across the reload`);
      }
      expect(mx.alive, "mxedge exited on SIGHUP");
      const tunnels1 = await metric("mxedge_websocket_tunnels_total");
      expect(tunnels1 === tunnels0, `new tunnels opened across the reload (${tunnels0} -> ${tunnels1}): a client reconnected`);
      return `reloads_total{success} ${ok0} -> ${ok1}, generation 2 served, track published and data after reload, no reconnect`;
    },
    { needs: ["both users join the LiveKit room through mxedge and see each other"] },
  );

  // ---- e. SIGTERM while connected ----
  await steps.run(
    `SIGTERM while connected: clients see the WebSocket close within timeouts.shutdown (${SHUTDOWN_S}s) + 5 s, mxedge exits 0`,
    async () => {
      const t0 = Date.now();
      mx.proc.kill("SIGTERM");
      const lost = (e) => ["signalReconnecting", "reconnecting", "disconnected"].includes(e.type);
      const limit = (SHUTDOWN_S + 5) * 1000;
      await Promise.all(names.map((n) => waitEvent(n, lost, null, limit)));
      const firsts = [];
      for (const n of names) {
        const ev = (await pageEvents(n)).find(lost);
        firsts.push(`${n} ${ev.type} after ${ev.t - t0} ms`);
        expect(ev.t - t0 <= limit, `${n}: ${ev.type} after ${ev.t - t0} ms`);
      }
      const ex = await Promise.race([mx.exited, sleep(limit).then(() => null)]);
      expect(ex, `mxedge still running ${limit} ms after SIGTERM`);
      expect(ex.code === 0, `mxedge ended with ${JSON.stringify(ex)}, want exit 0`);
      return `${firsts.join("; ")}; mxedge exit 0 after ${ex.at - t0} ms`;
    },
    { needs: ["both users join the LiveKit room through mxedge and see each other"] },
  );
} catch (e) {
  await steps.run("deployment part setup", async () => {
    throw e;
  });
} finally {
  if (context) await context.close().catch(() => {});
  elementServer.close();
  pageServer.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  if (mx?.alive) {
    mx.proc.kill("SIGTERM");
    await Promise.race([mx.exited, sleep(10000)]);
  }
}
if (steps.failed.length) {
  if (consoleLines.length) {
    console.log("--- browser console (last 60) ---");
    for (const l of consoleLines.slice(-60)) console.log(l);
  }
  if (fs.existsSync(mxLog)) {
    const lines = fs.readFileSync(mxLog, "utf8").trimEnd().split("\n");
    console.log(`--- mxedge.log (last 60 of ${lines.length} lines) ---`);
    console.log(lines.slice(-60).join("\n"));
  }
}
steps.finish();
process.exit(process.exitCode);
