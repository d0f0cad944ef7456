/*
 * The shapes of Latchkey's v1 API as the client sends and receives them, written here so the SDK stays
 * standalone (the server defines its own in TypeBox). The client's test holds the operation table and
 * its field lists to the server's /openapi.json.
 */

export type Environment = "live" | "test";
export type Preset = "read_only" | "write" | "full_access";
export type Role = "owner" | "moderator" | "developer" | "viewer";

export interface RateLimit {
  limit: number;
  /** "1s" to "1d". */
  window: string;
}

/** The latest report that a key was found in public (the server's README, Leaked keys). */
export interface KeyLeak {
  reported_at: string;
  first_reported_at: string;
  reports: number;
  reporter: "github" | "public";
  url: string | null;
  source: string | null;
  action: "revoked" | "notified" | "already_revoked";
}

export interface Key {
  id: string;
  name: string;
  description: string;
  environment: Environment;
  prefix: string;
  permissions: string[];
  permission_summary: Record<string, string>;
  allowed_ips: string[];
  rate_limits: RateLimit[];
  status: "active" | "revoked" | "expired";
  has_secret: boolean;
  credential_id: string | null;
  /** Its API user's merchant account; null: company-level. */
  merchant_account_id: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  replaced_by: string | null;
  last_used_at: string | null;
  last_used_ip: string | null;
  created_at: string;
  created_by: string;
  /** Null unless the key was reported as found in public. */
  leak: KeyLeak | null;
  /** Where the key falls short of its environment's expiry policy (lists and gets); absent or empty when it complies. */
  policy_issues?: ExpiryPolicyIssue[];
  /** Credits left (the key's family shares them); null: unlimited. */
  remaining: number | null;
  refill: Refill | null;
  meta: Record<string, unknown> | null;
  external_id: string | null;
}

export type ExpiryPolicyIssue = "no_expiry" | "lifetime_too_long";

/** A webhook endpoint: never its secret, except once when created or rotated. */
export interface Webhook {
  id: string;
  url: string;
  description: string;
  environment: Environment;
  /** The event types it hears; null: every type. */
  events: string[] | null;
  status: "enabled" | "disabled";
  disabled_reason: string | null;
  disabled_at: string | null;
  previous_secret_expires_at: string | null;
  created_at: string;
  created_by: string;
  updated_at: string;
}

/** An endpoint as created or after rotate-secret: the only times its signing secret (whsec_…) is shown. */
export interface WebhookWithSecret extends Webhook {
  secret: string;
}

export interface WebhookDelivery {
  id: string;
  /** Sent as `webhook-id` on every attempt. */
  event_id: string;
  event_type: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: string | null;
  created_at: string;
  attempt_log: {
    attempt: number;
    at: string;
    duration_ms: number;
    status_code: number | null;
    error: string | null;
    next_attempt_at: string | null;
  }[];
}

/** A company's expiry policy for one environment. */
export interface EnvironmentExpiryPolicy {
  max_lifetime_days: number | null;
  must_expire: boolean;
  revoke_unused_after_days: number | null;
}

/** `GET /v1/policies/expiry`: the policy per environment and the active keys that fall short of it. */
export interface ExpiryPolicy {
  /** Absent for a caller acting in test. */
  live?: EnvironmentExpiryPolicy & { updated_at: string | null; updated_by: string | null };
  test: EnvironmentExpiryPolicy & { updated_at: string | null; updated_by: string | null };
  unused_notice_days: number;
  expiring_notice_days: number[];
  noncompliant_keys: {
    id: string;
    name: string;
    prefix: string;
    environment: Environment;
    expires_at: string | null;
    issues: ExpiryPolicyIssue[];
  }[];
  noncompliant_count: number;
}

/** The balance is set to `amount` at the start of each UTC day or month. */
export interface Refill {
  amount: number;
  interval: "day" | "month";
}

/** A key as shown once, at creation or rotation: with the key itself (and its secret). */
export interface CreatedKey extends Key {
  key: string;
  secret?: string;
}

export interface RotatedKey extends CreatedKey {
  previous_key: { id: string; expires_at: string };
}

export interface CreateKeyBody {
  name: string;
  environment: Environment;
  description?: string;
  credential_id?: string;
  permissions?: string[];
  preset?: Preset | Record<string, Preset>;
  allowed_ips?: string[];
  rate_limits?: RateLimit[];
  expires_at?: string;
  with_secret?: boolean;
  remaining?: number;
  refill?: Refill;
  meta?: Record<string, unknown>;
  external_id?: string;
  totp_code?: string;
}

export interface UpdateKeyBody {
  name?: string;
  description?: string;
  allowed_ips?: string[];
  rate_limits?: RateLimit[];
  /** Refused (`PERMISSIONS_IMMUTABLE`): listed because the server documents it, to say so clearly. */
  permissions?: string[];
  /** null: unlimited, no refill, no meta, no external id. */
  remaining?: number | null;
  refill?: Refill | null;
  meta?: Record<string, unknown> | null;
  external_id?: string | null;
  totp_code?: string;
}

export interface ListKeysQuery {
  credential_id?: string;
  environment?: Environment;
  status?: "active" | "revoked" | "expired";
  external_id?: string;
  merchant_account_id?: string;
  limit?: number;
  cursor?: string;
}

export interface RevokedKey {
  message: string;
  id: string;
  revoked_at: string;
}

export interface KeyUsage {
  key_id: string;
  merchant_account_id: string | null;
  days: { day: string; requests: number; denied: number }[];
  total_requests: number;
  last_used_at: string | null;
  last_used_ip: string | null;
}

export interface CompanyUsage {
  /** The environment counted; null: both. */
  environment: Environment | null;
  days: { day: string; requests: number; denied: number }[];
  total_requests: number;
  total_denied: number;
  keys_used: number;
}

export interface Credential {
  id: string;
  username: string;
  name: string;
  environment: Environment;
  /** The merchant account it acts within, fixed at creation; null: the company as a whole. */
  merchant_account_id: string | null;
  description: string;
  status: "active" | "inactive";
  is_default: boolean;
  /** `ws_…@Company.…` or `ws_…@Scope.Company_…`; fixed at creation. */
  username_format: UsernameFormat;
  /** The catalog roles it has enabled, by id. */
  roles: string[];
  /** Those of `roles` the catalog no longer defines (they grant nothing). */
  unknown_roles: string[];
  /** Permissions given one by one, beside its roles. */
  permissions: string[];
  /** Everything it holds: its roles' permissions and its single ones. */
  granted_permissions: string[];
  permission_summary: Record<string, string>;
  allowed_ips: string[];
  rate_limits: RateLimit[];
  /** Where its key notices (leaked, expiring) also go; null: the owners only. */
  email: string | null;
  has_password: boolean;
  password_created_at: string | null;
  created_at: string;
  created_by: string;
  updated_at: string;
}

export type UsernameFormat = "web_service" | "legal_entity_management";

/** At least one enabled role or permission is needed (`GRANT_EMPTY`). */
export interface CreateCredentialBody {
  name: string;
  environment?: Environment;
  /** The merchant account it belongs to for good; null or absent: company-level. */
  merchant_account_id?: string | null;
  description?: string;
  /** An address for its notices; not a sign-in, not unique. */
  email?: string | null;
  username_format?: UsernameFormat;
  roles?: string[];
  permissions?: string[];
  allowed_ips?: string[];
  rate_limits?: RateLimit[];
  totp_code?: string;
}

export interface UpdateCredentialBody {
  name?: string;
  description?: string;
  /** null clears it. */
  email?: string | null;
  roles?: string[];
  permissions?: string[];
  allowed_ips?: string[];
  rate_limits?: RateLimit[];
  status?: "active" | "inactive";
  totp_code?: string;
}

export interface CredentialPassword {
  username: string;
  password: string;
  created_at: string;
}

export type VerifyCode =
  | "VALID"
  | "MALFORMED"
  | "NOT_FOUND"
  | "REVOKED"
  | "EXPIRED"
  | "DISABLED"
  | "IP_NOT_ALLOWED"
  | "ENVIRONMENT_MISMATCH"
  | "INSUFFICIENT_PERMISSIONS"
  | "RATE_LIMITED"
  | "USAGE_EXCEEDED";

export interface VerifyBody {
  key?: string;
  secret?: string;
  username?: string;
  password?: string;
  permissions?: string[];
  ip?: string;
  environment?: Environment;
  cost?: number;
}

export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  key_id: string | null;
  credential_id: string | null;
  company_id: string | null;
  environment: Environment | null;
  /** The merchant account the key or API user acts within; null: company-level. */
  merchant_account_id: string | null;
  permissions: string[];
  expires_at: string | null;
  rate_limit: {
    limit: number;
    window: string;
    remaining: number;
    reset: number;
    retry_after: number | null;
  } | null;
  remaining: number | null;
  meta: Record<string, unknown> | null;
  external_id: string | null;
  /** Whether the key or its API user has an IP allowlist, so that the answer depends on `ip`. */
  ip_restricted: boolean;
}

export interface Catalog {
  groups: {
    id: string;
    name: string;
    description?: string;
    built_in?: boolean;
    entities: {
      id: string;
      name: string;
      description?: string;
      actions: { id: string; name: string; routes?: string[] }[];
    }[];
  }[];
  /** Named bundles of permissions an API user can be given. */
  roles: { id: string; name: string; description?: string; permissions: string[]; built_in?: boolean }[];
  permissions: string[];
  presets: string[];
  management_routes: Record<string, string[]>;
  unmapped_routes: "deny" | "allow";
}

export interface CreatedCompany {
  company: { id: string; name: string; slug: string; created_at: string };
  /** `existing_login`: the email already signed in elsewhere; it gets no temporary password. */
  owner: {
    id: string;
    email: string;
    existing_login: boolean;
    temporary_password?: string;
    /** An existing login's ownership waits for its person to accept it with this link. */
    accept_link?: string;
  };
  default_credential: { id: string; username: string };
  default_test_credential: { id: string; username: string };
  management_key: CreatedKey;
}

export interface CreatedVerifyKey {
  id: string;
  key: string;
  prefix: string;
}

export interface AuditEvent {
  id: string;
  seq: number;
  at: string;
  action: string;
  actor: { type: string; id: string | null; label: string | null };
  /** `label` and `credential_id`: in lists, the target's current name and a key's API user. */
  target: { type: string; id: string; label?: string | null; credential_id?: string | null } | null;
  changes: unknown;
  ip: string | null;
  user_agent: string | null;
  totp_used: boolean;
  environment: Environment | null;
  merchant_account_id: string | null;
}

/** A merchant account: company-wide, with live and test API users under it. */
export interface MerchantAccount {
  id: string;
  name: string;
  code: string;
  status: "active" | "inactive";
  api_user_count: number;
  key_count: number;
  created_at: string;
  created_by: string;
  updated_at: string;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  target?: string;
  since?: string;
  until?: string;
  merchant_account_id?: string;
  limit?: number;
  cursor?: string;
}

export interface AuditVerification {
  valid: boolean;
  events_checked: number;
  first_broken_event_id: string | null;
}

export interface PlatformAuditVerification {
  valid: boolean;
  chains: { chain: string; valid: boolean; events_checked: number; first_broken_event_id: string | null }[];
}

export interface Session {
  user: { id: string; email: string };
  company: { id: string; name: string; slug: string };
  role: string;
  csrf_token: string;
  expires_at: string;
  password_change_required: boolean;
  totp_enrolled: boolean;
}

export interface Me {
  user: { id: string; email: string };
  company_id: string;
  role: string;
  /** The merchant account this session acts within; null: the whole company. */
  merchant_account_id: string | null;
  csrf_token: string;
  password_change_required: boolean;
  totp_enrolled: boolean;
  /**
   * Every company the person may act in (an active membership), with their role there and the
   * merchant account the membership is limited to (null: the whole company).
   */
  companies: { id: string; name: string; slug: string; role: string; merchant_account_id: string | null }[];
}

/** The answer to switching company: the new session's company, role and CSRF token. */
export interface SwitchedCompany {
  user: { id: string; email: string };
  company: { id: string; name: string; slug: string };
  role: string;
  csrf_token: string;
  expires_at: string;
}

export interface User {
  id: string;
  email: string;
  role: Role;
  /** `invited`: an existing login offered this company, not accepted yet; it grants nothing. */
  status: "invited" | "active" | "disabled";
  /** The merchant account the person's membership here is limited to; null: the whole company. */
  merchant_account_id: string | null;
  totp_enrolled: boolean;
  password_change_required: boolean;
  created_at: string;
}

/** A company's offer to an existing login, accepted: switch to the company to act there. */
export interface AcceptedMembership {
  company: { id: string; name: string; slug: string };
  role: string;
}

export interface InvitedUser {
  id: string;
  email: string;
  role: string;
  merchant_account_id: string | null;
  /** True: a link to choose a password was mailed, and no temporary password is shown. */
  invitation_sent: boolean;
  temporary_password?: string;
  /** No SMTP, an existing login: the link its person accepts the membership with. */
  accept_link?: string;
}

export interface Health {
  status: "ok" | "degraded";
  [more: string]: unknown;
}

/** What a company does with a leaked key of one environment. */
export interface LeakPolicy {
  environment: Environment;
  action: "revoke" | "notify";
  is_default: boolean;
  updated_at: string | null;
}

/** A token GitHub's secret scanning found, as GitHub posts it. */
export interface FoundToken {
  token: string;
  type: string;
  url?: string;
  source?: string;
}

/** GitHub's feedback for one found token. */
export interface TokenFeedback {
  token_hash: string;
  token_type: string;
  label: "true_positive" | "false_positive";
}
