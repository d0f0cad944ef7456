import type { Kysely } from "kysely";
import type { Changes } from "../cluster/changes.ts";
import type { Actor } from "../core/actor.ts";
import type { Catalog } from "../core/catalog.ts";
import {
  days,
  dueExpiringNotice,
  EXPIRING_NOTICES,
  UNUSED_NOTICE_DAYS,
  unusedRevocationAt,
} from "../core/expiry-policy.ts";
import { expiryPolicies, keyNotices } from "../store/expiry-policies.ts";
import type { ApiKeyRow, Database } from "../store/schema.ts";
import type { Ctx } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import type { EventOutbox } from "./events.ts";
import { keyStatus, keyView } from "./views.ts";

/** What one sweep did, for tests and logs. */
export interface SweepResult {
  expiring: number;
  expired: number;
  unusedNotices: number;
  revoked: number;
}

/** Keys handled per kind and sweep at most; the next sweep takes the rest. */
const BATCH = 500;

/**
 * The expiry scheduler: on each sweep it sends `key.expiring` 7 days and 1 day before a key's expiry,
 * `key.expired` once a key has expired (a rotated key at the end of its overlap too), and, where a
 * company's policy revokes unused keys, `key.unused` at least 7 days before revoking one, then the
 * revocation itself. Every node may run it: each notice is claimed by the insert of its row in the
 * transaction that sends it, and a revocation is a conditional update, so two nodes sweeping at once
 * send and revoke once.
 */
export class ExpiryScheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();
  private busy = false;

  constructor(
    private readonly deps: {
      db: Kysely<Database>;
      catalog: Catalog;
      clock: () => Date;
      audit: AuditService;
      events: EventOutbox;
      changes: Changes;
      onError?: (err: unknown) => void;
    },
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      // A sweep still running when the next is due is skipped, not queued: slow sweeps never pile up.
      if (this.busy) return;
      this.busy = true;
      this.running = this.runOnce()
        .catch((err) => this.deps.onError?.(err))
        .finally(() => {
          this.busy = false;
        });
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a sweep in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One sweep at `now` (the clock's time by default). */
  async runOnce(now: Date = this.deps.clock()): Promise<SweepResult> {
    const result: SweepResult = { expiring: 0, expired: 0, unusedNotices: 0, revoked: 0 };
    await this.expiring(now, result);
    await this.expired(now, result);
    await this.unused(now, result);
    return result;
  }

  /** A key as events tell of it: its metadata as the API shows it, never a key or a hash. */
  private view(row: ApiKeyRow, now: Date) {
    return keyView(row, this.deps.catalog, now);
  }

  private async expiring(now: Date, result: SweepResult) {
    const widest = Math.max(...EXPIRING_NOTICES.map((n) => n.days));
    const keys = await keyNotices.expiring(
      this.deps.db,
      now,
      new Date(now.getTime() + days(widest)),
      new Date(now.getTime() + days(1)),
      BATCH,
    );
    for (const row of keys) {
      const expiresAt = row.expires_at as Date;
      const due = dueExpiringNotice(expiresAt, now);
      if (due === null) continue;
      // The 1-day notice makes the 7-day one moot: it is claimed with it, so it can never follow.
      const claims = due === "1d" ? ["1d", "7d"] : ["7d"];
      const sent = await this.deps.db.transaction().execute(async (tx) => {
        const won = await keyNotices.claim(tx, row.id, claims, now);
        if (!won.has(due)) return false;
        await this.deps.events.emit(tx, {
          companyId: row.company_id as string,
          environment: row.environment,
          type: "key.expiring",
          data: {
            key: this.view(row, now),
            expires_at: expiresAt.toISOString(),
            notice: due,
          },
        });
        return true;
      });
      if (sent) {
        result.expiring++;
        this.deps.events.committed();
      }
    }
  }

  private async expired(now: Date, result: SweepResult) {
    const keys = await keyNotices.expired(this.deps.db, now, BATCH);
    for (const row of keys) {
      const sent = await this.deps.db.transaction().execute(async (tx) => {
        const won = await keyNotices.claim(tx, row.id, ["expired"], now);
        if (!won.has("expired")) return false;
        await this.deps.events.emit(tx, {
          companyId: row.company_id as string,
          environment: row.environment,
          type: "key.expired",
          data: {
            key: this.view(row, now),
            expired_at: (row.expires_at as Date).toISOString(),
            // A rotated key ends its overlap this way: its replacement is the key to use.
            replaced_by: row.replaced_by,
          },
        });
        return true;
      });
      if (sent) {
        result.expired++;
        this.deps.events.committed();
      }
    }
  }

  private async unused(now: Date, result: SweepResult) {
    for (const policy of await expiryPolicies.revoking(this.deps.db)) {
      const afterDays = policy.revoke_unused_after_days as number;
      // Keys idle long enough for their notice; those noticed long enough ago are revoked.
      const idleBefore = new Date(now.getTime() - days(afterDays - UNUSED_NOTICE_DAYS));
      const keys = await keyNotices.idle(
        this.deps.db,
        policy.company_id,
        policy.environment,
        now,
        idleBefore,
        new Date(now.getTime() - days(UNUSED_NOTICE_DAYS)),
        BATCH,
      );
      for (const row of keys) {
        const idleSince = row.last_used_at ?? row.created_at;
        // The notice belongs to this stretch of idleness: a key used since then needs a new one.
        const notice = `unused:${idleSince.toISOString()}`;
        const sentAt = await keyNotices.sentAt(this.deps.db, row.id, notice);
        if (sentAt === undefined) {
          if (await this.noticeUnused(row, notice, idleSince, afterDays, now)) result.unusedNotices++;
        } else if (unusedRevocationAt(idleSince, afterDays, sentAt).getTime() <= now.getTime()) {
          if (await this.revokeUnused(row, idleSince, afterDays, now)) result.revoked++;
        }
      }
    }
  }

  private async noticeUnused(row: ApiKeyRow, notice: string, idleSince: Date, afterDays: number, now: Date) {
    const sent = await this.deps.db.transaction().execute(async (tx) => {
      const won = await keyNotices.claim(tx, row.id, [notice], now, idleSince);
      if (!won.has(notice)) return false;
      await this.deps.events.emit(tx, {
        companyId: row.company_id as string,
        environment: row.environment,
        type: "key.unused",
        data: {
          key: this.view(row, now),
          unused_since: idleSince.toISOString(),
          revoke_unused_after_days: afterDays,
          revokes_at: unusedRevocationAt(idleSince, afterDays, now).toISOString(),
        },
      });
      return true;
    });
    if (sent) this.deps.events.committed();
    return sent;
  }

  /**
   * Revokes a key still idle since `idleSince`: the update only matches while the key is active and
   * unused since, so a key used at the last moment, or revoked by another node, is left alone.
   */
  private async revokeUnused(row: ApiKeyRow, idleSince: Date, afterDays: number, now: Date) {
    const companyId = row.company_id as string;
    const actor: Actor = {
      kind: "system",
      job: "expiry",
      companyId,
      environment: row.environment,
      permissions: [],
    };
    const ctx: Ctx = { actor, ip: null, userAgent: null, totpUsed: false };
    const revoked = await this.deps.db.transaction().execute(async (tx) => {
      const updated = await tx
        .updateTable("api_keys")
        .set({ status: "revoked", revoked_at: now })
        .where("id", "=", row.id)
        .where("status", "=", "active")
        .where("replaced_by", "is", null)
        .where((eb) => eb(eb.fn.coalesce("last_used_at", "created_at"), "=", idleSince))
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1) return false;
      const after = { ...row, status: "revoked" as const, revoked_at: now };
      await this.deps.audit.append(tx, ctx, {
        action: "key.revoked",
        companyId,
        environment: row.environment,
        merchantAccountId: row.merchant_account_id,
        target: { type: "key", id: row.id },
        changes: {
          before: { status: keyStatus(row, now) },
          after: { status: "revoked" },
          name: row.name,
          prefix: row.prefix,
          reason: "unused",
          unused_since: idleSince.toISOString(),
          revoke_unused_after_days: afterDays,
        },
      });
      await this.deps.events.emit(tx, {
        companyId,
        environment: row.environment,
        type: "key.revoked",
        data: { key: this.view(after, now), reason: "unused", unused_since: idleSince.toISOString() },
      });
      return true;
    });
    if (revoked) {
      // Caches on every node drop the key, as after any revocation.
      this.deps.changes.emit({ kind: "key", keyId: row.id, companyId, environment: row.environment });
      this.deps.events.committed();
    }
    return revoked;
  }
}
