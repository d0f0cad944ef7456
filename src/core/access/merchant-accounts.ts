import type { Actor } from "../actor.ts";
import { LatchkeyError } from "../errors.ts";

/**
 * A company's merchant accounts are walls inside it, as another company's are around it. A caller of
 * a merchant account (its API user's password, that user's keys; later perhaps a person a membership
 * ties to one) acts within that account only: an object of another account, or a company-level one
 * (a company-level API user and its keys, the webhooks, the whole audit chain), answers it as another
 * company's does, 404, and what it creates lands in its own account. A company-level caller (null)
 * sees every account and may name one. The rule reads nothing but the actor's field, so whatever sets
 * it (a key's row, a membership) gets the same walls.
 */
export function actingMerchantAccount(actor: Actor): string | null {
  if (actor.kind === "platform" || actor.kind === "system") return null;
  return actor.merchantAccountId ?? null;
}

/** Whether a caller acting within `acting` may see an object of `object` (null: company-level). */
export function visibleWithin(acting: string | null, object: string | null): boolean {
  return acting === null || object === acting;
}

/** Whether the actor may see an object of merchant account `account` (null: company-level) at all. */
export function seesAccount(actor: Actor, account: string | null): boolean {
  return visibleWithin(actingMerchantAccount(actor), account);
}

/**
 * Whether the viewer may be told who acted: within a merchant account, only an actor of that same
 * account is named (a company-level key or person, or another account's, stays anonymous, as a live
 * key does to a test caller). `actorAccount` is the account the actor acted within, null when it
 * acted for the whole company (or is unknown, as for events from before it was recorded).
 * Latchkey's own actors (the platform, the expiry job) name nobody and stay shown.
 */
export function seesActorAccount(viewer: Actor, actorType: string, actorAccount: string | null): boolean {
  if (actorType === "platform" || actorType === "system") return true;
  return visibleWithin(actingMerchantAccount(viewer), actorAccount);
}

/** Before reading or changing an existing object: one of another account is not there. */
export function assertSeesAccount(actor: Actor, account: string | null, what = "object"): void {
  if (!seesAccount(actor, account)) throw new LatchkeyError("NOT_FOUND", `No such ${what}.`);
}

/**
 * The account a list must be cut to: a merchant account's caller gets its own whatever it asks (and
 * asking for another account's is asking about an object it cannot see: 404); a company-level caller
 * gets what it asked for, or no cut.
 */
export function listedMerchantAccount(actor: Actor, asked?: string): string | undefined {
  const acting = actingMerchantAccount(actor);
  if (acting === null) return asked;
  if (asked !== undefined && asked !== acting) {
    throw new LatchkeyError("NOT_FOUND", "No such merchant account.", { field: "merchant_account_id" });
  }
  return acting;
}

/**
 * The account something new is created in: a merchant account's caller creates in its own (naming
 * another is naming an object it cannot see: 404, as for a list); a company-level caller where it
 * says, or at company level (null).
 */
export function creationAccount(actor: Actor, asked: string | null | undefined): string | null {
  const acting = actingMerchantAccount(actor);
  if (acting === null) return asked ?? null;
  if (asked !== undefined && asked !== acting) {
    throw new LatchkeyError("NOT_FOUND", "No such merchant account.", { field: "merchant_account_id" });
  }
  return acting;
}

/**
 * For what only the company as a whole has (its webhooks, its whole audit chain, its merchant
 * accounts' set-up): a merchant account's caller may not ask.
 */
export function assertCompanyLevel(actor: Actor): void {
  if (actingMerchantAccount(actor) !== null) throw new LatchkeyError("MERCHANT_ACCOUNT_NOT_ALLOWED");
}
