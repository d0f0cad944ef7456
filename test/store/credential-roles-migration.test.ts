import { type Kysely, sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCatalog } from "../../src/config.ts";
import { hashToken } from "../../src/core/hashing.ts";
import { newId } from "../../src/core/ids.ts";
import { generateToken, parseToken } from "../../src/core/key-format.ts";
import { createRuntime } from "../../src/runtime.ts";
import { PLATFORM_SCOPE } from "../../src/services/verification.ts";
import type { Database } from "../../src/store/schema.ts";
import { migrateToLatest, type Store } from "../../src/store/store.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { openStoreAt } from "../helpers/migrated-store.ts";

const SECRET = "migration-secret-0123456789abcdef0123456789";
/** The last migration before credential roles on this branch (012 and 013 come from sibling work). */
const BEFORE = "011-recovery";

/**
 * Credentials from before roles (migration 014): each must get no roles and keep its permissions, so
 * its keys and its Basic auth password do exactly what they did.
 */
describe.each(BACKENDS)("the credential roles migration on %s", (kind) => {
  let store: Store;
  let drop = async () => {};
  const now = new Date("2026-09-01T00:00:00Z");
  const co = newId("co", now);
  const credId = newId("cred", now);
  const password = "old-password-0123456789";
  const token = generateToken("lk", "live", "sk");
  const keyId = newId("key", now);
  const username = "ws_424242@Company.Old";

  beforeAll(async () => {
    ({ store, drop } = await openStoreAt(kind, BEFORE));
    const db = store.db as Kysely<Database>;
    await sql`INSERT INTO companies (id, name, slug, created_at) VALUES (${co}, 'Old Co', 'Old', ${now})`.execute(
      db,
    );
    await sql`INSERT INTO credentials (id, company_id, username, name, description, status, is_default, environment,
      permissions, allowed_ips, rate_limits, password_hash, created_at, created_by, updated_at)
      VALUES (${credId}, ${co}, ${username}, 'Checkout', '', 'active', false, 'live',
        ${JSON.stringify(["payin:read", "payin:create", "statement:read"])}::jsonb, '[]'::jsonb, '[]'::jsonb,
        ${hashToken(SECRET, password)}, ${now}, 'test', ${now})`.execute(db);
    await sql`INSERT INTO api_keys (id, company_id, credential_id, name, description, environment, permissions,
      allowed_ips, key_hash, prefix, status, created_at, created_by, rate_limits)
      VALUES (${keyId}, ${co}, ${credId}, 'k', '', 'live', ${JSON.stringify(["payin:read", "payin:create"])}::jsonb,
        '[]'::jsonb, ${hashToken(SECRET, token)}, ${parseToken(token)?.prefix}, 'active', ${now}, 'test', '[]')`.execute(
      db,
    );
    expect(await migrateToLatest(store.db)).toContain("014-credential-roles");
  });
  afterAll(async () => {
    await store.close();
    await drop();
  });

  it("gives every existing credential no roles and no email, and keeps its permissions", async () => {
    const row = await store.db
      .selectFrom("credentials")
      .selectAll()
      .where("id", "=", credId)
      .executeTakeFirstOrThrow();
    expect(row.roles).toEqual([]);
    expect(row.permissions).toEqual(["payin:read", "payin:create", "statement:read"]);
    // No email for notices: its keys' notices keep going to the owners only.
    expect(row.email).toBeNull();
  });

  it("keeps its keys and password doing what they did, and lets it be given roles", async () => {
    const { services, close } = await createRuntime({
      store,
      catalog: readCatalog(undefined),
      secret: SECRET,
      keyPrefix: "lk",
      services: { clock: () => now },
    });
    try {
      const ask = (input: Record<string, unknown>) =>
        services.verification.verify({ ip: "10.1.2.3", ...input }, PLATFORM_SCOPE);
      expect(await ask({ key: token, permissions: ["payin:create"] })).toMatchObject({ code: "VALID" });
      expect(await ask({ key: token, permissions: ["payout:read"] })).toMatchObject({
        code: "INSUFFICIENT_PERMISSIONS",
      });
      expect(await ask({ username, password, permissions: ["statement:read"] })).toMatchObject({
        code: "VALID",
      });
      const platform = {
        actor: { kind: "platform" as const },
        ip: "127.0.0.1",
        userAgent: null,
        totpUsed: false,
      };
      const view = await services.credentials.update(co, credId, { roles: ["payouts"] }, platform);
      expect(view).toMatchObject({ roles: ["payouts"], username_format: "web_service" });
      expect(await ask({ username, password, permissions: ["payout:create"] })).toMatchObject({
        code: "VALID",
      });
    } finally {
      await close();
    }
  });
});
