import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // The outbox: an event is written in the transaction of the change it tells of, so a committed
  // change always has its event and a rolled-back one never does. Delivery reads it afterwards; `seq`
  // is the order events committed in, which deliveries to one endpoint keep.
  await sql`
    CREATE TABLE events (
      id text COLLATE "C" PRIMARY KEY,
      seq bigserial NOT NULL UNIQUE,
      company_id text COLLATE "C" NOT NULL REFERENCES companies(id),
      environment text NOT NULL CHECK (environment IN ('live', 'test')),
      type text NOT NULL,
      data jsonb NOT NULL,
      created_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX events_company_seq ON events (company_id, seq)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE events`.execute(db);
}
