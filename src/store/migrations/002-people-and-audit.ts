import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE users
      ADD COLUMN totp_secret text,
      ADD COLUMN totp_pending_secret text,
      ADD COLUMN totp_enabled_at timestamptz,
      ADD COLUMN totp_last_step bigint,
      ADD COLUMN password_changed_at timestamptz,
      ADD COLUMN updated_at timestamptz`.execute(db);
  await sql`
    CREATE TABLE recovery_codes (
      user_id text COLLATE "C" NOT NULL REFERENCES users(id),
      code_hash text NOT NULL,
      used_at timestamptz,
      PRIMARY KEY (user_id, code_hash)
    )`.execute(db);
  await sql`
    CREATE TABLE sessions (
      id text COLLATE "C" PRIMARY KEY,
      token_hash text NOT NULL UNIQUE,
      user_id text COLLATE "C" NOT NULL REFERENCES users(id),
      company_id text COLLATE "C" NOT NULL REFERENCES companies(id),
      csrf_token text NOT NULL,
      created_at timestamptz NOT NULL,
      last_seen_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      ended_at timestamptz,
      ip text,
      user_agent text
    )`.execute(db);
  await sql`CREATE INDEX sessions_user ON sessions (user_id)`.execute(db);
  // Failed logins are counted per email whether or not the account exists, so lockout says nothing.
  await sql`
    CREATE TABLE login_attempts (
      email text PRIMARY KEY,
      failures integer NOT NULL DEFAULT 0,
      locked_until timestamptz,
      updated_at timestamptz NOT NULL
    )`.execute(db);
  await sql`
    CREATE TABLE audit_events (
      id text COLLATE "C" PRIMARY KEY,
      chain text COLLATE "C" NOT NULL,
      seq bigint NOT NULL,
      at timestamptz NOT NULL,
      company_id text COLLATE "C",
      actor_type text NOT NULL,
      actor_id text,
      actor_label text,
      action text NOT NULL,
      target_type text,
      target_id text,
      changes jsonb NOT NULL DEFAULT '{}',
      ip text,
      user_agent text,
      totp_used boolean NOT NULL DEFAULT false,
      prev_hash text NOT NULL,
      hash text NOT NULL,
      UNIQUE (chain, seq)
    )`.execute(db);
  await sql`CREATE INDEX audit_events_company ON audit_events (company_id, id)`.execute(db);
  // The last link of each chain, kept apart from the events so deleting the newest events is detectable.
  await sql`
    CREATE TABLE audit_heads (
      chain text COLLATE "C" PRIMARY KEY,
      seq bigint NOT NULL,
      hash text NOT NULL
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["audit_heads", "audit_events", "login_attempts", "sessions", "recovery_codes"]) {
    await sql`DROP TABLE IF EXISTS ${sql.table(table)}`.execute(db);
  }
  await sql`
    ALTER TABLE users DROP COLUMN totp_secret, DROP COLUMN totp_pending_secret, DROP COLUMN totp_enabled_at,
      DROP COLUMN totp_last_step, DROP COLUMN password_changed_at, DROP COLUMN updated_at`.execute(db);
}
