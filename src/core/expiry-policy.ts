import { LatchkeyError } from "./errors.ts";

/**
 * A company's expiry policy for one environment: the rules for new keys, and when an unused key is
 * revoked. Pure rules over plain data; the store keeps the values, the services apply them, and the
 * API's schema (views.ts) takes its bounds from here.
 */
export interface EnvironmentExpiryPolicy {
  /** New keys expire at most this many days after they are made; null: no maximum. */
  max_lifetime_days: number | null;
  /** New keys must have an expiry. */
  must_expire: boolean;
  /** Active keys unused this many days are revoked, after a notice; null: never. */
  revoke_unused_after_days: number | null;
}

export const NO_POLICY: EnvironmentExpiryPolicy = {
  max_lifetime_days: null,
  must_expire: false,
  revoke_unused_after_days: null,
};

/** Not key-format's Environment: the console imports these bounds (via views.ts) and cannot load node:zlib. */
type Environment = "live" | "test";

export const MAX_LIFETIME_DAYS = 3650;
/** How long before an unused key's revocation its `key.unused` notice goes out, at the least. */
export const UNUSED_NOTICE_DAYS = 7;
/**
 * The shortest inactivity that may revoke a key: twice the notice, so a key is unused for a week before
 * anyone is warned and has a week more to be used.
 */
export const MIN_UNUSED_DAYS = 2 * UNUSED_NOTICE_DAYS;
/** `key.expiring` goes out this many days before a key's expiry, once for each. */
export const EXPIRING_NOTICES = [
  { notice: "7d", days: 7 },
  { notice: "1d", days: 1 },
] as const;
export type ExpiringNotice = (typeof EXPIRING_NOTICES)[number]["notice"];

const DAY_MS = 86_400_000;
export const days = (n: number) => n * DAY_MS;

/**
 * The expiry a new key gets under the policy, from the one asked for (null: none asked). No expiry
 * asked under a maximum lifetime gets the maximum, so an integrator who never thought of expiry still
 * gets a working key, and sees its `expires_at` in the answer; an expiry beyond the maximum, or none
 * where one is required and no maximum says which, is refused rather than quietly shortened.
 */
export function policyExpiry(
  policy: EnvironmentExpiryPolicy,
  environment: Environment,
  asked: Date | null,
  now: Date,
): Date | null {
  const max = policy.max_lifetime_days;
  if (max !== null) {
    const latest = new Date(now.getTime() + days(max));
    if (asked === null) return latest;
    if (asked.getTime() > latest.getTime()) {
      throw new LatchkeyError(
        "EXPIRY_POLICY",
        `The company's expiry policy lets ${environment} keys live at most ${max} days: expires_at must be at or before ${latest.toISOString()}.`,
        { field: "expires_at", max_lifetime_days: max, latest: latest.toISOString() },
      );
    }
    return asked;
  }
  if (asked === null && policy.must_expire) {
    throw new LatchkeyError(
      "EXPIRY_POLICY",
      `The company's expiry policy says ${environment} keys must expire: give expires_at.`,
      { field: "expires_at" },
    );
  }
  return asked;
}

/** Why a key does not comply with the policy of its environment. */
export type ComplianceIssue = "no_expiry" | "lifetime_too_long";

/**
 * How an existing key stands against the policy as it is now. Policies apply to new keys only, so an
 * older key is never changed for them: it is reported instead. Only live keys are judged; a revoked or
 * expired key, or a rotated one in its overlap, is on its way out.
 */
export function complianceIssues(
  key: { status: string; expires_at: Date | null; created_at: Date; replaced_by: string | null },
  policy: EnvironmentExpiryPolicy,
  now: Date,
): ComplianceIssue[] {
  if (key.status !== "active" || key.replaced_by !== null) return [];
  if (key.expires_at !== null && key.expires_at.getTime() <= now.getTime()) return [];
  const max = policy.max_lifetime_days;
  if (key.expires_at === null) return policy.must_expire || max !== null ? ["no_expiry"] : [];
  if (max !== null && key.expires_at.getTime() - key.created_at.getTime() > days(max)) {
    return ["lifetime_too_long"];
  }
  return [];
}

/**
 * Which `key.expiring` notice is due for a key expiring at `expiresAt`, if any: the most urgent one
 * whose time has come (a key made with two days left gets the 7-day one at once, a 1-day one after).
 */
export function dueExpiringNotice(expiresAt: Date, now: Date): ExpiringNotice | null {
  const left = expiresAt.getTime() - now.getTime();
  if (left <= 0) return null;
  let due: ExpiringNotice | null = null;
  for (const n of EXPIRING_NOTICES) if (left <= days(n.days)) due = n.notice;
  return due;
}

/**
 * When an unused key is revoked: N days after it was last used (or made), and never sooner than
 * UNUSED_NOTICE_DAYS after its notice went out, so a policy turned on over old keys still warns first.
 */
export function unusedRevocationAt(idleSince: Date, afterDays: number, noticeSentAt: Date): Date {
  return new Date(
    Math.max(idleSince.getTime() + days(afterDays), noticeSentAt.getTime() + days(UNUSED_NOTICE_DAYS)),
  );
}
