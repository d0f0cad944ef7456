import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // Credits belong to a key's family (the first key of a rotation chain), as rate-limit budgets do:
  // a key and its replacement during the overlap spend one balance, never twice the credits. A key
  // without a row here is unlimited. `refilled_at` is the start of the period last refilled, so a
  // refill happens once per UTC day or month however many nodes see the period begin.
  await sql`
    CREATE TABLE key_credits (
      family_id text COLLATE "C" PRIMARY KEY REFERENCES api_keys(id),
      remaining bigint NOT NULL CHECK (remaining >= 0),
      refill_amount bigint CHECK (refill_amount > 0),
      refill_interval text CHECK (refill_interval IN ('day', 'month')),
      refilled_at timestamptz,
      updated_at timestamptz NOT NULL,
      CHECK ((refill_amount IS NULL) = (refill_interval IS NULL))
    )`.execute(db);
  // The platform's own data on a key: a small JSON object, and its id for the key's owner, which lists
  // filter by (hence the index per company).
  await sql`ALTER TABLE api_keys ADD COLUMN meta jsonb`.execute(db);
  await sql`ALTER TABLE api_keys ADD COLUMN external_id text COLLATE "C"`.execute(db);
  await sql`CREATE INDEX api_keys_company_external_id ON api_keys (company_id, external_id)
    WHERE external_id IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX api_keys_company_external_id`.execute(db);
  await sql`ALTER TABLE api_keys DROP COLUMN external_id`.execute(db);
  await sql`ALTER TABLE api_keys DROP COLUMN meta`.execute(db);
  await sql`DROP TABLE key_credits`.execute(db);
}
