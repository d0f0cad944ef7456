/**
 * The one catalog of error codes. Server, tests and (later) the dashboard and SDK share it;
 * the HTTP edge is the only place that turns a code into a status and an envelope.
 */
export const ERRORS = {
  VALIDATION_ERROR: { status: 400, message: "The request is not valid." },
  WEAK_PASSWORD: { status: 400, message: "The new password is too weak." },
  TOKEN_INVALID: {
    status: 400,
    message: "This link is not valid: it was already used, has expired, or was replaced by a newer one.",
  },
  INVALID_JSON: { status: 400, message: "The request body is not valid JSON." },
  INVALID_ENCODING: {
    status: 400,
    message: "The request body cannot be decoded as its Content-Encoding says.",
  },
  UNKNOWN_PERMISSION: { status: 400, message: "A permission is not in the catalog." },
  UNKNOWN_ROLE: { status: 400, message: "A role is not in the catalog." },
  GRANT_EMPTY: {
    status: 400,
    message: "An API credential needs at least one enabled role or permission.",
  },
  INVALID_IP_RULE: { status: 400, message: "An allowed IP entry is not a valid address or CIDR range." },
  INVALID_RATE_LIMIT: { status: 400, message: "A rate limit is not valid." },
  EXPIRY_POLICY: {
    status: 400,
    message: "The key's expiry does not comply with the company's expiry policy.",
  },
  UNKNOWN_EVENT_TYPE: { status: 400, message: "An event type is not one webhooks can hear." },
  WEBHOOK_URL_REFUSED: {
    status: 400,
    message:
      "The webhook URL's host is or resolves to a loopback, private, link-local or other special address.",
  },
  INVALID_META: {
    status: 400,
    message: "A key's meta must be a JSON object of at most 16 keys, 3 levels and 1 KiB.",
  },
  UNAUTHORIZED: { status: 401, message: "Missing or invalid credentials." },
  SIGNATURE_INVALID: {
    status: 401,
    message: "Github-Public-Key-Signature does not sign this body with a key in the configured file.",
  },
  INVALID_LOGIN: { status: 401, message: "The email or password is wrong." },
  SESSION_EXPIRED: { status: 401, message: "The session has ended. Sign in again." },
  TOTP_REQUIRED: { status: 403, message: "This needs a current two-factor code (X-TOTP-Code or totp_code)." },
  TOTP_INVALID: { status: 403, message: "The two-factor code is wrong, expired or already used." },
  TOTP_ENROLMENT_REQUIRED: {
    status: 403,
    message: "Set up two-factor authentication before changing keys or credentials.",
  },
  PASSWORD_CHANGE_REQUIRED: { status: 403, message: "Set a new password first." },
  CSRF_INVALID: { status: 403, message: "Missing or wrong X-CSRF-Token for this session." },
  LAST_OWNER: { status: 409, message: "A company must keep at least one active owner." },
  FORBIDDEN: { status: 403, message: "You may not do this." },
  INSUFFICIENT_PERMISSIONS: { status: 403, message: "The caller lacks a required permission." },
  PERMISSION_NOT_HELD: { status: 403, message: "Nobody can grant a permission they do not hold." },
  IP_NOT_ALLOWED: { status: 403, message: "The caller's IP address is not allowed." },
  ENVIRONMENT_NOT_ALLOWED: {
    status: 403,
    message: "A caller acting in the test environment reads and changes test objects only.",
  },
  MERCHANT_ACCOUNT_NOT_ALLOWED: {
    status: 403,
    message: "A merchant account's caller acts within its account only; this is the whole company's.",
  },
  ENVIRONMENT_MISMATCH: { status: 403, message: "The key belongs to the other environment." },
  ROUTE_NOT_MAPPED: { status: 403, message: "No permission in the catalog covers this route." },
  ROUTE_UNKNOWN: {
    status: 403,
    message: "The gateway did not say which route is asked for, or said two different ones.",
  },
  NOT_FOUND: { status: 404, message: "Not found." },
  ROUTE_NOT_FOUND: { status: 404, message: "No such route." },
  SECRET_SCANNING_NOT_CONFIGURED: {
    status: 404,
    message:
      "GitHub secret scanning reports are not taken here (LATCHKEY_GITHUB_SECRET_SCANNING_KEYS is unset).",
  },
  METHOD_NOT_ALLOWED: { status: 405, message: "Method not allowed." },
  REQUEST_TIMEOUT: { status: 408, message: "The request did not arrive in time." },
  CONFLICT: { status: 409, message: "The request conflicts with the current state." },
  PERMISSIONS_IMMUTABLE: { status: 409, message: "A key's permissions are fixed at creation." },
  KEY_NOT_ACTIVE: { status: 409, message: "The key is revoked or expired." },
  KEY_ALREADY_ROTATED: { status: 409, message: "The key has already been rotated." },
  KEY_NOT_ROTATED: {
    status: 409,
    message: "Only a rotated key in its overlap period has an expiry to change.",
  },
  CREDENTIAL_INACTIVE: { status: 409, message: "The API credential is inactive." },
  MERCHANT_ACCOUNT_INACTIVE: { status: 409, message: "The merchant account is inactive." },
  WEBHOOK_DISABLED: { status: 409, message: "The webhook endpoint is disabled. Enable it first." },
  EMAIL_TAKEN: { status: 409, message: "That email is already in use." },
  PAYLOAD_TOO_LARGE: { status: 413, message: "The request body is too large." },
  URI_TOO_LONG: { status: 414, message: "The URL is too long." },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: "Send the request body as application/json." },
  UNSUPPORTED_ENCODING: {
    status: 415,
    message: "Send the request body uncompressed or in one of gzip, deflate or br.",
  },
  RATE_LIMITED: { status: 429, message: "Too many requests." },
  USAGE_EXCEEDED: { status: 429, message: "The key has no credits left for this request." },
  LOGIN_LOCKED: { status: 429, message: "Too many failed sign-ins. Try again later." },
  INTERNAL_ERROR: { status: 500, message: "Something went wrong on our side." },
  SERVICE_UNAVAILABLE: { status: 503, message: "The service is not ready." },
  STORE_UNAVAILABLE: { status: 503, message: "The database cannot be reached. Try again shortly." },
  STORE_FULL: {
    status: 503,
    message: "The database's disk is full, so nothing was written. Try again once space is freed.",
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** Outcomes of verifying a key, password or key + secret pair (returned as data, never thrown). */
export const VERIFY_CODES = [
  "VALID",
  "MALFORMED",
  "NOT_FOUND",
  "REVOKED",
  "EXPIRED",
  "DISABLED",
  "IP_NOT_ALLOWED",
  "ENVIRONMENT_MISMATCH",
  "INSUFFICIENT_PERMISSIONS",
  "RATE_LIMITED",
  "USAGE_EXCEEDED",
] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

/** A failure a service reports to its caller; carries a closed code and an optional field or detail. */
export class LatchkeyError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  /** Set only where one code means a different status in one place (TOTP_REQUIRED at login is a 401). */
  private readonly statusOverride: number | undefined;
  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>, status?: number) {
    super(message ?? ERRORS[code].message);
    this.name = "LatchkeyError";
    this.code = code;
    this.details = details;
    this.statusOverride = status;
  }
  get status(): number {
    return this.statusOverride ?? ERRORS[this.code].status;
  }
}
