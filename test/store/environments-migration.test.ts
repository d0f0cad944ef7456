import { type Kysely, sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCatalog } from "../../src/config.ts";
import { hashToken } from "../../src/core/hashing.ts";
import { newId } from "../../src/core/ids.ts";
import { generateToken, parseToken } from "../../src/core/key-format.ts";
import { createRuntime } from "../../src/runtime.ts";
import { PLATFORM_SCOPE } from "../../src/services/verification.ts";
import type { Database } from "../../src/store/schema.ts";
import { migrateToLatest, type Store } from "../../src/store/store.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { openStoreAt } from "../helpers/migrated-store.ts";

const SECRET = "migration-secret-0123456789abcdef0123456789";
const BEFORE = "004-key-families";

/**
 * Data as it was before live and test were split (migration 005): API users shared by live and test
 * keys. The migration must keep every key (same id, hash and prefix, still verifying) and put each on
 * an API user of its own environment.
 */
describe.each(BACKENDS)("the live/test split migration on %s", (kind) => {
  let store: Store;
  let drop = async () => {};
  const tokens = new Map<string, string>();
  const now = new Date("2026-06-01T00:00:00Z");
  const co = newId("co", now);
  const cred = {
    mixed: newId("cred", now),
    testOnly: newId("cred", now),
    testWithPassword: newId("cred", now),
    empty: newId("cred", now),
  };

  async function credential(
    db: Kysely<Database>,
    id: string,
    name: string,
    isDefault: boolean,
    password: boolean,
  ) {
    await sql`INSERT INTO credentials (id, company_id, username, name, description, status, is_default, permissions,
      allowed_ips, rate_limits, password_hash, created_at, created_by, updated_at)
      VALUES (${id}, ${co}, ${`ws_${id.slice(-6)}@Company.Old`}, ${name}, 'd', 'active', ${isDefault},
        ${JSON.stringify(["payin:read", "payin:create"])}::jsonb, ${JSON.stringify(["10.0.0.0/8"])}::jsonb,
        ${JSON.stringify([{ limit: 5, window: "1s" }])}::jsonb, ${password ? "hash" : null}, ${now}, 'test', ${now})`.execute(
      db,
    );
  }
  async function key(db: Kysely<Database>, credentialId: string, environment: "live" | "test") {
    const token = generateToken("lk", environment, "sk");
    const id = newId("key", now);
    tokens.set(id, token);
    await sql`INSERT INTO api_keys (id, company_id, credential_id, name, description, environment, permissions,
      allowed_ips, key_hash, prefix, status, created_at, created_by, rate_limits)
      VALUES (${id}, ${co}, ${credentialId}, 'k', '', ${environment}, ${JSON.stringify(["payin:read"])}::jsonb,
        '[]'::jsonb, ${hashToken(SECRET, token)}, ${parseToken(token)?.prefix}, 'active', ${now}, 'test', '[]')`.execute(
      db,
    );
  }

  beforeAll(async () => {
    ({ store, drop } = await openStoreAt(kind, BEFORE));
    await sql`INSERT INTO companies (id, name, slug, created_at) VALUES (${co}, 'Old Co', 'Old', ${now})`.execute(
      store.db,
    );
    await credential(store.db, cred.mixed, "Default API credential", true, true);
    await credential(store.db, cred.testOnly, "Sandbox", false, false);
    await credential(store.db, cred.testWithPassword, "Sandbox with password", false, true);
    await credential(store.db, cred.empty, "Unused", false, false);
    await key(store.db, cred.mixed, "live");
    await key(store.db, cred.mixed, "live");
    await key(store.db, cred.mixed, "test");
    await key(store.db, cred.testOnly, "test");
    await key(store.db, cred.testWithPassword, "test");
    expect(await migrateToLatest(store.db)).toContain("005-environments");
  });
  afterAll(async () => {
    await store.close();
    await drop();
  });

  const credentials = () =>
    store.db.selectFrom("credentials").selectAll().orderBy("created_at").orderBy("id").execute();
  const keys = () => store.db.selectFrom("api_keys").selectAll().execute();

  it("keeps every key, each on an API user of its own environment", async () => {
    const all = await keys();
    expect(all.map((k) => k.id).sort()).toEqual([...tokens.keys()].sort());
    const byId = new Map((await credentials()).map((c) => [c.id, c]));
    for (const k of all) {
      expect(k.key_hash).toBe(hashToken(SECRET, tokens.get(k.id) as string));
      expect(byId.get(k.credential_id as string)?.environment, k.id).toBe(k.environment);
    }
  });

  it("moves the test keys of a shared API user to a test twin that keeps its rules but not its password", async () => {
    const all = await credentials();
    const mixed = all.find((c) => c.id === cred.mixed);
    expect(mixed).toMatchObject({ environment: "live", password_hash: "hash" });
    const twin = all.find((c) => c.name === "Default API credential (test)");
    expect(twin).toMatchObject({
      environment: "test",
      is_default: true,
      password_hash: null,
      status: "active",
      permissions: ["payin:read", "payin:create"],
      allowed_ips: ["10.0.0.0/8"],
      rate_limits: [{ limit: 5, window: "1s" }],
    });
    expect(twin?.username).toMatch(/^ws_\d{6}@Company\.Old$/);
    const liveKeys = (await keys()).filter((k) => k.credential_id === cred.mixed);
    expect(liveKeys.map((k) => k.environment)).toEqual(["live", "live"]);
  });

  it("turns an API user with only test keys into a test one, unless its password acts in live", async () => {
    const all = await credentials();
    expect(all.find((c) => c.id === cred.testOnly)?.environment).toBe("test");
    expect(all.find((c) => c.id === cred.testWithPassword)?.environment).toBe("live");
    expect(all.find((c) => c.name === "Sandbox with password (test)")?.environment).toBe("test");
    expect(all.find((c) => c.id === cred.empty)?.environment).toBe("live");
  });

  it("keeps every key verifying, in its environment", async () => {
    const { services, close } = await createRuntime({
      store,
      catalog: readCatalog(undefined),
      secret: SECRET,
      keyPrefix: "lk",
      services: { clock: () => now },
    });
    try {
      for (const k of await keys()) {
        const answer = await services.verification.verify(
          { key: tokens.get(k.id) as string, ip: "10.1.2.3" },
          PLATFORM_SCOPE,
        );
        expect(answer, k.id).toMatchObject({ code: "VALID", environment: k.environment, key_id: k.id });
      }
    } finally {
      await close();
    }
  });
});
