// Shared helpers for the e2e client scenarios: raw HTTP with byte-exact paths, step reporting.
import http from "node:http";
import https from "node:https";
import crypto from "node:crypto";
import { Readable } from "node:stream";

// Keep-alive agents, like a real client: long-polls and sends share pooled connections.
export const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
let tlsOpts = {};
let lookupOpts = {};
let tlsAgent = new https.Agent({ keepAlive: true, maxSockets: 16 });

/**
 * useTLS sets how https:// bases are reached: ca (PEM; the only roots trusted, the system's are not)
 * and resolve (every host name is resolved to this address, e.g. "127.0.0.1", as /etc/hosts would).
 */
export function useTLS({ ca, resolve }) {
  tlsOpts = { ca };
  if (resolve) {
    tlsOpts.lookup = (host, opts, cb) => {
      if (opts && opts.all) cb(null, [{ address: resolve, family: 4 }]);
      else cb(null, resolve, 4);
    };
  }
  lookupOpts = tlsOpts.lookup ? { lookup: tlsOpts.lookup } : {};
  tlsAgent = new https.Agent({ keepAlive: true, maxSockets: 16, ...tlsOpts });
}

/** sdkFetch is the fetchFn for an SDK client of base: Node's own fetch for http, nodeFetch for https. */
export const sdkFetch = (base) => (base.startsWith("https:") ? nodeFetch : undefined);

/**
 * nodeFetch is a fetch for matrix-js-sdk (createClient's fetchFn) over the same transport as req:
 * it honours useTLS, so the SDK too trusts only the test CA.
 */
export function nodeFetch(input, init = {}) {
  const url = new URL(input instanceof URL ? input.href : typeof input === "string" ? input : input.url);
  const isTLS = url.protocol === "https:";
  const headers = {};
  new Headers(init.headers ?? {}).forEach((v, k) => (headers[k] = v));
  let body = init.body;
  if (typeof body === "string") body = Buffer.from(body);
  else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) body = Buffer.from(body);
  else if (body && typeof body.arrayBuffer === "function") return body.arrayBuffer().then((b) => nodeFetch(input, { ...init, body: Buffer.from(b) }));
  if (body) headers["content-length"] = String(body.length);
  return new Promise((resolve, reject) => {
    const r = (isTLS ? https : http).request(
      url,
      { method: init.method ?? "GET", headers, agent: isTLS ? tlsAgent : agent, signal: init.signal },
      (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) for (const x of [].concat(v)) h.append(k, x);
        const noBody = res.statusCode === 204 || res.statusCode === 304 || init.method === "HEAD";
        resolve(new Response(noBody ? null : Readable.toWeb(res), { status: res.statusCode, statusText: res.statusMessage, headers: h }));
      },
    );
    r.on("error", (e) => reject(init.signal?.aborted ? init.signal.reason ?? e : new TypeError(`fetch failed: ${e.message}`, { cause: e })));
    r.end(body);
  });
}

/**
 * req sends one request with the path exactly as given (node:http does not normalise `..`, unlike
 * fetch and browsers). body: object (sent as JSON), Buffer, or undefined.
 * Returns {status, headers, rawHeaders (as received, repeated fields kept apart), body: Buffer, json, ms}.
 */
export function req(base, method, path, { token, body, headers = {}, localAddress, timeoutMs = 120000 } = {}) {
  const u = new URL(base);
  let payload;
  const h = { ...headers };
  if (body !== undefined) {
    if (Buffer.isBuffer(body)) {
      payload = body;
      h["content-type"] ??= "application/octet-stream";
    } else {
      payload = Buffer.from(JSON.stringify(body));
      h["content-type"] ??= "application/json";
    }
    h["content-length"] = String(payload.length);
  }
  if (token) h.authorization = `Bearer ${token}`;
  const started = Date.now();
  const isTLS = u.protocol === "https:";
  return new Promise((resolve, reject) => {
    const r = (isTLS ? https : http).request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers: h,
        agent: localAddress ? false : isTLS ? tlsAgent : agent,
        localAddress,
        timeout: timeoutMs,
        ...(isTLS ? tlsOpts : lookupOpts),
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const buf = Buffer.concat(chunks);
          let json;
          try {
            json = JSON.parse(buf.toString("utf8"));
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: buf, json, ms: Date.now() - started });
        });
      },
    );
    r.on("timeout", () => r.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
    r.on("error", reject);
    r.end(payload);
  });
}

/** expect throws unless cond holds. */
export function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** expectStatus throws with the body when the status is not want. */
export function expectStatus(res, want, what) {
  if (res.status !== want) {
    throw new Error(`${what}: got HTTP ${res.status}, want ${want}: ${res.body.toString("utf8").slice(0, 300)}`);
  }
}

export const sha256 = (b) => crypto.createHash("sha256").update(b).digest("hex");
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const enc = encodeURIComponent;

/** Steps prints one PASS/FAIL line per step and remembers failures. */
export class Steps {
  constructor(prefix) {
    this.prefix = prefix;
    this.failed = [];
    this.passed = [];
  }
  /** run executes fn unless a step it needs failed; returns fn's value or undefined. */
  async run(name, fn, { needs = [] } = {}) {
    const missing = needs.filter((n) => !this.passed.includes(n));
    const t0 = Date.now();
    if (missing.length) {
      this.failed.push(name);
      console.log(`FAIL ${this.prefix} ${name} (not run: needs ${missing.join(", ")})`);
      return undefined;
    }
    try {
      const v = await fn();
      this.passed.push(name);
      const note = typeof v === "string" ? ` ${v}` : v && typeof v.note === "string" ? ` ${v.note}` : "";
      console.log(`PASS ${this.prefix} ${name} (${Date.now() - t0} ms)${note}`);
      return v;
    } catch (e) {
      this.failed.push(name);
      console.log(`FAIL ${this.prefix} ${name} (${Date.now() - t0} ms): ${e && e.stack ? e.stack : e}`);
      return undefined;
    }
  }
  /** finish prints the summary and sets the exit code. */
  finish() {
    const n = this.passed.length + this.failed.length;
    console.log(`${this.failed.length ? "FAIL" : "PASS"} ${this.prefix}: ${this.passed.length}/${n} steps passed`);
    process.exitCode = this.failed.length ? 1 : 0;
  }
}

/** register creates a user through user-interactive auth with m.login.dummy. */
export async function register(base, username, password) {
  const path = "/_matrix/client/v3/register";
  const first = await req(base, "POST", path, { body: { username, password } });
  expectStatus(first, 401, "register stage 1");
  const flows = (first.json?.flows ?? []).map((f) => (f.stages ?? []).join(","));
  expect(flows.includes("m.login.dummy"), `no m.login.dummy flow offered: ${JSON.stringify(first.json)}`);
  const second = await req(base, "POST", path, {
    body: { username, password, auth: { type: "m.login.dummy", session: first.json.session } },
  });
  expectStatus(second, 200, "register stage 2");
  expect(second.json.access_token && second.json.user_id, "register answered without a token");
  return second.json;
}

/** syncOnce is one /sync with the given since and timeout (ms); returns {res, next}. */
export async function syncOnce(base, token, { since, timeout = 10000, filter } = {}) {
  const q = new URLSearchParams({ timeout: String(timeout) });
  if (since) q.set("since", since);
  if (filter) q.set("filter", typeof filter === "string" ? filter : JSON.stringify(filter));
  const res = await req(base, "GET", `/_matrix/client/v3/sync?${q}`, { token, timeoutMs: timeout + 60000 });
  expectStatus(res, 200, "sync");
  return { res, next: res.json.next_batch };
}

/** roomMessages extracts m.room.message bodies of one room from a sync response, in order. */
export function roomMessages(syncJson, roomId) {
  const tl = syncJson?.rooms?.join?.[roomId]?.timeline?.events ?? [];
  return tl.filter((e) => e.type === "m.room.message").map((e) => e.content.body);
}

// The flags every part launches Chromium with: headless, and no network of its own (no QUIC,
// background fetches, component updates or sync).
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
