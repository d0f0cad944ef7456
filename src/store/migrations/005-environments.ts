import { type Kysely, sql } from "kysely";
import { newId } from "../../core/ids.ts";
import { credentialUsername } from "../../core/names.ts";

interface CredentialRecord {
  id: string;
  company_id: string;
  username: string;
  name: string;
  description: string;
  status: string;
  is_default: boolean;
  permissions: unknown;
  allowed_ips: unknown;
  rate_limits: unknown;
  password_hash: string | null;
  created_at: Date;
  created_by: string;
  updated_at: Date;
  slug: string;
  live_keys: number | string;
  test_keys: number | string;
}

/**
 * Live and test become two worlds, as the Adyen doc keeps them: every API credential belongs to one
 * environment, and its keys to the same one. Nothing is lost on the way:
 * - a credential whose keys are all test keys, and that has no Basic password, becomes a test credential;
 * - any other credential stays live, and if it also had test keys, they move to a new test twin (same
 *   name with " (test)", permissions, allowlist, limits and status; a username of its own; no password,
 *   since a password would act in live as it always did);
 * - every company gets a default test credential if it has none, so test keys can be issued at once.
 * Key hashes, ids and prefixes do not change, so every key verifies as before.
 * Audit events gain the environment of what they are about and of who acted; older events keep null,
 * which test callers never see (they were written before the split, and may concern live objects).
 * Their hashes are unchanged.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE credentials ADD COLUMN environment text NOT NULL DEFAULT 'live'
            CHECK (environment IN ('live', 'test'))`.execute(db);
  await sql`ALTER TABLE audit_events ADD COLUMN environment text
            CHECK (environment IN ('live', 'test'))`.execute(db);
  await sql`ALTER TABLE audit_events ADD COLUMN actor_environment text
            CHECK (actor_environment IN ('live', 'test'))`.execute(db);
  await sql`CREATE INDEX credentials_company_env ON credentials (company_id, environment, id)`.execute(db);

  const rows = await sql<CredentialRecord>`
    SELECT c.*, co.slug,
      (SELECT count(*) FROM api_keys k WHERE k.credential_id = c.id AND k.environment = 'live') AS live_keys,
      (SELECT count(*) FROM api_keys k WHERE k.credential_id = c.id AND k.environment = 'test') AS test_keys
    FROM credentials c JOIN companies co ON co.id = c.company_id
    ORDER BY c.id`.execute(db);
  const now = new Date();
  const taken = async (username: string) =>
    (await sql`SELECT 1 FROM credentials WHERE username = ${username}`.execute(db)).rows.length > 0;
  const freshUsername = async (slug: string) => {
    for (let i = 0; i < 50; i++) {
      const username = credentialUsername(slug);
      if (!(await taken(username))) return username;
    }
    throw new Error("could not allocate a unique credential username");
  };
  const insertTestCredential = async (from: CredentialRecord, name: string, isDefault: boolean) => {
    const id = newId("cred", now);
    await sql`
      INSERT INTO credentials (id, company_id, username, name, description, status, is_default, permissions,
        allowed_ips, rate_limits, created_at, created_by, updated_at, environment)
      VALUES (${id}, ${from.company_id}, ${await freshUsername(from.slug)}, ${name}, ${from.description},
        ${from.status}, ${isDefault}, ${JSON.stringify(from.permissions)}::jsonb,
        ${JSON.stringify(from.allowed_ips)}::jsonb, ${JSON.stringify(from.rate_limits)}::jsonb, ${now}, 'migration',
        ${now}, 'test')`.execute(db);
    return id;
  };

  const hasTestDefault = new Set<string>();
  for (const row of rows.rows) {
    if (Number(row.test_keys) === 0) continue;
    if (Number(row.live_keys) === 0 && row.password_hash === null) {
      await sql`UPDATE credentials SET environment = 'test' WHERE id = ${row.id}`.execute(db);
      if (row.is_default) hasTestDefault.add(row.company_id);
      continue;
    }
    const twin = await insertTestCredential(row, `${row.name} (test)`.slice(0, 200), row.is_default);
    if (row.is_default) hasTestDefault.add(row.company_id);
    await sql`UPDATE api_keys SET credential_id = ${twin}
              WHERE credential_id = ${row.id} AND environment = 'test'`.execute(db);
  }
  for (const row of rows.rows) {
    if (!row.is_default || hasTestDefault.has(row.company_id)) continue;
    await insertTestCredential(row, "Default test API credential", true);
    hasTestDefault.add(row.company_id);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX credentials_company_env`.execute(db);
  await sql`ALTER TABLE audit_events DROP COLUMN actor_environment`.execute(db);
  await sql`ALTER TABLE audit_events DROP COLUMN environment`.execute(db);
  await sql`ALTER TABLE credentials DROP COLUMN environment`.execute(db);
}
