// A stand-in for one Synapse worker: forwards every request to TARGET unchanged (method, raw path and
// query, headers, body both ways) and records each one as a JSON line in LOG before the answer goes
// back: {relay, method, path, tok (first 16 hex of the SHA-256 of the bearer token, "" without one),
// status (the target's, or 502 when the target failed)}. The record is written synchronously before
// the response head, so whoever got an answer can read its record.
//
//   node workers/relay.mjs NAME PORT TARGET LOG
import http from "node:http";
import fs from "node:fs";
import crypto from "node:crypto";

const [name, port, target, logf] = process.argv.slice(2);
if (!logf) {
  console.error("usage: relay.mjs NAME PORT TARGET LOG");
  process.exit(2);
}
const t = new URL(target);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function tokenHash(h) {
  const m = /^Bearer (.+)$/.exec(h ?? "");
  return m ? crypto.createHash("sha256").update(m[1]).digest("hex").slice(0, 16) : "";
}

const server = http.createServer((req, res) => {
  const q = req.url.indexOf("?");
  const rec = { relay: name, method: req.method, path: q < 0 ? req.url : req.url.slice(0, q), tok: tokenHash(req.headers.authorization) };
  const record = (status) => fs.appendFileSync(logf, JSON.stringify({ ...rec, status }) + "\n");
  const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
    record(ur.statusCode);
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  up.on("error", (e) => {
    if (res.headersSent) return res.destroy(e);
    record(502);
    res.writeHead(502, { "content-type": "text/plain" });
    res.end(`relay ${name}: ${e.message}\n`);
  });
  req.pipe(up);
});
server.keepAliveTimeout = 65000;
server.listen(Number(port), "127.0.0.1", () => console.log(`relay ${name} listening on 127.0.0.1:${port} -> ${target}`));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
