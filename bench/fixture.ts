import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { readCatalog } from "../src/config.ts";
import { hashToken } from "../src/core/hashing.ts";
import { newId } from "../src/core/ids.ts";
import { generateToken, parseToken } from "../src/core/key-format.ts";
import { platformCtx } from "../src/services/actor.ts";
import { createServices, type Services } from "../src/services/services.ts";
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
}

/** Services as `latchkey serve` builds them: wall clock, usage batched in memory and flushed every 5 s. */
export function makeServices(bench: BenchStore): Services {
  return createServices({
    db: bench.store.db,
    catalog: readCatalog(undefined),
    secret: SECRET,
    keyPrefix: KEY_PREFIX,
    usageFlushMs: 5000,
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
  };
}

export function createKey(services: Services, companyId: string, credentialId: string) {
  return services.keys.create(
    companyId,
    { name: "bench", environment: "live", credential_id: credentialId },
    platformCtx(),
  );
}

/**
 * `n` more keys like the template, written straight into api_keys in batches (no audit events), because
 * creating them one by one through the service would dominate the run. Returns their plaintext.
 */
export async function bulkKeys(bench: BenchStore, fx: Fixture, n: number): Promise<string[]> {
  const db = bench.store.db;
  const template = await db
    .selectFrom("api_keys")
    .selectAll()
    .where("id", "=", fx.keyId)
    .executeTakeFirstOrThrow();
  const keys: string[] = [];
  const now = new Date();
  for (let done = 0; done < n; ) {
    const rows = [];
    for (let i = 0; i < 1000 && done < n; i++, done++) {
      const key = generateToken(KEY_PREFIX, "live", "sk");
      keys.push(key);
      rows.push({
        ...template,
        id: newId("key", now),
        key_hash: hashToken(SECRET, key),
        prefix: (parseToken(key) as NonNullable<ReturnType<typeof parseToken>>).prefix,
        permissions: JSON.stringify(template.permissions),
        allowed_ips: JSON.stringify(template.allowed_ips),
        created_at: now,
        last_used_at: null,
        last_used_ip: null,
      });
    }
    await db.insertInto("api_keys").values(rows).execute();
  }
  return keys;
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
