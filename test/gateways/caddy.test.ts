import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";
import { freePort } from "../helpers/nodes.ts";
import { GATEWAYS_DIR, GatewayProcess, installed, startUpstream } from "./gateway-helpers.ts";

/**
 * Debian's Caddy with the shipped Caddyfile (examples/gateways/Caddyfile), asking a real Latchkey
 * through forward_auth in front of an upstream that echoes what it received.
 */

const RUN = installed("caddy");
if (!RUN) console.warn("skipping the Caddy gateway tests: caddy is not installed (apt-get install caddy)");
const WEB3PAY = join(import.meta.dirname, "../../examples/catalogs/web3pay.json");

describe.runIf(RUN)("Caddy forward_auth in front of an API, with the shipped Caddyfile", () => {
  let h: Harness;
  let co: Company;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const caddy = new GatewayProcess();
  let base = "";
  let onramp: { id: string; key: string };

  beforeAll(async () => {
    h = await createHarness(BACKENDS[0] ?? "pglite", { catalogPath: WEB3PAY, trustedProxies: ["127.0.0.1"] });
    await h.app.listen({ port: 0, host: "127.0.0.1" });
    const address = h.app.server.address();
    const latchkeyPort = typeof address === "object" && address ? address.port : 0;
    co = await h.createCompany("Caddy Co");
    const gateway = await h.verifyKey("caddy");
    onramp = await h.createKey(co, { permissions: ["onramp:create", "onramp:read"] });
    upstream = await startUpstream();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    await caddy.start(
      "caddy",
      ["run", "--config", join(GATEWAYS_DIR, "Caddyfile"), "--adapter", "caddyfile"],
      port,
      {
        ...process.env,
        // Caddy keeps its state under these; a test's own directory, never the machine's.
        HOME: caddy.dir,
        XDG_CONFIG_HOME: caddy.dir,
        XDG_DATA_HOME: caddy.dir,
        LISTEN_ADDR: `127.0.0.1:${port}`,
        LATCHKEY_ADDR: `127.0.0.1:${latchkeyPort}`,
        UPSTREAM_ADDR: `127.0.0.1:${upstream.port}`,
        LATCHKEY_VERIFY_KEY: gateway,
      },
    );
  }, 60_000);

  afterAll(async () => {
    await caddy.stop();
    await upstream?.close();
    await h?.close();
  });

  const send = (method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
    fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });

  it("lets an allowed request through, and the API behind sees who the client is", async () => {
    const before = upstream.seen.length;
    const res = await send("POST", "/v1/onramp?ref=9", { "x-api-key": onramp.key }, '{"amount":10}');
    expect(res.status).toBe(200);
    const seen = upstream.seen[before];
    expect(seen?.url).toBe("/v1/onramp?ref=9");
    expect(seen?.headers).toMatchObject({
      "latchkey-key-id": onramp.id,
      "latchkey-company-id": co.id,
      "latchkey-credential-id": co.credentialId,
      "latchkey-environment": "live",
    });
  });

  it("refuses a route the key lacks with Latchkey's envelope, and the API never sees it", async () => {
    const before = upstream.seen.length;
    const res = await send("GET", "/v1/transactions/tx_1", { "x-api-key": onramp.key });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({
      success: false,
      error: { code: "INSUFFICIENT_PERMISSIONS", details: { required: ["transactions:read"] } },
    });
    expect(upstream.seen.length).toBe(before);
  });

  it("answers 401 with WWW-Authenticate for no key and for a revoked one", async () => {
    const revoked = await h.createKey(co, { permissions: ["onramp:create"] });
    expect((await h.call("DELETE", `/v1/keys/${revoked.id}`, { key: co.key })).statusCode).toBe(200);
    const clients: Record<string, string>[] = [{}, { "x-api-key": revoked.key }];
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
      expect(await res.json()).toMatchObject({ error: { code: "IP_NOT_ALLOWED" } });
    }
  });

  it("passes a 429 with Retry-After through to the client", async () => {
    const limited = await h.createKey(co, {
      permissions: ["onramp:create"],
      rate_limits: [{ limit: 1, window: "1m" }],
    });
    expect((await send("POST", "/v1/onramp", { "x-api-key": limited.key })).status).toBe(200);
    const over = await send("POST", "/v1/onramp", { "x-api-key": limited.key });
    expect(over.status).toBe(429);
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await over.json()).toMatchObject({ success: false, error: { code: "RATE_LIMITED" } });
  });

  it("does not let a client smuggle another route or forge the identity headers", async () => {
    const before = upstream.seen.length;
    const res = await send("DELETE", "/v1/keys/key_1", {
      "x-api-key": onramp.key,
      "x-original-method": "POST",
      "x-original-uri": "/v1/onramp",
    });
    expect(res.status).toBe(403);
    expect(upstream.seen.length).toBe(before);
    const password = await h.call("POST", `/v1/credentials/${co.credentialId}/password`, { key: co.key });
    const { username, password: secret } = password.json().data;
    // A Basic API user has no key id: the client's forged one must not reach the API either.
    const ok = await send("GET", "/v1/transactions", {
      authorization: `Basic ${Buffer.from(`${username}:${secret}`).toString("base64")}`,
      "latchkey-key-id": "key_forged",
      "latchkey-company-id": "co_forged",
      "latchkey-external-id": "forged",
      "latchkey-merchant-account-id": "ma_forged",
      "latchkey-credits-remaining": "999",
      "latchkey-meta": "e30",
    });
    expect(ok.status).toBe(200);
    expect(upstream.seen[before]?.headers["latchkey-company-id"]).toBe(co.id);
    expect(upstream.seen[before]?.headers["latchkey-key-id"] ?? "").toBe("");
    // Nor a merchant account: the key is company-level.
    for (const name of [
      "latchkey-external-id",
      "latchkey-credits-remaining",
      "latchkey-meta",
      "latchkey-merchant-account-id",
    ])
      expect(upstream.seen[before]?.headers[name] ?? "", name).toBe("");
  });
});
