import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createRuntime, type Runtime, runtimeOptions } from "../../src/runtime.ts";
import type { ExpiryScheduler } from "../../src/services/expiry-scheduler.ts";
import { openStore, type Store } from "../../src/store/store.ts";
import { BACKENDS, TEST_DATABASE_URL } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness, SECRET } from "../helpers/harness.ts";

const DAY = 86_400;

describe.each(BACKENDS)("the expiry scheduler on %s", (kind) => {
  let h: Harness;
  /** A second node on the same database: its own runtime (and, on PostgreSQL, its own pool). */
  let other: { runtime: Runtime; store: Store | null };

  beforeAll(async () => {
    h = await createHarness(kind);
    let store: Store | null = null;
    if (kind === "postgres") {
      const { rows } = await sql<{ schema: string }>`SELECT current_schema() AS schema`.execute(h.store.db);
      store = await openStore({
        kind: "postgres",
        url: TEST_DATABASE_URL,
        schema: (rows[0] as { schema: string }).schema,
        poolSize: 4,
      });
    }
    const runtime = await createRuntime({
      store: store ?? h.store,
      secret: SECRET,
      catalog: h.catalog,
      keyPrefix: "lk",
      services: { clock: h.clock.read },
    });
    other = { runtime, store };
  });
  afterAll(async () => {
    await other.runtime.close();
    await other.store?.close();
    await h.close();
  });

  const sweep = (scheduler: ExpiryScheduler = h.services.expiryScheduler) => scheduler.runOnce();
  const at = (seconds: number) => new Date(h.clock.now.getTime() + seconds * 1000).toISOString();

  /** The events told of one key, oldest first. */
  async function eventsOf(keyId: string) {
    const rows = await h.store.db.selectFrom("events").selectAll().orderBy("seq").execute();
    return rows.filter((r) => (r.data as { key?: { id?: string } }).key?.id === keyId);
  }

  async function statusOf(id: string) {
    const row = await h.store.db
      .selectFrom("api_keys")
      .select("status")
      .where("id", "=", id)
      .executeTakeFirst();
    return row?.status;
  }

  async function verify(company: Company, key: string) {
    const res = await h.call("POST", "/v1/verify", { key: company.key, json: { key } });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data.code as string;
  }

  /** No event carries a key, a tail of one, or a hash. */
  async function expectNoSecrets(keyId: string, key: string) {
    const row = await h.store.db
      .selectFrom("api_keys")
      .select(["key_hash", "secret_hash"])
      .where("id", "=", keyId)
      .executeTakeFirstOrThrow();
    const text = JSON.stringify(await h.store.db.selectFrom("events").selectAll().execute());
    for (const secret of [key, key.slice(-30), row.key_hash]) expect(text).not.toContain(secret);
    expect(text).not.toMatch(/"(key_hash|secret_hash|secret)"/);
  }

  it("sends key.expiring 7 days and 1 day before, once each, then key.expired once", async () => {
    const co = await h.createCompany();
    const { id, key } = await h.createKey(co, { name: "Expiring", expires_at: at(10 * DAY) });
    await sweep();
    expect(await eventsOf(id)).toEqual([]);

    h.clock.advance(3 * DAY - 1);
    await sweep();
    expect(await eventsOf(id)).toEqual([]);
    h.clock.advance(1);
    await sweep();
    await sweep();
    h.clock.advance(DAY);
    await sweep();
    const first = await eventsOf(id);
    expect(first.map((e) => [e.type, (e.data as { notice: string }).notice])).toEqual([
      ["key.expiring", "7d"],
    ]);
    expect(first[0]).toMatchObject({ company_id: co.id, environment: "live" });
    expect(first[0]?.data).toMatchObject({
      key: { id, name: "Expiring", status: "active", prefix: expect.any(String) },
      expires_at: at(6 * DAY),
    });

    h.clock.advance(6 * DAY - DAY);
    await sweep();
    await sweep();
    expect((await eventsOf(id)).map((e) => (e.data as { notice?: string }).notice)).toEqual(["7d", "1d"]);
    expect(await verify(co, key)).toBe("VALID");

    h.clock.advance(DAY);
    await sweep();
    await sweep();
    h.clock.advance(DAY);
    await sweep();
    const all = await eventsOf(id);
    expect(all.map((e) => e.type)).toEqual(["key.expiring", "key.expiring", "key.expired"]);
    expect(all[2]?.data).toMatchObject({ key: { id, status: "expired" }, replaced_by: null });
    expect(await verify(co, key)).toBe("EXPIRED");
    await expectNoSecrets(id, key);
  });

  it("sends only the 1-day notice to a key made with less than a day left", async () => {
    const co = await h.createCompany();
    const { id } = await h.createKey(co, { expires_at: at(12 * 3600) });
    await sweep();
    h.clock.advance(3600);
    await sweep();
    expect((await eventsOf(id)).map((e) => (e.data as { notice?: string }).notice)).toEqual(["1d"]);
  });

  it("sends each notice once when two nodes sweep at the same moment", async () => {
    const co = await h.createCompany();
    const keys = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        h.createKey(co, { name: `Race ${i}`, expires_at: at((2 + i) * DAY) }),
      ),
    );
    const both = () => Promise.all([sweep(), sweep(other.runtime.services.expiryScheduler)]);
    for (let step = 0; step < 9; step++) {
      await both();
      await both();
      h.clock.advance(DAY);
    }
    for (const { id } of keys) {
      const seen = (await eventsOf(id)).map(
        (e) => `${e.type}:${(e.data as { notice?: string }).notice ?? ""}`,
      );
      // Every key here was made inside its 7-day window: a 7-day notice at once, then 1 day, then expired.
      expect(seen, id).toEqual(["key.expiring:7d", "key.expiring:1d", "key.expired:"]);
    }
  });

  it("tells of a rotated key once its overlap ends, with its replacement, and sends it no expiring notice", async () => {
    const co = await h.createCompany();
    const old = await h.createKey(co, { name: "Rotated" });
    const res = await h.call("POST", `/v1/keys/${old.id}/rotate`, {
      key: co.key,
      json: { grace_seconds: 3600 },
    });
    expect(res.statusCode, res.body).toBe(200);
    const fresh = res.json().data.id;
    await sweep();
    expect(await eventsOf(old.id)).toEqual([]);
    h.clock.advance(3601);
    await sweep();
    await sweep();
    const events = await eventsOf(old.id);
    expect(events.map((e) => e.type)).toEqual(["key.expired"]);
    expect(events[0]?.data).toMatchObject({ replaced_by: fresh, key: { id: old.id, replaced_by: fresh } });
    expect(await eventsOf(fresh)).toEqual([]);
  });

  describe("unused keys", () => {
    /** A company whose test keys are revoked after 30 days unused (its live management key is spared). */
    async function companyWithPolicy() {
      const co = await h.createCompany();
      await h.store.db
        .insertInto("expiry_policies")
        .values({
          company_id: co.id,
          environment: "test",
          max_lifetime_days: null,
          must_expire: false,
          revoke_unused_after_days: 30,
          updated_at: h.clock.now,
          updated_by: "usr_test",
        })
        .execute();
      return co;
    }

    it("sends key.unused 7 days before, then revokes the key as the system, audited, and /v1/verify refuses it", async () => {
      const co = await companyWithPolicy();
      const { id, key } = await h.createKey(co, { name: "Idle", environment: "test" });
      const live = await h.createKey(co, { name: "Idle live" });

      h.clock.advance(23 * DAY - 1);
      await sweep();
      expect(await eventsOf(id)).toEqual([]);
      h.clock.advance(1);
      await Promise.all([sweep(), sweep(other.runtime.services.expiryScheduler)]);
      const notice = await eventsOf(id);
      expect(notice.map((e) => e.type)).toEqual(["key.unused"]);
      expect(notice[0]).toMatchObject({ environment: "test" });
      expect(notice[0]?.data).toMatchObject({
        key: { id, status: "active" },
        revoke_unused_after_days: 30,
        revokes_at: at(7 * DAY),
      });

      h.clock.advance(7 * DAY - 1);
      await sweep();
      expect(await verify(co, key)).toBe("VALID");
      // That verification used the key: it is idle again from now, so nothing happens at 30 days.
      await h.services.usage.flush();
      h.clock.advance(1);
      await sweep();
      expect((await eventsOf(id)).map((e) => e.type)).toEqual(["key.unused"]);

      // 23 days after that use, a new notice; 7 days later the revocation, by one node only.
      h.clock.advance(23 * DAY);
      await sweep();
      expect((await eventsOf(id)).map((e) => e.type)).toEqual(["key.unused", "key.unused"]);
      h.clock.advance(7 * DAY);
      await Promise.all([sweep(), sweep(other.runtime.services.expiryScheduler)]);
      await sweep();
      const events = await eventsOf(id);
      expect(events.map((e) => e.type)).toEqual(["key.unused", "key.unused", "key.revoked"]);
      expect(events[2]?.data).toMatchObject({ key: { id, status: "revoked" }, reason: "unused" });
      expect(await verify(co, key)).toBe("REVOKED");

      const audit = await h.call("GET", `/v1/audit?action=key.revoked&target=${id}`, { key: co.key });
      const revoked = audit.json().data.events;
      expect(revoked).toHaveLength(1);
      expect(revoked[0]).toMatchObject({
        actor: { type: "system", id: "system:expiry", label: "expiry policy" },
        environment: "test",
        changes: { before: { status: "active" }, after: { status: "revoked" }, reason: "unused" },
      });
      const chain = await h.call("GET", "/v1/audit/verify", { key: co.key });
      expect(chain.json().data.valid).toBe(true);

      // The live key is under no policy: untouched.
      expect(await eventsOf(live.id)).toEqual([]);
      expect(await verify(co, live.key)).toBe("VALID");
      await expectNoSecrets(id, key);
    });

    it("warns a key long unused when the policy is turned on, and revokes it no sooner than 7 days later", async () => {
      const co = await h.createCompany();
      const { id, key } = await h.createKey(co, { name: "Ancient", environment: "test" });
      h.clock.advance(200 * DAY);
      await sweep();
      expect(await eventsOf(id)).toEqual([]);
      await h.store.db
        .insertInto("expiry_policies")
        .values({
          company_id: co.id,
          environment: "test",
          max_lifetime_days: null,
          must_expire: false,
          revoke_unused_after_days: 30,
          updated_at: h.clock.now,
          updated_by: "usr_test",
        })
        .execute();
      await sweep();
      const notice = await eventsOf(id);
      expect(notice.map((e) => e.type)).toEqual(["key.unused"]);
      expect(notice[0]?.data).toMatchObject({ revokes_at: at(7 * DAY) });
      h.clock.advance(7 * DAY - 1);
      await sweep();
      expect(await statusOf(id)).toBe("active");
      h.clock.advance(1);
      await sweep();
      expect((await eventsOf(id)).map((e) => e.type)).toEqual(["key.unused", "key.revoked"]);
      expect(await verify(co, key)).toBe("REVOKED");
    });
  });

  it("sweeps on its own only where the server runs it", () => {
    const env = { LATCHKEY_EXPIRY_SWEEP_MS: "5000" };
    expect(runtimeOptions(loadConfig(env), "serve").services?.expirySweepMs).toBe(5000);
    expect(runtimeOptions(loadConfig(env), "bootstrap").services?.expirySweepMs).toBeUndefined();
    expect(runtimeOptions(loadConfig({}), "serve").services?.expirySweepMs).toBe(60_000);
    expect(() => loadConfig({ LATCHKEY_EXPIRY_SWEEP_MS: "10" })).toThrow(/LATCHKEY_EXPIRY_SWEEP_MS/);
  });
});
