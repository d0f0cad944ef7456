import { type Kysely, sql } from "kysely";
import type { Database } from "../../store/schema.ts";

/** Failures an email may have before it is locked, and how the lock grows: 30 s, 60 s, … up to 1 h. */
const FAILURES_BEFORE_LOCK = 5;
const BASE_LOCK_SECONDS = 30;
const MAX_LOCK_SECONDS = 3600;

/** The outcome of taking a sign-in attempt's place in an email's count. */
export type Reservation =
  | { ok: true; failures: number; lockedForSeconds: number }
  | { ok: false; retryAfterSeconds: number };

/**
 * The per-email sign-in lockout, in the `login_attempts` table so every node shares it. An attempt is
 * counted as a failure before its password is checked, in one atomic statement that also refuses it if
 * the email is locked; a successful sign-in clears the count, and the right password still waiting for
 * its code takes its one attempt back. Counting after the slow argon2 check
 * would let every concurrent attempt in a burst pass the lock before any of them had written it.
 */
export class LoginLockout {
  constructor(private readonly o: { db: Kysely<Database>; clock: () => Date }) {}

  /**
   * Counts one attempt for the email, known or not. The attempt that reaches the limit is still
   * checked and sets the lock; every attempt after it, until the lock ends, is refused unchecked.
   */
  async reserve(email: string): Promise<Reservation> {
    const now = this.o.clock();
    // On a conflict PostgreSQL locks the row and evaluates WHERE on its newest version, so concurrent
    // attempts on one email are counted one after another and none slips past a lock just set.
    // A first failure never locks (FAILURES_BEFORE_LOCK > 1), so a new row needs no lock.
    const failures = sql`a.failures + 1`;
    const row = await sql<{ failures: number; locked_until: Date | null }>`
      INSERT INTO login_attempts AS a (email, failures, locked_until, updated_at)
      VALUES (${email}, 1, NULL, ${now})
      ON CONFLICT (email) DO UPDATE SET
        failures = ${failures},
        locked_until = CASE WHEN ${failures} >= ${sql.lit(FAILURES_BEFORE_LOCK)} THEN
          ${now}::timestamptz + LEAST(${sql.lit(BASE_LOCK_SECONDS)} * power(2, ${failures} - ${sql.lit(FAILURES_BEFORE_LOCK)}),
                                      ${sql.lit(MAX_LOCK_SECONDS)}) * interval '1 second'
        END,
        updated_at = ${now}
      WHERE a.locked_until IS NULL OR a.locked_until <= ${now}
      RETURNING a.failures, a.locked_until`.execute(this.o.db);
    const counted = row.rows[0];
    if (counted) {
      const lockedForSeconds = counted.locked_until
        ? Math.round((counted.locked_until.getTime() - now.getTime()) / 1000)
        : 0;
      return { ok: true, failures: counted.failures, lockedForSeconds };
    }
    const lock = await this.o.db
      .selectFrom("login_attempts")
      .select("locked_until")
      .where("email", "=", email)
      .executeTakeFirst();
    const waitMs = (lock?.locked_until?.getTime() ?? 0) - now.getTime();
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /**
   * Takes back one attempt that turned out not to be a failure: the right password from a person who
   * must still send a code. The lock goes with it when the count falls below the limit again.
   */
  async release(email: string): Promise<void> {
    await sql`
      UPDATE login_attempts SET
        failures = GREATEST(failures - 1, 0),
        locked_until = CASE WHEN failures - 1 >= ${sql.lit(FAILURES_BEFORE_LOCK)} THEN locked_until END,
        updated_at = ${this.o.clock()}
      WHERE email = ${email}`.execute(this.o.db);
  }

  /** A successful sign-in clears the email's failures. */
  async clear(email: string): Promise<void> {
    await this.o.db.deleteFrom("login_attempts").where("email", "=", email).execute();
  }
}
