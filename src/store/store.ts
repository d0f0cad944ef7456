import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
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

/**
 * PGlite's own parameters plus smaller buffers: its default 128 MB of shared buffers is most of an
 * embedded server's memory, and a credential store's working set (keys by hash) is small; the data
 * dir's files stay in the OS page cache besides.
 */
const PGLITE_START_PARAMS = [
  ...PGlite.defaultStartParams,
  "-c",
  "shared_buffers=32MB",
  "-c",
  "work_mem=4MB",
  "-c",
  "temp_buffers=4MB",
];

/**
 * Creates a data dir in a child process. initdb leaves its WebAssembly instance a few hundred MB
 * larger than a reopened one, and that memory is only given back when its process ends; the server
 * then opens the new data dir afresh (about 0.3 s).
 */
async function initDataDir(dataDir: string): Promise<void> {
  const moduleUrl = pathToFileURL(createRequire(import.meta.url).resolve("@electric-sql/pglite")).href;
  const script = `const { PGlite } = await import(${JSON.stringify(moduleUrl)});
    const db = new PGlite({ dataDir: ${JSON.stringify(dataDir)}, startParams: ${JSON.stringify(PGLITE_START_PARAMS)} });
    await db.waitReady;
    await db.close();`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) {
    throw new Error(
      `initialising the embedded store in ${dataDir} failed: ${stderr.trim() || `exit ${code}`}`,
    );
  }
}

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
    const dataDir = options.dataDir ? join(options.dataDir, "pgdata") : undefined;
    if (dataDir && !existsSync(join(dataDir, "PG_VERSION"))) await initDataDir(dataDir);
    const pglite = new PGlite({
      ...(dataDir ? { dataDir } : {}),
      ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
      startParams: PGLITE_START_PARAMS,
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
