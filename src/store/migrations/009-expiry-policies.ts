import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // One row per company and environment that has a policy; no row is no policy. The bounds are the
  // API's, kept here too so a row written any other way cannot make the scheduler misbehave.
  await sql`
    CREATE TABLE expiry_policies (
      company_id text COLLATE "C" NOT NULL REFERENCES companies(id),
      environment text NOT NULL CHECK (environment IN ('live', 'test')),
      max_lifetime_days integer CHECK (max_lifetime_days BETWEEN 1 AND 3650),
      must_expire boolean NOT NULL DEFAULT false,
      revoke_unused_after_days integer CHECK (revoke_unused_after_days BETWEEN 14 AND 3650),
      updated_at timestamptz NOT NULL,
      updated_by text NOT NULL,
      PRIMARY KEY (company_id, environment)
    )`.execute(db);
  // The notices the scheduler has sent about a key (`7d`, `1d`, `expired`, `unused:<idle since>`). The
  // primary key is the claim: the insert that makes the row is the one that sends the notice, in the
  // same transaction, so two nodes sweeping at once send it once.
  await sql`
    CREATE TABLE key_notices (
      key_id text COLLATE "C" NOT NULL REFERENCES api_keys(id),
      notice text COLLATE "C" NOT NULL,
      sent_at timestamptz NOT NULL,
      -- For an unused-key notice: since when the key was unused, so a sweep can pass over keys whose
      -- notice is still running without reading each one.
      idle_since timestamptz,
      PRIMARY KEY (key_id, notice)
    )`.execute(db);
  // Keys that expired before there was a scheduler expired long ago: a first sweep telling of each of
  // them would be noise, so they count as told.
  await sql`
    INSERT INTO key_notices (key_id, notice, sent_at)
    SELECT id, 'expired', now() FROM api_keys
    WHERE company_id IS NOT NULL AND status = 'active' AND expires_at <= now()`.execute(db);
  // The sweep's scan of keys by expiry.
  await sql`CREATE INDEX api_keys_expiry ON api_keys (expires_at) WHERE status = 'active'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX api_keys_expiry`.execute(db);
  await sql`DROP TABLE key_notices`.execute(db);
  await sql`DROP TABLE expiry_policies`.execute(db);
}
