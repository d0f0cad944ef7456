import { MANAGEMENT_PERMISSIONS } from "./catalog.ts";

/** A company's people and what each role may do (the WEpayments doc's Moderator, the Adyen doc's admin). */
export const ROLES = ["owner", "moderator", "developer", "viewer"] as const;
export type Role = (typeof ROLES)[number];

/** Roles that manage people, API credentials, keys and IP allowlists. */
export const MANAGER_ROLES: readonly Role[] = ["owner", "moderator"];
/** Roles that may write keys at all (a developer only test keys). */
export const KEY_WRITER_ROLES: readonly Role[] = ["owner", "moderator", "developer"];
export const EVERY_ROLE: readonly Role[] = ROLES;

/**
 * The permissions a person holds, for the "nobody grants more than they hold" rule: managers any;
 * developers the platform's catalog but none of Latchkey's management group (and only on test keys);
 * viewers none.
 */
export function rolePermissions(role: Role, all: ReadonlySet<string>): ReadonlySet<string> {
  if (role === "viewer") return new Set();
  if (role === "developer") {
    // No management permission: a key a developer mints must not manage keys, or it would reach the live
    // keys the developer may not touch.
    const management = new Set<string>(MANAGEMENT_PERMISSIONS);
    return new Set([...all].filter((p) => !management.has(p)));
  }
  return all;
}

/** Whether `actor` may give `target` to someone: only an owner makes owners. */
export function mayAssignRole(actor: Role, target: Role): boolean {
  if (actor === "owner") return true;
  return actor === "moderator" && target !== "owner";
}
