import { spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, existsSync, lstatSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { Kysely, type LogEvent, Migrator, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { acquireDataDirLock, type DataDirLock } from "./lock.ts";
import { migrationProvider } from "./migrations/index.ts";
import { PGliteDialect } from "./pglite-dialect.ts";
import type { Database } from "./schema.ts";

export type StoreKind = "pglite" | "postgres";

/** Where the store reports an outage (the runtime hands in the server's logger). */
export interface StoreLog {
  warn(msg: string): void;
  info(msg: string): void;
}

/** One line on stderr: a store opened without a logger still says that it lost the database. */
const STDERR_LOG: StoreLog = {
  warn: (msg) => process.stderr.write(`${msg}\n`),
  info: (msg) => process.stderr.write(`${msg}\n`),
};

export interface Store {
  kind: StoreKind;
  db: Kysely<Database>;
  /** The embedded store's lock, so the server can tell CLI commands where it listens. */
  lock: DataDirLock | null;
  /** The embedded store's data as a tarball (used to start test stores from a migrated template). */
  dump?: () => Promise<Blob>;
  /** Runs `SELECT 1`; rejects when the store does not answer within `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * SQLSTATEs and socket errors that mean the database is not there (restarting, shut down, unreachable),
 * not that a statement is wrong: class 08 (connection exception), 57P01–57P03 (admin or crash shutdown,
 * cannot connect now) and 53300 (too many connections).
 */
const UNAVAILABLE_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[123]|53300)$/;
const UNAVAILABLE_ERRNO = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);
/** What node-postgres and its pool say when a connection ends or cannot be had in time. */
const UNAVAILABLE_MESSAGE =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection timed out|the store did not answer)/;

/**
 * Whether an error means the store is unreachable (so the request may succeed if retried shortly),
 * as opposed to a bug or bad data. The one place that decides it: the HTTP error handler answers these
 * with 503 STORE_UNAVAILABLE, and readiness reports them.
 */
export function isStoreUnavailable(err: unknown, depth = 0): boolean {
  if (typeof err !== "object" || err === null || depth > 3) return false;
  const { code, message, cause, errors } = err as {
    code?: unknown;
    message?: unknown;
    cause?: unknown;
    errors?: unknown;
  };
  if (typeof code === "string" && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_ERRNO.has(code)))
    return true;
  if (typeof message === "string" && UNAVAILABLE_MESSAGE.test(message)) return true;
  // Node reports a refused connection to every address of a name as one AggregateError.
  if (Array.isArray(errors) && errors.some((e) => isStoreUnavailable(e, depth + 1))) return true;
  return isStoreUnavailable(cause, depth + 1);
}

/**
 * Whether an error means the store's disk is full: SQLSTATE 53100 (disk_full), which PostgreSQL and
 * PGlite both raise when a table, index or status file cannot grow, or ENOSPC/EDQUOT from a file
 * Latchkey writes itself. The statement was not applied; it may succeed once space is freed. The one
 * place that decides it: the HTTP error handler answers these with 503 STORE_FULL, the store logs them.
 */
export function isStoreFull(err: unknown, depth = 0): boolean {
  if (typeof err !== "object" || err === null || depth > 3) return false;
  const { code, message, cause } = err as { code?: unknown; message?: unknown; cause?: unknown };
  if (code === "53100" || code === "ENOSPC" || code === "EDQUOT") return true;
  if (typeof message === "string" && /No space left on device/.test(message)) return true;
  return isStoreFull(cause, depth + 1);
}

const WRITES = new Set(["InsertQueryNode", "UpdateQueryNode", "DeleteQueryNode"]);

/**
 * Kysely's query log, used to say a full disk once per episode rather than once per refused request.
 * The first refused statement logs that the disk is full; the episode ends, with a line, at the first
 * write that is kept: one outside a transaction, or the commit of a transaction that wrote (a write
 * inside a transaction that then fails is not kept, and reads keep working throughout). Transactions
 * are followed by their BEGIN and COMMIT/ROLLBACK, which is exact on PGlite's one connection and close
 * enough for a log line on a pool.
 */
function diskFullEpisodes(log: StoreLog, where: string): (event: LogEvent) => void {
  let full = false;
  let inTransaction = false;
  let wrote = false;
  return (event) => {
    const statement = event.query.sql.trimStart().slice(0, 8).toLowerCase();
    const ends = statement.startsWith("commit") || statement.startsWith("rollback");
    if (statement.startsWith("begin")) {
      inTransaction = true;
      wrote = false;
    } else if (ends) inTransaction = false;
    if (event.level === "error") {
      if (full || !isStoreFull(event.error)) return;
      full = true;
      log.warn(
        `the disk holding ${where} is full: writes answer 503 STORE_FULL until space is freed ` +
          `(${event.error instanceof Error ? event.error.message : String(event.error)})`,
      );
      return;
    }
    const isWrite = WRITES.has(event.query.query.kind);
    if (inTransaction) {
      wrote ||= isWrite;
      return;
    }
    const kept = statement.startsWith("commit") ? wrote : isWrite && !ends;
    if (full && kept) {
      full = false;
      log.info(`the disk holding ${where} has space again: writes work`);
    }
  };
}

/** Rejects after `ms` unless `work` settles first. */
function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the store did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
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
  const existedBefore = existsSync(dataDir);
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
    // A half-made data dir (a full disk, a kill) would make every later start fail on it; the next
    // start initialises afresh.
    if (!existedBefore) rmSync(dataDir, { recursive: true, force: true });
    throw new Error(
      `initialising the embedded store in ${dataDir} failed: ${stderr.trim() || `exit ${code}`}`,
    );
  }
}

/** The directories 0700 and every file without group or world bits, under `path`. */
function ownerOnlyTree(path: string): void {
  const stat = lstatSync(path);
  if (stat.isSymbolicLink()) return;
  if (stat.isDirectory()) {
    if ((stat.mode & 0o777) !== 0o700) chmodSync(path, 0o700);
    for (const name of readdirSync(path)) ownerOnlyTree(join(path, name));
  } else if (stat.mode & 0o077) chmodSync(path, stat.mode & 0o700);
}

/**
 * Makes what Latchkey keeps in a data dir owner-only: the dir itself 0700 (one that already existed, a
 * mounted volume often 0777, is not left open), and the database, the secret and the lock without
 * group or world bits. PGlite's WebAssembly file layer creates its files 0666 whatever the umask;
 * files it creates later keep that mode, but sit in directories no other user can enter. Anything else
 * someone keeps in the dir is left alone. Runs at every open, before the database, and again by the
 * runtime once migrations have made their tables.
 */
export function ownerOnly(dataDir: string): void {
  chmodSync(dataDir, 0o700);
  for (const name of ["pgdata", "secret", "latchkey.lock"]) {
    if (existsSync(join(dataDir, name))) ownerOnlyTree(join(dataDir, name));
  }
}

/** Whether `dataDir` already holds an embedded store (one `latchkey serve` initialised). */
export function embeddedStoreExists(dataDir: string): boolean {
  return existsSync(join(dataDir, "pgdata", "PG_VERSION"));
}

/** How long a request waits for a pooled connection before the store counts as unavailable. */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * A pool that outlives its database: an idle connection the server ends (a restart, a failover,
 * `pg_terminate_backend`) is an `error` event on the pool, which without a listener would end the
 * process. The pool drops that connection and opens a new one for the next query; here the outage is
 * logged once, and its end once, when a connection is made again.
 */
function resilientPool(config: pg.PoolConfig, log: StoreLog): pg.Pool {
  const pool = new pg.Pool(config);
  let down = false;
  const lost = (err: Error) => {
    if (down) return;
    down = true;
    log.warn(`PostgreSQL connection lost (${err.message}); reconnecting on the next query`);
  };
  pool.on("error", lost);
  pool.on("connect", (client) => {
    // The pool listens to idle connections only: one checked out between two statements (a
    // transaction waiting on a hash) would otherwise end the process too. Its next query fails, the
    // request answers 503, and the pool drops the broken connection when it is released.
    client.on("error", lost);
    if (!down) return;
    down = false;
    log.info("PostgreSQL connection re-established");
  });
  return pool;
}

/**
 * Opens the store. The embedded one takes its data dir's lock first: a second opener fails, naming the
 * first. `log` hears of a lost database connection (default: a line on stderr).
 */
export async function openStore(options: StoreOptions, log: StoreLog = STDERR_LOG): Promise<Store> {
  if (options.kind === "postgres") {
    const pool = resilientPool(
      {
        connectionString: options.url,
        max: options.poolSize ?? 10,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
      },
      log,
    );
    const db = new Kysely<Database>({
      dialect: new PostgresDialect({ pool }),
      log: diskFullEpisodes(log, "the PostgreSQL database"),
    });
    return {
      kind: "postgres",
      db,
      lock: null,
      ping: (ms) =>
        withTimeout(
          pool.query("SELECT 1").then(() => undefined),
          ms,
        ),
      close: () => db.destroy(),
    };
  }
  const lock = options.dataDir ? acquireDataDirLock(options.dataDir, options.command ?? "serve") : null;
  try {
    const dataDir = options.dataDir ? join(options.dataDir, "pgdata") : undefined;
    if (dataDir && !existsSync(join(dataDir, "PG_VERSION"))) await initDataDir(dataDir);
    if (options.dataDir) ownerOnly(options.dataDir);
    const pglite = new PGlite({
      ...(dataDir ? { dataDir } : {}),
      ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
      startParams: PGLITE_START_PARAMS,
    });
    await pglite.waitReady;
    const db = new Kysely<Database>({
      dialect: new PGliteDialect(pglite),
      log: diskFullEpisodes(log, options.dataDir ? `${options.dataDir} (LATCHKEY_DATA_DIR)` : "memory"),
    });
    return {
      kind: "pglite",
      db,
      lock,
      dump: async () => (await pglite.dumpDataDir("none")) as Blob,
      ping: (ms) =>
        withTimeout(
          pglite.query("SELECT 1").then(() => undefined),
          ms,
        ),
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
