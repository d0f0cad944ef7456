import { hash } from "@node-rs/argon2";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCatalog } from "../../src/config.ts";
import { type ChainedEvent, eventHash, GENESIS_HASH } from "../../src/core/audit-chain.ts";
import { newId } from "../../src/core/ids.ts";
import { createRuntime } from "../../src/runtime.ts";
import { migrateToLatest, type Store } from "../../src/store/store.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { openStoreAt } from "../helpers/migrated-store.ts";

const SECRET = "migration-secret-0123456789abcdef0123456789";
const BEFORE = "014-credential-roles";
const PASSWORD = "Violet-Harbour-Lantern-47";

/**
 * People and a hashed audit chain as they were before memberships could be limited to a merchant
 * account (migration 015): every membership must come out company-wide, signing in as before, and the
 * old chain (with a merchant account's event in it) must still verify.
 */
describe.each(BACKENDS)("the membership merchant accounts migration on %s", (kind) => {
  let store: Store;
  let drop = async () => {};
  const now = new Date("2026-10-01T00:00:00Z");
  const co = newId("co", now);
  const account = newId("ma", now);
  const owner = { id: newId("usr", now), email: "owner@before015.test" };
  const viewer = { id: newId("usr", now), email: "viewer@before015.test" };
  const oldEvent = newId("evt", now);

  beforeAll(async () => {
    ({ store, drop } = await openStoreAt(kind, BEFORE));
    const db = store.db;
    await sql`INSERT INTO companies (id, name, slug, created_at) VALUES (${co}, 'Before Co', 'Before', ${now})`.execute(
      db,
    );
    await sql`INSERT INTO merchant_accounts (id, company_id, name, code, status, created_at, created_by, updated_at)
      VALUES (${account}, ${co}, 'Shop', 'shop', 'active', ${now}, 'platform', ${now})`.execute(db);
    const passwordHash = await hash(PASSWORD, { algorithm: 2 });
    for (const [p, role] of [
      [owner, "owner"],
      [viewer, "viewer"],
    ] as const) {
      await sql`INSERT INTO users (id, email, password_hash, must_change_password, created_at, last_company_id)
        VALUES (${p.id}, ${p.email}, ${passwordHash}, false, ${now}, ${co})`.execute(db);
      await sql`INSERT INTO memberships (user_id, company_id, role, status, created_at, accepted_at)
        VALUES (${p.id}, ${co}, ${role}, 'active', ${now}, ${now})`.execute(db);
    }
    // A merchant account's event as 012 hashed it: its account, no actor account.
    const event: ChainedEvent = {
      id: oldEvent,
      chain: co,
      seq: 1,
      at: now.toISOString(),
      company_id: co,
      actor_type: "platform",
      actor_id: null,
      actor_label: null,
      action: "merchant_account.created",
      target_type: "merchant_account",
      target_id: account,
      changes: { after: { name: "Shop" } },
      ip: null,
      user_agent: null,
      totp_used: false,
      prev_hash: GENESIS_HASH,
      merchant_account_id: account,
    };
    const h = eventHash(event);
    await sql`INSERT INTO audit_events (id, chain, seq, at, company_id, actor_type, actor_id, actor_label, action,
      target_type, target_id, changes, ip, user_agent, totp_used, prev_hash, hash, merchant_account_id)
      VALUES (${oldEvent}, ${co}, 1, ${now}, ${co}, 'platform', null, null, 'merchant_account.created',
        'merchant_account', ${account}, ${JSON.stringify(event.changes)}::jsonb, null, null, false, ${GENESIS_HASH},
        ${h}, ${account})`.execute(db);
    await sql`INSERT INTO audit_heads (chain, seq, hash) VALUES (${co}, 1, ${h})`.execute(db);
    expect(await migrateToLatest(store.db)).toContain("015-membership-merchant-accounts");
  });
  afterAll(async () => {
    await store.close();
    await drop();
  });

  it("makes every membership company-wide and leaves old events without an actor account", async () => {
    const memberships = await store.db
      .selectFrom("memberships")
      .select(["user_id", "merchant_account_id"])
      .orderBy("user_id")
      .execute();
    expect(memberships).toEqual(
      [owner.id, viewer.id].sort().map((id) => ({ user_id: id, merchant_account_id: null })),
    );
    const events = await store.db
      .selectFrom("audit_events")
      .select(["id", "actor_merchant_account_id"])
      .execute();
    expect(events).toEqual([{ id: oldEvent, actor_merchant_account_id: null }]);
  });

  it("signs people in company-wide as before, keeps the chain, and limits a person afterwards", async () => {
    const { services, close } = await createRuntime({
      store,
      catalog: readCatalog(undefined),
      secret: SECRET,
      keyPrefix: "lk",
      services: { clock: () => now },
    });
    try {
      expect(await services.audit.verify(co)).toMatchObject({ valid: true, events_checked: 1 });
      const signedIn = await services.people.login({ email: owner.email, password: PASSWORD }, null, null);
      expect(signedIn.user).toMatchObject({ role: "owner", merchant_account_id: null });
      const session = await services.people.authenticate(signedIn.session.token);
      expect(session?.actor).toMatchObject({ companyId: co, merchantAccountId: null });
      const ctx = {
        actor: session?.actor as NonNullable<typeof session>["actor"],
        ip: null,
        userAgent: null,
        totpUsed: false,
      };
      const moved = await services.people.update(ctx, viewer.id, { merchant_account_id: account });
      expect(moved.merchant_account_id).toBe(account);

      const theirs = await services.people.login({ email: viewer.email, password: PASSWORD }, null, null);
      const scoped = await services.people.authenticate(theirs.session.token);
      expect(scoped?.actor).toMatchObject({ companyId: co, merchantAccountId: account });
      const chain = await services.audit.verify(co);
      expect(chain).toMatchObject({ valid: true });
      // The scoped person's sign-in is hashed with its account: clearing it breaks the chain.
      const signIn = await store.db
        .selectFrom("audit_events")
        .select(["id", "actor_merchant_account_id"])
        .where("chain", "=", co)
        .where("actor_id", "=", viewer.id)
        .orderBy("seq", "desc")
        .executeTakeFirstOrThrow();
      expect(signIn.actor_merchant_account_id).toBe(account);
      await sql`UPDATE audit_events SET actor_merchant_account_id = NULL WHERE id = ${signIn.id}`.execute(
        store.db,
      );
      expect(await services.audit.verify(co)).toMatchObject({
        valid: false,
        first_broken_event_id: signIn.id,
      });
    } finally {
      await close();
    }
  });
});
