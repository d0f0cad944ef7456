import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Running } from "../../src/server.ts";
import { createTestSchema } from "../helpers/backends.ts";
import { ADMIN_TOKEN } from "../helpers/harness.ts";
import { startNode } from "../helpers/nodes.ts";

/**
 * Credits across a cluster: two full nodes on one PostgreSQL schema and the shared Redis (under a
 * prefix of this run's own, never flushed). A balance spent by concurrent verifications on both nodes
 * allows exactly as many as it holds, tells of its exhaustion once, and survives a node's restart.
 */

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
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the server, checked by each test
  const body = (await res.json()) as { data: any; error?: { code: string } };
  return { status: res.status, body };
}

describe("credits on two nodes (PostgreSQL + Redis)", () => {
  let schema: Awaited<ReturnType<typeof createTestSchema>>;
  const prefix = `lkt-credits-${randomBytes(4).toString("hex")}:`;
  let a: Running;
  let b: Running;
  let managementKey: string;
  let verifyKey: string;
  let companyId: string;

  beforeAll(async () => {
    schema = await createTestSchema();
    a = await startNode({ databaseUrl: schema.url, prefix });
    b = await startNode({ databaseUrl: schema.url, prefix });
    const company = await call(a, "POST", "/v1/admin/companies", {
      admin: true,
      json: {
        name: `Credits ${randomBytes(3).toString("hex")}`,
        owner_email: `o-${randomBytes(4).toString("hex")}@example.test`,
      },
    });
    expect(company.status).toBe(201);
    managementKey = company.body.data.management_key.key;
    companyId = company.body.data.company.id;
    const verify = await call(a, "POST", "/v1/admin/verify-keys", { admin: true, json: { name: "gateway" } });
    verifyKey = verify.body.data.key;
  }, 60_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await schema?.drop();
  });

  const verifyOn = async (node: Running, key: string, cost?: number) => {
    const res = await call(node, "POST", "/v1/verify", {
      key: verifyKey,
      json: { key, ...(cost !== undefined ? { cost } : {}) },
    });
    if (res.status !== 200) return { code: `HTTP ${res.status} ${res.body.error?.code}`, remaining: null };
    return res.body.data as { code: string; remaining: number | null };
  };

  it("1,000 concurrent verifications over both nodes spend a balance of 500 exactly", async () => {
    const created = await call(a, "POST", "/v1/keys", {
      key: managementKey,
      json: { name: "metered", environment: "live", remaining: 500 },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const { key, id } = created.body.data as { key: string; id: string };
    // Both nodes have the key cached before the burst, so no answer waits on a first lookup.
    expect((await verifyOn(a, key, 0)).remaining).toBe(500);
    expect((await verifyOn(b, key, 0)).remaining).toBe(500);

    const answers = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => verifyOn(i % 2 === 0 ? a : b, key)),
    );
    const codes = new Map<string, number>();
    for (const answer of answers) codes.set(answer.code, (codes.get(answer.code) ?? 0) + 1);
    expect(Object.fromEntries(codes)).toEqual({ VALID: 500, USAGE_EXCEEDED: 500 });
    // Every allowed answer saw a balance of its own: 499 down to 0, each once.
    const seen = answers.filter((x) => x.code === "VALID").map((x) => x.remaining as number);
    expect(new Set(seen).size).toBe(500);
    expect(Math.min(...seen)).toBe(0);
    expect(Math.max(...seen)).toBe(499);

    const events = await a.store.db
      .selectFrom("events")
      .select("data")
      .where("company_id", "=", companyId)
      .where("type", "=", "key.usage_exhausted")
      .execute();
    expect(events.map((e) => (e.data as { key_id: string }).key_id)).toEqual([id]);

    // A node restarted on the same store finds the balance where the cluster left it.
    await a.stop();
    a = await startNode({ databaseUrl: schema.url, prefix });
    expect((await verifyOn(a, key)).code).toBe("USAGE_EXCEEDED");
    const view = await call(a, "GET", `/v1/keys/${id}`, { key: managementKey });
    expect(view.body.data.remaining).toBe(0);
    // Raised on one node, spent on the other.
    expect(
      (await call(a, "PATCH", `/v1/keys/${id}`, { key: managementKey, json: { remaining: 2 } })).status,
    ).toBe(200);
    expect(await verifyOn(b, key)).toMatchObject({ code: "VALID", remaining: 1 });
    expect(await verifyOn(a, key)).toMatchObject({ code: "VALID", remaining: 0 });
    expect((await verifyOn(b, key)).code).toBe("USAGE_EXCEEDED");
  }, 120_000);
});
