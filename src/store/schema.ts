import type { ColumnType, Generated, Insertable, Selectable } from "kysely";
import type { RateLimit } from "../core/rate-limit.ts";

/** jsonb columns: read as parsed values, written as JSON text so both drivers send the same thing. */
type Json<T> = ColumnType<T, string, string>;
type Timestamp = ColumnType<Date, Date, Date>;

export interface CompaniesTable {
  id: string;
  name: string;
  slug: string;
  status: Generated<"active" | "inactive">;
  created_at: Timestamp;
}

/** A person: one login for every company they belong to (migration 013 moved role and status out). */
export interface UsersTable {
  id: string;
  email: string;
  password_hash: string;
  must_change_password: Generated<boolean>;
  created_at: Timestamp;
  /** AES-GCM sealed TOTP seed, set once enrolment is confirmed; the pending one awaits confirmation. */
  totp_secret: string | null;
  totp_pending_secret: string | null;
  totp_enabled_at: Date | null;
  /** The last TOTP time step accepted, so a code is never accepted twice. */
  totp_last_step: ColumnType<string | null, number | null, number | null>;
  password_changed_at: Date | null;
  updated_at: Date | null;
  /** The company the person last signed in to or switched to, which the next sign-in opens. */
  last_company_id: ColumnType<string | null, string | null | undefined, string | null>;
}

/** A person's place in one company: their role there, and whether they may act there (migration 013). */
export interface MembershipsTable {
  user_id: string;
  company_id: string;
  role: "owner" | "moderator" | "developer" | "viewer";
  /** `invited`: an existing login offered this company; it grants nothing until its person accepts. */
  status: Generated<"invited" | "active" | "disabled">;
  created_at: Timestamp;
  /** When the person took the membership; null while it is only offered. */
  accepted_at: Date | null;
  /** The person who invited them; null for a company's first owner and people from before 013. */
  invited_by: string | null;
  updated_at: Date | null;
  /** The merchant account the person acts within here (migration 015); null: the whole company. */
  merchant_account_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface RecoveryCodesTable {
  user_id: string;
  code_hash: string;
  used_at: Date | null;
}

/** A single-use link sent to a person (password reset, invitation); only its HMAC is stored. */
export interface PersonTokensTable {
  token_hash: string;
  user_id: string;
  purpose: "password_reset" | "invitation" | "membership";
  /** The company a `membership` token joins; null for the other purposes, which are per login. */
  company_id: string | null;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
}

/** An outbox event mailed to a company's owners (key.leaked, key.expiring): the claim of one node. */
export interface EventMailsTable {
  event_id: string;
  sent_at: Date;
}

export interface SessionsTable {
  id: string;
  token_hash: string;
  user_id: string;
  company_id: string;
  csrf_token: string;
  created_at: Date;
  last_seen_at: Date;
  expires_at: Date;
  ended_at: Date | null;
  ip: string | null;
  user_agent: string | null;
}

export interface LoginAttemptsTable {
  email: string;
  failures: number;
  locked_until: Date | null;
  updated_at: Date;
}

export interface AuditEventsTable {
  id: string;
  chain: string;
  seq: ColumnType<string, number, number>;
  at: Date;
  company_id: string | null;
  actor_type: string;
  actor_id: string | null;
  actor_label: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  changes: Json<unknown>;
  ip: string | null;
  user_agent: string | null;
  totp_used: boolean;
  prev_hash: string;
  hash: string;
  /** The environment of what the event is about; null for company-wide events (people, sign-ins). */
  environment: ColumnType<"live" | "test" | null, "live" | "test" | null | undefined, never>;
  /** The environment the actor acted in (a key's, an API user's, a console's); null for the platform. */
  actor_environment: ColumnType<"live" | "test" | null, "live" | "test" | null | undefined, never>;
  /** The merchant account of what the event is about (migration 012); null: company-level. */
  merchant_account_id: ColumnType<string | null, string | null | undefined, never>;
  /** The merchant account the actor acted within (migration 015); null: company-level or older. */
  actor_merchant_account_id: ColumnType<string | null, string | null | undefined, never>;
}

export interface AuditHeadsTable {
  chain: string;
  seq: ColumnType<string, number, number>;
  hash: string;
}

/** A merchant account under a company (migration 012): company-wide, for live and test alike. */
export interface MerchantAccountsTable {
  id: string;
  company_id: string;
  name: string;
  /** Short, unique within the company, fixed at creation. */
  code: string;
  status: Generated<"active" | "inactive">;
  created_at: Timestamp;
  created_by: string;
  updated_at: Timestamp;
}

export interface CredentialsTable {
  id: string;
  company_id: string;
  username: string;
  name: string;
  description: string;
  status: Generated<"active" | "inactive">;
  is_default: Generated<boolean>;
  /** Live and test are two worlds: a credential and its keys belong to one. Fixed at creation. */
  environment: ColumnType<"live" | "test", "live" | "test" | undefined, never>;
  /** The merchant account it acts within; null: the company as a whole. Fixed at creation. */
  merchant_account_id: ColumnType<string | null, string | null | undefined, never>;
  permissions: Json<string[]>;
  /** Role ids of the catalog (migration 014); what it holds is their permissions and `permissions`. */
  roles: ColumnType<string[], string | undefined, string>;
  /** Where its key notices also go (migration 014); lower-cased; not unique and never a sign-in. */
  email: ColumnType<string | null, string | null | undefined, string | null>;
  allowed_ips: Json<string[]>;
  password_hash: ColumnType<string | null, string | null | undefined, string | null>;
  password_created_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  rate_limits: ColumnType<RateLimit[], string | undefined, string>;
  created_at: Timestamp;
  created_by: string;
  updated_at: Timestamp;
}

export interface ApiKeysTable {
  id: string;
  /** Null only for platform verify keys, which belong to no company. */
  company_id: string | null;
  credential_id: string | null;
  /** Its API user's merchant account (kept here so verification needs no join); null: company-level. */
  merchant_account_id: ColumnType<string | null, string | null | undefined, never>;
  name: string;
  description: string;
  environment: "live" | "test";
  permissions: Json<string[]>;
  allowed_ips: Json<string[]>;
  key_hash: string;
  secret_hash: string | null;
  prefix: string;
  status: Generated<"active" | "revoked">;
  expires_at: Date | null;
  revoked_at: Date | null;
  replaced_by: string | null;
  created_at: Timestamp;
  created_by: string;
  last_used_at: Date | null;
  last_used_ip: string | null;
  rate_limits: ColumnType<RateLimit[], string | undefined, string>;
  /** The first key of a rotation chain, whose rate-limit budget the chain shares; null: this key. */
  family_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The platform's own small JSON object (migration 010); null: none. */
  meta: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  /** The platform's id for the key's owner, filterable in lists; null: none. */
  external_id: ColumnType<string | null, string | null | undefined, string | null>;
}

/** A key family's usage credits (migration 010): one balance for a key and its replacements. */
export interface KeyCreditsTable {
  family_id: string;
  remaining: ColumnType<string, number, number>;
  refill_amount: ColumnType<string | null, number | null, number | null>;
  refill_interval: "day" | "month" | null;
  refilled_at: Date | null;
  updated_at: Date;
}

export interface KeyUsageDailyTable {
  key_id: string;
  /** Read back as YYYY-MM-DD text (see the query), written as the same. */
  day: string;
  requests: ColumnType<string, number, number>;
  denied: ColumnType<string, number, number>;
}

/** The outbox of events for webhooks, written with the change they tell of (migration 006). */
export interface EventsTable {
  id: string;
  seq: ColumnType<string, never, never>;
  company_id: string;
  environment: "live" | "test";
  type: string;
  data: Json<Record<string, unknown>>;
  created_at: Timestamp;
}

/** A report that matched a key: where it was found, who said so, what was done (migration 008). */
export interface KeyLeaksTable {
  id: string;
  key_id: string;
  company_id: string;
  environment: "live" | "test";
  reporter: "github" | "public";
  url: string | null;
  source: string | null;
  action: "revoked" | "notified" | "already_revoked";
  reported_at: Timestamp;
}

/** A company's leak policy for one environment; no row is the default. */
export interface LeakPoliciesTable {
  company_id: string;
  environment: "live" | "test";
  action: "revoke" | "notify";
  updated_at: Timestamp;
  updated_by: string;
}

/** A company's expiry policy for one environment (migration 009); no row is no policy. */
export interface ExpiryPoliciesTable {
  company_id: string;
  environment: "live" | "test";
  max_lifetime_days: number | null;
  must_expire: boolean;
  revoke_unused_after_days: number | null;
  updated_at: Timestamp;
  updated_by: string;
}

/** The expiry scheduler's notices, one row per key and notice: the row is the claim to send it. */
export interface KeyNoticesTable {
  key_id: string;
  notice: string;
  sent_at: Timestamp;
  /** For an unused-key notice: the start of the idleness it warned of. */
  idle_since: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

/** A company's webhook endpoint (migration 007). */
export interface WebhookEndpointsTable {
  id: string;
  company_id: string;
  environment: "live" | "test";
  url: string;
  description: string;
  /** The event types it hears; null: all of them. */
  events: ColumnType<string[] | null, string | null, string | null>;
  status: ColumnType<"enabled" | "disabled", "enabled" | "disabled" | undefined, "enabled" | "disabled">;
  disabled_reason: string | null;
  disabled_at: Date | null;
  /** Sealed with the server secret (SecretBox, purpose "webhook-secret"). */
  secret_sealed: string;
  previous_secret_sealed: string | null;
  previous_secret_expires_at: Date | null;
  created_at: Timestamp;
  created_by: string;
  updated_at: Timestamp;
}

/** One event's delivery to one endpoint. */
export interface WebhookDeliveriesTable {
  id: string;
  seq: ColumnType<string, never, never>;
  endpoint_id: string;
  event_id: string;
  status: ColumnType<
    "pending" | "delivered" | "failed",
    "pending" | undefined,
    "pending" | "delivered" | "failed"
  >;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: Date | null;
  lease_until: ColumnType<Date | null, Date | null | undefined, Date | null>;
  lease_token: ColumnType<string | null, string | null | undefined, string | null>;
  last_status_code: ColumnType<number | null, number | null | undefined, number | null>;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
  last_attempt_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  delivered_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  created_at: Timestamp;
}

export interface WebhookAttemptsTable {
  id: Generated<string>;
  delivery_id: string;
  attempt: number;
  started_at: Date;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  next_attempt_at: Date | null;
}

export interface Database {
  companies: CompaniesTable;
  users: UsersTable;
  memberships: MembershipsTable;
  merchant_accounts: MerchantAccountsTable;
  credentials: CredentialsTable;
  api_keys: ApiKeysTable;
  recovery_codes: RecoveryCodesTable;
  sessions: SessionsTable;
  login_attempts: LoginAttemptsTable;
  audit_events: AuditEventsTable;
  audit_heads: AuditHeadsTable;
  key_usage_daily: KeyUsageDailyTable;
  events: EventsTable;
  key_leaks: KeyLeaksTable;
  leak_policies: LeakPoliciesTable;
  expiry_policies: ExpiryPoliciesTable;
  key_notices: KeyNoticesTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  key_credits: KeyCreditsTable;
  person_tokens: PersonTokensTable;
  event_mails: EventMailsTable;
}

export type CompanyRow = Selectable<CompaniesTable>;
export type UserRow = Selectable<UsersTable>;
export type MembershipRow = Selectable<MembershipsTable>;
export type MerchantAccountRow = Selectable<MerchantAccountsTable>;
export type CredentialRow = Selectable<CredentialsTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type NewApiKey = Insertable<ApiKeysTable>;
export type AuditEventRow = Selectable<AuditEventsTable>;
export type SessionRow = Selectable<SessionsTable>;
export type EventRow = Selectable<EventsTable>;
export type KeyLeakRow = Selectable<KeyLeaksTable>;
export type ExpiryPolicyRow = Selectable<ExpiryPoliciesTable>;
export type WebhookEndpointRow = Selectable<WebhookEndpointsTable>;
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>;
export type WebhookAttemptRow = Selectable<WebhookAttemptsTable>;
export type KeyCreditsRow = Selectable<KeyCreditsTable>;
