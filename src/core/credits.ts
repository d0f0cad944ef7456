/**
 * Usage credits and a key's metadata: the rules, as plain functions over plain data.
 *
 * A key may carry `remaining` uses. Each allowed verification spends one (or the `cost` it asks for);
 * with too few left it is refused with USAGE_EXCEEDED and spends nothing. A refill sets the balance to
 * `amount` (it does not add) at the start of each UTC day or month, as Unkey does: a monthly plan of
 * 10,000 calls starts every month at 10,000, whatever was left over.
 */

export type RefillInterval = "day" | "month";
export const REFILL_INTERVALS: readonly RefillInterval[] = ["day", "month"];

export interface Refill {
  amount: number;
  interval: RefillInterval;
}

/** Balances and refill amounts: exact in a JavaScript number and in a bigint column. */
export const MAX_CREDITS = 1_000_000_000_000;
/** What one verification may spend at most. */
export const MAX_COST = 1_000_000;

/** The start of the UTC day or month `at` falls in. */
export function periodStart(interval: RefillInterval, at: Date): Date {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  return new Date(interval === "day" ? Date.UTC(y, m, at.getUTCDate()) : Date.UTC(y, m, 1));
}

/** A family's balance as stored. `refilledAt`: the start of the period last refilled (or when set). */
export interface CreditState {
  remaining: number;
  refill: Refill | null;
  refilledAt: Date | null;
}

export interface SpendOutcome {
  allowed: boolean;
  /** The balance after this request (spent, or untouched when refused). */
  remaining: number;
  refilledAt: Date | null;
  /** Whether the state must be written back (a refill, or something spent). */
  changed: boolean;
  /** This request spent the last credit: the balance went from some to none. */
  exhausted: boolean;
}

/**
 * One request against a balance at `now`. A refill due since the last one happens first, once per
 * period (the caller holds the balance's row lock, so two nodes cannot both refill). A request needs
 * `cost` credits and at least one: `cost: 0` asks "may this key still be used?" without spending, so an
 * empty balance refuses it too.
 */
export function spendCredits(state: CreditState, cost: number, now: Date): SpendOutcome {
  let remaining = state.remaining;
  let refilledAt = state.refilledAt;
  let changed = false;
  if (state.refill !== null) {
    const start = periodStart(state.refill.interval, now);
    if (refilledAt === null || refilledAt.getTime() < start.getTime()) {
      remaining = state.refill.amount;
      refilledAt = start;
      changed = true;
    }
  }
  const allowed = remaining >= Math.max(cost, 1);
  if (allowed && cost > 0) {
    remaining -= cost;
    changed = true;
  }
  return { allowed, remaining, refilledAt, changed, exhausted: allowed && cost > 0 && remaining === 0 };
}

/** The balance as a verification at `now` would find it: a refill that is due counts as made. */
export function currentBalance(state: CreditState, now: Date): number {
  return spendCredits(state, 0, now).remaining;
}

/** What a caller may set: a balance (null: unlimited) and its refill, checked before it is stored. */
export function checkCredits(
  remaining: number | null,
  refill: Refill | null,
): { ok: true } | { ok: false; field: string; reason: string } {
  if (remaining === null && refill !== null)
    return { ok: false, field: "refill", reason: "A refill needs credits: set remaining too." };
  if (remaining !== null && (!Number.isInteger(remaining) || remaining < 0 || remaining > MAX_CREDITS))
    return {
      ok: false,
      field: "remaining",
      reason: `remaining must be an integer from 0 to ${MAX_CREDITS}.`,
    };
  if (refill !== null) {
    if (!Number.isInteger(refill.amount) || refill.amount < 1 || refill.amount > MAX_CREDITS)
      return {
        ok: false,
        field: "refill.amount",
        reason: `refill.amount must be an integer from 1 to ${MAX_CREDITS}.`,
      };
    if (!REFILL_INTERVALS.includes(refill.interval))
      return { ok: false, field: "refill.interval", reason: 'refill.interval must be "day" or "month".' };
  }
  return { ok: true };
}

/**
 * A key's `meta`: the platform's own small JSON object (a plan, a customer's name), returned by every
 * verification. Small because it rides in every cached key and every answer: at most 16 keys at the
 * top, objects and arrays nested at most 3 levels deep, and 1 KiB as JSON (UTF-8).
 */
export const MAX_META_BYTES = 1024;
export const MAX_META_KEYS = 16;
export const MAX_META_DEPTH = 3;
export const MAX_META_KEY_LENGTH = 64;

export function checkMeta(meta: unknown): { ok: true } | { ok: false; reason: string } {
  if (typeof meta !== "object" || meta === null || Array.isArray(meta))
    return { ok: false, reason: "meta must be a JSON object." };
  const keys = Object.keys(meta);
  if (keys.length > MAX_META_KEYS)
    return { ok: false, reason: `meta may have at most ${MAX_META_KEYS} keys.` };
  if (keys.some((k) => k.length < 1 || k.length > MAX_META_KEY_LENGTH))
    return { ok: false, reason: `meta's keys must be 1 to ${MAX_META_KEY_LENGTH} characters.` };
  if (!storable(meta))
    return { ok: false, reason: "meta may not hold NUL characters or unpaired surrogates." };
  if (depth(meta) > MAX_META_DEPTH)
    return { ok: false, reason: `meta may nest objects and arrays at most ${MAX_META_DEPTH} levels deep.` };
  // TextEncoder, not Buffer: the console runs this check too, in the browser.
  const bytes = new TextEncoder().encode(JSON.stringify(meta)).length;
  if (bytes > MAX_META_BYTES)
    return { ok: false, reason: `meta is ${bytes} bytes as JSON; at most ${MAX_META_BYTES} are allowed.` };
  return { ok: true };
}

/** PostgreSQL's jsonb refuses `\u0000` and unpaired surrogates in any string, key or value. */
const UNPAIRED = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const NUL = String.fromCharCode(0);
const storableText = (s: string) => !s.includes(NUL) && !UNPAIRED.test(s);
function storable(value: unknown): boolean {
  if (typeof value === "string") return storableText(value);
  if (typeof value !== "object" || value === null) return true;
  for (const [k, v] of Object.entries(value)) if (!storableText(k) || !storable(v)) return false;
  return true;
}

/** Levels of objects and arrays: `{}` is 1, `{"a":{"b":1}}` is 2. Stops counting past the limit. */
function depth(value: unknown, level = 1): number {
  if (level > MAX_META_DEPTH) return level;
  let deepest = level;
  for (const v of Object.values(value as object)) {
    if (typeof v === "object" && v !== null) deepest = Math.max(deepest, depth(v, level + 1));
  }
  return deepest;
}

/**
 * A key's `external_id`: the platform's own id for the key's owner (`user_123`, `acct:42`). Visible
 * ASCII only, so it can travel as a header (`Latchkey-External-Id`) with no encoding.
 */
export const EXTERNAL_ID_PATTERN = "^[\\x21-\\x7E]{1,128}$";
