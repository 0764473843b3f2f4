// The edge part: mxedge's own behaviours end to end, in front of a real Dendrite.
//   - /_synapse/admin refused from a non-allowed peer (127.0.0.2), reachable from an allowed one;
//   - rate limits seen by matrix-js-sdk as M_LIMIT_EXCEEDED and retried after Retry-After;
//   - SIGHUP (with a real config change) and SIGTERM (drain, then a new process) while the client
//     scenario's long-polls are open: the whole scenario still passes, nothing lost or duplicated.
//
// Env: MXEDGE_BIN, DENDRITE_URL, WORK (configs and logs go there), SERVER_NAME. Ports 16380-16391.
// mxedge processes are started here and stopped by PID whatever happens.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { req, expect, expectStatus, sleep, enc, Steps, register, syncOnce, roomMessages } from "../client/lib.mjs";
import { scenario, retried } from "../client/scenario.mjs";

logger.setLevel(process.env.SDK_LOG_LEVEL || "error");

const bin = process.env.MXEDGE_BIN;
const upstream = process.env.DENDRITE_URL;
const work = process.env.WORK;
const serverName = process.env.SERVER_NAME || "e2e.test";
for (const [k, v] of Object.entries({ MXEDGE_BIN: bin, DENDRITE_URL: upstream, WORK: work })) {
  if (!v) {
    console.error(`${k} is required`);
    process.exit(2);
  }
}

// ---- mxedge processes, stopped by PID ----
const live = new Set();
function killAll() {
  for (const p of live) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {}
  }
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

function writeConfig(file, http, ops, extra = "") {
  fs.writeFileSync(
    file,
    `server_name: ${serverName}
upstream: ${upstream}
public_baseurl: http://127.0.0.1:${http}/
listen:
  http: 127.0.0.1:${http}
  ops: 127.0.0.1:${ops}
log:
  level: info
  format: json
  access: true
${extra}`,
  );
}

/** start launches mxedge and waits until /versions answers through it. Returns {proc, exited, url}. */
async function start(name, cfg, http) {
  const logf = path.join(work, `${name}.log`);
  const fd = fs.openSync(logf, "a");
  const proc = spawn(bin, ["run", "--config", cfg], { stdio: ["ignore", fd, fd] });
  fs.closeSync(fd);
  live.add(proc);
  const exited = new Promise((resolve) =>
    proc.on("exit", (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    }),
  );
  let gone = null;
  exited.then((x) => (gone = x));
  const url = `http://127.0.0.1:${http}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (gone) return { proc, exited, url, failed: `exited ${JSON.stringify(gone)} before answering` };
    try {
      const r = await req(url, "GET", "/_matrix/client/versions", { timeoutMs: 2000 });
      if (r.status === 200) break;
    } catch {}
    if (Date.now() > deadline) return { proc, exited, url, failed: "no answer in 30 s" };
    await sleep(100);
  }
  console.error(`edge: ${name} pid ${proc.pid} ready at ${url}`);
  return { proc, exited, url };
}

async function stop(m) {
  if (!live.has(m.proc)) return;
  m.proc.kill("SIGTERM");
  const t = setTimeout(() => m.proc.kill("SIGKILL"), 70000);
  await m.exited;
  clearTimeout(t);
}

function printLog(name) {
  const f = path.join(work, `${name}.log`);
  if (!fs.existsSync(f) || fs.statSync(f).size === 0) return;
  const lines = fs.readFileSync(f, "utf8").trimEnd().split("\n");
  console.log(`----- ${name}.log (last 40 of ${lines.length} lines) -----`);
  console.log(lines.slice(-40).join("\n"));
}

/**
 * longPollOpen waits until mxedge reports an open /sync (mxedge_http_requests_in_flight{class="sync"}
 * on its ops listener), so that a signal lands while a long-poll is in flight. Returns how it knew.
 */
async function longPollOpen(opsPort) {
  const deadline = Date.now() + 10000;
  await sleep(700); // a long-poll woken just before is answered and the next one parks
  for (;;) {
    const r = await req(`http://127.0.0.1:${opsPort}`, "GET", "/metrics").catch(() => null);
    const m = r && /^mxedge_http_requests_in_flight\{class="sync"\} (\d+)/m.exec(r.body.toString());
    if (!m) return "assumed"; // no such metric: the 700 ms above must do
    if (Number(m[1]) >= 1) return "seen";
    if (Date.now() > deadline) throw new Error("no /sync in flight at mxedge within 10 s");
    await sleep(50);
  }
}

const steps = new Steps("edge");
const cfgMain = path.join(work, "mxedge-edge.yaml");
const cfgRL = path.join(work, "mxedge-edge-rl.yaml");
const mainExtra = (n) => `admin_api:
  allow_from: ["127.0.0.1/32"]
timeouts:
  shutdown: 30s
well_known:
  client:
    org.mxedge.e2e.reload: ${n}
`;
writeConfig(cfgMain, 16380, 16390, mainExtra(0));
writeConfig(
  cfgRL,
  16381,
  16391,
  `rate_limits:
  enabled: true
  rc_message: {per_second: 1, burst_count: 2}
  exempt:
    addresses: []
`,
);

let main;
try {
  await steps.run("mxedge starts", async () => {
    main = await start("mxedge-edge", cfgMain, 16380);
    if (main.failed) throw new Error(main.failed);
    return `pid ${main.proc.pid}`;
  });

  // ---- admin gate ----
  const adminPath = "/_synapse/admin/v1/register"; // Dendrite answers GET with a nonce
  await steps.run(
    "admin API refused from 127.0.0.2 (not in allow_from)",
    async () => {
      const tries = [
        [adminPath, {}],
        [adminPath, { "x-forwarded-for": "127.0.0.1", forwarded: "for=127.0.0.1" }],
        ["/_synapse/%61dmin/v1/register", {}],
        ["/_matrix/../_synapse/admin/v1/register", {}],
        ["/_synapse//admin/v1/register", {}],
        ["/_SYNAPSE/admin/v1/register", {}],
      ];
      const seen = [];
      for (const [p, headers] of tries) {
        const r = await req(main.url, "GET", p, { localAddress: "127.0.0.2", headers });
        seen.push(`${p} ${r.status}`);
        expect(!r.body.toString().includes("nonce"), `${p} from 127.0.0.2 reached Dendrite: ${r.status} ${r.body}`);
        expect(r.status === 404 || r.status === 400, `${p} from 127.0.0.2: got ${r.status}, want 404 or 400`);
        if (p === adminPath) expect(r.json?.errcode === "M_UNRECOGNIZED", `errcode ${r.json?.errcode}, want M_UNRECOGNIZED`);
      }
      return seen.join(", ");
    },
    ["mxedge starts"],
  );
  await steps.run(
    "admin API reachable from 127.0.0.1 (in allow_from)",
    async () => {
      const r = await req(main.url, "GET", adminPath, { localAddress: "127.0.0.1" });
      expectStatus(r, 200, `GET ${adminPath} from 127.0.0.1`);
      expect(typeof r.json?.nonce === "string", `no nonce from Dendrite: ${r.body}`);
    },
    ["mxedge starts"],
  );

  // ---- rate limit through the SDK ----
  await steps.run(
    "SDK sees M_LIMIT_EXCEEDED and retries after Retry-After",
    async () => {
      const rl = await start("mxedge-edge-rl", cfgRL, 16381);
      if (rl.failed) throw new Error(`rate-limited mxedge did not start (${rl.failed}): see mxedge-edge-rl.log`);
      try {
        const a = await register(main.url, `rla${process.pid}`, "pw-rate-limit-a");
        const b = await register(main.url, `rlb${process.pid}`, "pw-rate-limit-b");
        const room = await req(main.url, "POST", "/_matrix/client/v3/createRoom", { token: a.access_token, body: { invite: [b.user_id] } });
        expectStatus(room, 200, "createRoom");
        const roomId = room.json.room_id;
        expectStatus(await req(main.url, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, { token: b.access_token, body: {} }), 200, "join");
        let { next } = await syncOnce(main.url, b.access_token, { timeout: 0 });
        // Every request the SDK makes, with its time, status and Retry-After.
        const log = [];
        const fetchFn = async (input, init) => {
          const res = await fetch(input, init);
          log.push({ t: Date.now(), url: String(input), status: res.status, retryAfter: res.headers.get("retry-after") });
          return res;
        };
        const c = sdk.createClient({ baseUrl: rl.url, accessToken: a.access_token, userId: a.user_id, deviceId: a.device_id, fetchFn });
        const want = Array.from({ length: 6 }, (_, i) => `rate-limited ${i + 1}`);
        for (const body of want) await c.sendEvent(roomId, "m.room.message", { msgtype: "m.text", body });
        const sends = log.filter((x) => x.url.includes("/send/"));
        const limited = sends.filter((x) => x.status === 429);
        expect(limited.length > 0, `no 429 in ${sends.length} sends: ${JSON.stringify(sends.map((x) => x.status))}`);
        for (const x of limited) {
          expect(/^\d+$/.test(x.retryAfter ?? ""), `429 without a Retry-After header: ${JSON.stringify(x)}`);
          const nextTry = sends[sends.indexOf(x) + 1];
          expect(nextTry, "no retry after a 429");
          const waited = nextTry.t - x.t;
          expect(waited >= Number(x.retryAfter) * 1000 - 100, `retried ${waited} ms after a 429 with Retry-After ${x.retryAfter}`);
        }
        // One raw 429 for the body: M_LIMIT_EXCEEDED, retry_after_ms, Retry-After = ceil(ms/1000).
        let raw;
        for (let i = 0; i < 10 && !raw; i++) {
          const r = await req(rl.url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/raw${i}`, {
            token: a.access_token,
            body: { msgtype: "m.text", body: "raw" },
          });
          if (r.status === 429) raw = r;
        }
        expect(raw, "no raw 429 in 10 quick sends");
        expect(raw.json?.errcode === "M_LIMIT_EXCEEDED", `429 errcode ${raw.json?.errcode}`);
        expect(Number.isInteger(raw.json?.retry_after_ms), `429 retry_after_ms ${raw.json?.retry_after_ms}`);
        expect(Number(raw.headers["retry-after"]) === Math.ceil(raw.json.retry_after_ms / 1000), `Retry-After ${raw.headers["retry-after"]} vs ${raw.json.retry_after_ms} ms`);
        // All six arrived once, in order.
        const got = [];
        const deadline = Date.now() + 30000;
        while (got.length < want.length && Date.now() < deadline) {
          const r = await syncOnce(main.url, b.access_token, { since: next, timeout: 5000 });
          next = r.next;
          got.push(...roomMessages(r.res.json, roomId).filter((m) => m.startsWith("rate-limited")));
        }
        expect(JSON.stringify(got) === JSON.stringify(want), `received ${JSON.stringify(got)}`);
        return `${limited.length} × 429 (Retry-After ${limited.map((x) => x.retryAfter).join(",")} s) retried by the SDK, 6/6 delivered in order`;
      } finally {
        await stop(rl);
      }
    },
    ["mxedge starts"],
  );

  // ---- SIGHUP while long-polls are open ----
  const parked = []; // per signal: "seen" (in-flight gauge) or "assumed" (no metric)
  let hups = 0;
  const hupProblems = [];
  const hupHook = async (where) => {
    parked.push(await longPollOpen(16390)); // the signal lands while a long-poll is in flight
    hups++;
    writeConfig(cfgMain, 16380, 16390, mainExtra(hups));
    main.proc.kill("SIGHUP");
    const deadline = Date.now() + 10000;
    for (;;) {
      const r = await req(main.url, "GET", "/.well-known/matrix/client").catch((e) => ({ status: String(e) }));
      if (r.status === 200 && r.json?.["org.mxedge.e2e.reload"] === hups) break;
      if (Date.now() > deadline) {
        hupProblems.push(`${where}: reload ${hups} not visible in /.well-known/matrix/client within 10 s (last ${r.status})`);
        break;
      }
      await sleep(100);
    }
    if (!live.has(main.proc)) hupProblems.push(`${where}: mxedge exited on SIGHUP`);
  };
  let sub = null;
  await steps.run(
    "client scenario passes with SIGHUP (config changed) during its long-polls",
    async () => {
      sub = await scenario(main.url, { prefix: "edge-sighup", hooks: { duringLongPoll: hupHook } });
      expect(hups >= 3, `only ${hups} SIGHUPs sent`);
      expect(hupProblems.length === 0, hupProblems.join("; "));
      expect(sub.failed.length === 0, `scenario steps failed: ${sub.failed.join("; ")}`);
      return `${hups} reloads (long-poll in flight: ${parked.join(",")}), ${sub.passed.length} steps passed`;
    },
    ["mxedge starts"],
  );

  // ---- SIGTERM while long-polls are open: drain, a new process takes over ----
  const terms = [];
  const termHook = async (where) => {
    // Let the client's next long-poll reach mxedge first: a request still on its way over an idle
    // keep-alive connection is indistinguishable, to the server, from an idle connection (which a
    // drain closes); clients retry those. The point here is the requests mxedge has accepted.
    parked.push(await longPollOpen(16390));
    const old = main;
    old.proc.kill("SIGTERM");
    const t0 = Date.now();
    terms.push(
      old.exited.then((x) => ({ where, pid: old.proc.pid, ...x, ms: Date.now() - t0 })),
    );
    // the listener closes at once; bring up the successor (it retries while the port is still held)
    const deadline = Date.now() + 30000;
    for (let n = 0; ; n++) {
      const m = await start(`mxedge-edge-${terms.length}-${n}`, cfgMain, 16380);
      if (!m.failed) {
        main = m;
        return;
      }
      if (Date.now() > deadline) throw new Error(`no successor after SIGTERM: ${m.failed}`);
      await sleep(200);
    }
  };
  await steps.run(
    "client scenario passes with SIGTERM + restart during its long-polls (drained, exit 0)",
    async () => {
      sub = await scenario(main.url, { prefix: "edge-sigterm", hooks: { duringLongPoll: termHook }, retryConn: true });
      const ends = await Promise.all(terms);
      console.log(`     edge-sigterm: client retried ${retried.refused} refused and ${retried.reset} reset requests; ends ${JSON.stringify(ends)}`);
      expect(ends.length >= 3, `only ${ends.length} SIGTERMs sent`);
      // Refused connections (the gap between the old listener closing and the new one) and resets
      // of a keep-alive connection reused just as the draining server closed it are what every
      // client retries; they are reported, not failed. The strict drain check is the idle /sync
      // step: a long-poll parked for seconds at SIGTERM must be answered (held 10 s), not cut.
      for (const e of ends) {
        expect(e.code === 0, `pid ${e.pid} (${e.where}) ended with ${JSON.stringify(e)}, want exit 0`);
      }
      expect(sub.failed.length === 0, `scenario steps failed: ${sub.failed.join("; ")}`);
      return `long-poll in flight: ${parked.slice(-ends.length).join(",")}; ${ends.length} drains (${ends.map((e) => `${e.where} ${e.ms} ms`).join(", ")}); client retried ${retried.refused} refused and ${retried.reset} reset requests`;
    },
    ["mxedge starts"],
  );
} finally {
  if (main) await stop(main).catch(() => {});
  killAll();
}
if (steps.failed.length) {
  for (const f of fs.readdirSync(work).filter((f) => f.startsWith("mxedge-edge") && f.endsWith(".log"))) printLog(f.slice(0, -4));
}
steps.finish();
process.exit(process.exitCode);
