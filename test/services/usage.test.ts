import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageRecorder } from "../../src/services/usage.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

async function storedUse(h: Harness, id: string) {
  const row = await h.store.db
    .selectFrom("api_keys")
    .select(["last_used_at", "last_used_ip"])
    .where("id", "=", id)
    .executeTakeFirstOrThrow();
  return { at: row.last_used_at ? new Date(row.last_used_at).toISOString() : null, ip: row.last_used_ip };
}

describe.each(BACKENDS)("last-used tracking on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Usage Company");
  });
  afterAll(() => h.close());

  const verify = async (key: string, ip?: string) => {
    const res = await h.call("POST", "/v1/verify", { key: co.key, json: { key, ...(ip ? { ip } : {}) } });
    expect(res.json().data.code).toBe("VALID");
  };
  const shown = async (id: string) => (await h.call("GET", `/v1/keys/${id}`, { key: co.key })).json().data;

  it("records uses in memory and writes them only on flush", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    await verify(key.key, "198.51.100.1");
    h.clock.advance(30);
    await verify(key.key, "198.51.100.2");
    h.clock.advance(30);
    await verify(key.key, "2001:db8::7");
    const lastUse = h.clock.now.toISOString();

    expect(await shown(key.id)).toMatchObject({ last_used_at: null, last_used_ip: null });
    expect(await storedUse(h, key.id)).toEqual({ at: null, ip: null });

    h.clock.advance(60);
    await h.services.usage.flush();
    expect(await shown(key.id)).toMatchObject({ last_used_at: lastUse, last_used_ip: "2001:db8::7" });
  });

  it("never moves last_used_at backwards when an older use is flushed after a newer one", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    h.clock.advance(120);
    await verify(key.key, "198.51.100.10");
    const newer = h.clock.now.toISOString();
    await h.services.usage.flush();

    // Another instance's batch, or a clock stepped back, delivers an older use afterwards.
    h.clock.advance(-60);
    await verify(key.key, "198.51.100.20");
    await h.services.usage.flush();
    h.clock.advance(60);

    expect(await shown(key.id)).toMatchObject({ last_used_at: newer, last_used_ip: "198.51.100.10" });
  });
});

// Its own harness, since stopping the recorder is for good.
describe.each(BACKENDS)("stopping the usage recorder on %s", (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness(kind);
  });
  afterAll(() => h.close());

  it("flushes what is pending", async () => {
    const co = await h.createCompany("Stopping Company");
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    const res = await h.call("POST", "/v1/verify", {
      key: co.key,
      json: { key: key.key, ip: "203.0.113.5" },
    });
    expect(res.json().data.code).toBe("VALID");
    const usedAt = h.clock.now.toISOString();
    expect(await storedUse(h, key.id)).toEqual({ at: null, ip: null });

    await h.services.usage.stop();
    expect(await storedUse(h, key.id)).toEqual({ at: usedAt, ip: "203.0.113.5" });
  });
});

/** Stored per-day counts of some keys, as `keyId day` → counts. */
async function storedCounts(h: Harness, ids: string[]) {
  const rows = await h.store.db
    .selectFrom("key_usage_daily")
    .select(["key_id", sql<string>`to_char(day, 'YYYY-MM-DD')`.as("day"), "requests", "denied"])
    .where("key_id", "in", ids)
    .orderBy("key_id")
    .orderBy("day")
    .execute();
  return Object.fromEntries(
    rows.map((r) => [`${r.key_id} ${r.day}`, { requests: Number(r.requests), denied: Number(r.denied) }]),
  );
}

/** Keys straight into the store, many at once (the counts only need rows to refer to). */
async function plantKeys(h: Harness, co: Company, n: number): Promise<string[]> {
  const tag = Math.random().toString(36).slice(2, 10);
  const ids = Array.from({ length: n }, (_, i) => `key_${tag}${String(i).padStart(14, "0")}`);
  await sql`INSERT INTO api_keys (id, company_id, credential_id, name, environment, permissions, key_hash, prefix, created_at, created_by)
    SELECT id, ${co.id}, ${co.credentialId}, 'planted', 'live', '[]', 'hash-' || id, 'lk_live_sk_planted', now(), 'test'
    FROM unnest(${ids}::text[]) AS id`.execute(h.store.db);
  return ids;
}

const at = (iso: string) => new Date(iso);

describe.each(BACKENDS)("per-day usage counts on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Counting Company");
  });
  afterAll(() => h.close());

  it("counts allowed and refused verifications per UTC day, across midnight, in one flush", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    h.clock.now = at("2026-03-01T23:59:59.999Z");
    const verify = async (json: Record<string, unknown>) =>
      (await h.call("POST", "/v1/verify", { key: co.key, json: { key: key.key, ...json } })).json().data.code;
    expect(await verify({})).toBe("VALID");
    expect(await verify({ permissions: ["payout:create"] })).toBe("INSUFFICIENT_PERMISSIONS");
    h.clock.now = at("2026-03-02T00:00:00.000Z");
    expect(await verify({})).toBe("VALID");
    expect(await verify({})).toBe("VALID");
    expect(await verify({ environment: "test" })).toBe("ENVIRONMENT_MISMATCH");
    h.clock.now = at("2026-03-04T12:00:00.000Z");
    expect(await verify({})).toBe("VALID");
    // Unknown and malformed keys belong to no key: they are not counted anywhere.
    expect(await verify({ key: "lk_live_sk_nonsense" })).toBe("MALFORMED");

    expect(await storedCounts(h, [key.id])).toEqual({});
    await h.services.usage.flush();
    expect(await storedCounts(h, [key.id])).toEqual({
      [`${key.id} 2026-03-01`]: { requests: 1, denied: 1 },
      [`${key.id} 2026-03-02`]: { requests: 2, denied: 1 },
      [`${key.id} 2026-03-04`]: { requests: 1, denied: 0 },
    });
    // A later flush adds to what is stored.
    expect(await verify({})).toBe("VALID");
    await h.services.usage.flush();
    expect((await storedCounts(h, [key.id]))[`${key.id} 2026-03-04`]).toEqual({ requests: 2, denied: 0 });
  });

  it("puts a late (out-of-order) use on its own day", async () => {
    const [id] = (await plantKeys(h, co, 1)) as [string];
    const recorder = new UsageRecorder(h.store.db);
    recorder.record(id, at("2026-04-02T08:00:00Z"), null);
    recorder.record(id, at("2026-04-01T23:00:00Z"), null);
    recorder.record(id, at("2026-04-02T09:00:00Z"), null, false);
    recorder.record(id, at("2026-03-31T10:00:00Z"), null);
    recorder.record(id, at("2026-04-02T10:00:00Z"), null);
    await recorder.stop();
    expect(await storedCounts(h, [id])).toEqual({
      [`${id} 2026-03-31`]: { requests: 1, denied: 0 },
      [`${id} 2026-04-01`]: { requests: 1, denied: 0 },
      [`${id} 2026-04-02`]: { requests: 2, denied: 1 },
    });
  });

  it("a refused use never moves last_used_at", async () => {
    const [id] = (await plantKeys(h, co, 1)) as [string];
    const recorder = new UsageRecorder(h.store.db);
    recorder.record(id, at("2026-04-02T08:00:00Z"), "192.0.2.1");
    recorder.record(id, at("2026-04-02T09:00:00Z"), "192.0.2.66", false);
    await recorder.stop();
    expect(await storedUse(h, id)).toEqual({ at: "2026-04-02T08:00:00.000Z", ip: "192.0.2.1" });
  });

  it("stop() writes everything still pending, for every key and day", async () => {
    const ids = await plantKeys(h, co, 3);
    const recorder = new UsageRecorder(h.store.db);
    recorder.start(60_000);
    for (const [i, id] of ids.entries()) {
      for (let n = 0; n <= i; n++) recorder.record(id, at("2026-05-01T10:00:00Z"), "192.0.2.9");
      recorder.record(id, at("2026-05-02T10:00:00Z"), "192.0.2.10", false);
    }
    expect(await storedCounts(h, ids)).toEqual({});
    await recorder.stop();
    const stored = await storedCounts(h, ids);
    expect(Object.keys(stored)).toHaveLength(6);
    ids.forEach((id, i) => {
      expect(stored[`${id} 2026-05-01`]).toEqual({ requests: i + 1, denied: 0 });
      expect(stored[`${id} 2026-05-02`]).toEqual({ requests: 0, denied: 1 });
    });
  });

  it("two nodes' recorders on one store add up exactly, flushing at the same time", async () => {
    const ids = await plantKeys(h, co, 150);
    const errors: unknown[] = [];
    const nodeA = new UsageRecorder(h.store.db, (err) => errors.push(err));
    const nodeB = new UsageRecorder(h.store.db, (err) => errors.push(err));
    const days = ["2026-06-01", "2026-06-02"];
    const expected: Record<string, { requests: number; denied: number }> = {};
    for (let round = 0; round < 8; round++) {
      // The nodes see the keys in opposite orders, as two nodes of a real cluster would.
      for (const [i, id] of ids.entries()) {
        const other = ids[ids.length - 1 - i] as string;
        for (const day of days) {
          nodeA.record(id, at(`${day}T12:00:00Z`), "192.0.2.1");
          nodeB.record(other, at(`${day}T12:00:01Z`), "192.0.2.2");
          nodeB.record(other, at(`${day}T12:00:02Z`), "192.0.2.2", false);
        }
      }
      await Promise.all([nodeA.flush(), nodeB.flush()]);
    }
    // Whatever a failed flush merged back goes out with the next one.
    await Promise.all([nodeA.stop(), nodeB.stop()]);
    for (const id of ids) for (const day of days) expected[`${id} ${day}`] = { requests: 16, denied: 8 };
    expect(await storedCounts(h, ids)).toEqual(expected);
    expect(errors).toEqual([]);
  });

  it("a failed flush is retried by the next one: nothing lost, nothing counted twice", async () => {
    const ids = await plantKeys(h, co, 2);
    const [a, b] = ids as [string, string];
    // A store that loses the connection after doing the work (so the transaction rolls back), once.
    let failures = 1;
    const flaky = new Proxy(h.store.db, {
      get(target, prop, receiver) {
        if (prop !== "transaction") return Reflect.get(target, prop, receiver);
        return () => ({
          execute: (work: (tx: unknown) => Promise<unknown>) =>
            target.transaction().execute(async (tx) => {
              const result = await work(tx);
              if (failures > 0) {
                failures--;
                throw new Error("connection lost");
              }
              return result;
            }),
        });
      },
    });
    const errors: unknown[] = [];
    const recorder = new UsageRecorder(flaky, (err) => errors.push(err));
    recorder.record(a, at("2026-07-01T10:00:00Z"), "192.0.2.1");
    recorder.record(a, at("2026-07-01T10:00:01Z"), "192.0.2.1", false);
    recorder.record(b, at("2026-07-01T10:00:02Z"), "192.0.2.2");
    await recorder.flush();
    expect(errors).toHaveLength(1);
    expect(await storedCounts(h, ids)).toEqual({});
    expect(await storedUse(h, a)).toEqual({ at: null, ip: null });

    // More uses arrive before the retry, on the same key and day and on a new one.
    recorder.record(a, at("2026-07-01T11:00:00Z"), "192.0.2.3");
    recorder.record(a, at("2026-07-02T10:00:00Z"), "192.0.2.4");
    await recorder.flush();
    expect(errors).toHaveLength(1);
    expect(await storedCounts(h, ids)).toEqual({
      [`${a} 2026-07-01`]: { requests: 2, denied: 1 },
      [`${a} 2026-07-02`]: { requests: 1, denied: 0 },
      [`${b} 2026-07-01`]: { requests: 1, denied: 0 },
    });
    expect(await storedUse(h, a)).toEqual({ at: "2026-07-02T10:00:00.000Z", ip: "192.0.2.4" });
    expect(await storedUse(h, b)).toEqual({ at: "2026-07-01T10:00:02.000Z", ip: "192.0.2.2" });
    // Nothing is left to write twice.
    await recorder.stop();
    expect((await storedCounts(h, ids))[`${a} 2026-07-01`]).toEqual({ requests: 2, denied: 1 });
  });
});

describe.each(BACKENDS)("a flush with more keys than one statement can carry on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Busy Company");
  });
  afterAll(() => h.close());

  it("writes every key's use and counts (PostgreSQL takes at most 65,535 parameters a statement)", async () => {
    const template = await h.createKey(co, { permissions: ["payin:read"] });
    const n = 17_000; // × 4 parameters a row would be 68,000 in one statement
    await sql`
      INSERT INTO api_keys (id, company_id, credential_id, name, description, environment, permissions,
        allowed_ips, rate_limits, key_hash, prefix, status, created_at, created_by)
      SELECT 'key_busy' || lpad(g::text, 18, '0'), company_id, credential_id, name, description, environment,
        permissions, allowed_ips, rate_limits, 'busy-hash-' || g, 'busy' || g, status, created_at, created_by
      FROM api_keys, generate_series(1, ${n}) AS g WHERE id = ${template.id}`.execute(h.store.db);
    const recorder = new UsageRecorder(h.store.db, (err) => {
      throw err;
    });
    const at = new Date("2026-01-15T12:00:00.000Z");
    for (let g = 1; g <= n; g++) recorder.record(`key_busy${String(g).padStart(18, "0")}`, at, "192.0.2.1");
    await recorder.flush();
    const { rows } = await sql<{ keys: string | number; requests: string | number; used: string | number }>`
      SELECT count(*) AS keys, sum(requests) AS requests,
        (SELECT count(*) FROM api_keys WHERE id LIKE 'key_busy%' AND last_used_ip = '192.0.2.1') AS used
      FROM key_usage_daily WHERE key_id LIKE 'key_busy%'`.execute(h.store.db);
    const row = rows[0];
    expect([row?.keys, row?.requests, row?.used].map(Number)).toEqual([n, n, n]);
  });
});

describe.each(BACKENDS)("stopping while the store fails for a moment on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Shutdown Company");
  });
  afterAll(() => h.close());

  /** The store, except that its next `failures` transactions fail before doing anything. */
  function failing(failures: number) {
    return new Proxy(h.store.db, {
      get(target, prop, receiver) {
        if (prop !== "transaction") return Reflect.get(target, prop, receiver);
        return () => {
          if (failures-- > 0) return { execute: async () => Promise.reject(new Error("connection refused")) };
          return target.transaction();
        };
      },
    });
  }

  it("stop() tries again rather than drop what is pending", async () => {
    const [id] = (await plantKeys(h, co, 1)) as [string];
    const errors: unknown[] = [];
    const recorder = new UsageRecorder(failing(2), (err) => errors.push(err));
    recorder.record(id, at("2026-08-01T10:00:00Z"), "192.0.2.1");
    recorder.record(id, at("2026-08-01T10:00:01Z"), "192.0.2.1", false);
    await recorder.stop({ retryDelayMs: 10 });
    expect(errors).toHaveLength(2);
    expect(await storedCounts(h, [id])).toEqual({ [`${id} 2026-08-01`]: { requests: 1, denied: 1 } });
  });

  it("gives up after its retries, reporting every failure, without hanging", async () => {
    const [id] = (await plantKeys(h, co, 1)) as [string];
    const errors: unknown[] = [];
    const recorder = new UsageRecorder(failing(100), (err) => errors.push(err));
    recorder.record(id, at("2026-08-02T10:00:00Z"), null);
    await recorder.stop({ retries: 2, retryDelayMs: 10 });
    expect(errors).toHaveLength(3);
    expect(await storedCounts(h, [id])).toEqual({});
  });
});
