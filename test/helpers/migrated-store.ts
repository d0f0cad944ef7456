import { Migrator, sql } from "kysely";
import { migrationProvider } from "../../src/store/migrations/index.ts";
import { openStore, type Store, type StoreKind } from "../../src/store/store.ts";
import { createTestSchema, TEST_DATABASE_URL } from "./backends.ts";

/**
 * A store of `kind` migrated only as far as `migration`, for a migration test to write the data an
 * older version left before it migrates the rest of the way. `drop` removes a PostgreSQL test schema.
 */
export async function openStoreAt(
  kind: StoreKind,
  migration: string,
): Promise<{ store: Store; drop: () => Promise<void> }> {
  let store: Store;
  let drop = async () => {};
  if (kind === "pglite") {
    store = await openStore({ kind: "pglite" });
  } else {
    const schema = await createTestSchema();
    store = await openStore({ kind: "postgres", url: TEST_DATABASE_URL, schema: schema.schema, poolSize: 2 });
    drop = schema.drop;
  }
  const { rows } = await sql<{ schema: string }>`SELECT current_schema() AS schema`.execute(store.db);
  const migrator = new Migrator({
    db: store.db,
    provider: migrationProvider,
    migrationTableSchema: rows[0]?.schema ?? "public",
  });
  const { error } = await migrator.migrateTo(migration);
  if (error) throw error;
  return { store, drop };
}
