/** A company's people and what each role may do (the WEpayments doc's Moderator, the Adyen doc's admin). */
export const ROLES = ["owner", "moderator", "developer", "viewer"] as const;
export type Role = (typeof ROLES)[number];

/** Roles that manage people, API credentials, keys and IP allowlists. */
export const MANAGER_ROLES: readonly Role[] = ["owner", "moderator"];
/** Roles that may write keys at all (a developer only test keys). */
export const KEY_WRITER_ROLES: readonly Role[] = ["owner", "moderator", "developer"];
export const EVERY_ROLE: readonly Role[] = ROLES;

/**
 * The permissions a person holds, for the "nobody grants more than they hold" rule: managers and
 * developers may put any catalog permission on a key (a developer only on a test key); viewers none.
 */
export function rolePermissions(role: Role, all: ReadonlySet<string>): ReadonlySet<string> {
  if (role === "viewer") return new Set();
  if (role === "developer") {
    return new Set(
      [...all].filter((p) => !["credentials:manage", "audit:read", "webhooks:manage"].includes(p)),
    );
  }
  return all;
}

/** Whether `actor` may give `target` to someone: only an owner makes owners. */
export function mayAssignRole(actor: Role, target: Role): boolean {
  if (actor === "owner") return true;
  return actor === "moderator" && target !== "owner";
}
