import { type Insertable, type Kysely, sql, type Transaction } from "kysely";
import { newId } from "../core/ids.ts";
import type { Environment } from "../core/key-format.ts";
import type {
  ApiKeyRow,
  CompanyRow,
  CredentialRow,
  CredentialsTable,
  Database,
  KeyCreditsRow,
  MembershipRow,
  MerchantAccountRow,
  MerchantAccountsTable,
  NewApiKey,
} from "./schema.ts";

/** A repository call works on the database or inside a transaction. */
export type Db = Kysely<Database> | Transaction<Database>;

/** The environments of the keys and API users among `ids` (what made an object: `created_by`). */
export async function actorEnvironments(
  db: Db,
  ids: readonly string[],
): Promise<Map<string, "live" | "test">> {
  const keys = ids.filter((id) => id.startsWith("key_"));
  const creds = ids.filter((id) => id.startsWith("cred_"));
  const found = new Map<string, "live" | "test">();
  if (keys.length > 0) {
    const rows = await db
      .selectFrom("api_keys")
      .select(["id", "environment"])
      .where("id", "in", keys)
      .execute();
    for (const r of rows) found.set(r.id, r.environment);
  }
  if (creds.length > 0) {
    const rows = await db
      .selectFrom("credentials")
      .select(["id", "environment"])
      .where("id", "in", creds)
      .execute();
    for (const r of rows) found.set(r.id, r.environment);
  }
  return found;
}

/**
 * The merchant accounts that acting keys, API users and people (by id, as `created_by` holds them)
 * act within in `companyId`: null for a company-level one. Ids of nobody found are left out.
 */
export async function actorAccounts(
  db: Db,
  companyId: string,
  ids: readonly string[],
): Promise<Map<string, string | null>> {
  const found = new Map<string, string | null>();
  const of = (prefix: string) => [...new Set(ids.filter((id) => id.startsWith(prefix)))];
  const [keys, creds, people] = [of("key_"), of("cred_"), of("usr_")];
  if (keys.length > 0) {
    const rows = await db
      .selectFrom("api_keys")
      .select(["id", "merchant_account_id"])
      .where("company_id", "=", companyId)
      .where("id", "in", keys)
      .execute();
    for (const r of rows) found.set(r.id, r.merchant_account_id);
  }
  if (creds.length > 0) {
    const rows = await db
      .selectFrom("credentials")
      .select(["id", "merchant_account_id"])
      .where("company_id", "=", companyId)
      .where("id", "in", creds)
      .execute();
    for (const r of rows) found.set(r.id, r.merchant_account_id);
  }
  if (people.length > 0) {
    const rows = await db
      .selectFrom("memberships")
      .select(["user_id", "merchant_account_id"])
      .where("company_id", "=", companyId)
      .where("user_id", "in", people)
      .execute();
    for (const r of rows) found.set(r.user_id, r.merchant_account_id);
  }
  return found;
}

export const companies = {
  async slugTaken(db: Db, slug: string): Promise<boolean> {
    const row = await db.selectFrom("companies").select("id").where("slug", "=", slug).executeTakeFirst();
    return row !== undefined;
  },
  insert(db: Db, row: Pick<CompanyRow, "id" | "name" | "slug" | "created_at">) {
    return db.insertInto("companies").values(row).execute();
  },
  get(db: Db, id: string): Promise<CompanyRow | undefined> {
    return db.selectFrom("companies").selectAll().where("id", "=", id).executeTakeFirst();
  },
};

export const users = {
  /**
   * Gives `email` a membership in a company, making the person (the login) first when there is none.
   * The insert of the person is conditional on the email being free, so two invitations of one new
   * email into two companies at once make one person with two memberships: the second waits for the
   * first's row and then uses it. Returns undefined when the person is a member of the company already.
   */
  async addMember(
    tx: Db,
    o: {
      email: string;
      passwordHash: string;
      companyId: string;
      role: MembershipRow["role"];
      /** The merchant account the membership is limited to; null or absent: the whole company. */
      merchantAccountId?: string | null;
      invitedBy: string | null;
      now: Date;
    },
  ): Promise<{ id: string; existed: boolean } | undefined> {
    // The login's row is locked for the transaction, so a membership's creation serialises with a
    // reissued invitation or a second-factor reset of the same login (they check its memberships).
    const inserted = await tx
      .insertInto("users")
      .values({ id: newId("usr", o.now), email: o.email, password_hash: o.passwordHash, created_at: o.now })
      .onConflict((oc) => oc.column("email").doNothing())
      .returning("id")
      .executeTakeFirst();
    const id =
      inserted?.id ??
      (
        await tx
          .selectFrom("users")
          .select("id")
          .where("email", "=", o.email)
          .forUpdate()
          .executeTakeFirstOrThrow()
      ).id;
    const existed = inserted === undefined;
    const added = await tx
      .insertInto("memberships")
      .values({
        user_id: id,
        company_id: o.companyId,
        role: o.role,
        // A login that exists is someone's: its membership here waits for that person to accept it.
        status: existed ? "invited" : "active",
        accepted_at: existed ? null : o.now,
        merchant_account_id: o.merchantAccountId ?? null,
        created_at: o.now,
        invited_by: o.invitedBy,
        updated_at: null,
      })
      .onConflict((oc) => oc.columns(["user_id", "company_id"]).doNothing())
      .returning("user_id")
      .executeTakeFirst();
    if (!added) return undefined;
    return { id, existed };
  },
};

export const merchantAccounts = {
  insert(db: Db, row: Insertable<MerchantAccountsTable>) {
    return db.insertInto("merchant_accounts").values(row).execute();
  },
  /** One of the company's; `lock` holds it for the rest of the transaction, so changes serialise. */
  get(
    db: Db,
    companyId: string,
    id: string,
    opts: { lock?: boolean } = {},
  ): Promise<MerchantAccountRow | undefined> {
    const q = db
      .selectFrom("merchant_accounts")
      .selectAll()
      .where("company_id", "=", companyId)
      .where("id", "=", id);
    return (opts.lock ? q.forUpdate() : q).executeTakeFirst();
  },
  async codeTaken(db: Db, companyId: string, code: string): Promise<boolean> {
    const row = await db
      .selectFrom("merchant_accounts")
      .select("id")
      .where("company_id", "=", companyId)
      .where("code", "=", code)
      .executeTakeFirst();
    return row !== undefined;
  },
  /** Newest first; `only` cuts the list to one account (a merchant account's own caller). */
  list(
    db: Db,
    companyId: string,
    opts: {
      after?: string | undefined;
      limit: number;
      status?: "active" | "inactive" | undefined;
      only?: string | undefined;
    },
  ): Promise<MerchantAccountRow[]> {
    let q = db.selectFrom("merchant_accounts").selectAll().where("company_id", "=", companyId);
    if (opts.status) q = q.where("status", "=", opts.status);
    if (opts.only !== undefined) q = q.where("id", "=", opts.only);
    if (opts.after) q = q.where("id", "<", opts.after);
    return q.orderBy("id", "desc").limit(opts.limit).execute();
  },
  update(
    db: Db,
    companyId: string,
    id: string,
    patch: Partial<Pick<MerchantAccountRow, "name" | "status" | "updated_at">>,
  ) {
    return db
      .updateTable("merchant_accounts")
      .set(patch)
      .where("company_id", "=", companyId)
      .where("id", "=", id)
      .execute();
  },
  /** How many API users and unrevoked keys each of these accounts has (one query each for a page). */
  async counts(
    db: Db,
    companyId: string,
    ids: readonly string[],
  ): Promise<Map<string, { api_users: number; keys: number }>> {
    const found = new Map<string, { api_users: number; keys: number }>(
      ids.map((id) => [id, { api_users: 0, keys: 0 }]),
    );
    if (ids.length === 0) return found;
    const users = await db
      .selectFrom("credentials")
      .select(["merchant_account_id", db.fn.countAll<string>().as("n")])
      .where("company_id", "=", companyId)
      .where("merchant_account_id", "in", ids)
      .groupBy("merchant_account_id")
      .execute();
    for (const r of users) {
      const c = r.merchant_account_id === null ? undefined : found.get(r.merchant_account_id);
      if (c) c.api_users = Number(r.n);
    }
    const keys = await db
      .selectFrom("api_keys")
      .select(["merchant_account_id", db.fn.countAll<string>().as("n")])
      .where("company_id", "=", companyId)
      .where("merchant_account_id", "in", ids)
      .where("status", "=", "active")
      .groupBy("merchant_account_id")
      .execute();
    for (const r of keys) {
      const c = r.merchant_account_id === null ? undefined : found.get(r.merchant_account_id);
      if (c) c.keys = Number(r.n);
    }
    return found;
  },
  /** The API users of an account, whose keys' cached answers its status change must drop. */
  async credentialIds(
    db: Db,
    companyId: string,
    id: string,
  ): Promise<{ id: string; environment: "live" | "test" }[]> {
    return db
      .selectFrom("credentials")
      .select(["id", "environment"])
      .where("company_id", "=", companyId)
      .where("merchant_account_id", "=", id)
      .execute();
  },
};

export const credentials = {
  async usernameTaken(db: Db, username: string): Promise<boolean> {
    const row = await db
      .selectFrom("credentials")
      .select("id")
      .where("username", "=", username)
      .executeTakeFirst();
    return row !== undefined;
  },
  insert(db: Db, row: Insertable<CredentialsTable>) {
    return db.insertInto("credentials").values(row).execute();
  },
  /** One row of the company's; `lock` holds it for the rest of the transaction, so changes serialise. */
  get(
    db: Db,
    companyId: string,
    id: string,
    opts: { lock?: boolean } = {},
  ): Promise<CredentialRow | undefined> {
    const q = db
      .selectFrom("credentials")
      .selectAll()
      .where("company_id", "=", companyId)
      .where("id", "=", id);
    return (opts.lock ? q.forUpdate() : q).executeTakeFirst();
  },
  list(
    db: Db,
    companyId: string,
    opts: {
      after?: string | undefined;
      limit: number;
      environment?: "live" | "test" | undefined;
      merchantAccountId?: string | undefined;
    },
  ): Promise<CredentialRow[]> {
    let q = db.selectFrom("credentials").selectAll().where("company_id", "=", companyId);
    if (opts.environment) q = q.where("environment", "=", opts.environment);
    if (opts.merchantAccountId) q = q.where("merchant_account_id", "=", opts.merchantAccountId);
    if (opts.after) q = q.where("id", "<", opts.after);
    return q.orderBy("id", "desc").limit(opts.limit).execute();
  },
  /** What the API users of these keys are given now, by credential id (one query for a page of keys). */
  async grantsOf(
    db: Db,
    companyId: string,
    keys: readonly { credential_id: string | null }[],
  ): Promise<Map<string, { roles: string[]; permissions: string[] }>> {
    const ids = [...new Set(keys.flatMap((k) => (k.credential_id === null ? [] : [k.credential_id])))];
    if (ids.length === 0) return new Map();
    const rows = await db
      .selectFrom("credentials")
      .select(["id", "roles", "permissions"])
      .where("company_id", "=", companyId)
      .where("id", "in", ids)
      .execute();
    return new Map(rows.map((r) => [r.id, { roles: r.roles, permissions: r.permissions }]));
  },
  update(db: Db, companyId: string, id: string, patch: Record<string, unknown>) {
    return db
      .updateTable("credentials")
      .set(patch)
      .where("company_id", "=", companyId)
      .where("id", "=", id)
      .execute();
  },
  /** For Basic auth: the credential, its company's status, and the password hash, in one query. */
  findByUsername(db: Db, username: string) {
    return db
      .selectFrom("credentials as c")
      .innerJoin("companies as co", "co.id", "c.company_id")
      .leftJoin("merchant_accounts as ma", "ma.id", "c.merchant_account_id")
      .select([
        "c.id",
        "c.company_id",
        "c.status",
        "c.environment",
        "c.merchant_account_id",
        "ma.status as merchant_account_status",
        "c.permissions",
        "c.roles",
        "c.allowed_ips",
        "c.password_hash",
        "c.rate_limits",
        "co.status as company_status",
      ])
      .where("c.username", "=", username)
      .executeTakeFirst();
  },
};

export interface KeyFilters {
  credentialId?: string | undefined;
  environment?: "live" | "test" | undefined;
  status?: "active" | "revoked" | "expired" | undefined;
  externalId?: string | undefined;
  merchantAccountId?: string | undefined;
}

export const apiKeys = {
  insert(db: Db, row: NewApiKey) {
    return db.insertInto("api_keys").values(row).execute();
  },
  /** One row of the company's; `lock` holds it for the rest of the transaction, so changes serialise. */
  get(db: Db, companyId: string, id: string, opts: { lock?: boolean } = {}): Promise<ApiKeyRow | undefined> {
    const q = db.selectFrom("api_keys").selectAll().where("company_id", "=", companyId).where("id", "=", id);
    return (opts.lock ? q.forUpdate() : q).executeTakeFirst();
  },
  list(
    db: Db,
    companyId: string,
    filters: KeyFilters,
    page: { after?: string | undefined; limit: number },
    now: Date,
  ): Promise<ApiKeyRow[]> {
    let q = db.selectFrom("api_keys").selectAll().where("company_id", "=", companyId);
    if (filters.credentialId) q = q.where("credential_id", "=", filters.credentialId);
    if (filters.environment) q = q.where("environment", "=", filters.environment);
    if (filters.externalId) q = q.where("external_id", "=", filters.externalId);
    if (filters.merchantAccountId) q = q.where("merchant_account_id", "=", filters.merchantAccountId);
    if (filters.status === "revoked") q = q.where("status", "=", "revoked");
    if (filters.status === "active") {
      q = q
        .where("status", "=", "active")
        .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]));
    }
    if (filters.status === "expired") q = q.where("status", "=", "active").where("expires_at", "<=", now);
    if (page.after) q = q.where("id", "<", page.after);
    return q.orderBy("id", "desc").limit(page.limit).execute();
  },
  update(db: Db, companyId: string, id: string, patch: Record<string, unknown>) {
    return db
      .updateTable("api_keys")
      .set(patch)
      .where("company_id", "=", companyId)
      .where("id", "=", id)
      .execute();
  },
  /** Every permission the unrevoked keys of one API user were given. */
  async grantedTo(db: Db, companyId: string, credentialId: string): Promise<string[]> {
    const rows = await db
      .selectFrom("api_keys")
      .select("permissions")
      .where("company_id", "=", companyId)
      .where("credential_id", "=", credentialId)
      .where("status", "=", "active")
      .execute();
    return [...new Set(rows.flatMap((r) => r.permissions))];
  },
  /**
   * The verification lookup: one indexed query returning the key with its credential's and company's
   * state, so deciding a key never needs a second round trip.
   */
  findByHash(db: Db, keyHash: string) {
    return db
      .selectFrom("api_keys as k")
      .leftJoin("credentials as c", "c.id", "k.credential_id")
      .leftJoin("companies as co", "co.id", "k.company_id")
      .leftJoin("merchant_accounts as ma", "ma.id", "k.merchant_account_id")
      .leftJoin("key_credits as kc", (join) =>
        join.on("kc.family_id", "=", sql<string>`coalesce(k.family_id, k.id)`),
      )
      .select([
        "k.id",
        "k.company_id",
        "k.credential_id",
        "k.environment",
        "k.permissions",
        "k.allowed_ips",
        "k.secret_hash",
        "k.status",
        "k.expires_at",
        "k.rate_limits",
        "k.family_id",
        "k.meta",
        "k.external_id",
        "k.merchant_account_id",
        "ma.status as merchant_account_status",
        "kc.family_id as credits_family_id",
        "c.status as credential_status",
        "c.rate_limits as credential_rate_limits",
        "c.permissions as credential_permissions",
        "c.roles as credential_roles",
        "c.allowed_ips as credential_allowed_ips",
        "co.status as company_status",
      ])
      .where("k.key_hash", "=", keyHash)
      .executeTakeFirst();
  },
  /** Writes batched last-used times, a statement per thousand keys; never moves a time backwards. */
  async recordUse(db: Db, uses: { id: string; at: Date; ip: string | null }[]): Promise<void> {
    for (const part of chunks(uses)) {
      const rows = sql.join(part.map((u) => sql`(${u.id}, ${u.at.toISOString()}::timestamptz, ${u.ip})`));
      await sql`
        UPDATE api_keys AS k SET last_used_at = u.at, last_used_ip = u.ip
        FROM (VALUES ${rows}) AS u(id, at, ip)
        WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`.execute(db);
    }
  },
};

/**
 * Batched writes in slices: a statement carries at most 65,535 parameters, and a busy node can have
 * used more keys than that allows in one flush interval.
 */
function chunks<T>(rows: readonly T[], size = 1000): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

export const keyUsage = {
  /** Adds per-day counts to what is stored, so counts from every node add up. */
  async add(
    db: Db,
    counts: { keyId: string; day: string; requests: number; denied: number }[],
  ): Promise<void> {
    for (const part of chunks(counts)) {
      const rows = sql.join(
        part.map((c) => sql`(${c.keyId}, ${c.day}::date, ${c.requests}::bigint, ${c.denied}::bigint)`),
      );
      await sql`
        INSERT INTO key_usage_daily AS u (key_id, day, requests, denied)
        VALUES ${rows}
        ON CONFLICT (key_id, day) DO UPDATE
          SET requests = u.requests + excluded.requests, denied = u.denied + excluded.denied`.execute(db);
    }
  },
  /** One key's counts from `since` (a YYYY-MM-DD day) on, oldest first. */
  async list(db: Db, keyId: string, since: string) {
    const rows = await db
      .selectFrom("key_usage_daily")
      .select([sql<string>`to_char(day, 'YYYY-MM-DD')`.as("day"), "requests", "denied"])
      .where("key_id", "=", keyId)
      .where("day", ">=", sql<string>`${since}::date`)
      .orderBy("day")
      .execute();
    return rows.map((r) => ({ day: r.day, requests: Number(r.requests), denied: Number(r.denied) }));
  },
  /**
   * A company's counts per day from `since` on, summed over its keys (of one environment when given),
   * and how many of its keys were counted at all in that time.
   */
  async ofCompany(
    db: Db,
    companyId: string,
    since: string,
    environment: Environment | undefined,
    merchantAccountId?: string,
  ) {
    let q = db
      .selectFrom("key_usage_daily as u")
      .innerJoin("api_keys as k", "k.id", "u.key_id")
      .where("k.company_id", "=", companyId)
      .where("u.day", ">=", sql<string>`${since}::date`);
    if (environment) q = q.where("k.environment", "=", environment);
    if (merchantAccountId !== undefined) q = q.where("k.merchant_account_id", "=", merchantAccountId);
    const rows = await q
      .select([
        sql<string>`to_char(u.day, 'YYYY-MM-DD')`.as("day"),
        sql<string>`sum(u.requests)`.as("requests"),
        sql<string>`sum(u.denied)`.as("denied"),
      ])
      .groupBy("u.day")
      .orderBy("u.day")
      .execute();
    const used = await q
      .select(sql<string>`count(distinct u.key_id)`.as("n"))
      .where((eb) => eb.or([eb("u.requests", ">", "0"), eb("u.denied", ">", "0")]))
      .executeTakeFirst();
    return {
      days: rows.map((r) => ({ day: r.day, requests: Number(r.requests), denied: Number(r.denied) })),
      keysUsed: Number(used?.n ?? 0),
    };
  },
};

export const keyLeaks = {
  /**
   * The latest report of each of `keyIds` that was reported, with the first report's time and the count:
   * what a key's view shows. One query for a whole page of keys.
   */
  async latestOf(db: Db, keyIds: readonly string[]) {
    if (keyIds.length === 0) return [];
    const rows = await sql<{
      key_id: string;
      reporter: "github" | "public";
      url: string | null;
      source: string | null;
      action: "revoked" | "notified" | "already_revoked";
      reported_at: Date;
      first_reported_at: Date;
      reports: string;
    }>`
      SELECT DISTINCT ON (key_id) key_id, reporter, url, source, action, reported_at,
        min(reported_at) OVER (PARTITION BY key_id) AS first_reported_at,
        count(*) OVER (PARTITION BY key_id) AS reports
      FROM key_leaks
      WHERE key_id IN (${sql.join(keyIds)})
      ORDER BY key_id, reported_at DESC, id DESC`.execute(db);
    return rows.rows;
  },
  /** Whether the key was reported before from this place (a repeat tells its webhooks nothing new). */
  async seenAt(db: Db, keyId: string, url: string | null): Promise<boolean> {
    let q = db.selectFrom("key_leaks").select("id").where("key_id", "=", keyId);
    q = url === null ? q.where("url", "is", null) : q.where("url", "=", url);
    return (await q.limit(1).executeTakeFirst()) !== undefined;
  },
};

/** A key family's credits (see migration 010): one row per family that has any. */
export const keyCredits = {
  /** `lock` holds the row for the rest of the transaction: spending and refilling serialise on it. */
  get(db: Db, familyId: string, opts: { lock?: boolean } = {}): Promise<KeyCreditsRow | undefined> {
    const q = db.selectFrom("key_credits").selectAll().where("family_id", "=", familyId);
    return (opts.lock ? q.forUpdate() : q).executeTakeFirst();
  },
  /** The credits of these keys' families, by family id (one query for a page of keys). */
  async ofKeys(
    db: Db,
    keys: readonly { id: string; family_id: string | null }[],
  ): Promise<Map<string, KeyCreditsRow>> {
    const ids = [...new Set(keys.map((k) => k.family_id ?? k.id))];
    if (ids.length === 0) return new Map();
    const rows = await db.selectFrom("key_credits").selectAll().where("family_id", "in", ids).execute();
    return new Map(rows.map((r) => [r.family_id, r]));
  },
  /** Sets a family's credits, creating the row when it has none. */
  put(
    db: Db,
    row: {
      family_id: string;
      remaining: number;
      refill_amount: number | null;
      refill_interval: "day" | "month" | null;
      refilled_at: Date | null;
      updated_at: Date;
    },
  ) {
    return db
      .insertInto("key_credits")
      .values(row)
      .onConflict((oc) =>
        oc.column("family_id").doUpdateSet({
          remaining: row.remaining,
          refill_amount: row.refill_amount,
          refill_interval: row.refill_interval,
          refilled_at: row.refilled_at,
          updated_at: row.updated_at,
        }),
      )
      .execute();
  },
  /**
   * Spends `cost` of a family's credits in one statement: the store's twin of `spendCredits` in
   * core/credits.ts (the same rule: a refill due since `refilled_at` sets the balance to its amount
   * first; a request needs `cost` and at least one), as the rate limiter's Lua script twins its
   * formula. One statement holds the row lock only while PostgreSQL runs it, never across a round trip
   * to a busy node, so concurrent spends on a hot key from every node queue for microseconds. When the
   * balance reaches zero the same statement writes the outbox's `key.usage_exhausted` row (as
   * EventOutbox.emit writes it), so the exhaustion and its event commit together, and once: only the
   * statement that spent the last credit sees it reach zero. No row back: refused, or no credits.
   *
   * The statement commits without waiting for its WAL to reach the disk (synchronous_commit off for
   * its own transaction only): a hot key's spends queue on its row, and a commit that waited for the
   * flush held the lock for it, which capped one key at a few hundred verifications a second here;
   * relaxed, 2,000 concurrent ones over one pool ran at about 2,100 a second. It stays atomic (a
   * balance and its event are never apart); only a crash of PostgreSQL itself, not of a Latchkey node,
   * can lose the last moment of spending (wal_writer_delay, 200 ms by default, at most three times that).
   */
  async spend(
    db: Db,
    args: {
      familyId: string;
      cost: number;
      now: Date;
      /** The start of the current UTC day and month: a refill is due when `refilled_at` is before. */
      dayStart: Date;
      monthStart: Date;
      /** The event to write if this spend empties the balance. */
      exhausted: { id: string; companyId: string | null; environment: string; data: Record<string, unknown> };
    },
  ): Promise<{ remaining: number; exhausted: boolean } | null> {
    const period = sql`CASE kc.refill_interval WHEN 'day' THEN ${args.dayStart.toISOString()}::timestamptz
      ELSE ${args.monthStart.toISOString()}::timestamptz END`;
    const due = sql`(kc.refill_amount IS NOT NULL AND (kc.refilled_at IS NULL OR kc.refilled_at < ${period}))`;
    const balance = sql`(CASE WHEN ${due} THEN kc.refill_amount ELSE kc.remaining END)`;
    const now = args.now.toISOString();
    const e = args.exhausted;
    const deliveryIdStart = newId("dlv", args.now).slice(0, "dlv_".length + 8);
    const { rows } = await sql<{ remaining: string }>`
      WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true) AS setting),
      spent AS (
        UPDATE key_credits AS kc
        SET remaining = ${balance} - ${args.cost}::bigint,
            refilled_at = CASE WHEN ${due} THEN ${period} ELSE kc.refilled_at END,
            updated_at = ${now}::timestamptz
        WHERE kc.family_id = ${args.familyId} AND ${balance} >= GREATEST(${args.cost}::bigint, 1)
          AND EXISTS (SELECT 1 FROM relaxed)
        RETURNING kc.remaining, kc.refill_amount, kc.refill_interval
      ), told AS (
        INSERT INTO events (id, company_id, environment, type, data, created_at)
        SELECT ${e.id}, ${e.companyId}, ${e.environment}, 'key.usage_exhausted',
          ${JSON.stringify(e.data)}::jsonb || jsonb_build_object(
            'refill', CASE WHEN spent.refill_amount IS NULL THEN NULL
              ELSE jsonb_build_object('amount', spent.refill_amount, 'interval', spent.refill_interval) END),
          ${now}::timestamptz
        FROM spent
        WHERE spent.remaining = 0 AND ${args.cost}::bigint > 0 AND ${e.companyId}::text IS NOT NULL
        RETURNING id, company_id, environment
      ), fanned AS (
        -- Its deliveries too, as EventOutbox.emit makes them: one per enabled endpoint of the company and
        -- environment that hears the type. The id keeps the dlv_ form: the time part from here, then 14
        -- hex characters (a subset of base62), distinct per endpoint.
        INSERT INTO webhook_deliveries (id, endpoint_id, event_id, next_attempt_at, created_at)
        SELECT ${deliveryIdStart} || substr(md5(random()::text || ep.id), 1, 14), ep.id, told.id,
          ${now}::timestamptz, ${now}::timestamptz
        FROM told JOIN webhook_endpoints AS ep
          ON ep.company_id = told.company_id AND ep.environment = told.environment
        WHERE ep.status = 'enabled' AND (ep.events IS NULL OR ep.events @> '["key.usage_exhausted"]'::jsonb)
      )
      SELECT remaining FROM spent`.execute(db);
    const row = rows[0];
    if (row === undefined) return null;
    const remaining = Number(row.remaining);
    return { remaining, exhausted: remaining === 0 && args.cost > 0 };
  },
  /** The family becomes unlimited. */
  remove(db: Db, familyId: string) {
    return db.deleteFrom("key_credits").where("family_id", "=", familyId).execute();
  },
  /** Every key of a family (its caches must all hear of a change to its credits). */
  async familyKeys(db: Db, familyId: string): Promise<string[]> {
    const rows = await db
      .selectFrom("api_keys")
      .select("id")
      .where((eb) => eb.or([eb("id", "=", familyId), eb("family_id", "=", familyId)]))
      .execute();
    return rows.map((r) => r.id);
  },
};
