// The browser part: Debian's Chromium (playwright-core) on a page from one loopback origin calling
// the homeserver through mxedge at another origin. What passes is what the browser allowed.
//
//   BASE_URL=http://127.0.0.1:16280 RL_BASE_URL=http://127.0.0.1:16281 PAGE_PORT=16270 node browser/run.mjs
// RL_BASE_URL (an mxedge with a tight rc_login) is needed for the 429 check; BIG_BYTES (a JSON body
// above that mxedge's limits.max_json_body_size) for the 413 check. DIRECT=1 skips both.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { req, expectStatus, register, Steps, enc, CHROMIUM_FLAGS } from "../client/lib.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const base = process.env.BASE_URL;
const rlBase = process.env.RL_BASE_URL || "";
const pagePort = Number(process.env.PAGE_PORT || 16270);
const direct = process.env.DIRECT === "1";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base) {
  console.error("BASE_URL is required");
  process.exit(2);
}

const steps = new Steps("browser");
const page_html = fs.readFileSync(path.join(here, "page.html"));

// The page's origin: a tiny static server that serves page.html and nothing else.
const server = http.createServer((rq, rs) => {
  if (rq.url === "/" || rq.url === "/index.html") {
    rs.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    rs.end(page_html);
  } else {
    rs.writeHead(404).end();
  }
});
await new Promise((res, rej) => server.listen(pagePort, "127.0.0.1", res).on("error", rej));

// A control: a server that sends Access-Control-Allow-Origin twice ("*, *" on the wire), as a proxy
// that copies the upstream's CORS headers next to its own does. The browser must refuse it, which
// shows that the checks above really depend on the browser's CORS verdict.
const dupServer = http.createServer((rq, rs) => {
  rs.setHeader("Access-Control-Allow-Origin", ["*", "*"]);
  rs.setHeader("Content-Type", "application/json");
  rs.end('{"versions":["v1.11"]}');
});
await new Promise((res, rej) => dupServer.listen(pagePort + 1, "127.0.0.1", res).on("error", rej));

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "mxedge-e2e-chromium-"));
let context;
const consoleLines = [];
try {
  // Preparation outside the browser: one user in one room.
  const password = `pw-${Date.now()}`;
  const user = `browser${process.pid}`;
  const reg = await register(base, user, password);
  const room = await req(base, "POST", "/_matrix/client/v3/createRoom", { token: reg.access_token, body: { name: "browser" } });
  expectStatus(room, 200, "createRoom");
  const cfg = {
    base,
    rlBase,
    user,
    password,
    roomId: room.json.room_id,
    bigBytes: Number(process.env.BIG_BYTES || 100 * 1024),
  };

  await steps.run("launch chromium", async () => {
    fs.accessSync(chromiumPath, fs.constants.X_OK);
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: CHROMIUM_FLAGS,
    });
    return context.browser()?.version() ?? "";
  });

  let page;
  await steps.run(
    "page loaded from another origin",
    async () => {
      page = await context.newPage();
      page.on("console", (m) => consoleLines.push(`console.${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e}`));
      const pageURL = `http://127.0.0.1:${pagePort}/`;
      await page.goto(pageURL);
      const origin = await page.evaluate(() => location.origin);
      if (origin === new URL(base).origin) throw new Error("page and homeserver share an origin");
      return `${origin} -> ${new URL(base).origin}`;
    },
    ["launch chromium"],
  );

  const check = (label, name, needs = ["page loaded from another origin"]) =>
    steps.run(
      label,
      async () => {
        const r = await page.evaluate(([n, c]) => window.runCheck(n, c), [name, cfg]);
        if (!r.ok) throw new Error(r.detail);
        return r.detail;
      },
      { needs },
    );

  await steps.run(
    "control: a duplicated Access-Control-Allow-Origin is refused by the browser",
    async () => {
      const r = await page.evaluate((u) => window.runCheck("versions", { base: u }), `http://127.0.0.1:${pagePort + 1}`);
      if (r.ok) throw new Error("the browser accepted '*, *': the CORS checks would prove nothing");
      return r.detail;
    },
    { needs: ["page loaded from another origin"] },
  );
  await check("client well-known", "wellKnown");
  await check("GET /versions", "versions");
  await check("JSON login POST (preflighted)", "login");
  await check("PUT send with Authorization (preflighted)", "send", ["JSON login POST (preflighted)"]);
  await check("401 body readable", "error401");
  await check("404 body readable", "error404", ["JSON login POST (preflighted)"]);
  if (direct) {
    console.log("SKIP browser 429 body and Retry-After readable (direct to Dendrite: no edge rate limit)");
    console.log("SKIP browser 413 body readable (direct to Dendrite: no edge body limit)");
  } else {
    await check("413 body readable", "tooLarge", ["JSON login POST (preflighted)"]);
    if (rlBase) {
      await check("429 body and Retry-After readable", "tooMany");
    } else {
      await steps.run("429 body and Retry-After readable", async () => {
        throw new Error("no rate-limited mxedge (RL_BASE_URL) was started: see its log above");
      });
    }
  }
  // The browser really preflighted, and mxedge answered the preflights itself (never forwarded):
  // read from mxedge's access log (MXEDGE_LOG), one JSON line per request.
  if (process.env.MXEDGE_LOG) {
    await steps.run(
      "preflights sent by Chromium answered by mxedge, not forwarded",
      async () => {
        const lines = fs.readFileSync(process.env.MXEDGE_LOG, "utf8").split("\n").filter((l) => l.startsWith("{"));
        const pre = lines.map((l) => JSON.parse(l)).filter((j) => j.method === "OPTIONS");
        if (pre.length < 2) throw new Error(`${pre.length} OPTIONS requests in mxedge's access log, want >= 2 (login, send)`);
        const bad = pre.filter((j) => j.status !== 204 || Number(j.upstream_ms ?? 0) !== 0);
        if (bad.length) throw new Error(`preflights not answered 204 locally: ${JSON.stringify(bad).slice(0, 400)}`);
        return `${pre.length} OPTIONS, all 204 with upstream_ms 0: ${pre.map((j) => j.path.replace(/\?.*/, "").split("/").slice(-3).join("/")).join(", ")}`;
      },
      { needs: ["PUT send with Authorization (preflighted)"] },
    );
  }
} catch (e) {
  await steps.run("browser part setup", async () => {
    throw e;
  });
} finally {
  if (context) await context.close().catch(() => {});
  server.close();
  dupServer.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
if (steps.failed.length && consoleLines.length) {
  console.log("--- browser console ---");
  for (const l of consoleLines) console.log(l);
}
steps.finish();
process.exit(process.exitCode);
