import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Running } from "../../src/server.ts";
import { DisposableRedis } from "../cluster/disposable-redis.ts";
import { BACKENDS, createTestSchema } from "../helpers/backends.ts";
import { ADMIN_TOKEN } from "../helpers/harness.ts";
import { freePort, startNode } from "../helpers/nodes.ts";
import { within } from "../helpers/wait.ts";

/**
 * A frozen Redis (SIGSTOP: a partition that keeps every connection open and answers nothing). The
 * sockets look fine, so only what Redis does can tell: each node must notice within its Redis timeout
 * (500 ms by default) that its heartbeat goes unanswered, turn degraded, and stop waiting on Redis.
 * The cache TTL is ten minutes, so a node that refuses a revoked key within a second and a half did
 * not wait for its entry to expire.
 */

const RUN = BACKENDS.includes("postgres");
const DEGRADED_TTL_MS = 1000;
const REDIS_TIMEOUT_MS = 500;
const ENV = { LATCHKEY_CACHE_TTL_MS: "600000" };

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
  const started = performance.now();
  const res = await fetch(`${node.url}${path}`, {
    method,
    headers,
    ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : {}),
  });
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the server, checked by each test
  const body = (await res.json()) as any;
  return { status: res.status, body, ms: performance.now() - started };
}

describe.runIf(RUN)("Redis frozen (SIGSTOP) under two nodes", () => {
  let redis: DisposableRedis;
  let db: Awaited<ReturnType<typeof createTestSchema>>;
  let a: Running;
  let b: Running;
  let mk = "";
  let vk = "";

  const health = async (node: Running) =>
    (await (await fetch(`${node.url}/healthz`)).json()) as { status: string; cluster: { redis: string } };
  const verify = (node: Running, key: string) => call(node, "POST", "/v1/verify", { key: vk, json: { key } });
  const createKey = async (body: Record<string, unknown> = {}) => {
    const res = await call(a, "POST", "/v1/keys", {
      key: mk,
      json: { name: "k", environment: "live", permissions: ["payin:read"], ...body },
    });
    expect(res.status).toBe(201);
    return res.body.data as { id: string; key: string };
  };

  beforeAll(async () => {
    redis = new DisposableRedis(await freePort());
    await redis.start();
    db = await createTestSchema();
    const prefix = `lk-freeze-${randomBytes(3).toString("hex")}:`;
    a = await startNode({ databaseUrl: db.url, redisUrl: redis.url, prefix, env: ENV });
    b = await startNode({ databaseUrl: db.url, redisUrl: redis.url, prefix, env: ENV });
    const company = await call(a, "POST", "/v1/admin/companies", {
      admin: true,
      json: { name: "Freeze Co", owner_email: `o-${randomBytes(4).toString("hex")}@example.test` },
    });
    expect(company.status).toBe(201);
    mk = company.body.data.management_key.key;
    const verifier = await call(a, "POST", "/v1/admin/verify-keys", { admin: true, json: { name: "gw" } });
    expect(verifier.status).toBe(201);
    vk = verifier.body.data.key;
  }, 60_000);

  afterAll(async () => {
    redis?.thaw();
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
    await db?.drop();
  });

  it("refuses a key revoked on the other node within the degraded TTL plus 0.5 s, and rate-limited keys never wait out the timeout", async () => {
    const revoked = await createKey();
    const limited = await createKey({ rate_limits: [{ limit: 1000, window: "1h" }] });
    expect((await verify(b, revoked.key)).body.data.code).toBe("VALID");
    expect((await verify(b, limited.key)).body.data.code).toBe("VALID");
    expect((await health(b)).cluster.redis).toBe("connected");

    redis.freeze();
    const frozenAt = performance.now();
    // The revocation commits in PostgreSQL; its announcement cannot get through.
    const revoke = await call(a, "DELETE", `/v1/keys/${revoked.id}`, { key: mk });
    expect(revoke.status).toBe(200);
    const took = await within(
      DEGRADED_TTL_MS + 500,
      async () => (await verify(b, revoked.key)).body.data.code === "REVOKED",
    );
    expect(took).toBeLessThan(DEGRADED_TTL_MS + 500);
    // Each node judges its own heartbeats, so one may notice a tick before the other: both must have
    // noticed within the timeout plus one heartbeat interval (a fifth of it) of the freeze, and slack.
    for (const node of [a, b]) {
      await within(REDIS_TIMEOUT_MS * 1.2 + 500 - (performance.now() - frozenAt), async () => {
        const h = await health(node);
        return h.status === "degraded" && h.cluster.redis === "unreachable";
      });
    }

    // Degraded, the limits are counted on the node at once (the default, "open"): no request waits on Redis.
    for (let i = 0; i < 10; i++) {
      const res = await verify(b, limited.key);
      expect(res.body.data.code).toBe("VALID");
      expect(res.ms).toBeLessThan(REDIS_TIMEOUT_MS);
    }

    redis.thaw();
    for (const node of [a, b]) await within(5000, async () => (await health(node)).status === "ok");
    // Back on the bus: a revocation reaches B at once again, though its cache TTL is ten minutes.
    const next = await createKey();
    expect((await verify(b, next.key)).body.data.code).toBe("VALID");
    expect((await call(a, "DELETE", `/v1/keys/${next.id}`, { key: mk })).status).toBe(200);
    await within(1000, async () => (await verify(b, next.key)).body.data.code === "REVOKED");
  }, 60_000);
});
