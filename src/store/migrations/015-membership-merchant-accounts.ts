import { type Kysely, sql } from "kysely";

/**
 * A person's membership may be limited to one merchant account of its company, as an API user may:
 * they then act within that account only (core/access/merchant-accounts.ts). Every existing membership
 * is the whole company's (null), so nobody loses or gains anything.
 *
 * Audit events gain the merchant account of the actor (null: company-level, or an event from before
 * this migration), so an account's caller reading its trail is not shown who of the company acted.
 * Like merchant_account_id (012), the chain hashes it only when it is set.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE memberships ADD COLUMN merchant_account_id text COLLATE "C"
            REFERENCES merchant_accounts(id)`.execute(db);
  await sql`ALTER TABLE audit_events ADD COLUMN actor_merchant_account_id text COLLATE "C"`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE audit_events DROP COLUMN actor_merchant_account_id`.execute(db);
  await sql`ALTER TABLE memberships DROP COLUMN merchant_account_id`.execute(db);
}
