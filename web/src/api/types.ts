import type { Static } from "typebox";
import type {
  CreatedKey as CreatedKeySchema,
  CredentialView as CredentialSchema,
  KeyView as KeySchema,
  UserView as UserSchema,
} from "../../../src/http/schemas.ts";

/** Shapes the server's route schemas declare: the console type-checks against the same source. */
export type KeyView = Static<typeof KeySchema>;
export type CreatedKey = Static<typeof CreatedKeySchema>;
export type CredentialView = Static<typeof CredentialSchema>;
export type UserView = Static<typeof UserSchema>;
export type Role = UserView["role"];
export type Environment = KeyView["environment"];
export type RateLimit = KeyView["rate_limits"][number];

export interface Me {
  user: { id: string; email: string };
  company_id: string;
  company_name?: string;
  role: Role;
  csrf_token: string;
  password_change_required: boolean;
  totp_enrolled: boolean;
}

export interface LoginResult {
  user: { id: string; email: string };
  company: { id: string; name: string; slug: string };
  role: Role;
  csrf_token: string;
  expires_at: string;
  password_change_required: boolean;
  totp_enrolled: boolean;
}

export interface CatalogAction {
  id: string;
  name: string;
}
export interface CatalogEntity {
  id: string;
  name: string;
  description?: string;
  actions: CatalogAction[];
}
export interface CatalogGroup {
  id: string;
  name: string;
  description?: string;
  entities: CatalogEntity[];
  built_in?: boolean;
}
export interface CatalogDoc {
  groups: CatalogGroup[];
  permissions: string[];
  presets: string[];
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
}

export interface KeyUsage {
  key_id: string;
  /** `requests` were allowed; `denied` refused (IP, permission, rate limit). */
  days: { day: string; requests: number; denied?: number }[];
  total_requests?: number;
  last_used_at: string | null;
  last_used_ip: string | null;
}

export type RotatedKey = CreatedKey & { previous_key: { id: string; expires_at: string } };
