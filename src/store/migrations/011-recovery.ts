import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // Single-use links sent to people: a password reset or an invitation to set a first password. Only
  // the HMAC of the token is kept, so a copy of the table opens no account. A token is spent by the
  // one UPDATE that sets used_at, so two uses race to a single winner.
  await sql`
    CREATE TABLE person_tokens (
      token_hash text COLLATE "C" PRIMARY KEY,
      user_id text COLLATE "C" NOT NULL REFERENCES users(id),
      purpose text NOT NULL CHECK (purpose IN ('password_reset', 'invitation')),
      created_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      used_at timestamptz
    )`.execute(db);
  await sql`CREATE INDEX person_tokens_user ON person_tokens (user_id)`.execute(db);
  // The outbox events (key.leaked, key.expiring) mailed to a company's owners: the insert is the
  // claim, so of several nodes one mails each event once. Events from before mail existed count as
  // mailed, so a first start does not send a backlog of stale notices.
  await sql`
    CREATE TABLE event_mails (
      event_id text COLLATE "C" PRIMARY KEY REFERENCES events(id),
      sent_at timestamptz NOT NULL
    )`.execute(db);
  await sql`
    INSERT INTO event_mails (event_id, sent_at)
    SELECT id, now() FROM events WHERE type IN ('key.leaked', 'key.expiring')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE event_mails`.execute(db);
  await sql`DROP TABLE person_tokens`.execute(db);
}
