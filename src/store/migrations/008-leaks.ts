import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // One row per report that matched a key: a key reported twice is recorded twice, so the history says
  // every place it was found. Nothing of the token is kept, not even its hash: the key id says which.
  await sql`
    CREATE TABLE key_leaks (
      id text COLLATE "C" PRIMARY KEY,
      key_id text COLLATE "C" NOT NULL REFERENCES api_keys(id),
      company_id text COLLATE "C" NOT NULL REFERENCES companies(id),
      environment text NOT NULL CHECK (environment IN ('live', 'test')),
      reporter text NOT NULL CHECK (reporter IN ('github', 'public')),
      url text,
      source text,
      action text NOT NULL CHECK (action IN ('revoked', 'notified', 'already_revoked')),
      reported_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX key_leaks_key ON key_leaks (key_id, reported_at)`.execute(db);
  // A leaked secret (the `ss` half of a key + secret pair) is looked up by its hash, as a key is by its.
  await sql`CREATE INDEX api_keys_secret_hash ON api_keys (secret_hash) WHERE secret_hash IS NOT NULL`.execute(
    db,
  );
  // What a company does with a leaked key, per environment; no row means the default (core/leaks.ts).
  await sql`
    CREATE TABLE leak_policies (
      company_id text COLLATE "C" NOT NULL REFERENCES companies(id),
      environment text NOT NULL CHECK (environment IN ('live', 'test')),
      action text NOT NULL CHECK (action IN ('revoke', 'notify')),
      updated_at timestamptz NOT NULL,
      updated_by text NOT NULL,
      PRIMARY KEY (company_id, environment)
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE leak_policies`.execute(db);
  await sql`DROP TABLE key_leaks`.execute(db);
  await sql`DROP INDEX api_keys_secret_hash`.execute(db);
}
