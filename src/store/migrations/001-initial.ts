import { type Kysely, sql } from "kysely";

// Ids are compared byte-wise (COLLATE "C") because their time-ordered base62 form is the pagination order.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE companies (
      id text COLLATE "C" PRIMARY KEY,
      name text NOT NULL,
      slug text NOT NULL UNIQUE,
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
      created_at timestamptz NOT NULL
    )`.execute(db);
  await sql`
    CREATE TABLE users (
      id text COLLATE "C" PRIMARY KEY,
      company_id text COLLATE "C" NOT NULL REFERENCES companies(id),
      email text NOT NULL UNIQUE,
      password_hash text NOT NULL,
      role text NOT NULL CHECK (role IN ('owner', 'moderator', 'developer', 'viewer')),
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
      must_change_password boolean NOT NULL DEFAULT true,
      created_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX users_company ON users (company_id, id)`.execute(db);
  await sql`
    CREATE TABLE credentials (
      id text COLLATE "C" PRIMARY KEY,
      company_id text COLLATE "C" NOT NULL REFERENCES companies(id),
      username text NOT NULL UNIQUE,
      name text NOT NULL,
      description text NOT NULL DEFAULT '',
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
      is_default boolean NOT NULL DEFAULT false,
      permissions jsonb NOT NULL,
      allowed_ips jsonb NOT NULL DEFAULT '[]',
      password_hash text,
      password_created_at timestamptz,
      created_at timestamptz NOT NULL,
      created_by text NOT NULL,
      updated_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX credentials_company ON credentials (company_id, id)`.execute(db);
  await sql`
    CREATE TABLE api_keys (
      id text COLLATE "C" PRIMARY KEY,
      company_id text COLLATE "C" REFERENCES companies(id),
      credential_id text COLLATE "C" REFERENCES credentials(id),
      name text NOT NULL,
      description text NOT NULL DEFAULT '',
      environment text NOT NULL CHECK (environment IN ('live', 'test')),
      permissions jsonb NOT NULL,
      allowed_ips jsonb NOT NULL DEFAULT '[]',
      key_hash text NOT NULL UNIQUE,
      secret_hash text,
      prefix text NOT NULL,
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
      expires_at timestamptz,
      revoked_at timestamptz,
      replaced_by text COLLATE "C",
      created_at timestamptz NOT NULL,
      created_by text NOT NULL,
      last_used_at timestamptz,
      last_used_ip text,
      CHECK ((company_id IS NULL) = (credential_id IS NULL))
    )`.execute(db);
  await sql`CREATE INDEX api_keys_company ON api_keys (company_id, id)`.execute(db);
  await sql`CREATE INDEX api_keys_credential ON api_keys (credential_id, id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["api_keys", "credentials", "users", "companies"]) {
    await sql`DROP TABLE IF EXISTS ${sql.table(table)}`.execute(db);
  }
}
