import { sql } from "kysely";
import type { Db } from "./repositories.ts";
import type { ApiKeyRow, ExpiryPolicyRow } from "./schema.ts";

/** The expiry policies (one row per company and environment that has one) and the scheduler's notices. */
export const expiryPolicies = {
  get(db: Db, companyId: string, environment: "live" | "test"): Promise<ExpiryPolicyRow | undefined> {
    return db
      .selectFrom("expiry_policies")
      .selectAll()
      .where("company_id", "=", companyId)
      .where("environment", "=", environment)
      .executeTakeFirst();
  },
  /** `lock` holds the company's rows for the rest of the transaction, so two owners' changes serialise. */
  list(db: Db, companyId: string, opts: { lock?: boolean } = {}): Promise<ExpiryPolicyRow[]> {
    const q = db.selectFrom("expiry_policies").selectAll().where("company_id", "=", companyId);
    return (opts.lock ? q.forUpdate() : q).execute();
  },
  async put(db: Db, row: ExpiryPolicyRow): Promise<void> {
    await db
      .insertInto("expiry_policies")
      .values(row)
      .onConflict((oc) =>
        oc.columns(["company_id", "environment"]).doUpdateSet({
          max_lifetime_days: row.max_lifetime_days,
          must_expire: row.must_expire,
          revoke_unused_after_days: row.revoke_unused_after_days,
          updated_at: row.updated_at,
          updated_by: row.updated_by,
        }),
      )
      .execute();
  },
  /** Every policy that revokes unused keys, for the sweep. */
  revoking(db: Db): Promise<ExpiryPolicyRow[]> {
    return db
      .selectFrom("expiry_policies")
      .selectAll()
      .where("revoke_unused_after_days", "is not", null)
      .orderBy("company_id")
      .execute();
  },
  /** The company's active keys, not rotated away, oldest first, at most `limit` (the compliance report). */
  activeKeys(db: Db, companyId: string, environment: "live" | "test" | undefined, now: Date, limit: number) {
    let q = db
      .selectFrom("api_keys")
      .selectAll()
      .where("company_id", "=", companyId)
      .where("status", "=", "active")
      .where("replaced_by", "is", null)
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]));
    if (environment) q = q.where("environment", "=", environment);
    return q.orderBy("id").limit(limit).execute();
  },
};

export const keyNotices = {
  /**
   * Claims notices for a key: inserts those not yet sent and returns the ones this call inserted. Run
   * in the transaction that sends them: a concurrent claim of the same notice waits for it and then
   * finds the row, so exactly one sender wins.
   */
  async claim(
    db: Db,
    keyId: string,
    notices: readonly string[],
    now: Date,
    idleSince: Date | null = null,
  ): Promise<Set<string>> {
    const rows = await db
      .insertInto("key_notices")
      .values(notices.map((notice) => ({ key_id: keyId, notice, sent_at: now, idle_since: idleSince })))
      .onConflict((oc) => oc.columns(["key_id", "notice"]).doNothing())
      .returning("notice")
      .execute();
    return new Set(rows.map((r) => r.notice));
  },
  async sentAt(db: Db, keyId: string, notice: string): Promise<Date | undefined> {
    const row = await db
      .selectFrom("key_notices")
      .select("sent_at")
      .where("key_id", "=", keyId)
      .where("notice", "=", notice)
      .executeTakeFirst();
    return row?.sent_at;
  },
  /** Active, unrotated company keys expiring within `until` whose due notice (`7d` or `1d`) is unsent. */
  expiring(db: Db, now: Date, until: Date, oneDay: Date, limit: number): Promise<ApiKeyRow[]> {
    return db
      .selectFrom("api_keys as k")
      .selectAll("k")
      .where("k.company_id", "is not", null)
      .where("k.status", "=", "active")
      .where("k.replaced_by", "is", null)
      .where("k.expires_at", ">", now)
      .where("k.expires_at", "<=", until)
      .where(
        sql<boolean>`NOT EXISTS (SELECT 1 FROM key_notices n WHERE n.key_id = k.id
          AND n.notice = CASE WHEN k.expires_at <= ${oneDay} THEN '1d' ELSE '7d' END)`,
      )
      .orderBy("k.expires_at")
      .limit(limit)
      .execute();
  },
  /** Company keys past their expiry (rotated ones at the end of their overlap too) not yet told of. */
  expired(db: Db, now: Date, limit: number): Promise<ApiKeyRow[]> {
    return db
      .selectFrom("api_keys as k")
      .selectAll("k")
      .where("k.company_id", "is not", null)
      .where("k.status", "=", "active")
      .where("k.expires_at", "<=", now)
      .where(
        sql<boolean>`NOT EXISTS (SELECT 1 FROM key_notices n WHERE n.key_id = k.id AND n.notice = 'expired')`,
      )
      .orderBy("k.expires_at")
      .limit(limit)
      .execute();
  },
  /**
   * Active, unrotated, unexpired keys of one company environment idle since `idleBefore` or longer,
   * leaving out those whose notice for this idleness went out after `noticedAfter` (not yet due), so a
   * batch is never filled by keys that can only wait.
   */
  idle(
    db: Db,
    companyId: string,
    environment: "live" | "test",
    now: Date,
    idleBefore: Date,
    noticedAfter: Date,
    limit: number,
  ): Promise<ApiKeyRow[]> {
    return db
      .selectFrom("api_keys")
      .selectAll()
      .where("company_id", "=", companyId)
      .where("environment", "=", environment)
      .where("status", "=", "active")
      .where("replaced_by", "is", null)
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
      .where(sql<boolean>`coalesce(last_used_at, created_at) <= ${idleBefore}`)
      .where(
        sql<boolean>`NOT EXISTS (SELECT 1 FROM key_notices n WHERE n.key_id = api_keys.id
          AND n.idle_since = coalesce(api_keys.last_used_at, api_keys.created_at) AND n.sent_at > ${noticedAfter})`,
      )
      .orderBy(sql`coalesce(last_used_at, created_at)`)
      .limit(limit)
      .execute();
  },
};
