// The workers part: mxedge's Synapse worker routing with real tokens from a real homeserver.
//   mxedge (BASE_URL, ops OPS_URL) ── homeserver pool: relay0 ──────────────┐
//                                  ├─ sync pool (synchrotron):   relay1, relay2 ─┼─> Dendrite
//                                  └─ creators (event_creator):  relay1, relay2 ─┘
// Every relay records each request (method, path, a hash of the token, status) in WORK/<relay>.jsonl;
// the resolver's whoami goes to the homeserver pool, so relay0 records those too.
//   a. one user, four devices (four tokens): every /sync of every token reaches one relay;
//   b. three more users: each user's syncs stay on one relay; whoami asked once per token;
//   c. invalid tokens: 401 M_UNKNOWN_TOKEN, whoami asked once each (Dendrite answered 401), and they
//      are balanced by the token (they spread over both relays), never as one user;
//   d. messages from two users (raw and the SDK) in four rooms: a room's event sends reach one relay;
//   e. the relay holding user A is killed: A's syncs move to the other relay, others stay; restarted
//      on the same port: A's syncs come back, and every user is where it was.
// Env: BASE_URL, OPS_URL, WORK, RELAY1, RELAY2, DENDRITE_URL. Relays 1 and 2 are started (and killed,
// and restarted) here, and stopped by PID whatever happens.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { fileURLToPath } from "node:url";
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { req, expect, expectStatus, sleep, enc, Steps, register, sha256 } from "../client/lib.mjs";

logger.setLevel(process.env.SDK_LOG_LEVEL || "error");

const env = (k) => process.env[k] || (console.error(`${k} is required`), process.exit(2));
const base = env("BASE_URL");
const ops = env("OPS_URL");
const work = env("WORK");
const dendrite = env("DENDRITE_URL");
const relayScript = path.join(path.dirname(fileURLToPath(import.meta.url)), "relay.mjs");
const RELAYS = { relay1: env("RELAY1"), relay2: env("RELAY2") };
const HEALTH_INTERVAL_MS = 1000; // run-workers.sh: health {interval: 1s, timeout: 1s}
const HEALTH_TIMEOUT_MS = 1000;
const SYNC = "/_matrix/client/v3/sync";
const WHOAMI = "/_matrix/client/v3/account/whoami";
// Devices (tokens) per user: registration plus three logins. Were syncs balanced by token instead of
// by user, a user's 4 tokens would share a relay by chance with p = 1/8, all four users' with 1/4096.
const DEVICES = 4;

// ---- relay processes, stopped by PID ----
const procs = {};
function killAll() {
  for (const p of Object.values(procs)) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {}
  }
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

/** startRelay spawns relay NAME on its port and waits until it forwards /versions. */
async function startRelay(name) {
  const url = RELAYS[name];
  const fd = fs.openSync(path.join(work, `${name}.log`), "a");
  const proc = spawn(process.execPath, [relayScript, name, new URL(url).port, dendrite, path.join(work, `${name}.jsonl`)], {
    stdio: ["ignore", fd, fd],
  });
  fs.closeSync(fd);
  procs[name] = proc;
  proc.exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      const r = await req(url, "GET", "/_matrix/client/versions", { timeoutMs: 2000 });
      if (r.status === 200) return proc;
    } catch {}
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${name} exited before answering`);
    if (Date.now() > deadline) throw new Error(`${name} did not answer in 15 s`);
    await sleep(50);
  }
}

async function killRelay(name) {
  const p = procs[name];
  p.kill("SIGKILL");
  await p.exited;
  delete procs[name];
}

// ---- what the relays saw ----
const th = (token) => sha256(token).slice(0, 16);
function records(name) {
  const f = path.join(work, `${name}.jsonl`);
  if (!fs.existsSync(f)) return [];
  return fs
    .readFileSync(f, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}
/** mark remembers how many records each relay has, so that later checks see only what came after. */
const mark = () => Object.fromEntries(["relay0", "relay1", "relay2"].map((n) => [n, records(n).length]));
/** workerRecords: the records of relays 1 and 2 after mark m (all without m). */
const workerRecords = (m = {}) => ["relay1", "relay2"].flatMap((n) => records(n).slice(m[n] ?? 0));
/** syncRelays: relay name → count of the /sync requests of tokens (hashes) after mark m. */
function syncRelays(tokens, m) {
  const hs = new Set(tokens.map(th));
  const out = {};
  for (const r of workerRecords(m)) if (r.path === SYNC && hs.has(r.tok)) out[r.relay] = (out[r.relay] ?? 0) + 1;
  return out;
}
const fmt = (o) => JSON.stringify(o).replace(/"/g, "");

// ---- mxedge's view, from its ops listener ----
async function memberUp(pool, url) {
  const r = await req(ops, "GET", "/metrics", { timeoutMs: 5000 });
  const line = r.body
    .toString("utf8")
    .split("\n")
    .find((l) => l.startsWith("mxedge_upstream_member_up{") && l.includes(`pool="${pool}"`) && l.includes(`member="${url}"`));
  expect(line, `no mxedge_upstream_member_up for pool ${pool} member ${url}`);
  return Number(line.trim().split(/\s+/).at(-1));
}
/** waitFor polls fn (every 50 ms) until it returns true; returns the ms it took, throws past ms. */
async function waitFor(what, fn, ms) {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}
const allUp = (want) => async () => {
  for (const pool of ["sync", "creators"]) for (const u of Object.values(RELAYS)) if ((await memberUp(pool, u)) !== want) return false;
  return true;
};

// ---- Matrix helpers ----
/** syncs: for each token, an initial /sync, then n-1 long-polls with since (timeout ms), concurrently. */
async function syncs(tokens, n = 4, timeout = 300) {
  await Promise.all(
    tokens.map(async (token) => {
      let since;
      for (let i = 0; i < n; i++) {
        const q = new URLSearchParams({ timeout: String(since ? timeout : 0) });
        if (since) q.set("since", since);
        const r = await req(base, "GET", `${SYNC}?${q}`, { token, timeoutMs: 30000 });
        expectStatus(r, 200, `sync ${i}`);
        since = r.json.next_batch;
      }
    }),
  );
}
async function login(user, password, device) {
  const c = sdk.createClient({ baseUrl: base });
  const r = await c.loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user }, password, initial_device_display_name: device });
  expect(r.access_token && r.device_id, "login answered without a token");
  return r;
}

const steps = new Steps("workers");
const run = (name, fn, needs = []) => steps.run(name, fn, { needs });
const suffix = crypto.randomBytes(3).toString("hex");
const users = {}; // A..D: {userId, password, tokens: [register, login1, login2], relay}
let sdkClient;

try {
  await run("relays up, every pool member healthy in mxedge", async () => {
    await startRelay("relay1");
    await startRelay("relay2");
    const ms = await waitFor("sync and creators members up", allUp(1), 10000);
    return `relays on ${Object.values(RELAYS).join(", ")}; mxedge saw them up after ${ms} ms`;
  });

  await run(
    "a. one user, four devices: every /sync of every token reaches one relay",
    async () => {
      for (const n of ["A", "B", "C", "D"]) {
        const password = `pw-${crypto.randomBytes(8).toString("hex")}`;
        const reg = await register(base, `w${n.toLowerCase()}${suffix}`, password);
        const ls = [reg];
        for (let d = 2; d <= DEVICES; d++) ls.push(await login(reg.user_id, password, `${n} device ${d}`));
        expect(new Set(ls.map((l) => l.access_token)).size === DEVICES, `${DEVICES} devices but fewer tokens`);
        users[n] = { userId: reg.user_id, password, tokens: ls.map((l) => l.access_token), devices: ls.map((l) => l.device_id) };
      }
      const A = users.A;
      // The SDK's own sync loop on A's second device, alongside raw long-polls on all of them.
      sdkClient = sdk.createClient({ baseUrl: base, accessToken: A.tokens[1], userId: A.userId, deviceId: A.devices[1] });
      const prepared = new Promise((resolve, reject) => {
        sdkClient.on(sdk.ClientEvent.Sync, (state) => (state === "PREPARED" ? resolve() : state === "ERROR" && reject(new Error("SDK sync ERROR"))));
      });
      sdkClient.startClient({ initialSyncLimit: 5 });
      await prepared;
      await syncs(A.tokens);
      const where = syncRelays(A.tokens);
      const per = A.tokens.map((t) => Object.values(syncRelays([t])).reduce((a, b) => a + b, 0));
      expect(per.every((n) => n >= 4), `syncs seen per token ${per}, want >= 4 each`);
      expect(Object.keys(where).length === 1, `A's syncs reached ${fmt(where)}, want one relay`);
      A.relay = Object.keys(where)[0];
      return `${A.userId}: ${per.join("+")} syncs of ${DEVICES} tokens (one by the SDK's loop), all on ${fmt(where)}`;
    },
    ["relays up, every pool member healthy in mxedge"],
  );

  await run(
    "b. three more users: each user's syncs stay on one relay; whoami once per token",
    async () => {
      for (const n of ["B", "C", "D"]) await syncs(users[n].tokens, 5);
      const notes = [];
      for (const n of ["B", "C", "D"]) {
        const where = syncRelays(users[n].tokens);
        expect(Object.keys(where).length === 1, `${n}'s syncs reached ${fmt(where)}, want one relay`);
        users[n].relay = Object.keys(where)[0];
        notes.push(`${n}:${fmt(where)}`);
      }
      // The resolver asked the homeserver (relay0) once per token, and Dendrite knew each one.
      const who = records("relay0").filter((r) => r.path === WHOAMI);
      for (const [n, u] of Object.entries(users)) {
        for (const t of u.tokens) {
          const asked = who.filter((r) => r.tok === th(t));
          expect(asked.length === 1 && asked[0].status === 200, `${n}: whoami for a token asked ${asked.length} times (${fmt(asked.map((r) => r.status))}), want once, 200`);
        }
      }
      return `${notes.join(" ")}; whoami asked once for each of the ${4 * DEVICES} tokens`;
    },
    ["a. one user, four devices: every /sync of every token reaches one relay"],
  );

  await run(
    "c. invalid tokens: Dendrite's 401 M_UNKNOWN_TOKEN, whoami once, balanced by the token, never as a user",
    async () => {
      const bogus = Array.from({ length: 16 }, () => `syt_bogus_${crypto.randomBytes(12).toString("hex")}`);
      const m = mark();
      const once = async (token) => {
        const r = await req(base, "GET", `${SYNC}?timeout=0`, { token });
        expectStatus(r, 401, "sync with a bogus token");
        expect(r.json?.errcode === "M_UNKNOWN_TOKEN", `errcode ${r.json?.errcode}, want M_UNKNOWN_TOKEN`);
      };
      for (const t of bogus) await once(t);
      for (let i = 0; i < 3; i++) await once(bogus[0]); // within invalid_ttl: remembered, not asked again
      const who = records("relay0").slice(m.relay0).filter((r) => r.path === WHOAMI);
      for (const t of bogus) {
        const asked = who.filter((r) => r.tok === th(t));
        expect(asked.length === 1 && asked[0].status === 401, `whoami for a bogus token: ${asked.length} asks (${fmt(asked.map((r) => r.status))}), want once, 401`);
      }
      expect(who.length === bogus.length, `whoami asked ${who.length} times, want ${bogus.length}`);
      const recs = workerRecords(m).filter((r) => r.path === SYNC);
      expect(recs.length === bogus.length + 3, `${recs.length} bogus syncs reached a relay, want ${bogus.length + 3}`);
      expect(recs.every((r) => r.status === 401), `statuses ${fmt(recs.map((r) => r.status))}, want all 401`);
      const first = new Set(recs.filter((r) => r.tok === th(bogus[0])).map((r) => r.relay));
      expect(first.size === 1, `one bogus token's 4 syncs reached ${[...first]}, want one relay (keyed by the token)`);
      const spread = {};
      for (const r of recs) spread[r.relay] = (spread[r.relay] ?? 0) + 1;
      // Keyed by each token's own hash, 16 tokens land on both relays (all on one: p = 2^-15); one
      // shared key for every refused token (as if it were one user) would put them all on one.
      expect(Object.keys(spread).length === 2, `16 bogus tokens' syncs all reached ${fmt(spread)}: one key for all of them`);
      return `16 tokens → 401 M_UNKNOWN_TOKEN, whoami asked 16 times (401 each), the repeated token stayed on ${[...first]}, spread ${fmt(spread)}`;
    },
    ["relays up, every pool member healthy in mxedge"],
  );

  await run(
    "d. messages from two users in four rooms: each room's event sends reach one relay",
    async () => {
      const [A, B] = [users.A, users.B];
      const m = mark();
      const rooms = [];
      for (let i = 0; i < 4; i++) {
        const r = await req(base, "POST", "/_matrix/client/v3/createRoom", { token: A.tokens[0], body: { preset: "public_chat", name: `room ${i}` } });
        expectStatus(r, 200, "createRoom");
        rooms.push(r.json.room_id);
      }
      for (const room of rooms) expectStatus(await req(base, "POST", `/_matrix/client/v3/rooms/${enc(room)}/join`, { token: B.tokens[2], body: {} }), 200, "join");
      let txn = 0;
      const want = {};
      for (let k = 0; k < 3; k++) {
        for (const room of rooms) {
          for (const [who, tok] of [["A", A.tokens[0]], ["B", B.tokens[1]]]) {
            const body = `${who} ${k} in ${room}`;
            const r = await req(base, "PUT", `/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/t${suffix}-${txn++}`, { token: tok, body: { msgtype: "m.text", body } });
            expectStatus(r, 200, "send");
            (want[room] ??= []).push(body);
          }
          const body = `A (SDK) ${k} in ${room}`;
          await sdkClient.sendEvent(room, "m.room.message", { msgtype: "m.text", body });
          want[room].push(body);
        }
      }
      const notes = [];
      for (const room of rooms) {
        const recs = workerRecords(m).filter((r) => decodeURIComponent(r.path).includes(`/rooms/${room}/`));
        const sends = recs.filter((r) => r.path.includes("/send/")).length;
        expect(sends === 9, `${room}: ${sends} sends recorded on the creators relays, want 9`);
        const where = new Set(recs.map((r) => r.relay));
        expect(where.size === 1, `${room}: its join and sends reached ${[...where]}, want one relay`);
        notes.push(`${[...where][0]}`);
        // Every message arrived, once, in order (read from the main process).
        const msgs = await req(base, "GET", `/_matrix/client/v3/rooms/${enc(room)}/messages?dir=b&limit=100`, { token: B.tokens[0] });
        expectStatus(msgs, 200, "messages");
        const got = msgs.json.chunk.filter((e) => e.type === "m.room.message").map((e) => e.content.body).reverse();
        expect(JSON.stringify(got) === JSON.stringify(want[room]), `${room}: messages ${fmt(got)}, want ${fmt(want[room])}`);
      }
      return `4 rooms × (join + 9 sends: 3 raw from each user, 3 by the SDK) on ${notes.join(", ")}; all 36 messages arrived in order`;
    },
    ["b. three more users: each user's syncs stay on one relay; whoami once per token"],
  );

  await run(
    "e. A's relay killed: A's syncs move to the other relay and come back when it returns",
    async () => {
      sdkClient.stopClient();
      const A = users.A;
      const dead = A.relay;
      const alive = dead === "relay1" ? "relay2" : "relay1";
      const others = ["B", "C", "D"];
      // kill: A's syncs answered again, through the other relay, within a health interval
      const m1 = mark();
      await killRelay(dead);
      const t0 = Date.now();
      const failed = [];
      for (;;) {
        const r = await req(base, "GET", `${SYNC}?timeout=0`, { token: A.tokens[0], timeoutMs: 10000 }).catch((e) => ({ status: 0, e }));
        if (r.status === 200) break;
        failed.push(r.status || r.e?.code || "error");
        expect(Date.now() - t0 < HEALTH_INTERVAL_MS + HEALTH_TIMEOUT_MS + 2000, `A's sync still failing ${Date.now() - t0} ms after the kill (last ${r.status})`);
        await sleep(50);
      }
      const moved = Date.now() - t0;
      const down = await waitFor(`mxedge marks ${dead} down`, async () => (await memberUp("sync", RELAYS[dead])) === 0, 10000);
      await syncs(A.tokens, 3);
      for (const n of others) await syncs(users[n].tokens, 2);
      const aWhere = syncRelays(A.tokens, m1);
      expect(Object.keys(aWhere).length === 1 && aWhere[alive], `A's syncs after the kill reached ${fmt(aWhere)}, want only ${alive}`);
      for (const n of others) {
        const w = syncRelays(users[n].tokens, m1);
        expect(Object.keys(w).length === 1 && w[alive], `${n}'s syncs with ${dead} down reached ${fmt(w)}, want ${alive}`);
      }
      // restart on the same port: back to the member rendezvous hashing gave each user before
      await startRelay(dead);
      const t1 = Date.now();
      const back = await waitFor(`mxedge marks ${dead} up again`, async () => (await memberUp("sync", RELAYS[dead])) === 1, 10000);
      const m2 = mark();
      await syncs(A.tokens, 3);
      for (const n of others) await syncs(users[n].tokens, 2);
      for (const n of ["A", ...others]) {
        const w = syncRelays(users[n].tokens, m2);
        expect(Object.keys(w).length === 1 && w[users[n].relay], `${n}'s syncs after ${dead} came back reached ${fmt(w)}, want ${users[n].relay}`);
      }
      return `${dead} killed: A answered via ${alive} after ${moved} ms (${failed.length} failed tries: ${failed.join(",") || "none"}), marked down after ${down} ms; restarted: up again after ${back} ms (${Date.now() - t1} ms incl. syncs), A back on ${dead}, B/C/D on their relays (${others.map((n) => `${n}:${users[n].relay}`).join(" ")})`;
    },
    ["d. messages from two users in four rooms: each room's event sends reach one relay"],
  );
} finally {
  sdkClient?.stopClient();
  killAll();
}
steps.finish();
process.exit(process.exitCode);
