import type { ApiError } from "./client.ts";

/** The form field an error belongs to, so the console can show it under the input that caused it. */
export function fieldOf(err: ApiError): string | undefined {
  switch (err.code) {
    case "TOTP_REQUIRED":
    case "TOTP_INVALID":
      return err.field === "code" ? "code" : "totp_code";
    case "INVALID_IP_RULE":
      return err.field ?? "allowed_ips";
    case "UNKNOWN_PERMISSION":
      return "permissions";
    case "PERMISSION_NOT_HELD":
      // A role whose permissions the caller lacks is refused on the roles, not the matrix.
      return err.field === "roles" ? "roles" : "permissions";
    case "WEAK_PASSWORD":
      return "new_password";
    case "EMAIL_TAKEN":
      return err.field ?? "email";
    default:
      return err.field;
  }
}

const list = (value: unknown): string =>
  Array.isArray(value) && value.length > 0 ? value.map(String).join(", ") : "";

/**
 * An error in words a person understands, naming what was refused where the answer says so. The
 * server's own message is kept for codes whose message already reads well.
 */
/** A wait in seconds as a person reads it: "45 seconds", "2 minutes", "1 hour". */
export function waitText(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 60) return `${s} second${s === 1 ? "" : "s"}`;
  const m = Math.ceil(s / 60);
  if (m < 60) return `${m} minute${m === 1 ? "" : "s"}`;
  const h = Math.ceil(m / 60);
  return `${h} hour${h === 1 ? "" : "s"}`;
}

export function explain(err: ApiError): string {
  const d = err.details;
  switch (err.code) {
    case "IP_NOT_ALLOWED":
      return typeof d.ip === "string"
        ? `Requests from ${d.ip} are not allowed: that address is outside the allowed IP list.`
        : "Your address is outside the allowed IP list.";
    case "INVALID_IP_RULE":
      return typeof d.entry === "string"
        ? `"${d.entry}" is not a valid IP address or CIDR range.`
        : "An allowed IP entry is not a valid IP address or CIDR range.";
    case "TOTP_REQUIRED":
      return "Enter the 6-digit code from your authenticator app.";
    case "TOTP_INVALID":
      return "That code is wrong, expired or already used. Wait for the next code in your app and try again.";
    case "TOTP_ENROLMENT_REQUIRED":
      return "Set up two-factor authentication before changing keys or API users.";
    case "RATE_LIMITED":
      return typeof d.retry_after === "number"
        ? `Too many attempts. Try again in ${waitText(d.retry_after)}.`
        : "Too many attempts. Wait a few minutes and try again.";
    case "PERMISSION_NOT_HELD":
      return list(d.permissions)
        ? `You cannot grant ${list(d.permissions)}: the API user (or you) does not hold it.`
        : "You cannot grant a permission that is not held.";
    case "UNKNOWN_ROLE":
      return `Not a role of the catalog: ${list(d.roles) || "unknown role"}.`;
    case "GRANT_EMPTY":
      return "Enable at least one role or choose at least one permission: an API user needs one of the two.";
    case "UNKNOWN_PERMISSION":
      return `Not in the permission catalog: ${list(d.permissions) || "unknown permission"}.`;
    case "INVALID_LOGIN":
      return err.field === "current_password"
        ? "The current password is wrong."
        : "The email or password is wrong.";
    case "LOGIN_LOCKED":
      // The API knows the exact wait (details.retry_after, and Retry-After): say it.
      return typeof d.retry_after === "number"
        ? `Too many failed sign-ins. Try again in ${waitText(d.retry_after)}.`
        : "Too many failed sign-ins. Try again later.";
    case "TOKEN_INVALID":
      return "This link is not valid: it was already used, has expired, or a newer one was sent.";
    case "SESSION_EXPIRED":
    case "UNAUTHORIZED":
      return "Your session has ended. Sign in again.";
    case "CSRF_INVALID":
      return "This page is out of date with your session. Reload and try again.";
    case "FORBIDDEN":
    case "INSUFFICIENT_PERMISSIONS":
      return `Your role does not allow this. ${err.message}`.trim();
    case "KEY_NOT_ACTIVE":
      return "This key is already revoked or expired, so it cannot be changed.";
    case "KEY_ALREADY_ROTATED":
      return "This key has already been rotated. Use its replacement instead.";
    case "KEY_NOT_ROTATED":
      return "Only a rotated key still in its grace period has an expiry to change.";
    case "CREDENTIAL_INACTIVE":
      return "This API user is deactivated. Reactivate it before issuing or rotating keys.";
    case "MERCHANT_ACCOUNT_INACTIVE":
      return "This merchant account is deactivated. Reactivate it before adding API users or keys to it.";
    case "MERCHANT_ACCOUNT_NOT_ALLOWED":
      return "A merchant account's caller works within its account only; this belongs to the whole company.";
    case "LAST_OWNER":
      return "The company must keep at least one active owner.";
    case "EMAIL_TAKEN":
      return "Someone already uses that email.";
    case "ENVIRONMENT_NOT_ALLOWED":
      return "The console is switched to Test, where only test API users and keys can be created or changed. Switch to Live for live ones.";
    case "NOT_FOUND":
      return "It no longer exists, or belongs to another company.";
    case "WEBHOOK_URL_REFUSED":
      return typeof d.reason === "string"
        ? `Webhooks cannot go there: ${d.reason}.`
        : "Webhooks cannot go to a loopback, private or link-local address.";
    case "UNKNOWN_EVENT_TYPE":
      return err.message;
    case "WEBHOOK_DISABLED":
      return "This endpoint is disabled. Enable it before sending a test event.";
    case "NETWORK":
      return err.message;
    case "INTERNAL_ERROR":
      return `Something went wrong on the server${err.requestId ? ` (request ${err.requestId})` : ""}. Try again.`;
    default:
      return err.message;
  }
}
