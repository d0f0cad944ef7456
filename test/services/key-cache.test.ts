import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprint, hashToken } from "../../src/core/hashing.ts";
import { generateToken } from "../../src/core/key-format.ts";
import { KeyCache } from "../../src/services/key-cache.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness, SECRET } from "../helpers/harness.ts";

describe("KeyCache", () => {
  let now = 0;
  const cache = (max = 3, maxNegative = 2) =>
    new KeyCache<string>({ max, maxNegative, ttlMs: () => 1000, negativeTtlMs: () => 100, now: () => now });
  const ids = (keyId: string, credentialId: string | null = null) => ({ keyId, credentialId });

  it("keeps found keys for the TTL and 'no such key' answers for their shorter TTL", () => {
    now = 0;
    const c = cache();
    c.set("a", "A", ids("k1"));
    c.setMissing("b");
    now = 99;
    expect(c.get("a")).toBe("A");
    expect(c.get("b")).toBeNull();
    now = 100;
    expect(c.get("b")).toBeUndefined();
    now = 1000;
    expect(c.get("a")).toBeUndefined();
  });

  it("keeps nothing from a lookup that was in flight while a change arrived", () => {
    now = 0;
    const c = cache();
    // A lookup reads the key's row, then its revocation lands before the answer is cached.
    const before = c.stamp;
    c.apply({ kind: "key", keyId: "k1" });
    c.set("a", "A (as it was before the revocation)", ids("k1"), before);
    expect(c.get("a")).toBeUndefined();
    // Likewise a "no such key" read just before the key was created.
    const beforeCreate = c.stamp;
    c.apply({ kind: "key_created", fingerprint: "b" });
    c.setMissing("b", beforeCreate);
    expect(c.get("b")).toBeUndefined();
    // A lookup that started after the change is kept.
    const after = c.stamp;
    c.set("a", "A", ids("k1"), after);
    expect(c.get("a")).toBe("A");
    const beforeClear = c.stamp;
    c.clear();
    c.set("a", "A", ids("k1"), beforeClear);
    expect(c.get("a")).toBeUndefined();
  });

  it("evicts an entry not used since it was cached before one that was used", () => {
    now = 0;
    const c = cache();
    c.set("a", "A", ids("k1"));
    c.set("b", "B", ids("k2"));
    c.set("c", "C", ids("k3"));
    c.get("a");
    c.set("d", "D", ids("k4"));
    expect(c.get("b")).toBeUndefined();
    expect(c.get("a")).toBe("A");
    expect(c.get("d")).toBe("D");
    expect(c.size).toBe(3);
  });

  it("never lets a flood of unknown keys push out found ones", () => {
    now = 0;
    const c = cache(2, 2);
    c.set("a", "A", ids("k1"));
    c.set("b", "B", ids("k2"));
    for (let i = 0; i < 100; i++) c.setMissing(`ghost${i}`);
    expect(c.get("a")).toBe("A");
    expect(c.get("b")).toBe("B");
    expect(c.get("ghost0")).toBeUndefined();
    expect(c.get("ghost99")).toBeNull();
  });

  it("drops what a change touches: one key, every key of a credential, a negative entry", () => {
    now = 0;
    const c = cache();
    c.set("a", "A", ids("k1", "cred1"));
    c.set("b", "B", ids("k2", "cred1"));
    c.set("x", "X", ids("k3", "cred2"));
    c.setMissing("n");
    c.apply({ kind: "key", keyId: "k1" });
    expect(c.get("a")).toBeUndefined();
    expect(c.get("b")).toBe("B");
    c.apply({ kind: "credential", credentialId: "cred1" });
    expect(c.get("b")).toBeUndefined();
    expect(c.get("x")).toBe("X");
    c.apply({ kind: "key_created", fingerprint: "n" });
    expect(c.get("n")).toBeUndefined();
  });

  it("keeps its indexes right when an entry is replaced or evicted", () => {
    now = 0;
    const c = cache(1);
    c.set("a", "A", ids("k1", "cred1"));
    c.set("b", "B", ids("k2", "cred1"));
    expect(c.get("a")).toBeUndefined();
    c.apply({ kind: "credential", credentialId: "cred1" });
    expect(c.get("b")).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it("keeps an expired found key through its grace for `stale` only, never a dropped one or a missing one", () => {
    now = 0;
    let grace = 500;
    const c = new KeyCache<string>({
      max: 3,
      maxNegative: 2,
      ttlMs: () => 1000,
      negativeTtlMs: () => 100,
      graceMs: () => grace,
      now: () => now,
    });
    c.set("a", "A", ids("k1"));
    c.set("b", "B", ids("k2"));
    c.setMissing("n");
    now = 1200;
    // A normal lookup misses (the store is asked again); only a store that cannot answer falls back.
    expect(c.get("a")).toBeUndefined();
    expect(c.stale("a")).toBe("A");
    expect(c.stale("n")).toBeUndefined();
    c.apply({ kind: "key", keyId: "k2" });
    expect(c.stale("b")).toBeUndefined();
    now = 1500;
    expect(c.get("a")).toBeUndefined();
    expect(c.stale("a")).toBeUndefined();
    // Withdrawn grace (the bus went deaf) applies at once to what is held.
    c.set("a", "A", ids("k1"));
    now = 2600;
    grace = 0;
    expect(c.stale("a")).toBeUndefined();
  });
});

describe.each(BACKENDS)("the verification cache on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany();
  });
  afterAll(() => h.close());

  const verify = async (key: string) =>
    (await h.call("POST", "/v1/verify", { key: co.key, json: { key } })).json().data.code as string;

  it("answers from memory: a change made behind Latchkey's back shows only after the TTL", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    expect(await verify(k.key)).toBe("VALID");
    await sql`UPDATE api_keys SET status = 'revoked' WHERE id = ${k.id}`.execute(h.store.db);
    expect(await verify(k.key)).toBe("VALID");
    h.clock.advance(11);
    expect(await verify(k.key)).toBe("REVOKED");
  });

  it("drops a key's entry the moment it is revoked, rotated-out or its IPs change through the API", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    expect(await verify(k.key)).toBe("VALID");
    await h.call("PATCH", `/v1/keys/${k.id}`, { key: co.key, json: { allowed_ips: ["10.0.0.0/8"] } });
    expect(await verify(k.key)).toBe("IP_NOT_ALLOWED");
    await h.call("POST", `/v1/keys/${k.id}/rotate`, { key: co.key, json: { grace_seconds: 0 } });
    expect(await verify(k.key)).toBe("EXPIRED");
  });

  it("drops every key of a credential when the credential changes", async () => {
    const cred = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "svc", permissions: ["payin:read"] },
    });
    const credId = cred.json().data.id;
    const k = await h.createKey(co, { credential_id: credId });
    expect(await verify(k.key)).toBe("VALID");
    await h.call("PATCH", `/v1/credentials/${credId}`, { key: co.key, json: { status: "inactive" } });
    expect(await verify(k.key)).toBe("DISABLED");
  });

  it("forgets a cached 'not found' when that key is created", async () => {
    const ghost = generateToken("lk", "live", "sk");
    expect(await verify(ghost)).toBe("NOT_FOUND");
    // Plant a key with exactly that hash the way creation would, then announce it as creation does.
    await sql`INSERT INTO api_keys (id, company_id, credential_id, name, environment, permissions, key_hash, prefix, created_at, created_by)
      VALUES ('key_0000000000000000000000', ${co.id}, ${co.credentialId}, 'planted', 'live', '["payin:read"]',
              ${hashToken(SECRET, ghost)}, 'lk_live_sk_planted', now(), 'test')`.execute(h.store.db);
    expect(await verify(ghost)).toBe("NOT_FOUND");
    h.services.changes.emit({ kind: "key_created", fingerprint: fingerprint(ghost) });
    expect(await verify(ghost)).toBe("VALID");
  });
});
