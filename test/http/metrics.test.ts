import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken, parseToken } from "../../src/core/key-format.ts";
import { buildApp } from "../../src/http/app.ts";
import type { App } from "../../src/http/types.ts";
import type { Running } from "../../src/server.ts";
import type { Services } from "../../src/services/services.ts";
import { BACKENDS, createTestSchema } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";
import { freePort, startNode } from "../helpers/nodes.ts";

/**
 * GET /metrics: the Prometheus exposition, behind the platform token. Verifications are counted by
 * outcome on the route (inject never meets the fast path) and on the fast path (real sockets), request
 * durations by route pattern, and what the layers below count (cache, rate limits, usage backlog,
 * store and Redis errors, bus lag) is read when scraped. No label names a key, an id or an address.
 */

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** The value of the sample `name` whose labels are exactly `labels`; undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries(
      [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    const wanted = Object.entries(labels);
    if (wanted.length === Object.keys(got).length && wanted.every(([k, v]) => got[k] === v))
      return Number(m[3]);
  }
  return undefined;
}

async function scrape(app: App): Promise<string> {
  const res = await app.inject({ method: "GET", url: "/metrics", headers: admin });
  expect(res.statusCode, res.body).toBe(200);
  return res.body;
}

/** A verification over a real socket: the fast path answers it. */
function verifyOnSocket(
  port: number,
  caller: string,
  body: unknown,
): Promise<{ status: number; code: string }> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/v1/verify",
        agent: false,
        headers: {
          "content-type": "application/json",
          "content-length": payload.length,
          "x-api-key": caller,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          resolve({ status: res.statusCode ?? 0, code: parsed.data?.code ?? parsed.error?.code });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

describe("GET /metrics access", () => {
  let h: Harness;
  let bare: App;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness("pglite");
    bare = await buildApp({ services: h.services, platformTokens: [], logger: false });
    co = await h.createCompany("Metrics Access");
  });
  afterAll(async () => {
    await bare?.close();
    await h?.close();
  });

  it("answers 200 in the text format with the platform token", async () => {
    const res = await h.call("GET", "/metrics", { headers: admin });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.body).toContain("# TYPE latchkey_verifications_total counter");
    // prom-client's process metrics come along.
    expect(res.body).toContain("# TYPE process_cpu_user_seconds_total counter");
  });

  it("refuses every other caller with 401 and the envelope", async () => {
    const callers: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong-token" },
      { authorization: `Bearer ${ADMIN_TOKEN}x` },
      { "x-api-key": co.key },
      { authorization: `Bearer ${co.key}` },
    ];
    for (const headers of callers) {
      const res = await h.call("GET", "/metrics", { headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(401);
      expect(res.json()).toMatchObject({ success: false, error: { code: "UNAUTHORIZED" } });
    }
  });

  it("answers 404 like an unknown path when no platform token is configured, token or not", async () => {
    for (const headers of [{}, admin]) {
      const res = await bare.inject({ method: "GET", url: "/metrics", headers });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ success: false, error: { code: "ROUTE_NOT_FOUND" } });
    }
  });
});

describe.each(BACKENDS)("what /metrics counts on %s", (kind) => {
  let h: Harness;
  /** An app of its own, listening: the fast path answers its socket requests, Fastify its injects. */
  let app: App;
  let port: number;
  let reachedFastify = 0;
  let co: Company;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Metrics Company");
    app = await buildApp({ services: h.services, platformTokens: [ADMIN_TOKEN], logger: false });
    app.addHook("onRequest", (_request, _reply, done) => {
      reachedFastify++;
      done();
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    port = (app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  const verifyByRoute = async (body: unknown) => {
    const res = await app.inject({
      method: "POST",
      url: "/v1/verify",
      headers: { "x-api-key": co.key, "content-type": "application/json" },
      payload: JSON.stringify(body),
      remoteAddress: "127.0.0.1",
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data.code as string;
  };

  it("counts verifications by outcome on the route and on the fast path, with no key, id or address in it", async () => {
    const valid = await h.createKey(co, { permissions: ["payin:read"], with_secret: true });
    const revoked = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await h.call("DELETE", `/v1/keys/${revoked.id}`, { key: co.key })).statusCode).toBe(200);
    const unknown = generateToken("lk", "live", "sk");
    const questions: [string, unknown][] = [
      ["VALID", { key: valid.key, secret: valid.secret }],
      ["NOT_FOUND", { key: unknown }],
      ["REVOKED", { key: revoked.key }],
    ];
    const before = await scrape(app);
    const count = (text: string, code: string) => sample(text, "latchkey_verifications_total", { code }) ?? 0;
    const verifyBucket = (text: string) =>
      sample(text, "latchkey_http_request_duration_seconds_bucket", {
        le: "+Inf",
        route: "/v1/verify",
        method: "POST",
        status_class: "2xx",
      }) ?? 0;

    // Once each on the route, twice each on the fast path: the totals tell the two apart.
    for (const [code, body] of questions) expect(await verifyByRoute(body)).toBe(code);
    const reached = reachedFastify;
    for (let i = 0; i < 2; i++)
      for (const [code, body] of questions)
        expect(await verifyOnSocket(port, co.key, body)).toEqual({ status: 200, code });
    expect(reachedFastify, "the socket requests were the fast path's").toBe(reached);

    const after = await scrape(app);
    for (const [code] of questions) expect(count(after, code) - count(before, code), code).toBe(3);
    // Nine verify answers in the duration histogram, each with its buckets.
    expect(verifyBucket(after) - verifyBucket(before)).toBe(9);
    expect(
      sample(after, "latchkey_http_request_duration_seconds_bucket", {
        le: "0.005",
        route: "/v1/verify",
        method: "POST",
        status_class: "2xx",
      }),
    ).toBeDefined();

    for (const secret of [
      valid.id,
      valid.key,
      // The displayed prefix (`lk_live_sk_a1b2c3d4`), as lists show it.
      parseToken(valid.key)?.prefix as string,
      parseToken(revoked.key)?.prefix as string,
      valid.secret as string,
      revoked.id,
      revoked.key,
      unknown,
      co.id,
      co.key,
      co.keyId,
      co.credentialId,
      "127.0.0.1",
    ])
      expect(after).not.toContain(secret);
  });

  it("labels requests with the route's pattern, never its URL, and unknown routes with one label", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await h.call("GET", `/v1/keys/${key.id}`, { key: co.key })).statusCode).toBe(200);
    expect(
      (await app.inject({ method: "GET", url: `/v1/keys/${key.id}`, headers: { "x-api-key": co.key } }))
        .statusCode,
    ).toBe(200);
    // (A GET of an unknown path is the console's, whose pattern is `/*`.)
    expect((await app.inject({ method: "POST", url: `/v1/nothing/${key.id}` })).statusCode).toBe(404);
    const text = await scrape(app);
    const labels = { route: "/v1/keys/:id", method: "GET", status_class: "2xx" };
    expect(sample(text, "latchkey_http_request_duration_seconds_count", labels)).toBe(1);
    expect(
      sample(text, "latchkey_http_request_duration_seconds_count", {
        route: "unmatched",
        method: "POST",
        status_class: "4xx",
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(text).not.toContain(key.id);
  });

  it("reads the cache's hits, misses and size, and the usage backlog, when scraped", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    await h.services.usage.flush();
    const t0 = await scrape(app);
    const entries = (text: string) => sample(text, "latchkey_verification_cache_entries");
    const hits = (text: string) => sample(text, "latchkey_verification_cache_hits_total") ?? 0;
    const misses = (text: string) => sample(text, "latchkey_verification_cache_misses_total") ?? 0;
    expect(sample(t0, "latchkey_usage_flush_backlog")).toBe(0);

    // The first verification loads and caches the key; the second is a hit. (The caller's own key is
    // cached already, and each call's authentication of it is one more hit.)
    expect(await verifyOnSocket(port, co.key, { key: key.key })).toEqual({ status: 200, code: "VALID" });
    expect(await verifyOnSocket(port, co.key, { key: key.key })).toEqual({ status: 200, code: "VALID" });
    const t1 = await scrape(app);
    expect(entries(t1)).toBe((entries(t0) as number) + 1);
    expect(misses(t1) - misses(t0)).toBe(1);
    expect(hits(t1) - hits(t0)).toBe(3);
    // Usage is gathered for both keys: the one verified and the caller, whose calls count too.
    expect(sample(t1, "latchkey_usage_flush_backlog")).toBe(2);

    // Revoked, the key leaves the cache; flushed, the backlog is gone.
    expect((await h.call("DELETE", `/v1/keys/${key.id}`, { key: co.key })).statusCode).toBe(200);
    await h.services.usage.flush();
    const t2 = await scrape(app);
    expect(entries(t2)).toBe(entries(t0));
    expect(sample(t2, "latchkey_usage_flush_backlog")).toBe(0);
  });

  it("counts rate-limit decisions, allowed and refused", async () => {
    const limited = await h.createKey(co, {
      permissions: ["payin:read"],
      rate_limits: [{ limit: 2, window: "1h" }],
    });
    const t0 = await scrape(app);
    const decisions = (text: string, result: string) =>
      sample(text, "latchkey_rate_limit_decisions_total", { result }) ?? 0;
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await verifyOnSocket(port, co.key, { key: limited.key })).code);
    expect(codes).toEqual(["VALID", "VALID", "RATE_LIMITED"]);
    const t1 = await scrape(app);
    expect(decisions(t1, "allowed") - decisions(t0, "allowed")).toBe(2);
    expect(decisions(t1, "refused") - decisions(t0, "refused")).toBe(1);
  });
});

describe("store errors in /metrics", () => {
  let h: Harness;
  let app: App;
  let port: number;
  let co: Company;

  beforeAll(async () => {
    h = await createHarness("pglite");
    co = await h.createCompany("Store Errors");
    // The services as they are, but a store that refuses every connection behind verification.
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    const verification = Object.create(h.services.verification);
    verification.verify = async () => {
      throw refused;
    };
    const services: Services = { ...h.services, verification };
    app = await buildApp({
      services,
      platformTokens: [ADMIN_TOKEN],
      logger: false,
      ready: async () => {
        throw refused;
      },
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    port = (app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  it("counts the 503 STORE_UNAVAILABLE answers of the fast path, the route and readiness", async () => {
    const unavailable = (text: string) => sample(text, "latchkey_store_unavailable_total") ?? 0;
    const t0 = await scrape(app);
    const key = generateToken("lk", "live", "sk");
    expect(await verifyOnSocket(port, co.key, { key })).toEqual({ status: 503, code: "STORE_UNAVAILABLE" });
    const route = await app.inject({
      method: "POST",
      url: "/v1/verify",
      headers: { "x-api-key": co.key, "content-type": "application/json" },
      payload: JSON.stringify({ key }),
    });
    expect(route.statusCode).toBe(503);
    expect((await app.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(503);
    const t1 = await scrape(app);
    expect(unavailable(t1) - unavailable(t0)).toBe(3);
    expect(
      sample(t1, "latchkey_http_request_duration_seconds_count", {
        route: "/v1/verify",
        method: "POST",
        status_class: "5xx",
      }),
    ).toBe(2);
  });
});

describe("cluster metrics: two nodes on one PostgreSQL and the shared Redis", () => {
  let schema: Awaited<ReturnType<typeof createTestSchema>>;
  const nodes: Running[] = [];
  let a: Running;
  let b: Running;

  beforeAll(async () => {
    schema = await createTestSchema();
    const prefix = `lk-metrics-${randomBytes(4).toString("hex")}:`;
    a = await startNode({ databaseUrl: schema.url, prefix });
    nodes.push(a);
    b = await startNode({ databaseUrl: schema.url, prefix });
    nodes.push(b);
  }, 30_000);
  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await schema?.drop();
  });

  const lagCount = async (node: Running) =>
    sample(await scrape(node.app), "latchkey_bus_lag_seconds_count") ?? 0;

  async function json(
    node: Running,
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: unknown,
  ) {
    const res = await fetch(`${node.url}${path}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: JSON from the server, checked by each test
    return { status: res.status, body: (await res.json()) as { data: Record<string, any> } };
  }

  it("observes bus lag on the node that receives a revocation, not on the one that sent it", async () => {
    const company = await json(a, "POST", "/v1/admin/companies", admin, {
      name: "Metrics Cluster",
      owner_email: `o-${randomBytes(4).toString("hex")}@example.test`,
    });
    expect(company.status).toBe(201);
    const managementKey = company.body.data.management_key.key as string;
    const asKey = { "x-api-key": managementKey };
    const created = await json(a, "POST", "/v1/keys", asKey, {
      name: "Revoked across",
      environment: "live",
      permissions: ["payin:read"],
    });
    expect(created.status).toBe(201);
    const key = created.body.data;
    // Node b caches the key.
    expect((await json(b, "POST", "/v1/verify", asKey, { key: key.key })).body.data.code).toBe("VALID");
    const sentBefore = await lagCount(a);
    const heardBefore = await lagCount(b);

    expect((await json(a, "DELETE", `/v1/keys/${key.id}`, asKey)).status).toBe(200);
    // b hears the revocation over the bus (its cache would keep the key for 10 s otherwise)...
    for (let i = 0; ; i++) {
      const verdict = await json(b, "POST", "/v1/verify", asKey, { key: key.key });
      if (verdict.body.data.code === "REVOKED") break;
      if (i > 200) throw new Error("node b never heard of the revocation");
      await new Promise((r) => setTimeout(r, 10));
    }
    // ...and has observed how long it took; a, which sent it, has not.
    expect(await lagCount(b)).toBeGreaterThan(heardBefore);
    expect(await lagCount(a)).toBe(sentBefore);
    const text = await scrape(b.app);
    expect(sample(text, "latchkey_bus_lag_seconds_bucket", { le: "+Inf" })).toBe(await lagCount(b));
    expect(text).not.toContain(key.id);
    expect(sample(text, "latchkey_redis_errors_total")).toBe(0);
  });

  it("counts Redis errors on a node whose Redis does not answer", async () => {
    const away = await startNode({
      databaseUrl: schema.url,
      prefix: `lk-metrics-away-${randomBytes(4).toString("hex")}:`,
      redisUrl: `redis://127.0.0.1:${await freePort()}`,
    });
    nodes.push(away);
    expect(sample(await scrape(away.app), "latchkey_redis_errors_total")).toBeGreaterThan(0);
  }, 30_000);
});
