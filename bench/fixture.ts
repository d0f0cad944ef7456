import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import pg from "pg";
import { readCatalog } from "../src/config.ts";
import { hashToken } from "../src/core/hashing.ts";
import { newId } from "../src/core/ids.ts";
import { generateToken, parseToken } from "../src/core/key-format.ts";
import { createRuntime, type Runtime } from "../src/runtime.ts";
import { platformCtx } from "../src/services/actor.ts";
import type { ServiceOptions, Services } from "../src/services/services.ts";
import { migrateToLatest, openStore, type Store } from "../src/store/store.ts";

export const SECRET = "bench-secret-0123456789abcdef0123456789abcdef";
export const KEY_PREFIX = "lk";
export const DATABASE_URL =
  process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** `pglite-disk` is the embedded store as `latchkey serve` runs it (a data dir); `pglite` is in memory. */
export type BenchStoreKind = "pglite" | "pglite-disk" | "postgres";

export interface BenchStore {
  kind: BenchStoreKind;
  store: Store;
  close(): Promise<void>;
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A fresh, migrated store; PostgreSQL gets a schema of its own, dropped on close. */
export async function openBenchStore(kind: BenchStoreKind): Promise<BenchStore> {
  if (kind === "postgres") {
    const schema = `bench_${randomBytes(6).toString("hex")}`;
    await admin((c) => c.query(`CREATE SCHEMA ${schema}`));
    const drop = () => admin((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
    try {
      const store = await openStore({ kind: "postgres", url: DATABASE_URL, schema });
      await migrateToLatest(store.db);
      return {
        kind,
        store,
        async close() {
          await store.close();
          await drop();
        },
      };
    } catch (err) {
      await drop();
      throw err;
    }
  }
  const dir = kind === "pglite-disk" ? mkdtempSync(join(tmpdir(), "latchkey-bench-")) : undefined;
  const store = await openStore({ kind: "pglite", ...(dir ? { dataDir: dir, command: "bench" } : {}) });
  await migrateToLatest(store.db);
  return {
    kind,
    store,
    async close() {
      await store.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Fixture {
  services: Services;
  companyId: string;
  credentialId: string;
  /** A permission every bench key holds, asked for in verifications as a gateway would. */
  permission: string;
  /** A platform verify key, the caller of POST /v1/verify. */
  verifyKey: string;
  /** One key of the company's; the template the bulk keys copy. */
  key: string;
  keyId: string;
  /** The company's management key (revokes its keys over HTTP). */
  managementKey: string;
}

/**
 * The runtime as `latchkey serve` builds it, on the bench's store: wall clock, usage batched in memory
 * and flushed every 5 s. Closing it leaves the store open.
 */
export function benchRuntime(
  bench: BenchStore,
  cache?: ServiceOptions["cache"],
  catalogPath?: string,
): Promise<Runtime> {
  return createRuntime({
    store: bench.store,
    secret: SECRET,
    catalog: readCatalog(catalogPath),
    keyPrefix: KEY_PREFIX,
    services: { usageFlushMs: 5000, ...(cache ? { cache } : {}) },
  });
}

/** A company (with its default credential and management key), one more key, and a platform verify key. */
export async function seed(services: Services): Promise<Fixture> {
  const ctx = platformCtx();
  const company = await services.companies.create({ name: "Bench Co", owner_email: "owner@bench.test" }, ctx);
  const verifyKey = await services.keys.createVerifyKey("gateway", ctx);
  const first = await createKey(services, company.company.id, company.default_credential.id);
  return {
    services,
    companyId: company.company.id,
    credentialId: company.default_credential.id,
    permission: first.permissions[0] as string,
    verifyKey: verifyKey.key,
    key: first.key,
    keyId: first.id,
    managementKey: company.management_key.key,
  };
}

export function createKey(services: Services, companyId: string, credentialId: string) {
  return services.keys.create(
    companyId,
    { name: "bench", environment: "live", credential_id: credentialId },
    platformCtx(),
  );
}

/** Columns a bulk row gets from its own key rather than from the template. */
const OWN_COLUMNS = new Set(["id", "key_hash", "prefix", "created_at", "last_used_at", "last_used_ip"]);
/** Rows per INSERT statement: big enough to amortise the round trip, small enough for PGlite's memory. */
const BULK_BATCH = 20_000;

/**
 * `n` more keys like the template (fx.keyId), written straight into api_keys, because creating them one
 * by one through the service (one transaction and audit event each) would take hours at a million.
 * Each batch is one `INSERT … SELECT` over unnest()ed arrays of id, hash and prefix, with every other
 * column copied from the template row in SQL, so the bench keeps working when migrations add columns.
 * Every key is a real one: generated by generateToken and hashed by hashToken as the service does, so
 * any of them verifies. Returns the plaintext of every `keepEvery`-th key (a sample spread over the
 * whole insertion order) and calls `progress` after each batch.
 */
export async function insertKeys(
  bench: BenchStore,
  fx: Fixture,
  n: number,
  options: { keepEvery?: number; progress?: (done: number) => void } = {},
): Promise<string[]> {
  const keepEvery = options.keepEvery ?? 1;
  const db = bench.store.db;
  const template = await db
    .selectFrom("api_keys")
    .selectAll()
    .where("id", "=", fx.keyId)
    .executeTakeFirstOrThrow();
  const copied = Object.keys(template).filter((c) => !OWN_COLUMNS.has(c));
  const kept: string[] = [];
  const now = new Date();
  for (let done = 0; done < n; ) {
    const size = Math.min(BULK_BATCH, n - done);
    const ids: string[] = new Array(size);
    const hashes: string[] = new Array(size);
    const prefixes: string[] = new Array(size);
    for (let i = 0; i < size; i++, done++) {
      const key = generateToken(KEY_PREFIX, "live", "sk");
      if (done % keepEvery === 0) kept.push(key);
      ids[i] = newId("key", now);
      hashes[i] = hashToken(SECRET, key);
      prefixes[i] = (parseToken(key) as NonNullable<ReturnType<typeof parseToken>>).prefix;
    }
    await sql`
      INSERT INTO api_keys (id, key_hash, prefix, created_at, ${sql.join(copied.map((c) => sql.ref(c)))})
      SELECT u.id, u.key_hash, u.prefix, ${now.toISOString()}::timestamptz,
             ${sql.join(copied.map((c) => sql.ref(`t.${c}`)))}
      FROM unnest(${ids}::text[], ${hashes}::text[], ${prefixes}::text[]) AS u(id, key_hash, prefix)
      CROSS JOIN api_keys AS t
      WHERE t.id = ${fx.keyId}`.execute(db);
    options.progress?.(done);
  }
  return kept;
}

/** `n` more keys like the template, all of whose plaintext is returned. */
export function bulkKeys(bench: BenchStore, fx: Fixture, n: number): Promise<string[]> {
  return insertKeys(bench, fx, n);
}

/** Refreshes the planner's statistics, as autovacuum would after a bulk load (PGlite runs none). */
export async function analyze(bench: BenchStore): Promise<void> {
  await sql`ANALYZE api_keys`.execute(bench.store.db);
}

/** Rows in api_keys. */
export async function countKeys(bench: BenchStore): Promise<number> {
  const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM api_keys`.execute(bench.store.db);
  return Number(rows[0]?.n ?? 0);
}

/**
 * A runtime like benchRuntime's, on the same store and secret, whose verification cache keeps nothing:
 * built like the real one, so it follows whatever deps verification grows. Close it when done (that
 * stops its usage flush timer).
 */
export function uncachedRuntime(bench: BenchStore): Promise<Runtime> {
  return benchRuntime(bench, { max: 0 });
}

/** A well-formed key (valid checksum) that is in no store. */
export function unknownKey(): string {
  return generateToken(KEY_PREFIX, "live", "sk");
}

/** A key whose checksum does not match: rejected before any hashing or lookup. */
export function malformedKey(key: string): string {
  const last = key.at(-1) === "A" ? "B" : "A";
  return key.slice(0, -1) + last;
}
