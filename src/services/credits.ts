import type { Kysely } from "kysely";
import { currentBalance, periodStart } from "../core/credits.ts";
import { newId } from "../core/ids.ts";
import type { Environment } from "../core/key-format.ts";
import { keyCredits } from "../store/repositories.ts";
import type { Database } from "../store/schema.ts";
import type { EventOutbox } from "./events.ts";
import { creditState } from "./views.ts";

/** What a verification learnt from spending: whether it may pass and what is left. */
export interface Spent {
  allowed: boolean;
  remaining: number;
}

/** The key being verified, for the `key.usage_exhausted` event. */
export interface SpendingKey {
  keyId: string;
  familyId: string;
  companyId: string | null;
  environment: Environment;
  /** The key's merchant account, named in the event; null: company-level. */
  merchantAccountId: string | null;
}

/**
 * Spends a key family's credits, written through to the store: one statement per verification of a
 * key that has credits (keys without credits never come here). Its row lock makes the spending exact
 * however many nodes verify at once, a refill happen once per period, and the balance reaching zero be
 * seen by exactly one statement, which writes `key.usage_exhausted` with it (see keyCredits.spend).
 * Nothing is kept in memory, so a crash or a restart of a node loses no spending and no refill, and
 * Redis going away changes nothing (a crash of PostgreSQL itself may lose its last moment: see there). What it costs: one point update on each such verification (about
 * 0.9 ms on PGlite and 0.75 ms on PostgreSQL, measured on a loaded two-core machine); a Redis balance flushed later would be cheaper but
 * could lose or double a window of spending, and a balance that is not exact is no limit.
 */
export class CreditService {
  constructor(private readonly deps: { db: Kysely<Database>; events: EventOutbox }) {}

  /** Null when the family has no credits (any more): it is unlimited. */
  async spend(key: SpendingKey, cost: number, now: Date): Promise<Spent | null> {
    const spent = await keyCredits.spend(this.deps.db, {
      familyId: key.familyId,
      cost,
      now,
      dayStart: periodStart("day", now),
      monthStart: periodStart("month", now),
      exhausted: {
        id: newId("msg", now),
        companyId: key.companyId,
        environment: key.environment,
        data: {
          key_id: key.keyId,
          family_id: key.familyId,
          merchant_account_id: key.merchantAccountId,
          remaining: 0,
        },
      },
    });
    if (spent !== null) {
      if (spent.exhausted) this.deps.events.committed();
      return { allowed: true, remaining: spent.remaining };
    }
    // Refused, or no credits at all: read the balance as it stands (a refill that is due counted).
    const row = await keyCredits.get(this.deps.db, key.familyId);
    if (row === undefined) return null;
    return { allowed: false, remaining: currentBalance(creditState(row), now) };
  }
}
