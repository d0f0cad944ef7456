import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../../src/core/ids.ts";
import { migrationProvider } from "../../src/store/migrations/index.ts";
import { migrateToLatest, openStore, type Store } from "../../src/store/store.ts";
import { BACKENDS, openTestStore, TEST_DATABASE_URL } from "../helpers/backends.ts";

// Other migrations may be added; the tests follow whatever the provider lists.
const allMigrations = async () => Object.keys(await migrationProvider.getMigrations()).sort();

const company = (id: string, createdAt = new Date()) => ({
  id,
  name: `Company ${id}`,
  slug: id,
  created_at: createdAt,
});

describe.each(BACKENDS)("store on %s", (kind) => {
  let store: Store;
  beforeAll(async () => {
    store = await openTestStore(kind);
  });
  afterAll(() => store.close());

  it("migrateToLatest is idempotent: a migrated store applies nothing", async () => {
    expect(await migrateToLatest(store.db)).toEqual([]);
    expect(await migrateToLatest(store.db)).toEqual([]);
    const { rows } = await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(
      store.db,
    );
    expect(rows.map((r) => r.name)).toEqual(await allMigrations());
  });

  it("has every table", async () => {
    const { rows } = await sql<{ table_name: string }>`
      SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`.execute(
      store.db,
    );
    const tables = rows.map((r) => r.table_name);
    for (const t of ["companies", "users", "credentials", "api_keys", "kysely_migration"]) {
      expect(tables, t).toContain(t);
    }
  });

  it("rolls back a failed transaction", async () => {
    const id = newId("co");
    const boom = new Error("boom");
    await expect(
      store.db.transaction().execute(async (trx) => {
        await trx.insertInto("companies").values(company(id)).execute();
        const inside = await trx.selectFrom("companies").select("id").where("id", "=", id).execute();
        expect(inside).toHaveLength(1);
        throw boom;
      }),
    ).rejects.toBe(boom);
    const after = await store.db.selectFrom("companies").select("id").where("id", "=", id).execute();
    expect(after).toEqual([]);
    // The connection is usable again after the rollback.
    await store.db.insertInto("companies").values(company(id)).execute();
    expect(await store.db.selectFrom("companies").select("id").where("id", "=", id).execute()).toHaveLength(
      1,
    );
  });

  it("rolls back a transaction that fails on a constraint", async () => {
    const id = newId("co");
    const taken = newId("co");
    await store.db.insertInto("companies").values(company(taken)).execute();
    await expect(
      store.db.transaction().execute(async (trx) => {
        await trx.insertInto("companies").values(company(id)).execute();
        await trx.insertInto("companies").values(company(taken)).execute(); // duplicate key
      }),
    ).rejects.toThrow();
    expect(await store.db.selectFrom("companies").select("id").where("id", "=", id).execute()).toEqual([]);
  });

  it("sorts ids by creation time under ORDER BY id", async () => {
    const base = Date.UTC(2026, 0, 15, 12);
    // 62 consecutive milliseconds walk the last time digit through 0-9, A-Z, a-z, where a
    // locale collation would disagree with byte order; the rest span minutes to years.
    const times = [
      ...Array.from({ length: 62 }, (_, i) => base + i),
      base + 61_000,
      base + 3_600_000,
      base + 86_400_000 * 400,
      Date.UTC(2020, 0, 1),
      Date.UTC(2031, 5, 1),
      Date.UTC(2099, 11, 31),
    ];
    const tag = `sort${newId("co").slice(-6)}`;
    const made = times.map((t) => ({ id: newId("co", new Date(t)), at: t }));
    const byTime = [...made].sort((a, b) => a.at - b.at).map((m) => m.id);
    // Insert in an order unrelated to time.
    const shuffled = [...made].sort((a, b) => (a.id.slice(-5) < b.id.slice(-5) ? -1 : 1));
    await store.db
      .insertInto("companies")
      .values(shuffled.map((m) => ({ ...company(m.id, new Date(m.at)), name: tag })))
      .execute();
    const rows = await store.db
      .selectFrom("companies")
      .select("id")
      .where("name", "=", tag)
      .orderBy("id")
      .execute();
    expect(rows.map((r) => r.id)).toEqual(byTime);
    const after = await store.db
      .selectFrom("companies")
      .select("id")
      .where("name", "=", tag)
      .where("id", ">", byTime[30] as string)
      .orderBy("id")
      .execute();
    expect(after.map((r) => r.id)).toEqual(byTime.slice(31));
  });
});

describe.runIf(BACKENDS.includes("pglite"))("store on pglite only", () => {
  let store: Store;
  const dirs: string[] = [];
  beforeAll(async () => {
    store = await openTestStore("pglite");
  });
  afterAll(async () => {
    await store.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  afterEach(async () => {
    await sql`DROP TABLE IF EXISTS test_counter`.execute(store.db);
  });

  it("runs concurrent transactions one after the other on its single connection", async () => {
    await sql`CREATE TABLE test_counter (id int PRIMARY KEY, n int NOT NULL)`.execute(store.db);
    await sql`INSERT INTO test_counter VALUES (1, 0)`.execute(store.db);
    const events: string[] = [];
    const bump = (who: string) =>
      store.db.transaction().execute(async (trx) => {
        events.push(`${who}:begin`);
        for (let i = 0; i < 20; i++) {
          const { rows } = await sql<{ n: number }>`SELECT n FROM test_counter WHERE id = 1`.execute(trx);
          await new Promise((r) => setImmediate(r));
          await sql`UPDATE test_counter SET n = ${(rows[0]?.n ?? 0) + 1} WHERE id = 1`.execute(trx);
        }
        events.push(`${who}:end`);
      });
    await Promise.all([bump("a"), bump("b"), bump("c")]);
    const { rows } = await sql<{ n: number }>`SELECT n FROM test_counter WHERE id = 1`.execute(store.db);
    expect(rows[0]?.n).toBe(60);
    expect(events).toEqual(["a:begin", "a:end", "b:begin", "b:end", "c:begin", "c:end"]);
  });

  it("does not let a plain query slip into another caller's open transaction", async () => {
    await sql`CREATE TABLE test_counter (id int PRIMARY KEY, n int NOT NULL)`.execute(store.db);
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const failing = store.db.transaction().execute(async (trx) => {
      await gate;
      await sql`SELECT 1`.execute(trx);
      throw new Error("roll back");
    });
    // Issued while the transaction holds the connection; must not become part of it and be rolled back.
    const outside = sql`INSERT INTO test_counter VALUES (7, 7)`.execute(store.db);
    await new Promise((r) => setTimeout(r, 20));
    release();
    await expect(failing).rejects.toThrow("roll back");
    await outside;
    const { rows } = await sql<{ n: number }>`SELECT n FROM test_counter WHERE id = 7`.execute(store.db);
    expect(rows).toEqual([{ n: 7 }]);
  });

  it("reopens an on-disk data dir with its data", { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "latchkey-store-"));
    dirs.push(dir);
    const id = newId("co");
    const first = await openStore({ kind: "pglite", dataDir: dir });
    try {
      expect(await migrateToLatest(first.db)).toEqual(await allMigrations());
      await first.db.insertInto("companies").values(company(id)).execute();
    } finally {
      await first.close();
    }
    const second = await openStore({ kind: "pglite", dataDir: dir });
    try {
      expect(await migrateToLatest(second.db)).toEqual([]);
      const rows = await second.db.selectFrom("companies").select(["id", "name"]).execute();
      expect(rows).toEqual([{ id, name: `Company ${id}` }]);
    } finally {
      await second.close();
    }
  });
});

describe.runIf(BACKENDS.includes("postgres"))("store on postgres only", () => {
  const admin = async (text: string) => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      return await client.query(text);
    } finally {
      await client.end();
    }
  };

  // Deployments share databases: a schema of its own must migrate even when another schema
  // of the same database already holds Kysely's migration tables.
  it("migrates a fresh schema while another schema of the database is migrated", async () => {
    const other = await openTestStore("postgres");
    const schema = `t_${randomBytes(6).toString("hex")}`;
    await admin(`CREATE SCHEMA ${schema}`);
    const store = await openStore({ kind: "postgres", url: TEST_DATABASE_URL, schema, poolSize: 2 });
    try {
      expect(await migrateToLatest(store.db)).toEqual(await allMigrations());
      const { rows } = await admin(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = '${schema}'`,
      );
      expect(rows.map((r) => r.table_name)).toEqual(
        expect.arrayContaining(["companies", "api_keys", "kysely_migration", "kysely_migration_lock"]),
      );
      expect(await migrateToLatest(store.db)).toEqual([]);
    } finally {
      await store.close();
      await other.close();
      await admin(`DROP SCHEMA ${schema} CASCADE`);
    }
  });
});
