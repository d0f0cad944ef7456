import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Running } from "../../src/server.ts";
import { createTestSchema } from "../helpers/backends.ts";
import { ADMIN_TOKEN } from "../helpers/harness.ts";
import { startNode } from "../helpers/nodes.ts";
import { within } from "../helpers/wait.ts";

/**
 * Leak reports across a cluster: two full nodes, started from their settings as `latchkey serve` starts
 * them, on one PostgreSQL schema and the shared Redis under a prefix of this run's own. A key revoked by
 * a report to one node is refused by the other at once, and the public report limit is one budget.
 */
describe("leaked keys in a cluster", () => {
  let db: Awaited<ReturnType<typeof createTestSchema>>;
  let a: Running;
  let b: Running;
  let dir: string;
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const prefix = `lk-test-${randomBytes(4).toString("hex")}:`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "latchkey-cluster-leaks-"));
    const keys = join(dir, "secret_scanning.json");
    const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
    writeFileSync(
      keys,
      JSON.stringify({ public_keys: [{ key_identifier: "k1", key: pem, is_current: true }] }),
    );
    db = await createTestSchema();
    const env = { LATCHKEY_GITHUB_SECRET_SCANNING_KEYS: keys, LATCHKEY_LEAK_REPORT_RATE_LIMIT: "3/1m" };
    a = await startNode({ databaseUrl: db.url, prefix, env });
    b = await startNode({ databaseUrl: db.url, prefix, env });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (node: Running, path: string, body: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${node.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
    // biome-ignore lint/suspicious/noExplicitAny: JSON from the server, checked by each test
    return { status: res.status, body: (await res.json()) as { data?: any; error?: { code: string } } };
  };

  it("revokes on one node a key the other node has cached, and the other refuses it at once", async () => {
    const company = await post(
      a,
      "/v1/admin/companies",
      JSON.stringify({
        name: "Cluster Leaks",
        owner_email: `o-${randomBytes(3).toString("hex")}@example.test`,
      }),
      { authorization: `Bearer ${ADMIN_TOKEN}` },
    );
    expect(company.status).toBe(201);
    const mk = company.body.data.management_key.key as string;
    const created = await post(a, "/v1/keys", JSON.stringify({ name: "Pushed", environment: "live" }), {
      "x-api-key": mk,
    });
    const key = created.body.data.key as string;
    const verifyOn = async (node: Running) =>
      (await post(node, "/v1/verify", JSON.stringify({ key }), { "x-api-key": mk })).body.data.code;
    expect(await verifyOn(b)).toBe("VALID"); // cached on b

    const body = JSON.stringify([{ token: key, type: "latchkey_api_key", url: "https://github.com/x/y" }]);
    const signature = sign("sha256", Buffer.from(body), { key: privateKey, dsaEncoding: "der" }).toString(
      "base64",
    );
    const res = await post(a, "/v1/leaks/github", body, {
      "github-public-key-identifier": "k1",
      "github-public-key-signature": signature,
    });
    expect(res.status).toBe(200);
    await within(1000, async () => (await verifyOn(b)) === "REVOKED");
  });

  it("counts public reports from one address on every node together", async () => {
    const report = (node: Running) =>
      post(node, "/v1/leaks", JSON.stringify({ token: "lk_live_sk_nothing" }));
    const statuses = [];
    for (const node of [a, b, a]) statuses.push((await report(node)).status);
    expect(statuses).toEqual([202, 202, 202]);
    const over = await report(b);
    expect(over.status).toBe(429);
    expect(over.body.error?.code).toBe("RATE_LIMITED");
  });
});
