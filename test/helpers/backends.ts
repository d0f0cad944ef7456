import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";
import { inject } from "vitest";
import { migrateToLatest, openStore, type Store, type StoreKind } from "../../src/store/store.ts";

/** PostgreSQL for tests; CI has it at 127.0.0.1:5432 with trust auth. */
export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/**
 * Every storage and API suite runs against each real backend; `LATCHKEY_TEST_BACKENDS=pglite`
 * (or `postgres`) narrows the list.
 */
export const BACKENDS: StoreKind[] = (process.env.LATCHKEY_TEST_BACKENDS ?? "pglite,postgres")
  .split(",")
  .map((s) => s.trim())
  .filter((s): s is StoreKind => s === "pglite" || s === "postgres");

/**
 * An empty PostgreSQL schema of a test's own, and `url`, a connection string whose sessions use it
 * (for servers started from configuration). `drop` removes it with everything in it.
 */
export async function createTestSchema(): Promise<{ schema: string; url: string; drop(): Promise<void> }> {
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const run = async (statement: string) => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE SCHEMA ${schema}`);
  const sep = TEST_DATABASE_URL.includes("?") ? "&" : "?";
  return {
    schema,
    url: `${TEST_DATABASE_URL}${sep}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    drop: () => run(`DROP SCHEMA ${schema} CASCADE`),
  };
}

/**
 * A fresh, migrated store of the given kind. PGlite starts in memory from the run's template;
 * PostgreSQL gets a schema of its own, dropped on close, so parallel test files never meet.
 */
export async function openTestStore(kind: StoreKind): Promise<Store> {
  if (kind === "pglite") {
    const template = new Blob([readFileSync(inject("pgliteTemplate"))]);
    return openStore({ kind: "pglite", loadDataDir: template });
  }
  const { schema, drop: dropSchema } = await createTestSchema();
  const store = await openStore({ kind: "postgres", url: TEST_DATABASE_URL, schema, poolSize: 4 });
  const drop = async () => {
    await store.close();
    await dropSchema();
  };
  try {
    await migrateToLatest(store.db);
  } catch (err) {
    await drop();
    throw err;
  }
  return { ...store, close: drop };
}
