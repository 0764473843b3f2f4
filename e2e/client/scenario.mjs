// The client scenario: a real Matrix client (matrix-js-sdk and raw HTTP) against BASE_URL.
// One PASS/FAIL line per step; exit code 1 when any step fails.
//
//   BASE_URL=http://127.0.0.1:16180 node client/scenario.mjs
import crypto from "node:crypto";
import { pathToFileURL } from "node:url";
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { req, sdkFetch, expect, expectStatus, sha256, sleep, enc, Steps, register, syncOnce, roomMessages } from "./lib.mjs";

logger.setLevel(process.env.SDK_LOG_LEVEL || "error");

/** The state keys that need escaping in a path: each must round-trip byte-exact. */
export const ODD_STATE_KEYS = [
  "a/b", // %2F
  "100%", // %25
  "what?", // %3F
  "#hash", // %23
  "..", // a whole raw `..` segment: must not be resolved by anyone on the way
  ".", // likewise `.`
  "with space", // %20
  "ünïcødé ☃ 🐈", // UTF-8
  "%2F already-escaped", // %252F
  "a/../b", // slashes and dots
];

/**
 * scenario runs every step against base. hooks.duringLongPoll(name) is awaited while a /sync long-poll
 * of the named step is open (the edge part signals mxedge there). Returns the Steps.
 */
export async function scenario(base, { prefix = "client", hooks = {}, retryConn = false } = {}) {
  const s = new Steps(prefix);
  const run = (name, fn, needs) => s.run(name, fn, { needs });
  const during = hooks.duringLongPoll ?? (async () => {});
  const R = retryConn ? retrying : req;
  const R2 = retryConn ? retryingFn : (fn) => fn();
  const ctx = {};
  const suffix = crypto.randomBytes(3).toString("hex");

  await run("versions", async () => {
    const r = await R(base, "GET", "/_matrix/client/versions");
    expectStatus(r, 200, "GET /versions");
    expect(Array.isArray(r.json?.versions) && r.json.versions.length > 0, "no versions array");
    return `versions ${r.json.versions.at(-1)}`;
  });

  await run("register two users (m.login.dummy)", async () => {
    ctx.alicePw = `pw-${crypto.randomBytes(8).toString("hex")}`;
    ctx.bobPw = `pw-${crypto.randomBytes(8).toString("hex")}`;
    ctx.aliceReg = await register(base, `alice${suffix}`, ctx.alicePw);
    ctx.bobReg = await register(base, `bob${suffix}`, ctx.bobPw);
    return `${ctx.aliceReg.user_id} ${ctx.bobReg.user_id}`;
  });

  await run(
    "login m.login.password (SDK)",
    async () => {
      const login = async (user, password) => {
        const c = sdk.createClient({ baseUrl: base, fetchFn: sdkFetch(base) });
        const r = await c.loginRequest({
          type: "m.login.password",
          identifier: { type: "m.id.user", user },
          password,
          initial_device_display_name: "mxedge e2e",
        });
        expect(r.access_token, "login answered without a token");
        return r;
      };
      ctx.alice = await login(`alice${suffix}`, ctx.alicePw);
      ctx.bob = await login(ctx.bobReg.user_id, ctx.bobPw); // full MXID form
      ctx.aliceC = sdk.createClient({
        baseUrl: base,
        fetchFn: sdkFetch(base),
        accessToken: ctx.alice.access_token,
        userId: ctx.alice.user_id,
        deviceId: ctx.alice.device_id,
      });
      const who = await ctx.aliceC.whoami();
      expect(who.user_id === ctx.alice.user_id, `whoami ${who.user_id}`);
      // a wrong password is refused (M_FORBIDDEN) without disturbing anything
      const bad = await req(base, "POST", "/_matrix/client/v3/login", {
        body: { type: "m.login.password", identifier: { type: "m.id.user", user: `bob${suffix}` }, password: "nope" },
      });
      expectStatus(bad, 403, "login with a wrong password");
    },
    ["register two users (m.login.dummy)"],
  );

  await run(
    "create room, invite, join",
    async () => {
      const { room_id: roomId } = await ctx.aliceC.createRoom({ name: "e2e", preset: "private_chat" });
      ctx.roomId = roomId;
      await ctx.aliceC.invite(roomId, ctx.bob.user_id);
      const bobC = sdk.createClient({
        baseUrl: base,
        fetchFn: sdkFetch(base),
        accessToken: ctx.bob.access_token,
        userId: ctx.bob.user_id,
        deviceId: ctx.bob.device_id,
      });
      await bobC.joinRoom(roomId);
      const m = await ctx.aliceC.getStateEvent(roomId, "m.room.member", ctx.bob.user_id);
      expect(m.membership === "join", `bob's membership is ${m.membership}`);
      return roomId;
    },
    ["login m.login.password (SDK)"],
  );

  await run(
    "20 messages in order via /sync long-polls (since, timeout 10 s)",
    async () => {
      const tok = ctx.bob.access_token;
      const filter = { room: { rooms: [ctx.roomId], timeline: { limit: 50 } }, presence: { types: [] } };
      let { next } = await R2(() => syncOnce(base, tok, { timeout: 0, filter }));
      const want = Array.from({ length: 20 }, (_, i) => `long-poll message ${i + 1}`);
      const got = [];
      let polls = 0;
      let wokenEarly = 0;
      const receiver = (async () => {
        const deadline = Date.now() + 120000;
        while (got.length < want.length && Date.now() < deadline) {
          const r = await R2(() => syncOnce(base, tok, { since: next, timeout: 10000, filter }));
          polls++;
          if (r.res.ms < 9000) wokenEarly++;
          got.push(...roomMessages(r.res.json, ctx.roomId));
          next = r.next;
        }
      })();
      const sender = (async () => {
        await sleep(300); // let the first long-poll park
        for (let i = 0; i < want.length; i++) {
          const txn = `lp-${suffix}-${i}`;
          const path = `/_matrix/client/v3/rooms/${enc(ctx.roomId)}/send/m.room.message/${txn}`;
          const r = await R(base, "PUT", path, { token: ctx.alice.access_token, body: { msgtype: "m.text", body: want[i] } });
          expectStatus(r, 200, `send ${i + 1}`);
          if (i === 9) await during("long-poll messages");
          await sleep(i % 5 === 0 ? 400 : 30);
        }
      })();
      await Promise.all([receiver, sender]);
      expect(JSON.stringify(got) === JSON.stringify(want), `got ${JSON.stringify(got)}, want the 20 in order`);
      expect(wokenEarly > 0, "no long-poll was woken by a new message");
      ctx.bobSince = next;
      return `${polls} polls, ${wokenEarly} woken by an event`;
    },
    ["create room, invite, join"],
  );

  await run(
    "20 messages in order via the SDK's startClient",
    async () => {
      const bobC = sdk.createClient({
        baseUrl: base,
        fetchFn: sdkFetch(base),
        accessToken: ctx.bob.access_token,
        userId: ctx.bob.user_id,
        deviceId: ctx.bob.device_id,
      });
      const got = [];
      const want = Array.from({ length: 20 }, (_, i) => `sdk message ${i + 1}`);
      const prepared = new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("SDK sync not PREPARED in 60 s")), 60000);
        bobC.on(sdk.ClientEvent.Sync, (state) => {
          if (state === "PREPARED" || state === "SYNCING") {
            clearTimeout(t);
            resolve();
          }
        });
      });
      const all = new Promise((resolve) => {
        bobC.on(sdk.RoomEvent.Timeline, (ev, room, toStart, removed, data) => {
          if (toStart || !data?.liveEvent || room?.roomId !== ctx.roomId) return;
          if (ev.getType() !== "m.room.message" || !ev.getContent().body?.startsWith("sdk message")) return;
          got.push(ev.getContent().body);
          if (got.length >= want.length) resolve();
        });
      });
      await bobC.startClient({ initialSyncLimit: 1, pollTimeout: 10000 });
      try {
        await prepared;
        for (let i = 0; i < want.length; i++) {
          await ctx.aliceC.sendEvent(ctx.roomId, "m.room.message", { msgtype: "m.text", body: want[i] });
          if (i === 9) await during("sdk messages");
        }
        await Promise.race([all, sleep(60000).then(() => Promise.reject(new Error(`only ${got.length} of 20 arrived in 60 s`)))]);
      } finally {
        bobC.stopClient();
      }
      expect(JSON.stringify(got) === JSON.stringify(want), `got ${JSON.stringify(got)}`);
    },
    ["create room, invite, join"],
  );

  await run(
    "state events with odd keys written and read back",
    async () => {
      const type = "org.mxedge.e2e.odd";
      const raw = [];
      for (const key of ODD_STATE_KEYS) {
        const path = `/_matrix/client/v3/rooms/${enc(ctx.roomId)}/state/${enc(type)}/${enc(key)}`;
        raw.push(path.slice(path.lastIndexOf("/") + 1));
        const put = await R(base, "PUT", path, { token: ctx.alice.access_token, body: { key } });
        expectStatus(put, 200, `PUT state key ${JSON.stringify(key)}`);
        const get = await R(base, "GET", path, { token: ctx.bob.access_token });
        expectStatus(get, 200, `GET state key ${JSON.stringify(key)}`);
        expect(get.json?.key === key, `state key ${JSON.stringify(key)} read back ${JSON.stringify(get.json)}`);
      }
      // The full state holds exactly these keys, unaltered.
      const all = await R(base, "GET", `/_matrix/client/v3/rooms/${enc(ctx.roomId)}/state`, { token: ctx.bob.access_token });
      expectStatus(all, 200, "GET state");
      const keys = all.json.filter((e) => e.type === type).map((e) => e.state_key).sort();
      expect(JSON.stringify(keys) === JSON.stringify([...ODD_STATE_KEYS].sort()), `room state holds ${JSON.stringify(keys)}`);
      for (const e of all.json.filter((e) => e.type === type)) {
        expect(e.content.key === e.state_key, `state_key ${JSON.stringify(e.state_key)} holds ${JSON.stringify(e.content)}`);
      }
      return `raw segments ${raw.join(" ")}`;
    },
    ["create room, invite, join"],
  );

  await run(
    "typing notification seen by the other user",
    async () => {
      const tok = ctx.bob.access_token;
      const filter = { room: { rooms: [ctx.roomId], timeline: { limit: 0 } }, presence: { types: [] } };
      let { next } = await syncOnce(base, tok, { timeout: 0, filter });
      const path = `/_matrix/client/v3/rooms/${enc(ctx.roomId)}/typing/${enc(ctx.alice.user_id)}`;
      const typingUsers = (j) =>
        (j?.rooms?.join?.[ctx.roomId]?.ephemeral?.events ?? []).filter((e) => e.type === "m.typing").map((e) => e.content.user_ids);
      const waitFor = async (pred) => {
        const deadline = Date.now() + 30000;
        while (Date.now() < deadline) {
          const r = await syncOnce(base, tok, { since: next, timeout: 10000, filter });
          next = r.next;
          const t = typingUsers(r.res.json);
          if (t.length && pred(t.at(-1))) return;
        }
        throw new Error("typing state never arrived");
      };
      const on = waitFor((u) => u.includes(ctx.alice.user_id));
      await sleep(200);
      expectStatus(await R(base, "PUT", path, { token: ctx.alice.access_token, body: { typing: true, timeout: 30000 } }), 200, "typing on");
      await on;
      const off = waitFor((u) => !u.includes(ctx.alice.user_id));
      await sleep(200);
      expectStatus(await R(base, "PUT", path, { token: ctx.alice.access_token, body: { typing: false } }), 200, "typing off");
      await off;
      ctx.typingSince = next;
    },
    ["create room, invite, join"],
  );

  await run(
    "idle /sync held for its whole 10 s timeout",
    async () => {
      const tok = ctx.bob.access_token;
      const filter = { room: { rooms: [ctx.roomId] }, presence: { types: [] }, account_data: { types: [] } };
      // catch up first, so that nothing is pending
      let { next } = await syncOnce(base, tok, { since: ctx.typingSince, timeout: 0, filter });
      const holder = syncOnce(base, tok, { since: next, timeout: 10000, filter });
      holder.catch(() => {}); // awaited below; must not count as unhandled while the hook runs
      await during("idle sync");
      const r = await holder;
      const events = r.res.json?.rooms?.join?.[ctx.roomId]?.timeline?.events ?? [];
      expect(events.length === 0, `idle sync returned events ${JSON.stringify(events).slice(0, 200)}`);
      expect(r.res.ms >= 9500, `idle sync answered after ${r.res.ms} ms, want >= 10000`);
      return `held ${r.res.ms} ms`;
    },
    ["login m.login.password (SDK)", "create room, invite, join"],
  );

  await run(
    "5 MiB media upload and authenticated download, SHA-256 equal",
    async () => {
      const data = crypto.randomBytes(5 * 1024 * 1024);
      const up = await R(base, "POST", "/_matrix/media/v3/upload?filename=e2e.bin", {
        token: ctx.alice.access_token,
        body: data,
      });
      expectStatus(up, 200, "upload");
      const m = /^mxc:\/\/([^/]+)\/(.+)$/.exec(up.json.content_uri ?? "");
      expect(m, `content_uri ${up.json.content_uri}`);
      const dl = `/_matrix/client/v1/media/download/${enc(m[1])}/${enc(m[2])}`;
      const down = await R(base, "GET", dl, { token: ctx.bob.access_token });
      expectStatus(down, 200, "authenticated download");
      expect(down.body.length === data.length, `downloaded ${down.body.length} bytes, want ${data.length}`);
      expect(sha256(down.body) === sha256(data), "SHA-256 differs");
      const anon = await R(base, "GET", dl);
      expect(anon.status === 401, `download without a token: got ${anon.status}, want 401`);
      return `sha256 ${sha256(data).slice(0, 16)}…`;
    },
    ["login m.login.password (SDK)"],
  );

  await run(
    "logout, old token rejected with M_UNKNOWN_TOKEN",
    async () => {
      await ctx.aliceC.logout(true);
      const r = await R(base, "GET", "/_matrix/client/v3/account/whoami", { token: ctx.alice.access_token });
      expectStatus(r, 401, "whoami with the old token");
      expect(r.json?.errcode === "M_UNKNOWN_TOKEN", `errcode ${r.json?.errcode}`);
    },
    ["login m.login.password (SDK)"],
  );

  return s;
}

/** retrying is req that retries refused/reset connections for 30 s (mxedge restarting). */
function retrying(...args) {
  return retryingFn(() => req(...args));
}

/** retried counts the requests retryingFn repeated, by cause (reported by the edge part). */
export const retried = { refused: 0, reset: 0 };

/** retryingFn retries fn on refused/reset connections for 30 s. */
async function retryingFn(fn) {
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!/ECONNREFUSED|ECONNRESET|socket hang up/.test(String(e)) || Date.now() > deadline) throw e;
      if (/ECONNREFUSED/.test(String(e))) retried.refused++;
      else retried.reset++;
      await sleep(200);
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const base = process.env.BASE_URL;
  if (!base) {
    console.error("BASE_URL is required");
    process.exit(2);
  }
  const s = await scenario(base, { prefix: process.env.PREFIX || "client" });
  s.finish();
  process.exit(process.exitCode);
}
