import type { CatalogDoc, CreatedKey, EnvironmentExpiryPolicy, UserView } from "../../../src/core/views.ts";

/**
 * The server's answer shapes, defined once in src/core/views.ts (the routes validate and document
 * their answers with the same schemas), so the console type-checks against the source.
 */
export type {
  AuditEvent,
  CatalogDoc,
  CompanyUsage,
  CreatedKey,
  CredentialView,
  Environment,
  EnvironmentExpiryPolicy,
  ExpiryPolicyDoc,
  KeyLeak,
  KeyUsage,
  KeyView,
  LeakPolicyView,
  MerchantAccountView,
  RateLimit,
  Refill,
  UserView,
} from "../../../src/core/views.ts";
export type {
  WebhookDeliveryView,
  WebhookView,
  WebhookWithSecret,
} from "../../../src/core/webhook-views.ts";
export type Role = UserView["role"];
export type CatalogGroup = CatalogDoc["groups"][number];

export interface Me {
  user: { id: string; email: string };
  company_id: string;
  company_name?: string;
  role: Role;
  /** The merchant account this session acts within; null or absent: the whole company. */
  merchant_account_id?: string | null;
  csrf_token: string;
  password_change_required: boolean;
  totp_enrolled: boolean;
  /** Every company the person may act in, with their role there (one login, several companies). */
  companies?: { id: string; name: string; slug: string; role: Role; merchant_account_id?: string | null }[];
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

export type RotatedKey = CreatedKey & { previous_key: { id: string; expires_at: string } };

/** A change to the expiry policy: the environments and fields given; the rest stay. */
export type ExpiryPolicyPatch = Partial<Record<"live" | "test", Partial<EnvironmentExpiryPolicy>>>;
