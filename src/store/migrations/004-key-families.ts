import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // A rotated key and its replacement are one family for rate limits: a caller holding both during
  // the overlap must not get twice the budget. Null means the key is its own family (its id).
  await sql`ALTER TABLE api_keys ADD COLUMN family_id text COLLATE "C"`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE api_keys DROP COLUMN family_id`.execute(db);
}
