import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // Rate limits are a short list of {limit, window} pairs, read with the key on the verification path.
  await sql`ALTER TABLE api_keys ADD COLUMN rate_limits jsonb NOT NULL DEFAULT '[]'`.execute(db);
  await sql`ALTER TABLE credentials ADD COLUMN rate_limits jsonb NOT NULL DEFAULT '[]'`.execute(db);
  // Per-day counts. Every node adds its own increments (never overwrites), so counts from all nodes
  // add up; `denied` counts verifications of a known key that were refused (IP, permission, limit...).
  await sql`
    CREATE TABLE key_usage_daily (
      key_id text COLLATE "C" NOT NULL REFERENCES api_keys(id),
      day date NOT NULL,
      requests bigint NOT NULL DEFAULT 0,
      denied bigint NOT NULL DEFAULT 0,
      PRIMARY KEY (key_id, day)
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE key_usage_daily`.execute(db);
  await sql`ALTER TABLE credentials DROP COLUMN rate_limits`.execute(db);
  await sql`ALTER TABLE api_keys DROP COLUMN rate_limits`.execute(db);
}
