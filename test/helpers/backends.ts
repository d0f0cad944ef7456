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
 * A fresh, migrated store of the given kind. PGlite starts in memory from the run's template;
 * PostgreSQL gets a schema of its own, dropped on close, so parallel test files never meet.
 */
export async function openTestStore(kind: StoreKind): Promise<Store> {
  if (kind === "pglite") {
    const template = new Blob([readFileSync(inject("pgliteTemplate"))]);
    return openStore({ kind: "pglite", loadDataDir: template });
  }
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const store = await openStore({ kind: "postgres", url: TEST_DATABASE_URL, schema, poolSize: 4 });
  const drop = async () => {
    await store.close();
    const cleanup = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await cleanup.connect();
    await cleanup.query(`DROP SCHEMA ${schema} CASCADE`);
    await cleanup.end();
  };
  try {
    await migrateToLatest(store.db);
  } catch (err) {
    await drop();
    throw err;
  }
  return { ...store, close: drop };
}
