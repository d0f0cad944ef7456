import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";
import { freePort } from "../helpers/nodes.ts";
import { fill, GATEWAYS_DIR, GatewayProcess, installed, startUpstream } from "./gateway-helpers.ts";

/**
 * Debian's nginx with the shipped configuration (examples/gateways/nginx.conf), asking a real Latchkey
 * through auth_request in front of an upstream that echoes what it received. The catalog is the
 * Web3pay example, which maps the doc's routes to permissions.
 */

const RUN = installed("nginx");
if (!RUN)
  console.warn("skipping the nginx gateway tests: nginx is not installed (apt-get install nginx-light)");
const WEB3PAY = join(import.meta.dirname, "../../examples/catalogs/web3pay.json");

describe.runIf(RUN)("nginx auth_request in front of an API, with the shipped configuration", () => {
  let h: Harness;
  let co: Company;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const nginx = new GatewayProcess();
  let base = "";
  let connections = 0;
  let onramp: { id: string; key: string };

  beforeAll(async () => {
    h = await createHarness(BACKENDS[0] ?? "pglite", { catalogPath: WEB3PAY, trustedProxies: ["127.0.0.1"] });
    await h.app.listen({ port: 0, host: "127.0.0.1" });
    h.app.server.on("connection", () => {
      connections++;
    });
    const address = h.app.server.address();
    const latchkeyPort = typeof address === "object" && address ? address.port : 0;
    co = await h.createCompany("Nginx Co");
    const gateway = await h.verifyKey("nginx");
    onramp = await h.createKey(co, { permissions: ["onramp:create", "onramp:read"] });
    upstream = await startUpstream();

    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const site = nginx.write(
      "latchkey.conf",
      fill(join(GATEWAYS_DIR, "nginx.conf"), {
        LISTEN_ADDR: `127.0.0.1:${port}`,
        LATCHKEY_ADDR: `127.0.0.1:${latchkeyPort}`,
        UPSTREAM_ADDR: `127.0.0.1:${upstream.port}`,
        LATCHKEY_VERIFY_KEY: gateway,
      }),
    );
    const dir = nginx.dir;
    const main = nginx.write(
      "nginx.conf",
      `user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${site};
}
`,
    );
    await nginx.start("nginx", ["-p", dir, "-c", main, "-g", "daemon off;"], port);
  }, 60_000);

  afterAll(async () => {
    await nginx.stop();
    await upstream?.close();
    await h?.close();
  });

  const send = (method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
    fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });

  it("lets an allowed request through, and the API behind sees who the client is", async () => {
    const before = upstream.seen.length;
    const res = await send(
      "POST",
      "/v1/onramp?ref=9",
      { "x-api-key": onramp.key, "content-type": "application/json" },
      '{"amount":10}',
    );
    expect(res.status).toBe(200);
    expect(((await res.json()) as { upstream: boolean }).upstream).toBe(true);
    const seen = upstream.seen[before];
    expect(seen?.method).toBe("POST");
    expect(seen?.url).toBe("/v1/onramp?ref=9");
    expect(seen?.headers).toMatchObject({
      "latchkey-key-id": onramp.id,
      "latchkey-company-id": co.id,
      "latchkey-credential-id": co.credentialId,
      "latchkey-environment": "live",
    });
  });

  it("refuses a route the key lacks, with Latchkey's envelope, and the API never sees it", async () => {
    const before = upstream.seen.length;
    const res = await send("GET", "/v1/transactions", { "x-api-key": onramp.key });
    expect(res.status).toBe(403);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    expect(await res.json()).toMatchObject({
      success: false,
      error: { code: "INSUFFICIENT_PERMISSIONS", details: { required: ["transactions:read"] } },
    });
    const unmapped = await send("DELETE", "/v1/onramp/ses_1", { "x-api-key": onramp.key });
    expect(unmapped.status).toBe(403);
    expect(((await unmapped.json()) as { error: { code: string } }).error.code).toBe("ROUTE_NOT_MAPPED");
    expect(upstream.seen.length).toBe(before);
  });

  it("answers 401 with WWW-Authenticate for no key and for a revoked one", async () => {
    const revoked = await h.createKey(co, { permissions: ["onramp:create"] });
    expect((await send("POST", "/v1/onramp", { "x-api-key": revoked.key })).status).toBe(200);
    expect((await h.call("DELETE", `/v1/keys/${revoked.id}`, { key: co.key })).statusCode).toBe(200);
    const clients: Record<string, string>[] = [
      {},
      { "x-api-key": revoked.key },
      { authorization: `Bearer ${revoked.key}` },
    ];
    for (const headers of clients) {
      const res = await send("POST", "/v1/onramp", headers);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="api"');
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("UNAUTHORIZED");
    }
  });

  it("checks a key's IP allowlist against the client's address, which a client cannot set in X-Forwarded-For", async () => {
    const here = await h.createKey(co, { permissions: ["onramp:create"], allowed_ips: ["127.0.0.1"] });
    const elsewhere = await h.createKey(co, { permissions: ["onramp:create"], allowed_ips: ["203.0.113.7"] });
    expect((await send("POST", "/v1/onramp", { "x-api-key": here.key })).status).toBe(200);
    const spoofs: Record<string, string>[] = [
      {},
      { "x-forwarded-for": "203.0.113.7" },
      { "x-real-ip": "203.0.113.7" },
    ];
    for (const spoof of spoofs) {
      const res = await send("POST", "/v1/onramp", { "x-api-key": elsewhere.key, ...spoof });
      expect(res.status, JSON.stringify(spoof)).toBe(403);
      expect(await res.json()).toMatchObject({
        error: { code: "IP_NOT_ALLOWED", details: { ip: "127.0.0.1" } },
      });
    }
  });

  it("carries a rate limit through: RateLimit-* on every answer, and 429 with Retry-After over it", async () => {
    const limited = await h.createKey(co, {
      permissions: ["onramp:create"],
      rate_limits: [{ limit: 2, window: "1m" }],
    });
    const first = await send("POST", "/v1/onramp", { "x-api-key": limited.key });
    expect(first.status).toBe(200);
    expect(first.headers.get("ratelimit-limit")).toBe("2");
    expect(first.headers.get("ratelimit-remaining")).toBe("1");
    expect((await send("POST", "/v1/onramp", { "x-api-key": limited.key })).status).toBe(200);
    const over = await send("POST", "/v1/onramp", { "x-api-key": limited.key });
    expect(over.status).toBe(429);
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(over.headers.get("ratelimit-remaining")).toBe("0");
    expect(await over.json()).toMatchObject({ success: false, error: { code: "RATE_LIMITED" } });
  });

  it("does not let a client smuggle another route or the identity headers past it", async () => {
    const before = upstream.seen.length;
    const res = await send("DELETE", "/v1/keys/key_1", {
      "x-api-key": onramp.key,
      "x-forwarded-method": "POST",
      "x-forwarded-uri": "/v1/onramp",
    });
    expect(res.status).toBe(403);
    expect(upstream.seen.length).toBe(before);
    const ok = await send("POST", "/v1/onramp", {
      "x-api-key": onramp.key,
      "latchkey-company-id": "co_forged",
      "latchkey-external-id": "forged",
      "latchkey-merchant-account-id": "ma_forged",
      "latchkey-credits-remaining": "999",
      "latchkey-meta": "e30",
    });
    expect(ok.status).toBe(200);
    expect(upstream.seen[before]?.headers["latchkey-company-id"]).toBe(co.id);
    // The key has no external id, credits or meta: what reaches the API is empty, never the client's.
    // Nor a merchant account: the key is company-level.
    for (const name of [
      "latchkey-external-id",
      "latchkey-credits-remaining",
      "latchkey-meta",
      "latchkey-merchant-account-id",
    ])
      expect(upstream.seen[before]?.headers[name] ?? "", name).toBe("");
  });

  it("keeps its connections to Latchkey open across requests (the empty 200)", async () => {
    const before = connections;
    for (let i = 0; i < 20; i++)
      expect((await send("GET", "/v1/onramp", { "x-api-key": onramp.key })).status).toBe(200);
    expect(connections - before).toBeLessThanOrEqual(1);
  });
});
