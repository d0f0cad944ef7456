import { createHash } from "node:crypto";
import { hash } from "@node-rs/argon2";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCatalog } from "../../src/config.ts";
import { newId } from "../../src/core/ids.ts";
import { createRuntime } from "../../src/runtime.ts";
import { migrateToLatest, type Store } from "../../src/store/store.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { openStoreAt } from "../helpers/migrated-store.ts";

const SECRET = "migration-secret-0123456789abcdef0123456789";
/** The last migration before memberships that this branch has; 012 (merchant accounts) may sit between. */
const BEFORE = "011-recovery";
const PASSWORD = "Violet-Harbour-Lantern-47";

/**
 * People as they were before memberships (migration 013): one company each, the role and the status on
 * the person. Each must become a person with one membership carrying that role and status, still able
 * to sign in (or still refused) as before, and a session opened before must still act in its company.
 */
describe.each(BACKENDS)("the memberships migration on %s", (kind) => {
  let store: Store;
  let drop = async () => {};
  const now = new Date("2026-06-01T00:00:00Z");
  const co1 = newId("co", now);
  const co2 = newId("co", now);
  const people = {
    owner: { id: newId("usr", now), email: "owner@old.test", company: co1, role: "owner", status: "active" },
    gone: {
      id: newId("usr", now),
      email: "gone@old.test",
      company: co1,
      role: "developer",
      status: "disabled",
    },
    viewer: {
      id: newId("usr", now),
      email: "viewer@old.test",
      company: co2,
      role: "viewer",
      status: "active",
    },
  };
  const sessionToken = "an-old-session-token-from-before-memberships";

  beforeAll(async () => {
    ({ store, drop } = await openStoreAt(kind, BEFORE));
    const passwordHash = await hash(PASSWORD, { algorithm: 2 });
    for (const [id, slug] of [
      [co1, "One"],
      [co2, "Two"],
    ] as const) {
      await sql`INSERT INTO companies (id, name, slug, created_at) VALUES (${id}, ${`${slug} Co`}, ${slug}, ${now})`.execute(
        store.db,
      );
    }
    for (const p of Object.values(people)) {
      await sql`INSERT INTO users (id, company_id, email, password_hash, role, status, must_change_password, created_at)
        VALUES (${p.id}, ${p.company}, ${p.email}, ${passwordHash}, ${p.role}, ${p.status}, false, ${now})`.execute(
        store.db,
      );
    }
    await sql`INSERT INTO sessions (id, token_hash, user_id, company_id, csrf_token, created_at, last_seen_at, expires_at)
      VALUES (${newId("ses", now)}, ${createHash("sha256").update(sessionToken).digest("hex")}, ${people.owner.id},
        ${co1}, 'csrf', ${now}, ${now}, ${new Date(now.getTime() + 3_600_000)})`.execute(store.db);
    // An invitation link from before 013 (migration 011's tokens are per login, with no company).
    await sql`INSERT INTO person_tokens (token_hash, user_id, purpose, created_at, expires_at)
      VALUES ('old-invitation-hash', ${people.viewer.id}, 'invitation', ${now},
        ${new Date(now.getTime() + 3_600_000)})`.execute(store.db);
    expect(await migrateToLatest(store.db)).toContain("013-memberships");
  });
  afterAll(async () => {
    await store.close();
    await drop();
  });

  it("gives every person one membership with their company, role and status", async () => {
    const rows = await store.db
      .selectFrom("memberships")
      .select(["user_id", "company_id", "role", "status", "created_at", "accepted_at", "invited_by"])
      .orderBy("user_id")
      .execute();
    // Every existing membership was the person's already: accepted when it was made, none `invited`.
    const expected = Object.values(people)
      .map((p) => ({
        user_id: p.id,
        company_id: p.company,
        role: p.role,
        status: p.status,
        created_at: now,
        accepted_at: now,
        invited_by: null,
      }))
      .sort((a, b) => (a.user_id < b.user_id ? -1 : 1));
    expect(rows).toEqual(expected);
  });

  it("keeps the links of before, with no company, and takes company-bound membership links", async () => {
    const old = await store.db
      .selectFrom("person_tokens")
      .select(["user_id", "purpose", "company_id", "used_at"])
      .where("token_hash", "=", "old-invitation-hash")
      .executeTakeFirst();
    expect(old).toEqual({
      user_id: people.viewer.id,
      purpose: "invitation",
      company_id: null,
      used_at: null,
    });
    const row = (hash: string, purpose: string, company: string | null) =>
      sql`INSERT INTO person_tokens (token_hash, user_id, purpose, company_id, created_at, expires_at)
        VALUES (${hash}, ${people.owner.id}, ${purpose}, ${company}, ${now}, ${now})`.execute(store.db);
    await row("offer-hash", "membership", co2);
    // A membership link without its company, or another purpose with one, is refused by the store.
    await expect(row("no-company", "membership", null)).rejects.toThrow();
    await expect(row("reset-with-company", "password_reset", co2)).rejects.toThrow();
    await expect(row("unknown-purpose", "something", null)).rejects.toThrow();
    // And a membership may now be an offer.
    await sql`INSERT INTO memberships (user_id, company_id, role, status, created_at)
      VALUES (${people.owner.id}, ${co2}, 'viewer', 'invited', ${now})`.execute(store.db);
    await sql`DELETE FROM memberships WHERE user_id = ${people.owner.id} AND company_id = ${co2}`.execute(
      store.db,
    );
    await sql`DELETE FROM person_tokens WHERE token_hash = 'offer-hash'`.execute(store.db);
  });

  it("drops the company, role and status from the person, whose login stays", async () => {
    const { rows } = await sql<{ column_name: string }>`
      SELECT column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = 'users'`.execute(store.db);
    const columns = rows.map((r) => r.column_name);
    expect(columns).toEqual(expect.arrayContaining(["id", "email", "password_hash", "totp_secret"]));
    for (const gone of ["company_id", "role", "status"]) expect(columns).not.toContain(gone);
    const left = await store.db.selectFrom("users").select(["id", "last_company_id"]).execute();
    expect(left.length).toBe(3);
    // The next sign-in opens the company they had.
    for (const p of Object.values(people))
      expect(left.find((u) => u.id === p.id)?.last_company_id, p.email).toBe(p.company);
  });

  it("signs people in as before: in their company with their role, the disabled one refused", async () => {
    const { services, close } = await createRuntime({
      store,
      catalog: readCatalog(undefined),
      secret: SECRET,
      keyPrefix: "lk",
      services: { clock: () => now },
    });
    try {
      const owner = await services.people.login(
        { email: people.owner.email, password: PASSWORD },
        null,
        null,
      );
      expect(owner.company.id).toBe(co1);
      expect(owner.user.role).toBe("owner");
      const viewer = await services.people.login(
        { email: people.viewer.email, password: PASSWORD },
        null,
        null,
      );
      expect(viewer).toMatchObject({ company: { id: co2 }, user: { role: "viewer" } });
      await expect(
        services.people.login({ email: people.gone.email, password: PASSWORD }, null, null),
      ).rejects.toMatchObject({ code: "INVALID_LOGIN" });
      const old = await services.people.authenticate(sessionToken);
      expect(old?.actor).toMatchObject({ companyId: co1, role: "owner", userId: people.owner.id });
    } finally {
      await close();
    }
  });
});
