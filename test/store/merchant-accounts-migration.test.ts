import { type Kysely, sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCatalog } from "../../src/config.ts";
import { type ChainedEvent, eventHash, GENESIS_HASH } from "../../src/core/audit-chain.ts";
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
const BEFORE = "011-recovery";

/**
 * Data as it was before merchant accounts (migration 012): API users, keys and a hashed audit chain.
 * Everything must come out company-level, every key verifying as before, every event's hash intact.
 */
describe.each(BACKENDS)("the merchant accounts migration on %s", (kind) => {
  let store: Store;
  let drop = async () => {};
  const now = new Date("2026-09-01T00:00:00Z");
  const co = newId("co", now);
  const cred = newId("cred", now);
  const keyId = newId("key", now);
  const token = generateToken("lk", "live", "sk");
  const events: string[] = [];

  async function appendEvent(db: Kysely<Database>, seq: number, prev: string, action: string) {
    const event: ChainedEvent = {
      id: newId("evt", now),
      chain: co,
      seq,
      at: now.toISOString(),
      company_id: co,
      actor_type: "key",
      actor_id: keyId,
      actor_label: "lk_live_sk_old",
      action,
      target_type: "credential",
      target_id: cred,
      changes: { after: { name: "Old user" } },
      ip: null,
      user_agent: null,
      totp_used: false,
      prev_hash: prev,
      environment: "live",
      actor_environment: "live",
    };
    const hash = eventHash(event);
    await sql`INSERT INTO audit_events (id, chain, seq, at, company_id, actor_type, actor_id, actor_label, action,
      target_type, target_id, changes, ip, user_agent, totp_used, prev_hash, hash, environment, actor_environment)
      VALUES (${event.id}, ${co}, ${seq}, ${now}, ${co}, 'key', ${keyId}, 'lk_live_sk_old', ${action}, 'credential',
        ${cred}, ${JSON.stringify(event.changes)}::jsonb, null, null, false, ${prev}, ${hash}, 'live', 'live')`.execute(
      db,
    );
    await sql`INSERT INTO audit_heads (chain, seq, hash) VALUES (${co}, ${seq}, ${hash})
      ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`.execute(db);
    events.push(event.id);
    return hash;
  }

  beforeAll(async () => {
    ({ store, drop } = await openStoreAt(kind, BEFORE));
    const db = store.db;
    await sql`INSERT INTO companies (id, name, slug, created_at) VALUES (${co}, 'Old Co', 'OldCo', ${now})`.execute(
      db,
    );
    await sql`INSERT INTO credentials (id, company_id, username, name, description, status, is_default, permissions,
      allowed_ips, rate_limits, password_hash, created_at, created_by, updated_at, environment)
      VALUES (${cred}, ${co}, 'ws_000001@Company.OldCo', 'Old user', '', 'active', true,
        ${JSON.stringify(["payin:read"])}::jsonb, '[]'::jsonb, '[]'::jsonb, null, ${now}, 'test', ${now}, 'live')`.execute(
      db,
    );
    await sql`INSERT INTO api_keys (id, company_id, credential_id, name, description, environment, permissions,
      allowed_ips, key_hash, prefix, status, created_at, created_by, rate_limits)
      VALUES (${keyId}, ${co}, ${cred}, 'k', '', 'live', ${JSON.stringify(["payin:read"])}::jsonb, '[]'::jsonb,
        ${hashToken(SECRET, token)}, ${parseToken(token)?.prefix}, 'active', ${now}, 'test', '[]')`.execute(
      db,
    );
    const first = await appendEvent(db, 1, GENESIS_HASH, "credential.created");
    await appendEvent(db, 2, first, "key.created");
    expect(await migrateToLatest(store.db)).toContain("012-merchant-accounts");
  });
  afterAll(async () => {
    await store.close();
    await drop();
  });

  it("makes every API user and key company-level, and starts with no merchant accounts", async () => {
    const creds = await store.db.selectFrom("credentials").select(["id", "merchant_account_id"]).execute();
    expect(creds).toEqual([{ id: cred, merchant_account_id: null }]);
    const keys = await store.db.selectFrom("api_keys").select(["id", "merchant_account_id"]).execute();
    expect(keys).toEqual([{ id: keyId, merchant_account_id: null }]);
    expect(await store.db.selectFrom("merchant_accounts").selectAll().execute()).toEqual([]);
  });

  it("keeps the key verifying, company-level, and the old chain verifiable; new events chain on", async () => {
    const { services, close } = await createRuntime({
      store,
      catalog: readCatalog(undefined),
      secret: SECRET,
      keyPrefix: "lk",
      services: { clock: () => now },
    });
    try {
      const answer = await services.verification.verify({ key: token }, PLATFORM_SCOPE);
      expect(answer).toMatchObject({ code: "VALID", key_id: keyId, merchant_account_id: null });
      expect(await services.audit.verify(co)).toMatchObject({ valid: true, events_checked: 2 });
      const ctx = { actor: { kind: "platform" as const }, ip: null, userAgent: null, totpUsed: false };
      const account = await services.merchantAccounts.create(co, { name: "New shop", code: "new-shop" }, ctx);
      expect(await services.audit.verify(co)).toMatchObject({ valid: true, events_checked: 3 });
      const old = await store.db
        .selectFrom("audit_events")
        .select(["id", "merchant_account_id"])
        .where("chain", "=", co)
        .orderBy("seq")
        .execute();
      expect(old).toEqual([
        { id: events[0], merchant_account_id: null },
        { id: events[1], merchant_account_id: null },
        { id: expect.any(String), merchant_account_id: account.id },
      ]);
    } finally {
      await close();
    }
  });
});
