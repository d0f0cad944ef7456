/**
 * The events a company's webhooks can hear. Each is `{type, timestamp, data}` on the wire; `data` is a
 * view of the object (a key's, an API user's, a person's), never a key, secret, password or code.
 */
export const EVENT_TYPES = [
  "key.created",
  "key.rotated",
  "key.revoked",
  "key.expiring",
  "key.expired",
  /** A key unused long enough that the expiry policy will revoke it; sent days before the revocation. */
  "key.unused",
  "key.leaked",
  "key.usage_exhausted",
  "credential.created",
  "credential.updated",
  "credential.deactivated",
  "user.invited",
  "user.role_changed",
  /** A merchant account set up; `updated` for a rename, a deactivation or a reactivation. */
  "merchant_account.created",
  "merchant_account.updated",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

const KNOWN = new Set<string>(EVENT_TYPES);

export function isEventType(value: string): value is EventType {
  return KNOWN.has(value);
}
