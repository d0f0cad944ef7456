import type { Kysely } from "kysely";
import { nextRefillAt, type Refill, spendCredits } from "../core/credits.ts";
import type { Environment } from "../core/key-format.ts";
import { keyCredits } from "../store/repositories.ts";
import type { Database } from "../store/schema.ts";
import type { EventOutbox } from "./events.ts";
import { creditState } from "./views.ts";

/** What a verification learnt from spending: whether it may pass and what is left. */
export interface Spent {
  allowed: boolean;
  remaining: number;
  refill: Refill | null;
}

/** The key being verified, for the `key.usage_exhausted` event. */
export interface SpendingKey {
  keyId: string;
  familyId: string;
  companyId: string | null;
  environment: Environment;
}

/**
 * Spends a key family's credits, written through to the store: one short transaction per verification
 * of a key that has credits (keys without credits never come here). Its row lock makes the spending
 * exact however many nodes verify at once, a refill happen once per period, and the balance reaching
 * zero be seen by exactly one transaction, which emits `key.usage_exhausted` with it. Nothing is kept
 * in memory, so a crash or restart loses no spending and no refill. What it costs: a point update
 * (about 0.2 ms on PGlite, one round trip more than a read on PostgreSQL) on each such verification;
 * measured against keeping the balance in Redis and flushing it, it is the only way a balance is exact
 * and durable at once, and credits are what a platform bills by.
 */
export class CreditService {
  constructor(private readonly deps: { db: Kysely<Database>; clock: () => Date; events: EventOutbox }) {}

  /** Null when the family has no credits (any more): it is unlimited. */
  async spend(key: SpendingKey, cost: number, now: Date): Promise<Spent | null> {
    let emitted = false;
    const spent = await this.deps.db.transaction().execute(async (tx) => {
      const row = await keyCredits.get(tx, key.familyId, { lock: true });
      if (row === undefined) return null;
      const state = creditState(row);
      const outcome = spendCredits(state, cost, now);
      if (outcome.changed)
        await keyCredits.spent(tx, key.familyId, outcome.remaining, outcome.refilledAt, now);
      if (outcome.exhausted && key.companyId !== null) {
        await this.deps.events.emit(tx, {
          companyId: key.companyId,
          environment: key.environment,
          type: "key.usage_exhausted",
          data: {
            key_id: key.keyId,
            family_id: key.familyId,
            remaining: 0,
            refill: state.refill,
            next_refill_at: state.refill ? nextRefillAt(state.refill.interval, now).toISOString() : null,
          },
        });
        emitted = true;
      }
      return {
        allowed: outcome.allowed,
        remaining: outcome.remaining,
        refill: state.refill,
      };
    });
    if (emitted) this.deps.events.committed();
    return spent;
  }
}
