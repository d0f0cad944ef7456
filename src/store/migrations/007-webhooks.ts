import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // An endpoint belongs to one company and one environment: test events go to test endpoints only. The
  // signing secret is sealed (it must be used again to sign); after a rotation the previous one signs
  // beside it until `previous_secret_expires_at`.
  await sql`
    CREATE TABLE webhook_endpoints (
      id text COLLATE "C" PRIMARY KEY,
      company_id text COLLATE "C" NOT NULL REFERENCES companies(id),
      environment text NOT NULL CHECK (environment IN ('live', 'test')),
      url text NOT NULL,
      description text NOT NULL DEFAULT '',
      events jsonb,
      status text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
      disabled_reason text,
      disabled_at timestamptz,
      secret_sealed text NOT NULL,
      previous_secret_sealed text,
      previous_secret_expires_at timestamptz,
      created_at timestamptz NOT NULL,
      created_by text NOT NULL,
      updated_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX webhook_endpoints_company ON webhook_endpoints (company_id, environment)`.execute(
    db,
  );
  // One delivery per (event, endpoint), made in the transaction of the event. `seq` orders an endpoint's
  // queue; the deliverer that claims an attempt holds `lease_token` until `lease_until`.
  await sql`
    CREATE TABLE webhook_deliveries (
      id text COLLATE "C" PRIMARY KEY,
      seq bigserial NOT NULL UNIQUE,
      endpoint_id text COLLATE "C" NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
      event_id text COLLATE "C" NOT NULL REFERENCES events(id),
      status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz,
      lease_until timestamptz,
      lease_token text,
      last_status_code integer,
      last_error text,
      last_attempt_at timestamptz,
      delivered_at timestamptz,
      created_at timestamptz NOT NULL,
      UNIQUE (event_id, endpoint_id)
    )`.execute(db);
  await sql`
    CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, seq)
    WHERE status = 'pending'`.execute(db);
  await sql`CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id)`.execute(db);
  await sql`
    CREATE TABLE webhook_attempts (
      id bigserial PRIMARY KEY,
      delivery_id text COLLATE "C" NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
      attempt integer NOT NULL,
      started_at timestamptz NOT NULL,
      duration_ms integer NOT NULL,
      status_code integer,
      error text,
      next_attempt_at timestamptz
    )`.execute(db);
  await sql`CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE webhook_attempts`.execute(db);
  await sql`DROP TABLE webhook_deliveries`.execute(db);
  await sql`DROP TABLE webhook_endpoints`.execute(db);
}
