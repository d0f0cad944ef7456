import { type Kysely, sql } from "kysely";

/**
 * Merchant accounts, as the Adyen doc has them under a company account: a company's API users (and so
 * their keys and Basic passwords) may belong to one, and then act within it only. An account exists
 * once for both live and test, with live and test API users under it. It is never deleted, only
 * deactivated. `code` is the account's short name, unique within its company and fixed at creation,
 * so a platform can name it in its own configuration.
 *
 * Everything that exists already is company-level (merchant_account_id null): no key changes what it
 * may see. Keys carry their API user's account too, so verification reads it from the key's own row;
 * both are fixed at creation, so they never drift apart. Audit events gain the account of what they
 * are about; older events keep null, which their hashes never covered (see audit-chain.ts).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE merchant_accounts (
      id text COLLATE "C" PRIMARY KEY,
      company_id text COLLATE "C" NOT NULL REFERENCES companies(id),
      name text NOT NULL,
      code text NOT NULL,
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
      created_at timestamptz NOT NULL,
      created_by text NOT NULL,
      updated_at timestamptz NOT NULL,
      UNIQUE (company_id, code)
    )`.execute(db);
  await sql`CREATE INDEX merchant_accounts_company ON merchant_accounts (company_id, id)`.execute(db);
  await sql`ALTER TABLE credentials ADD COLUMN merchant_account_id text COLLATE "C"
            REFERENCES merchant_accounts(id)`.execute(db);
  await sql`ALTER TABLE api_keys ADD COLUMN merchant_account_id text COLLATE "C"
            REFERENCES merchant_accounts(id)`.execute(db);
  await sql`ALTER TABLE audit_events ADD COLUMN merchant_account_id text COLLATE "C"`.execute(db);
  await sql`CREATE INDEX credentials_merchant_account ON credentials (merchant_account_id, id)
            WHERE merchant_account_id IS NOT NULL`.execute(db);
  await sql`CREATE INDEX api_keys_merchant_account ON api_keys (merchant_account_id, id)
            WHERE merchant_account_id IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX api_keys_merchant_account`.execute(db);
  await sql`DROP INDEX credentials_merchant_account`.execute(db);
  await sql`ALTER TABLE audit_events DROP COLUMN merchant_account_id`.execute(db);
  await sql`ALTER TABLE api_keys DROP COLUMN merchant_account_id`.execute(db);
  await sql`ALTER TABLE credentials DROP COLUMN merchant_account_id`.execute(db);
  await sql`DROP TABLE merchant_accounts`.execute(db);
}
