import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

// shared/reference/002_…: the Web3pay "API Keys" page, replayed as written (host, brand and key aside).
const DOC_BODY = `{
"name": "Production API Key",
"environment": "live",
"permissions": ["onramp:create", "onramp:read", "transactions:read"]
}`;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

describe.each(BACKENDS)("the Web3pay API keys doc on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let created: { id: string; key: string };
  beforeAll(async () => {
    h = await createHarness(kind, { keyPrefix: "wp3" });
    co = await h.createCompany("Web3pay Merchant");
  });
  afterAll(() => h.close());

  it("creates a key: POST /v1/keys with X-API-Key and the doc's body", async () => {
    expect(co.key).toMatch(/^wp3_live_sk_/);
    const res = await h.call("POST", "/v1/keys", {
      headers: { "X-API-Key": co.key, "Content-Type": "application/json" },
      payload: DOC_BODY,
    });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body.success).toBe(true);
    const data = body.data;
    expect(data).toMatchObject({
      id: expect.stringMatching(/^key_[0-9A-Za-z]+$/),
      key: expect.stringMatching(/^wp3_live_sk_[0-9A-Za-z]{38}$/),
      name: "Production API Key",
      environment: "live",
      prefix: expect.stringMatching(/^wp3_live_sk_[0-9A-Za-z]{8}$/),
      permissions: ["onramp:create", "onramp:read", "transactions:read"],
      created_at: expect.stringMatching(ISO),
    });
    expect(data.key.startsWith(data.prefix)).toBe(true);
    expect(data.created_at).toBe(h.clock.now.toISOString());
    created = data;
  });

  it("lists keys under data.keys with prefixes, last_used_at and created_at, never the key", async () => {
    h.clock.advance(2.5 * 3600);
    const used = await h.call("POST", "/v1/verify", {
      key: co.key,
      json: { key: created.key, permissions: ["onramp:create"] },
    });
    expect(used.json().data.code).toBe("VALID");
    await h.services.usage.flush();

    const res = await h.call("GET", "/v1/keys", { headers: { "X-API-Key": co.key } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.success).toBe(true);
    expect(Array.isArray(body.data.keys)).toBe(true);
    for (const k of body.data.keys) {
      expect(k).not.toHaveProperty("key");
      expect(k).not.toHaveProperty("secret");
      expect(k).toHaveProperty("last_used_at");
      expect(k.created_at).toMatch(ISO);
    }
    const listed = body.data.keys.find((k: { id: string }) => k.id === created.id);
    expect(listed).toMatchObject({
      id: created.id,
      name: "Production API Key",
      environment: "live",
      prefix: created.key.slice(0, 20),
      permissions: ["onramp:create", "onramp:read", "transactions:read"],
      last_used_at: h.clock.now.toISOString(),
      created_at: expect.stringMatching(ISO),
    });
    expect(res.body).not.toContain(created.key);
  });

  it("revokes a key: DELETE /v1/keys/:id", async () => {
    const before = await h.call("GET", "/v1/keys", { headers: { "X-API-Key": created.key } });
    // Authenticated but not allowed: the key holds no keys:manage.
    expect(before.statusCode).toBe(403);

    const res = await h.call("DELETE", `/v1/keys/${created.id}`, { headers: { "X-API-Key": co.key } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ success: true, data: { message: "API key revoked successfully" } });

    // "Any applications using this key will receive 401 errors."
    const after = await h.call("GET", "/v1/keys", { headers: { "X-API-Key": created.key } });
    expect(after.statusCode).toBe(401);
    expect(after.json()).toMatchObject({ success: false, error: { code: "UNAUTHORIZED" } });
    const verified = await h.call("POST", "/v1/verify", { key: co.key, json: { key: created.key } });
    expect(verified.json().data).toMatchObject({ valid: false, code: "REVOKED" });
  });

  it("answers 401 for a revoked key that could manage keys", async () => {
    const manager = await h.createKey(co, { permissions: ["keys:manage"] });
    expect((await h.call("GET", "/v1/keys", { headers: { "X-API-Key": manager.key } })).statusCode).toBe(200);
    await h.call("DELETE", `/v1/keys/${manager.id}`, { headers: { "X-API-Key": co.key } });
    expect((await h.call("GET", "/v1/keys", { headers: { "X-API-Key": manager.key } })).statusCode).toBe(401);
  });
});
