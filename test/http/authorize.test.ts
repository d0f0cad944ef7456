import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCatalog } from "../../src/core/catalog.ts";
import { generateToken } from "../../src/core/key-format.ts";
import { AuthorizationService } from "../../src/services/authorization.ts";
import { PLATFORM_SCOPE } from "../../src/services/verification.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";

/**
 * Forward auth as each gateway asks it: nginx (X-Original-Method + X-Original-URI), Traefik and Caddy
 * (X-Forwarded-Method + X-Forwarded-Uri), Envoy (the client's method, its path after the prefix). The
 * routes come from the Web3pay example catalog, which carries the doc's table.
 */

const WEB3PAY = join(import.meta.dirname, "../../examples/catalogs/web3pay.json");
const GATEWAY = "10.9.0.1";

describe.each(BACKENDS)("/v1/authorize on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let other: Company;
  let gw: string;
  let onramp: { id: string; key: string };

  beforeAll(async () => {
    h = await createHarness(kind, { catalogPath: WEB3PAY, trustedProxies: ["10.9.0.0/24"] });
    co = await h.createCompany("Authorize Co");
    other = await h.createCompany("Other Co");
    gw = await h.verifyKey("nginx");
    onramp = await h.createKey(co, { permissions: ["onramp:create", "onramp:read"] });
  });
  afterAll(() => h.close());

  /** What nginx sends: a GET with the route in X-Original-*, the client's headers, its verify key. */
  const nginx = (
    method: string,
    uri: string,
    client: Record<string, string>,
    extra: Record<string, string> = {},
  ) =>
    h.call("GET", "/v1/authorize", {
      ip: GATEWAY,
      headers: {
        "latchkey-verify-key": gw,
        "x-original-method": method,
        "x-original-uri": uri,
        ...client,
        ...extra,
      },
    });
  const key = (k: string) => ({ "x-api-key": k });

  it("lets a request through with an empty 200 and the identity for the upstream (nginx's form)", async () => {
    const res = await nginx("POST", "/v1/onramp", key(onramp.key));
    expect(res.statusCode, res.body).toBe(200);
    expect(res.body).toBe("");
    expect(res.headers["content-length"]).toBe("0");
    expect(res.headers).toMatchObject({
      "latchkey-key-id": onramp.id,
      "latchkey-company-id": co.id,
      "latchkey-credential-id": co.credentialId,
      "latchkey-environment": "live",
    });
  });

  it("takes the route from X-Forwarded-Method + X-Forwarded-Uri (Traefik's and Caddy's form)", async () => {
    const ask = (method: string, uri: string) =>
      h.call("GET", "/v1/authorize", {
        ip: GATEWAY,
        headers: {
          "latchkey-verify-key": gw,
          "x-forwarded-method": method,
          "x-forwarded-uri": uri,
          ...key(onramp.key),
        },
      });
    expect((await ask("GET", "/v1/onramp/ses_42?expand=quote")).statusCode).toBe(200);
    const refused = await ask("GET", "/v1/transactions");
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({
      success: false,
      error: { code: "INSUFFICIENT_PERMISSIONS", details: { required: ["transactions:read"] } },
    });
    expect(refused.json().error.request_id).toMatch(/^req_/);
  });

  it("takes the client's own method and path under the prefix (Envoy's form), ignoring any body and route header", async () => {
    const envoy = (
      method: "POST" | "DELETE" | "HEAD" | "PUT",
      path: string,
      extra: Record<string, string> = {},
    ) =>
      h.call(method, `/v1/authorize${path}`, {
        ip: GATEWAY,
        headers: {
          "latchkey-verify-key": gw,
          ...key(onramp.key),
          "content-type": "application/json",
          ...extra,
        },
        ...(method === "POST" || method === "PUT" ? { payload: "{not json" } : {}),
      });
    expect((await envoy("POST", "/v1/onramp?ref=1")).statusCode).toBe(200);
    expect((await envoy("HEAD", "/v1/onramp/ses_1")).statusCode).toBe(200);
    const revoke = await envoy("DELETE", "/v1/keys/key_1");
    expect(revoke.statusCode).toBe(403);
    expect(revoke.json().error.details.required).toEqual(["keys:manage"]);
    // The path is the route; a header claiming another is the client's, and does not count.
    const smuggled = await envoy("DELETE", "/v1/keys/key_1", {
      "x-original-method": "POST",
      "x-original-uri": "/v1/onramp",
    });
    expect(smuggled.statusCode).toBe(403);
    expect((await envoy("PUT", "/v1/onramp")).json().error.code).toBe("ROUTE_NOT_MAPPED");
  });

  it("is only /v1/authorize and the paths under it", async () => {
    const res = await h.call("GET", "/v1/authorizefoo", {
      ip: GATEWAY,
      headers: { "latchkey-verify-key": gw },
    });
    expect(res.statusCode).toBe(404);
  });

  it("refuses a route the catalog does not map, and a path not in normal form, with ROUTE_NOT_MAPPED", async () => {
    for (const uri of [
      "/v1/other",
      "/v1/onramp/ses_1/cancel",
      "/v1/keys/../onramp",
      "/v1/onramp%2F..%2Fkeys",
    ]) {
      const res = await nginx("POST", uri, key(onramp.key));
      expect(res.statusCode, uri).toBe(403);
      expect(res.json().error.code, uri).toBe("ROUTE_NOT_MAPPED");
    }
  });

  it("refuses when the gateway says no route, half a route, or two different ones (a client adding the other pair)", async () => {
    const ask = (headers: Record<string, string>) =>
      h.call("GET", "/v1/authorize", {
        ip: GATEWAY,
        headers: { "latchkey-verify-key": gw, ...key(onramp.key), ...headers },
      });
    const claims: Record<string, string>[] = [
      {},
      { "x-original-uri": "/v1/onramp" },
      { "x-forwarded-method": "POST" },
      {
        "x-original-method": "POST",
        "x-original-uri": "/v1/onramp",
        "x-forwarded-method": "DELETE",
        "x-forwarded-uri": "/v1/keys/k",
      },
      {
        "x-original-method": "POST",
        "x-original-uri": "/v1/onramp",
        "x-forwarded-method": "POST",
        "x-forwarded-uri": "/v1/keys",
      },
    ];
    for (const headers of claims) {
      const res = await ask(headers);
      expect(res.statusCode, JSON.stringify(headers)).toBe(403);
      expect(res.json().error.code).toBe("ROUTE_UNKNOWN");
    }
    const agreeing = await ask({
      "x-original-method": "post",
      "x-original-uri": "/v1/onramp",
      "x-forwarded-method": "POST",
      "x-forwarded-uri": "/v1/onramp",
    });
    expect(agreeing.statusCode).toBe(200);
  });

  it("answers 401 with WWW-Authenticate for no key, an unknown, malformed or revoked one, all alike", async () => {
    const revoked = await h.createKey(co, { permissions: ["onramp:create"] });
    expect((await h.call("DELETE", `/v1/keys/${revoked.id}`, { key: co.key })).statusCode).toBe(200);
    const bodies = new Set<string>();
    const clients: Record<string, string>[] = [
      {},
      key(generateToken("lk", "live", "sk")),
      key("lk_live_sk_nonsense"),
      key(revoked.key),
      { authorization: `Bearer ${revoked.key}` },
    ];
    for (const client of clients) {
      const res = await nginx("POST", "/v1/onramp", client);
      expect(res.statusCode, JSON.stringify(client)).toBe(401);
      expect(res.headers["www-authenticate"]).toBe('Bearer realm="api"');
      const { code, message } = res.json().error;
      bodies.add(`${code} ${message}`);
    }
    expect([...bodies]).toEqual(["UNAUTHORIZED Missing or invalid API key."]);
  });

  it("reads the client's key from Authorization: Bearer, X-API-Key + X-API-Secret, and Basic", async () => {
    expect((await nginx("POST", "/v1/onramp", { authorization: `Bearer ${onramp.key}` })).statusCode).toBe(
      200,
    );
    const pair = await h.createKey(co, { permissions: ["onramp:create"], with_secret: true });
    expect(pair.secret).toBeDefined();
    expect((await nginx("POST", "/v1/onramp", key(pair.key))).statusCode).toBe(401);
    expect(
      (await nginx("POST", "/v1/onramp", { ...key(pair.key), "x-api-secret": pair.secret as string }))
        .statusCode,
    ).toBe(200);
    const password = await h.call("POST", `/v1/credentials/${co.credentialId}/password`, { key: co.key });
    expect(password.statusCode, password.body).toBe(200);
    const { username, password: secret } = password.json().data;
    const basic = { authorization: `Basic ${Buffer.from(`${username}:${secret}`).toString("base64")}` };
    const res = await nginx("GET", "/v1/transactions", basic);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers["latchkey-credential-id"]).toBe(co.credentialId);
    expect(res.headers["latchkey-key-id"]).toBe("");
  });

  it("needs the gateway's own verify key in Latchkey-Verify-Key, and keeps a company's verify key to its company", async () => {
    const noGateway = await h.call("GET", "/v1/authorize", {
      ip: GATEWAY,
      headers: { "x-original-method": "POST", "x-original-uri": "/v1/onramp", ...key(onramp.key) },
    });
    expect(noGateway.statusCode).toBe(401);
    expect(noGateway.json().error.message).toMatch(/Latchkey-Verify-Key/);
    expect(noGateway.headers["www-authenticate"]).toBeUndefined();
    const fake = await nginx("POST", "/v1/onramp", key(onramp.key), {
      "latchkey-verify-key": generateToken("lk", "live", "sk"),
    });
    expect(fake.statusCode).toBe(401);
    expect(fake.json().error.message).toMatch(/not a valid verify key/);
    // The client's key as the gateway's: it holds no keys:verify.
    const notVerifier = await nginx("POST", "/v1/onramp", key(onramp.key), {
      "latchkey-verify-key": onramp.key,
    });
    expect(notVerifier.statusCode).toBe(403);
    expect(notVerifier.json().error.code).toBe("INSUFFICIENT_PERMISSIONS");

    const companyGateway = await h.createKey(co, { permissions: ["keys:verify"] });
    const asCompany = (client: string) =>
      nginx("POST", "/v1/onramp", key(client), { "latchkey-verify-key": companyGateway.key });
    expect((await asCompany(onramp.key)).statusCode).toBe(200);
    const otherKey = await h.createKey(other, { permissions: ["onramp:create"] });
    expect((await asCompany(otherKey.key)).statusCode).toBe(401);
    // A test gateway key verifies test keys only.
    const testGateway = await h.createKey(co, { environment: "test", permissions: ["keys:verify"] });
    const testKey = await h.createKey(co, { environment: "test", permissions: ["onramp:create"] });
    const asTest = (client: string) =>
      nginx("POST", "/v1/onramp", key(client), { "latchkey-verify-key": testGateway.key });
    expect((await asTest(onramp.key)).statusCode).toBe(401);
    const test = await asTest(testKey.key);
    expect(test.statusCode).toBe(200);
    expect(test.headers["latchkey-environment"]).toBe("test");
  });

  it("refuses a key of the other environment when the gateway serves one (Latchkey-Environment)", async () => {
    const res = await nginx("POST", "/v1/onramp", key(onramp.key), { "latchkey-environment": "test" });
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe("ENVIRONMENT_MISMATCH");
    expect(
      (await nginx("POST", "/v1/onramp", key(onramp.key), { "latchkey-environment": "live" })).statusCode,
    ).toBe(200);
    const bad = await nginx("POST", "/v1/onramp", key(onramp.key), { "latchkey-environment": "staging" });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.field).toBe("latchkey-environment");
  });

  it("checks the client's address from X-Forwarded-For or X-Real-IP, only when the gateway is a trusted proxy", async () => {
    const pinned = await h.createKey(co, { permissions: ["onramp:create"], allowed_ips: ["203.0.113.7"] });
    const from = (headers: Record<string, string>, ip = GATEWAY) =>
      h.call("GET", "/v1/authorize", {
        ip,
        headers: {
          "latchkey-verify-key": gw,
          "x-original-method": "POST",
          "x-original-uri": "/v1/onramp",
          ...key(pinned.key),
          ...headers,
        },
      });
    expect((await from({ "x-forwarded-for": "203.0.113.7" })).statusCode).toBe(200);
    expect((await from({ "x-real-ip": "203.0.113.7" })).statusCode).toBe(200);
    const elsewhere = await from({ "x-forwarded-for": "198.51.100.1" });
    expect(elsewhere.statusCode).toBe(403);
    expect(elsewhere.json().error).toMatchObject({ code: "IP_NOT_ALLOWED", details: { ip: "198.51.100.1" } });
    // A peer that is not a trusted proxy cannot choose the address it is judged by.
    expect((await from({ "x-forwarded-for": "203.0.113.7" }, "192.0.2.9")).statusCode).toBe(403);
    expect((await from({ "x-real-ip": "203.0.113.7" }, "192.0.2.9")).statusCode).toBe(403);
  });

  it("passes the client's rate limit on, and answers 429 with Retry-After over it", async () => {
    const limited = await h.createKey(co, {
      permissions: ["onramp:create"],
      rate_limits: [{ limit: 2, window: "1m" }],
    });
    const first = await nginx("POST", "/v1/onramp", key(limited.key));
    expect(first.statusCode).toBe(200);
    expect(first.headers).toMatchObject({
      "ratelimit-limit": "2",
      "ratelimit-remaining": "1",
      "ratelimit-policy": "2;w=60",
    });
    expect((await nginx("POST", "/v1/onramp", key(limited.key))).statusCode).toBe(200);
    const over = await nginx("POST", "/v1/onramp", key(limited.key));
    expect(over.statusCode).toBe(429);
    expect(over.json().error.code).toBe("RATE_LIMITED");
    expect(Number(over.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(over.headers["ratelimit-remaining"]).toBe("0");
  });

  it("answers nginx (Latchkey-Gateway: nginx) every refusal as 401 or 403, with the real status and envelope in headers", async () => {
    const limited = await h.createKey(co, {
      permissions: ["onramp:create"],
      rate_limits: [{ limit: 1, window: "1m" }],
    });
    const asNginx = { "latchkey-gateway": "nginx" };
    expect((await nginx("POST", "/v1/onramp", key(limited.key), asNginx)).statusCode).toBe(200);
    const over = await nginx("POST", "/v1/onramp", key(limited.key), asNginx);
    expect(over.statusCode).toBe(403);
    expect(over.headers["latchkey-status"]).toBe("429");
    expect(Number(over.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(over.headers["latchkey-error"] as string)).toEqual(over.json());
    expect(over.json().error.code).toBe("RATE_LIMITED");
    const bad = await nginx("POST", "/v1/onramp", key(limited.key), {
      ...asNginx,
      "latchkey-environment": "x",
    });
    expect([bad.statusCode, bad.headers["latchkey-status"]]).toEqual([403, "400"]);
    const unknown = await nginx("POST", "/v1/onramp", key(generateToken("lk", "live", "sk")), asNginx);
    expect([unknown.statusCode, unknown.headers["latchkey-status"]]).toEqual([401, "401"]);
    // Other gateways pass any status on: no extra headers for them.
    const plain = await nginx("POST", "/v1/onramp", key(limited.key));
    expect(plain.statusCode).toBe(429);
    expect(plain.headers["latchkey-error"]).toBeUndefined();
  });

  it("counts each answer in latchkey_verifications_total, as /v1/verify's", async () => {
    const count = async (code: string) => {
      const res = await h.call("GET", "/metrics", { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const line = res.body
        .split("\n")
        .find((l) => l.startsWith(`latchkey_verifications_total{code="${code}"}`));
      return Number(line?.split(" ")[1] ?? 0);
    };
    const [valid, lacking] = [await count("VALID"), await count("INSUFFICIENT_PERMISSIONS")];
    expect((await nginx("POST", "/v1/onramp", key(onramp.key))).statusCode).toBe(200);
    expect((await nginx("GET", "/v1/transactions", key(onramp.key))).statusCode).toBe(403);
    expect(await count("VALID")).toBe(valid + 1);
    expect(await count("INSUFFICIENT_PERMISSIONS")).toBe(lacking + 1);
  });

  it("counts every answer in the key's usage, refusals as denied", async () => {
    const counted = await h.createKey(co, { permissions: ["onramp:create"] });
    expect((await nginx("POST", "/v1/onramp", key(counted.key))).statusCode).toBe(200);
    expect((await nginx("GET", "/v1/transactions", key(counted.key))).statusCode).toBe(403);
    expect((await nginx("GET", "/v1/unmapped", key(counted.key))).statusCode).toBe(403);
    await h.services.usage.flush();
    const usage = await h.call("GET", `/v1/keys/${counted.id}/usage?days=1`, { key: co.key });
    expect(usage.json().data.days).toEqual([expect.objectContaining({ requests: 1, denied: 2 })]);
  });

  it("lets any good key through a route the catalog does not map when it says unmapped_routes: allow", async () => {
    const catalog = loadCatalog({
      groups: [
        {
          id: "p",
          name: "P",
          entities: [{ id: "pay", name: "Pay", actions: [{ id: "read", routes: ["GET /p"] }] }],
        },
      ],
      unmapped_routes: "allow",
    });
    const service = new AuthorizationService({ catalog, verification: h.services.verification });
    const ask = (url: string, k = onramp.key) =>
      service.authorize({ key: k, method: "GET", url }, PLATFORM_SCOPE);
    expect((await ask("/anything")).refusal).toBeNull();
    expect((await ask("/p")).refusal).toMatchObject({ code: "INSUFFICIENT_PERMISSIONS" });
    expect((await ask("/a/../p")).refusal).toMatchObject({ code: "ROUTE_NOT_MAPPED" });
    expect((await ask("/anything", generateToken("lk", "live", "sk"))).refusal).toMatchObject({
      code: "UNAUTHORIZED",
    });
  });
});
