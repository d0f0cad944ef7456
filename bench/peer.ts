// The peer: better-auth with its api-key plugin, set up the way its docs describe, on the same kind of
// database Latchkey runs on (PGlite in memory through our own dialect, or PostgreSQL through a pg Pool).
import { randomBytes } from "node:crypto";
import { apiKey } from "@better-auth/api-key";
import { PGlite } from "@electric-sql/pglite";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { PostgresDialect } from "kysely";
import pg from "pg";
import { readCatalog } from "../src/config.ts";
import { MANAGEMENT_GROUP_ID } from "../src/core/catalog.ts";
import { PGliteDialect } from "../src/store/pglite-dialect.ts";
import { DATABASE_URL, SECRET } from "./fixture.ts";

export type PeerStoreKind = "pglite" | "postgres";
/** better-auth's permission shape: resource → actions. */
export type PeerPermissions = Record<string, string[]>;

/**
 * The same permissions Latchkey's bench keys carry (every non-management permission of the default
 * catalog), in better-auth's shape, so both sides store and check keys of the same size.
 */
function catalogPermissions(): PeerPermissions {
  const out: PeerPermissions = {};
  for (const group of readCatalog(undefined).groups) {
    if (group.id === MANAGEMENT_GROUP_ID) continue;
    for (const entity of group.entities) out[entity.id] = entity.actions.map((a) => a.id);
  }
  return out;
}

/** One permission asked for on every verification, as the gateway asks Latchkey for one. */
export function askedPermission(all: PeerPermissions): PeerPermissions {
  const [resource, actions] = Object.entries(all)[0] as [string, string[]];
  return { [resource]: [actions[0] as string] };
}

function options(dialect: PGliteDialect | PostgresDialect) {
  return {
    database: { dialect, type: "postgres" as const },
    secret: SECRET,
    baseURL: "http://127.0.0.1",
    telemetry: { enabled: false },
    // Its logger would print every failed verification; Latchkey's runs with logger: false too.
    logger: { disabled: true },
    emailAndPassword: { enabled: true },
    // Rate limit off, as issue 4 asks: the figure is the verification itself. Everything else is the
    // plugin's default (storage "database", deferUpdates off), which is what its docs set up.
    plugins: [apiKey({ rateLimit: { enabled: false } })],
  };
}

function makeAuth(dialect: PGliteDialect | PostgresDialect) {
  return betterAuth(options(dialect));
}
export type PeerAuth = ReturnType<typeof makeAuth>;

export interface Peer {
  kind: PeerStoreKind;
  auth: PeerAuth;
  permissions: PeerPermissions;
  /** A new key for the bench user, through auth.api.createApiKey as a server would; returns the plaintext. */
  createKey(): Promise<string>;
  close(): Promise<void>;
}

async function admin(query: string): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await client.query(query);
  } finally {
    await client.end();
  }
}

/** A fresh better-auth with its tables migrated, and one user who owns the keys. */
export async function openPeer(kind: PeerStoreKind): Promise<Peer> {
  let dialect: PGliteDialect | PostgresDialect;
  let closeDb: () => Promise<void>;
  if (kind === "postgres") {
    // A schema of its own, like Latchkey's bench store: better-auth's migrator follows search_path.
    const schema = `bench_ba_${randomBytes(6).toString("hex")}`;
    await admin(`CREATE SCHEMA ${schema}`);
    const pool = new pg.Pool({
      connectionString: DATABASE_URL,
      max: 10,
      options: `-c search_path=${schema}`,
    });
    dialect = new PostgresDialect({ pool });
    closeDb = async () => {
      await pool.end();
      await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    };
  } else {
    const pglite = new PGlite();
    await pglite.waitReady;
    dialect = new PGliteDialect(pglite);
    closeDb = () => pglite.close();
  }
  try {
    // Migrated before betterAuth() is built: it checks the schema as it starts and refuses a missing table.
    await (await getMigrations(options(dialect))).runMigrations();
    const auth = makeAuth(dialect);
    const signUp = await auth.api.signUpEmail({
      body: { email: "owner@bench.test", password: "bench-password-1234", name: "Bench" },
    });
    const userId = signUp.user.id;
    const permissions = catalogPermissions();
    return {
      kind,
      auth,
      permissions,
      async createKey() {
        // Called without headers, so the plugin treats it as a server call and accepts userId and permissions.
        const created = await auth.api.createApiKey({ body: { userId, permissions } });
        return created.key;
      },
      close: closeDb,
    };
  } catch (err) {
    await closeDb();
    throw err;
  }
}

/** better-auth's verification, as its docs show it: true when the key is valid for the permission. */
export async function peerVerify(
  auth: PeerAuth,
  key: string,
  permissions: PeerPermissions,
): Promise<boolean> {
  const result = await auth.api.verifyApiKey({ body: { key, permissions } });
  return result.valid;
}
