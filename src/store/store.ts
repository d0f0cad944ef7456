import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { Kysely, Migrator, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { acquireDataDirLock, type DataDirLock } from "./lock.ts";
import { migrationProvider } from "./migrations/index.ts";
import { PGliteDialect } from "./pglite-dialect.ts";
import type { Database } from "./schema.ts";

export type StoreKind = "pglite" | "postgres";

export interface Store {
  kind: StoreKind;
  db: Kysely<Database>;
  /** The embedded store's lock, so the server can tell CLI commands where it listens. */
  lock: DataDirLock | null;
  /** The embedded store's data as a tarball (used to start test stores from a migrated template). */
  dump?: () => Promise<Blob>;
  close(): Promise<void>;
}

export type StoreOptions =
  | { kind: "postgres"; url: string; poolSize?: number; schema?: string }
  /** `dataDir` undefined: in memory (tests). `loadDataDir`: start from a dump (a migrated template). */
  | { kind: "pglite"; dataDir?: string; loadDataDir?: Blob; command?: string };

/** Opens the store. The embedded one takes its data dir's lock first: a second opener fails, naming the first. */
export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.kind === "postgres") {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { kind: "postgres", db, lock: null, close: () => db.destroy() };
  }
  const lock = options.dataDir ? acquireDataDirLock(options.dataDir, options.command ?? "serve") : null;
  try {
    const pglite = new PGlite({
      ...(options.dataDir ? { dataDir: join(options.dataDir, "pgdata") } : {}),
      ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
    });
    await pglite.waitReady;
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    return {
      kind: "pglite",
      db,
      lock,
      dump: async () => (await pglite.dumpDataDir("none")) as Blob,
      async close() {
        await db.destroy();
        lock?.release();
      },
    };
  } catch (err) {
    lock?.release();
    throw err;
  }
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

/** Applies every pending migration; returns the names applied. */
export async function migrateToLatest(db: Kysely<Database>): Promise<string[]> {
  // Name the schema: Kysely otherwise looks for its bookkeeping tables in every schema of the database,
  // and would find another deployment's in a shared database.
  const { rows } = await sql<{ schema: string }>`SELECT current_schema() AS schema`.execute(db);
  const migrator = new Migrator({
    db,
    provider: migrationProvider,
    migrationTableSchema: rows[0]?.schema ?? "public",
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error");
    throw new MigrationError(
      `migration ${failed?.migrationName ?? "?"} failed: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}
