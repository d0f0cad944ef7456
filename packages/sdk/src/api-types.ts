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
  expires_at: string | null;
  revoked_at: string | null;
  replaced_by: string | null;
  last_used_at: string | null;
  last_used_ip: string | null;
  created_at: string;
  created_by: string;
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
  totp_code?: string;
}

export interface UpdateKeyBody {
  name?: string;
  description?: string;
  allowed_ips?: string[];
  rate_limits?: RateLimit[];
  /** Refused (`PERMISSIONS_IMMUTABLE`): listed because the server documents it, to say so clearly. */
  permissions?: string[];
  totp_code?: string;
}

export interface ListKeysQuery {
  credential_id?: string;
  environment?: Environment;
  status?: "active" | "revoked" | "expired";
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
  days: { day: string; requests: number; denied: number }[];
  total_requests: number;
  last_used_at: string | null;
  last_used_ip: string | null;
}

export interface Credential {
  id: string;
  username: string;
  name: string;
  environment: Environment;
  description: string;
  status: "active" | "inactive";
  is_default: boolean;
  permissions: string[];
  permission_summary: Record<string, string>;
  allowed_ips: string[];
  rate_limits: RateLimit[];
  has_password: boolean;
  password_created_at: string | null;
  created_at: string;
  created_by: string;
  updated_at: string;
}

export interface CreateCredentialBody {
  name: string;
  environment?: Environment;
  description?: string;
  permissions: string[];
  allowed_ips?: string[];
  rate_limits?: RateLimit[];
  totp_code?: string;
}

export interface UpdateCredentialBody {
  name?: string;
  description?: string;
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
  | "RATE_LIMITED";

export interface VerifyBody {
  key?: string;
  secret?: string;
  username?: string;
  password?: string;
  permissions?: string[];
  ip?: string;
  environment?: Environment;
}

export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  key_id: string | null;
  credential_id: string | null;
  company_id: string | null;
  environment: Environment | null;
  permissions: string[];
  expires_at: string | null;
  rate_limit: {
    limit: number;
    window: string;
    remaining: number;
    reset: number;
    retry_after: number | null;
  } | null;
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
  permissions: string[];
  presets: string[];
  management_routes: Record<string, string[]>;
  unmapped_routes: "deny" | "allow";
}

export interface CreatedCompany {
  company: { id: string; name: string; slug: string; created_at: string };
  owner: { id: string; email: string; temporary_password: string };
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
  target: { type: string; id: string } | null;
  changes: unknown;
  ip: string | null;
  user_agent: string | null;
  totp_used: boolean;
  environment: Environment | null;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  target?: string;
  since?: string;
  until?: string;
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
  csrf_token: string;
  password_change_required: boolean;
  totp_enrolled: boolean;
}

export interface User {
  id: string;
  email: string;
  role: Role;
  status: "active" | "disabled";
  totp_enrolled: boolean;
  password_change_required: boolean;
  created_at: string;
}

export interface InvitedUser {
  id: string;
  email: string;
  role: string;
  temporary_password: string;
}

export interface Health {
  status: "ok" | "degraded";
  [more: string]: unknown;
}
