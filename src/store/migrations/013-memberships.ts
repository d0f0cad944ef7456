import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  // A person is one login (email, password, second factor, lockout); what they may do is per company,
  // so the role and the per-company disabling move to a membership. A person with several companies
  // has one row here per company, and one password for all of them.
  await sql`
    CREATE TABLE memberships (
      user_id text COLLATE "C" NOT NULL REFERENCES users(id),
      company_id text COLLATE "C" NOT NULL REFERENCES companies(id),
      role text NOT NULL CHECK (role IN ('owner', 'moderator', 'developer', 'viewer')),
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('invited', 'active', 'disabled')),
      created_at timestamptz NOT NULL,
      -- When the person took the membership; null while it is only offered (invited). A membership
      -- disabled before it was accepted goes back to invited when enabled, never straight to active.
      accepted_at timestamptz,
      invited_by text COLLATE "C",
      updated_at timestamptz,
      PRIMARY KEY (user_id, company_id)
    )`.execute(db);
  await sql`CREATE INDEX memberships_company ON memberships (company_id, user_id)`.execute(db);
  // Every existing person keeps exactly what they had: one membership, their role, their status. Who
  // invited them was never recorded, so it stays unknown rather than guessed.
  await sql`
    INSERT INTO memberships (user_id, company_id, role, status, created_at, accepted_at, invited_by, updated_at)
    SELECT id, company_id, role, status, created_at, created_at, NULL, updated_at FROM users`.execute(db);
  // An existing login added to another company holds nothing there until its person accepts, with a
  // link bound to (person, company): else whoever knows the login's password (an inviter of another
  // company that was shown its temporary password) would gain every company that later invites it.
  await sql`ALTER TABLE person_tokens ADD COLUMN company_id text COLLATE "C" REFERENCES companies(id)`.execute(
    db,
  );
  await sql`ALTER TABLE person_tokens DROP CONSTRAINT person_tokens_purpose_check`.execute(db);
  await sql`ALTER TABLE person_tokens ADD CONSTRAINT person_tokens_purpose_check
    CHECK (purpose IN ('password_reset', 'invitation', 'membership'))`.execute(db);
  await sql`ALTER TABLE person_tokens ADD CONSTRAINT person_tokens_membership_company
    CHECK ((purpose = 'membership') = (company_id IS NOT NULL))`.execute(db);
  // The company a sign-in opens: the one the person last signed in to or switched to. Kept on the
  // person, not derived from session times, which two steps in one instant would leave tied.
  await sql`ALTER TABLE users ADD COLUMN last_company_id text COLLATE "C" REFERENCES companies(id)`.execute(
    db,
  );
  await sql`UPDATE users SET last_company_id = company_id`.execute(db);
  // Dropped, not kept as deprecated: a second copy of the role would be a second home for one rule.
  await sql`DROP INDEX users_company`.execute(db);
  await sql`ALTER TABLE users DROP COLUMN company_id, DROP COLUMN role, DROP COLUMN status`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Back to one company a person: the earliest membership is kept. A person with more than one
  // company cannot be expressed before this migration; the later memberships are lost.
  await sql`ALTER TABLE users ADD COLUMN company_id text COLLATE "C" REFERENCES companies(id),
    ADD COLUMN role text CHECK (role IN ('owner', 'moderator', 'developer', 'viewer')),
    ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled'))`.execute(db);
  await sql`
    UPDATE users SET company_id = m.company_id, role = m.role, status = m.status
    FROM (SELECT DISTINCT ON (user_id) user_id, company_id, role, status FROM memberships
          WHERE status <> 'invited' ORDER BY user_id, created_at, company_id) m
    WHERE m.user_id = users.id`.execute(db);
  await sql`DELETE FROM users WHERE company_id IS NULL`.execute(db);
  await sql`ALTER TABLE users ALTER COLUMN company_id SET NOT NULL, ALTER COLUMN role SET NOT NULL`.execute(
    db,
  );
  await sql`CREATE INDEX users_company ON users (company_id, id)`.execute(db);
  await sql`DELETE FROM person_tokens WHERE purpose = 'membership'`.execute(db);
  await sql`ALTER TABLE person_tokens DROP CONSTRAINT person_tokens_membership_company`.execute(db);
  await sql`ALTER TABLE person_tokens DROP CONSTRAINT person_tokens_purpose_check`.execute(db);
  await sql`ALTER TABLE person_tokens ADD CONSTRAINT person_tokens_purpose_check
    CHECK (purpose IN ('password_reset', 'invitation'))`.execute(db);
  await sql`ALTER TABLE person_tokens DROP COLUMN company_id`.execute(db);
  await sql`DROP TABLE memberships`.execute(db);
  await sql`ALTER TABLE users DROP COLUMN last_company_id`.execute(db);
}
