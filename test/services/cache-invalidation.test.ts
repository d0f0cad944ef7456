import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type * as KeyFormat from "../../src/core/key-format.ts";
import { apiKeys } from "../../src/store/repositories.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

/**
 * Tokens the next key creations will get, so a test can ask about a key before it exists (and have
 * "no such key" cached) and then create exactly that key through the API.
 */
const planned = vi.hoisted(() => [] as string[]);
vi.mock("../../src/core/key-format.ts", async (importOriginal) => {
  const real = await importOriginal<typeof KeyFormat>();
  return {
    ...real,
    generateToken: (...args: Parameters<typeof real.generateToken>) =>
      args[2] === "sk" && planned.length > 0 ? (planned.shift() as string) : real.generateToken(...args),
  };
});
const { generateToken } = await vi.importActual<typeof KeyFormat>("../../src/core/key-format.ts");

interface Answer {
  valid: boolean;
  code: string;
  permissions: string[];
  expires_at: string | null;
  rate_limit: { limit: number; remaining: number } | null;
}

/**
 * Every change made through the API shows in the very next verification, although the answer before it
 * was cached: the clock never moves in these tests, so nothing expires from the cache on its own.
 */
describe.each(BACKENDS)("cache invalidation on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Cache Company");
  });
  afterAll(() => h.close());

  const verify = async (key: string, extra: Record<string, unknown> = {}): Promise<Answer> => {
    const res = await h.call("POST", "/v1/verify", { key: co.key, json: { key, ...extra } });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data;
  };
  /** Verifies twice, so the answer is known to come from the cache the second time. */
  const cached = async (key: string, extra: Record<string, unknown> = {}) => {
    await verify(key, extra);
    return verify(key, extra);
  };
  const ok = async (res: Promise<{ statusCode: number; body: string }>, status = 200) => {
    const r = await res;
    expect(r.statusCode, r.body).toBe(status);
    return JSON.parse(r.body).data;
  };
  const patchKey = (id: string, json: unknown) =>
    ok(h.call("PATCH", `/v1/keys/${id}`, { key: co.key, json }));
  const patchCredential = (id: string, json: unknown) =>
    ok(h.call("PATCH", `/v1/credentials/${id}`, { key: co.key, json }));
  const newCredential = async (body: Record<string, unknown> = {}) =>
    ok(
      h.call("POST", "/v1/credentials", {
        key: co.key,
        json: { name: "svc", permissions: ["payin:read", "payin:create"], ...body },
      }),
      201,
    ) as Promise<{ id: string }>;

  it("the cache really answers: a change made behind the API's back is not seen until the TTL", async () => {
    // The control for every test below: without an announced change the stale answer is served.
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await cached(k.key)).code).toBe("VALID");
    await sql`UPDATE api_keys SET status = 'revoked', revoked_at = now() WHERE id = ${k.id}`.execute(
      h.store.db,
    );
    expect((await verify(k.key)).code).toBe("VALID");
    // A change another node announces (over the cluster bus) drops the entry like a local one.
    h.services.changes.receive({ kind: "key", keyId: k.id });
    expect((await verify(k.key)).code).toBe("REVOKED");
  });

  it("revocation", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await cached(k.key)).code).toBe("VALID");
    await ok(h.call("DELETE", `/v1/keys/${k.id}`, { key: co.key }));
    expect((await verify(k.key)).code).toBe("REVOKED");
  });

  it("revocation of the key a management caller uses", async () => {
    const mk = await h.createKey(co, { permissions: ["keys:manage"] });
    await ok(h.call("GET", "/v1/keys", { key: mk.key }));
    await ok(h.call("GET", "/v1/keys", { key: mk.key }));
    await ok(h.call("DELETE", `/v1/keys/${mk.id}`, { key: co.key }));
    expect((await h.call("GET", "/v1/keys", { key: mk.key })).statusCode).toBe(401);
  });

  it("API user deactivated, then reactivated", async () => {
    const cred = await newCredential();
    const a = await h.createKey(co, { credential_id: cred.id, permissions: ["payin:read"] });
    const b = await h.createKey(co, { credential_id: cred.id, permissions: ["payin:read"] });
    const mk = await h.createKey(co, { credential_id: cred.id, permissions: ["payin:read"] });
    expect((await cached(a.key)).code).toBe("VALID");
    expect((await cached(b.key)).code).toBe("VALID");
    expect((await cached(mk.key)).code).toBe("VALID");
    await patchCredential(cred.id, { status: "inactive" });
    for (const k of [a, b, mk]) expect((await verify(k.key)).code).toBe("DISABLED");
    await patchCredential(cred.id, { status: "active" });
    for (const k of [a, b, mk]) expect((await verify(k.key)).code).toBe("VALID");
  });

  it("a key's permissions cannot change, so a cached answer for them stays right", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await cached(k.key, { permissions: ["payin:read"] })).code).toBe("VALID");
    const res = await h.call("PATCH", `/v1/keys/${k.id}`, {
      key: co.key,
      json: { permissions: ["payin:read", "payin:create"] },
    });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe("PERMISSIONS_IMMUTABLE");
    expect((await verify(k.key, { permissions: ["payin:create"] })).code).toBe("INSUFFICIENT_PERMISSIONS");
  });

  it("API user's permissions narrowed, then widened again", async () => {
    const cred = await newCredential();
    const k = await h.createKey(co, { credential_id: cred.id, permissions: ["payin:read", "payin:create"] });
    const before = await cached(k.key, { permissions: ["payin:create"] });
    expect(before.code).toBe("VALID");
    expect([...before.permissions].sort()).toEqual(["payin:create", "payin:read"]);

    await patchCredential(cred.id, { permissions: ["payin:read"] });
    const narrowed = await verify(k.key, { permissions: ["payin:create"] });
    expect(narrowed.code).toBe("INSUFFICIENT_PERMISSIONS");
    expect(narrowed.permissions).toEqual(["payin:read"]);

    await patchCredential(cred.id, { permissions: ["payin:read", "payin:create"] });
    expect((await verify(k.key, { permissions: ["payin:create"] })).code).toBe("VALID");
  });

  it("a key's IP allowlist set, then cleared", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    const ip = { ip: "198.51.100.7" };
    expect((await cached(k.key, ip)).code).toBe("VALID");
    await patchKey(k.id, { allowed_ips: ["10.0.0.0/8"] });
    expect((await verify(k.key, ip)).code).toBe("IP_NOT_ALLOWED");
    expect((await verify(k.key, { ip: "10.1.2.3" })).code).toBe("VALID");
    await patchKey(k.id, { allowed_ips: [] });
    expect((await verify(k.key, ip)).code).toBe("VALID");
  });

  it("an API user's IP allowlist set, then cleared", async () => {
    const cred = await newCredential();
    const k = await h.createKey(co, { credential_id: cred.id, permissions: ["payin:read"] });
    const ip = { ip: "2001:db8::1" };
    expect((await cached(k.key, ip)).code).toBe("VALID");
    await patchCredential(cred.id, { allowed_ips: ["2001:db8:ffff::/48"] });
    expect((await verify(k.key, ip)).code).toBe("IP_NOT_ALLOWED");
    await patchCredential(cred.id, { allowed_ips: ["2001:db8::/32"] });
    expect((await verify(k.key, ip)).code).toBe("VALID");
  });

  it("rotation: the old key's new expiry shows at once, and with no overlap it stops at once", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    expect(await cached(k.key)).toMatchObject({ code: "VALID", expires_at: null });
    const rotated = await ok(
      h.call("POST", `/v1/keys/${k.id}/rotate`, { key: co.key, json: { grace_seconds: 3600 } }),
    );
    expect(await verify(k.key)).toMatchObject({ code: "VALID", expires_at: rotated.previous_key.expires_at });
    expect(new Date(rotated.previous_key.expires_at).getTime()).toBe(h.clock.now.getTime() + 3600_000);

    const k2 = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await cached(k2.key)).code).toBe("VALID");
    await ok(h.call("POST", `/v1/keys/${k2.id}/rotate`, { key: co.key, json: { grace_seconds: 0 } }));
    expect((await verify(k2.key)).code).toBe("EXPIRED");
  });

  it("expire-now and reset-expiry of a rotated key", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    await ok(h.call("POST", `/v1/keys/${k.id}/rotate`, { key: co.key, json: { grace_seconds: 600 } }));
    const cachedAnswer = await cached(k.key);
    expect(cachedAnswer.code).toBe("VALID");
    expect(new Date(cachedAnswer.expires_at as string).getTime()).toBe(h.clock.now.getTime() + 600_000);

    await ok(h.call("POST", `/v1/keys/${k.id}/expiry`, { key: co.key, json: { action: "reset" } }));
    expect(await verify(k.key)).toMatchObject({
      code: "VALID",
      expires_at: new Date(h.clock.now.getTime() + 86_400_000).toISOString(),
    });

    await ok(h.call("POST", `/v1/keys/${k.id}/expiry`, { key: co.key, json: { action: "now" } }));
    expect((await verify(k.key)).code).toBe("EXPIRED");
  });

  it("rate limits set on a key and on its API user", async () => {
    const cred = await newCredential();
    const k = await h.createKey(co, { credential_id: cred.id, permissions: ["payin:read"] });
    expect(await cached(k.key)).toMatchObject({ code: "VALID", rate_limit: null });
    await patchKey(k.id, { rate_limits: [{ limit: 1000, window: "1h" }] });
    expect((await verify(k.key)).rate_limit).toMatchObject({ limit: 1000 });
    await patchCredential(cred.id, { rate_limits: [{ limit: 4, window: "1h" }] });
    expect((await verify(k.key)).rate_limit).toMatchObject({ limit: 4, remaining: 3 });
    await patchCredential(cred.id, { rate_limits: [] });
    await patchKey(k.id, { rate_limits: [] });
    expect(await verify(k.key)).toMatchObject({ code: "VALID", rate_limit: null });
  });

  it("a key created after it was asked about ('no such key' was cached)", async () => {
    const token = generateToken("lk", "live", "sk");
    expect((await cached(token)).code).toBe("NOT_FOUND");
    planned.push(token);
    const created = await h.createKey(co, { permissions: ["payin:read"] });
    expect(created.key).toBe(token);
    expect(await verify(token)).toMatchObject({ code: "VALID", key_id: created.id });
  });

  it("a rotation's new key, after it was asked about", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    const token = generateToken("lk", "live", "sk");
    expect((await cached(token)).code).toBe("NOT_FOUND");
    planned.push(token);
    const rotated = await ok(h.call("POST", `/v1/keys/${old.id}/rotate`, { key: co.key, json: {} }));
    expect(rotated.key).toBe(token);
    expect(await verify(token)).toMatchObject({ code: "VALID", key_id: rotated.id });
  });

  it("concurrent requests that miss on one key make one store query", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    const lookups = vi.spyOn(apiKeys, "findByHash");
    try {
      const answers = await Promise.all(
        Array.from({ length: 20 }, () =>
          h.services.verification.verify({ key: k.key }, { companyId: co.id, environment: "live" }),
        ),
      );
      expect(answers.map((a) => a.code)).toEqual(Array(20).fill("VALID"));
      expect(lookups).toHaveBeenCalledTimes(1);
    } finally {
      lookups.mockRestore();
    }
  });

  it("a request that arrives after a revocation never takes the answer of a query sent before it", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    const real = apiKeys.findByHash;
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let read = () => {};
    const firstRead = new Promise<void>((resolve) => {
      read = resolve;
    });
    // The first query reads the row while the key is active, then is held until after the revocation.
    const lookups = vi.spyOn(apiKeys, "findByHash").mockImplementationOnce(async (...args) => {
      const row = await real(...args);
      read();
      await gate;
      return row;
    });
    try {
      const early = h.services.verification.verify({ key: k.key }, { companyId: co.id, environment: "live" });
      await firstRead;
      await ok(h.call("DELETE", `/v1/keys/${k.id}`, { key: co.key }));
      const late = await h.services.verification.verify(
        { key: k.key },
        { companyId: co.id, environment: "live" },
      );
      expect(late.code).toBe("REVOKED");
      release();
      // The early request was sent before the revocation: its answer was true when read.
      expect((await early).code).toBe("VALID");
      expect(lookups).toHaveBeenCalledTimes(2);
      // And what it read was not kept.
      expect((await verify(k.key)).code).toBe("REVOKED");
    } finally {
      release();
      lookups.mockRestore();
    }
  });
});
