// The TLS part's client: the whole client scenario over HTTPS, the client trusting only CA_FILE
// (the system roots are not used) and resolving every name to 127.0.0.1, plus the TLS edge checks.
//
//   BASE_URL=https://matrix.e2e.test:16443 CA_FILE=root.pem [HTTP_URL=http://matrix.e2e.test:16480]
//   [HSTS=31536000] PREFIX=tls-acme node tls/run.mjs
import fs from "node:fs";
import https from "node:https";
import tls from "node:tls";
import { useTLS, req, expect, Steps } from "../client/lib.mjs";
import { scenario } from "../client/scenario.mjs";

const base = process.env.BASE_URL;
const caFile = process.env.CA_FILE;
const prefix = process.env.PREFIX || "tls";
const httpURL = process.env.HTTP_URL || "";
const hsts = process.env.HSTS || "";
if (!base || !caFile) {
  console.error("BASE_URL and CA_FILE are required");
  process.exit(2);
}
const ca = fs.readFileSync(caFile);
useTLS({ ca, resolve: "127.0.0.1" });
const u = new URL(base);

const steps = new Steps(prefix);

await steps.run("certificate for the name verifies against the issuing CA only, not the system roots", async () => {
  const info = await new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port: Number(u.port), servername: u.hostname, ca, ALPNProtocols: ["h2", "http/1.1"] }, () => {
      const c = s.getPeerCertificate();
      resolve({ subject: c.subject?.CN, san: c.subjectaltname, issuer: c.issuer?.CN, proto: s.getProtocol(), alpn: s.alpnProtocol });
      s.end();
    });
    s.on("error", reject);
  });
  // The same handshake with the system's roots must fail: nothing here is publicly trusted.
  const pub = await new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port: Number(u.port), servername: u.hostname }, () => {
      s.end();
      resolve("accepted");
    });
    s.on("error", (e) => resolve(e.code || String(e)));
  });
  expect(pub !== "accepted", "the certificate verified against the system roots too");
  expect(String(info.san).includes(`DNS:${u.hostname}`), `SAN ${info.san} lacks ${u.hostname}`);
  return `${info.proto}, ALPN ${info.alpn}, SAN ${info.san}, issuer ${info.issuer}; system roots: ${pub}`;
});

if (hsts) {
  await steps.run("Strict-Transport-Security on HTTPS responses", async () => {
    const r = await req(base, "GET", "/_matrix/client/versions");
    expect(r.status === 200, `status ${r.status}`);
    const h = r.headers["strict-transport-security"];
    expect(h && h.includes(`max-age=${hsts}`), `Strict-Transport-Security ${h}`);
    return h;
  });
}

if (httpURL) {
  await steps.run("plain HTTP redirects to HTTPS (308)", async () => {
    const r = await req(httpURL, "GET", "/_matrix/client/versions?x=1");
    expect(r.status === 308, `status ${r.status}, want 308`);
    const loc = r.headers.location ?? "";
    expect(loc.startsWith("https://") && loc.endsWith("/_matrix/client/versions?x=1"), `Location ${loc}`);
    return loc;
  });
}

const sub = await scenario(base, { prefix });
steps.failed.push(...sub.failed);
steps.passed.push(...sub.passed);
steps.finish();
process.exit(process.exitCode);
