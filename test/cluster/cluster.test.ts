import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Changes } from "../../src/cluster/changes.ts";
import { type CacheTtlControl, Cluster } from "../../src/cluster/cluster.ts";
import type { Running } from "../../src/server.ts";
import { createTestSchema } from "../helpers/backends.ts";
import { ADMIN_TOKEN } from "../helpers/harness.ts";
import { startNode, TEST_REDIS_URL } from "../helpers/nodes.ts";
import { within } from "../helpers/wait.ts";
import { DisposableRedis } from "./disposable-redis.ts";

/**
 * Cluster mode for real: two Latchkey nodes, each a full server with its own pool, cache and Redis
 * connections, on one PostgreSQL schema and one Redis. The cache TTL is set to ten minutes, so a node
 * that answers a change within a second can only have heard it over the bus.
 */

const REDIS_URL = TEST_REDIS_URL;
/** Ten minutes of cache: a node that answers a change within a second heard it over the bus. */
const CLUSTER_ENV = { LATCHKEY_CACHE_TTL_MS: "600000", LATCHKEY_DEGRADED_CACHE_TTL_MS: "300" };

async function call(
  node: Running,
  method: string,
  path: string,
  opts: { key?: string; json?: unknown; admin?: boolean } = {},
) {
  const headers: Record<string, string> = {};
  if (opts.key) headers["x-api-key"] = opts.key;
  if (opts.admin) headers.authorization = `Bearer ${ADMIN_TOKEN}`;
  if (opts.json !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${node.url}${path}`, {
    method,
    headers,
    ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : {}),
  });
  const body = (await res.json()) as {
    success: boolean; // biome-ignore lint/suspicious/noExplicitAny: JSON from the server, checked by each test
    data: any;
    error?: { code: string };
  };
  return { status: res.status, body };
}

interface Tenant {
  managementKey: string;
  verifyKey: string;
  credentialId: string;
}

async function createTenant(node: Running): Promise<Tenant> {
  const company = await call(node, "POST", "/v1/admin/companies", {
    admin: true,
    json: {
      name: `Cluster ${randomBytes(3).toString("hex")}`,
      owner_email: `o-${randomBytes(4).toString("hex")}@example.test`,
    },
  });
  expect(company.status).toBe(201);
  const verify = await call(node, "POST", "/v1/admin/verify-keys", {
    admin: true,
    json: { name: "gateway" },
  });
  expect(verify.status).toBe(201);
  return {
    managementKey: company.body.data.management_key.key,
    credentialId: company.body.data.default_credential.id,
    verifyKey: verify.body.data.key,
  };
}

async function createKey(node: Running, t: Tenant, body: Record<string, unknown> = {}) {
  const res = await call(node, "POST", "/v1/keys", {
    key: t.managementKey,
    json: { name: "k", environment: "live", permissions: ["payin:read"], ...body },
  });
  expect(res.status).toBe(201);
  return res.body.data as { id: string; key: string };
}

async function verifyCode(node: Running, t: Tenant, key: string): Promise<string> {
  const res = await call(node, "POST", "/v1/verify", { key: t.verifyKey, json: { key } });
  expect(res.status).toBe(200);
  return res.body.data.code;
}

async function health(node: Running) {
  return (await (await fetch(`${node.url}/healthz`)).json()) as {
    status: string;
    cluster: { redis: string; cache_ttl_ms: number };
  };
}

describe("two nodes on PostgreSQL and Redis", () => {
  let db: Awaited<ReturnType<typeof createTestSchema>>;
  let a: Running;
  let b: Running;
  let t: Tenant;
  const prefix = `lk-test-${randomBytes(4).toString("hex")}:`;

  beforeAll(async () => {
    db = await createTestSchema();
    a = await startNode({ databaseUrl: db.url, redisUrl: REDIS_URL, prefix, env: CLUSTER_ENV });
    b = await startNode({ databaseUrl: db.url, redisUrl: REDIS_URL, prefix, env: CLUSTER_ENV });
    t = await createTenant(a);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await db?.drop();
  });

  it("reports cluster mode with Redis connected in /healthz", async () => {
    for (const node of [a, b]) {
      const h = await health(node);
      expect(h.status).toBe("ok");
      expect(h.cluster).toMatchObject({ mode: "cluster", redis: "connected", cache_ttl_ms: 600_000 });
    }
    expect((await health(a)).cluster).not.toEqual((await health(b)).cluster);
  });

  it("a key revoked on one node fails on the other at once, though it was cached there", async () => {
    const key = await createKey(a, t);
    expect(await verifyCode(b, t, key.key)).toBe("VALID");
    expect(await verifyCode(b, t, key.key)).toBe("VALID"); // now answered from B's cache
    const revoked = await call(a, "DELETE", `/v1/keys/${key.id}`, { key: t.managementKey });
    expect(revoked.status).toBe(200);
    await within(1000, async () => (await verifyCode(b, t, key.key)) === "REVOKED");
  });

  it("streams a revocation made on one node to a verify key listening on the other", async () => {
    const key = await createKey(a, t);
    const controller = new AbortController();
    const res = await fetch(`${b.url}/v1/verify/changes`, {
      headers: { "x-api-key": t.verifyKey },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    const until = async (needle: string) => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}:\n${text}`);
        text += decoder.decode(value, { stream: true });
      }
    };
    try {
      await until("event: ready");
      expect((await call(a, "DELETE", `/v1/keys/${key.id}`, { key: t.managementKey })).status).toBe(200);
      await until(`"key_id":"${key.id}"`);
    } finally {
      controller.abort();
    }
  });

  it("credential deactivation, permission and allowlist changes on one node reach the other", async () => {
    const cred = await call(b, "POST", "/v1/credentials", {
      key: t.managementKey,
      json: { name: "Gateway user", permissions: ["payin:read", "payin:create"] },
    });
    expect(cred.status).toBe(201);
    const credentialId = cred.body.data.id;
    const key = await createKey(b, t, {
      credential_id: credentialId,
      permissions: ["payin:read", "payin:create"],
    });
    const check = async (node: Running, body: Record<string, unknown>) =>
      (await call(node, "POST", "/v1/verify", { key: t.verifyKey, json: { key: key.key, ...body } })).body
        .data.code;

    expect(await check(a, { permissions: ["payin:create"] })).toBe("VALID");
    // A key's permissions are fixed; narrowing its API user narrows it at once.
    const narrowed = await call(b, "PATCH", `/v1/credentials/${credentialId}`, {
      key: t.managementKey,
      json: { permissions: ["payin:read"] },
    });
    expect(narrowed.status).toBe(200);
    await within(
      1000,
      async () => (await check(a, { permissions: ["payin:create"] })) === "INSUFFICIENT_PERMISSIONS",
    );

    expect(await check(a, { ip: "203.0.113.9" })).toBe("VALID");
    const fenced = await call(b, "PATCH", `/v1/credentials/${credentialId}`, {
      key: t.managementKey,
      json: { allowed_ips: ["198.51.100.0/24"] },
    });
    expect(fenced.status).toBe(200);
    await within(1000, async () => (await check(a, { ip: "203.0.113.9" })) === "IP_NOT_ALLOWED");

    const off = await call(b, "PATCH", `/v1/credentials/${credentialId}`, {
      key: t.managementKey,
      json: { status: "inactive" },
    });
    expect(off.status).toBe(200);
    await within(1000, async () => (await check(a, { ip: "198.51.100.7" })) === "DISABLED");
  });

  it("shares a key's rate limit: the two nodes together allow no more than the limit", async () => {
    const key = await createKey(a, t, { rate_limits: [{ limit: 6, window: "1h" }] });
    const codes: string[] = [];
    for (let i = 0; i < 12; i++) codes.push(await verifyCode(i % 2 === 0 ? a : b, t, key.key));
    expect(codes.filter((c) => c === "VALID")).toHaveLength(6);
    expect(codes.slice(6).every((c) => c === "RATE_LIMITED")).toBe(true);
  });

  it("adds up usage from both nodes exactly, flushed on an orderly shutdown", async () => {
    const key = await createKey(a, t);
    for (let i = 0; i < 7; i++) expect(await verifyCode(a, t, key.key)).toBe("VALID");
    for (let i = 0; i < 5; i++) expect(await verifyCode(b, t, key.key)).toBe("VALID");
    await a.stop();
    await b.stop();
    const c = await startNode({ databaseUrl: db.url, redisUrl: REDIS_URL, prefix, env: CLUSTER_ENV });
    try {
      const usage = await call(c, "GET", `/v1/keys/${key.id}/usage?days=1`, { key: t.managementKey });
      expect(usage.status).toBe(200);
      expect(usage.body.data.total_requests).toBe(12);
      expect(usage.body.data.days).toEqual([expect.objectContaining({ requests: 12, denied: 0 })]);
      expect(usage.body.data.last_used_at).not.toBeNull();
    } finally {
      await c.stop();
    }
  });
});

describe("Redis going away and coming back", () => {
  const redis = new DisposableRedis(16_000 + Math.floor(Math.random() * 2000));
  let db: Awaited<ReturnType<typeof createTestSchema>>;
  let a: Running;
  let b: Running;
  let closed: Running;
  let t: Tenant;

  beforeAll(async () => {
    await redis.start();
    db = await createTestSchema();
    a = await startNode({ databaseUrl: db.url, redisUrl: redis.url, prefix: "lk:", env: CLUSTER_ENV });
    b = await startNode({ databaseUrl: db.url, redisUrl: redis.url, prefix: "lk:", env: CLUSTER_ENV });
    closed = await startNode({
      databaseUrl: db.url,
      redisUrl: redis.url,
      prefix: "lk:",
      env: { ...CLUSTER_ENV, LATCHKEY_RATE_LIMIT_WHEN_REDIS_DOWN: "closed" },
    });
    t = await createTenant(a);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop(), closed?.stop()]);
    await redis.stop();
    await db?.drop();
  });

  it("degrades to a short cache TTL while Redis is away, never serving a revoked key for long, and recovers", async () => {
    const first = await createKey(a, t);
    const limited = await createKey(a, t, { rate_limits: [{ limit: 1000, window: "1h" }] });
    expect(await verifyCode(b, t, first.key)).toBe("VALID");
    expect(await verifyCode(closed, t, limited.key)).toBe("VALID");

    await redis.stop();
    await within(5000, async () => (await health(b)).status === "degraded");
    const degraded = await health(b);
    expect(degraded.cluster).toMatchObject({ redis: "unreachable", cache_ttl_ms: 300 });

    // The bus is gone, so B cannot hear this revocation; the short TTL bounds how long it is missed.
    expect((await call(a, "DELETE", `/v1/keys/${first.id}`, { key: t.managementKey })).status).toBe(200);
    await within(2000, async () => (await verifyCode(b, t, first.key)) === "REVOKED");

    // Keys without limits keep verifying; limits fail open (local counters) or closed, as configured.
    const second = await createKey(a, t);
    expect(await verifyCode(b, t, second.key)).toBe("VALID");
    expect(await verifyCode(b, t, limited.key)).toBe("VALID");
    expect(await verifyCode(closed, t, limited.key)).toBe("RATE_LIMITED");
    expect(await verifyCode(closed, t, second.key)).toBe("VALID");

    await redis.start();
    for (const node of [a, b, closed]) await within(5000, async () => (await health(node)).status === "ok");
    expect((await health(b)).cluster.cache_ttl_ms).toBe(600_000);
    expect(await verifyCode(closed, t, limited.key)).toBe("VALID");

    // Back on the bus: a revocation reaches B at once again, though its cache TTL is ten minutes.
    expect(await verifyCode(b, t, second.key)).toBe("VALID");
    expect((await call(a, "DELETE", `/v1/keys/${second.id}`, { key: t.managementKey })).status).toBe(200);
    await within(1000, async () => (await verifyCode(b, t, second.key)) === "REVOKED");
  });
});

describe("a node joining the cluster", () => {
  function node(url: string) {
    const lines: string[] = [];
    const ttls: (number | null)[] = [];
    const cluster = new Cluster({
      url,
      prefix: `lk-join-${randomBytes(3).toString("hex")}:`,
      degradedTtlMs: 250,
      rateLimitWhenDown: "open",
      log: {
        info: (m) => lines.push(`info ${m}`),
        warn: (m) => lines.push(`warn ${m}`),
        error: (_o, m) => lines.push(`error ${m}`),
      },
    });
    const verification = {
      limitCacheTtl: (t: number | null) => ttls.push(t),
    } as unknown as CacheTtlControl;
    return { cluster, lines, ttls, start: () => cluster.start(new Changes(), verification) };
  }

  it("starts connected and quiet when Redis answers", async () => {
    const n = node(REDIS_URL);
    await n.start();
    try {
      expect(n.cluster.busState).toBe("connected");
      expect(n.lines).toEqual([]);
      // Degraded until the subscription is heard, then the normal TTL.
      expect(n.ttls).toEqual([250, null]);
    } finally {
      await n.cluster.close();
    }
  });

  it("starts degraded, and says so, when Redis does not answer", async () => {
    const n = node("redis://127.0.0.1:1");
    await n.start();
    try {
      expect(n.cluster.busState).toBe("unreachable");
      // One line, which says why: the refused connection is its cause, not a line of its own.
      expect(n.lines).toHaveLength(1);
      expect(n.lines[0]).toMatch(/^warn cluster: Redis is unreachable: .*ECONNREFUSED/);
      expect(n.cluster.health()).toMatchObject({ redis: "unreachable" });
    } finally {
      await n.cluster.close();
    }
  });

  it("says an outage in two lines, however long it lasts and however often it reconnects", async () => {
    const redis = new DisposableRedis(18_000 + Math.floor(Math.random() * 2000));
    await redis.start();
    const n = node(redis.url);
    await n.start();
    try {
      expect(n.cluster.busState).toBe("connected");
      await redis.stop();
      await within(2000, async () => n.cluster.busState === "unreachable");
      // Reconnects are refused about once a second and heartbeats fail ten times as often meanwhile.
      await new Promise((r) => setTimeout(r, 3000));
      await redis.start();
      await within(5000, async () => n.cluster.busState === "connected");
      expect(n.lines, n.lines.join("\n")).toHaveLength(2);
      expect(n.lines[0]).toMatch(/^warn cluster: Redis is unreachable/);
      expect(n.lines[1]).toMatch(/^info cluster: Redis is back after \d+\.\d s \(\d+ errors while away\)/);
    } finally {
      await n.cluster.close();
      await redis.stop();
    }
  }, 20_000);
});
