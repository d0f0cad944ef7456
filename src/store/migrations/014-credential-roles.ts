import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // The catalog's named roles an API user has enabled, by id. Existing credentials get none and keep
  // their single permissions as they were, so nothing any of them can do changes.
  await sql`ALTER TABLE credentials ADD COLUMN roles jsonb NOT NULL DEFAULT '[]'::jsonb`.execute(db);
  // Where notices about it go (a leaked or expiring key); never a sign-in, so neither unique nor
  // required. Existing API users have none and their notices keep going to the owners only.
  await sql`ALTER TABLE credentials ADD COLUMN email text`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE credentials DROP COLUMN email`.execute(db);
  await sql`ALTER TABLE credentials DROP COLUMN roles`.execute(db);
}
