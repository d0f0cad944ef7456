import type { ErrorCode } from "../../../src/core/errors.ts";
import type {
  AuditEvent,
  CatalogDoc,
  CompanyUsage,
  CreatedKey,
  CredentialView,
  Environment,
  ExpiryPolicyDoc,
  ExpiryPolicyPatch,
  KeyUsage,
  KeyView,
  LeakPolicyView,
  LoginResult,
  Me,
  MerchantAccountView,
  RateLimit,
  Refill,
  Role,
  RotatedKey,
  UserView,
  WebhookDeliveryView,
  WebhookView,
  WebhookWithSecret,
} from "./types.ts";

/**
 * Every route the console calls, as method and OpenAPI path. A test checks each one against the
 * server's /openapi.json, so a renamed or removed route fails CI rather than a screen.
 */
export const ENDPOINTS = {
  login: ["POST", "/v1/auth/login"],
  logout: ["POST", "/v1/auth/logout"],
  switchCompany: ["POST", "/v1/auth/switch-company"],
  acceptMembership: ["POST", "/v1/auth/accept-membership"],
  changePassword: ["POST", "/v1/auth/password"],
  totpSetup: ["POST", "/v1/auth/totp/setup"],
  totpConfirm: ["POST", "/v1/auth/totp/confirm"],
  forgotPassword: ["POST", "/v1/auth/forgot-password"],
  resetPassword: ["POST", "/v1/auth/reset-password"],
  regenerateRecoveryCodes: ["POST", "/v1/auth/recovery-codes"],
  me: ["GET", "/v1/me"],
  catalog: ["GET", "/v1/catalog"],
  listUsers: ["GET", "/v1/users"],
  inviteUser: ["POST", "/v1/users"],
  updateUser: ["PATCH", "/v1/users/{id}"],
  reinviteUser: ["POST", "/v1/users/{id}/reinvite"],
  resetUserTotp: ["POST", "/v1/users/{id}/reset-totp"],
  listCredentials: ["GET", "/v1/credentials"],
  getCredential: ["GET", "/v1/credentials/{id}"],
  createCredential: ["POST", "/v1/credentials"],
  updateCredential: ["PATCH", "/v1/credentials/{id}"],
  generatePassword: ["POST", "/v1/credentials/{id}/password"],
  listMerchantAccounts: ["GET", "/v1/merchant-accounts"],
  getMerchantAccount: ["GET", "/v1/merchant-accounts/{id}"],
  createMerchantAccount: ["POST", "/v1/merchant-accounts"],
  updateMerchantAccount: ["PATCH", "/v1/merchant-accounts/{id}"],
  listKeys: ["GET", "/v1/keys"],
  getKey: ["GET", "/v1/keys/{id}"],
  createKey: ["POST", "/v1/keys"],
  updateKey: ["PATCH", "/v1/keys/{id}"],
  revokeKey: ["DELETE", "/v1/keys/{id}"],
  rotateKey: ["POST", "/v1/keys/{id}/rotate"],
  changeExpiry: ["POST", "/v1/keys/{id}/expiry"],
  keyUsage: ["GET", "/v1/keys/{id}/usage"],
  listAudit: ["GET", "/v1/audit"],
  exportAudit: ["GET", "/v1/audit/export"],
  verifyAudit: ["GET", "/v1/audit/verify"],
  companyUsage: ["GET", "/v1/usage"],
  leakPolicies: ["GET", "/v1/policies/leaks"],
  setLeakPolicy: ["PATCH", "/v1/policies/leaks"],
  getExpiryPolicy: ["GET", "/v1/policies/expiry"],
  updateExpiryPolicy: ["PATCH", "/v1/policies/expiry"],
  listWebhooks: ["GET", "/v1/webhooks"],
  createWebhook: ["POST", "/v1/webhooks"],
  updateWebhook: ["PATCH", "/v1/webhooks/{id}"],
  deleteWebhook: ["DELETE", "/v1/webhooks/{id}"],
  rotateWebhookSecret: ["POST", "/v1/webhooks/{id}/rotate-secret"],
  listWebhookDeliveries: ["GET", "/v1/webhooks/{id}/deliveries"],
  retryWebhookDelivery: ["POST", "/v1/webhooks/{id}/deliveries/{delivery_id}/retry"],
  sendWebhookTest: ["POST", "/v1/webhooks/{id}/test"],
} as const satisfies Record<string, readonly [string, string]>;

export type Endpoint = keyof typeof ENDPOINTS;

/** An invitation as issued: mailed (a link), or a temporary password to pass on (no SMTP). */
export interface Invitation {
  id: string;
  email: string;
  invitation_sent: boolean;
  temporary_password?: string;
}

/** The server's closed catalog of error codes, and the console's own for a server it cannot reach. */
export type ConsoleErrorCode = ErrorCode | "NETWORK";

/** An answer of `{success:false}`: the closed error code, with the field or details it names. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ConsoleErrorCode,
    message: string,
    readonly field?: string,
    readonly details: Record<string, unknown> = {},
    readonly requestId?: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

type Query = Record<string, string | number | undefined>;

interface CallOptions {
  params?: Record<string, string>;
  query?: Query;
  body?: unknown;
  /** A second factor for a step-up action, sent as X-TOTP-Code. */
  totp?: string;
}

/** Runs requests with the session cookie (sent by the browser) and the session's CSRF token. */
export class Client {
  /** The CSRF token of the current session; each sign-in step that replaces the session replaces it. */
  csrf: string | null = null;
  /** Called when a request finds the session gone, so the console can go back to sign-in. */
  onSessionEnded: (() => void) | null = null;
  /**
   * The Live / Test switch, sent with every request as Latchkey-Environment: switched to Test, the
   * session sees and changes test objects only (the server enforces it; live ones answer 404).
   */
  environment: Environment = "live";

  constructor(
    private readonly base = "",
    private readonly fetchImpl: typeof fetch = (...args) => fetch(...args),
  ) {}

  async call<T>(name: Endpoint, opts: CallOptions = {}): Promise<T> {
    const [method, template] = ENDPOINTS[name];
    let path: string = template;
    for (const [k, v] of Object.entries(opts.params ?? {}))
      path = path.replace(`{${k}}`, encodeURIComponent(v));
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {}))
      if (v !== undefined && v !== "") search.set(k, String(v));
    const url = `${this.base}${path}${search.size > 0 ? `?${search}` : ""}`;
    const headers: Record<string, string> = {
      accept: "application/json",
      "latchkey-environment": this.environment,
    };
    if (method !== "GET" && this.csrf) headers["x-csrf-token"] = this.csrf;
    if (opts.totp) headers["x-totp-code"] = opts.totp.trim();
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body, credentials: "same-origin" });
    } catch {
      throw new ApiError(
        0,
        "NETWORK",
        "The server could not be reached. Check your connection and try again.",
      );
    }
    const text = await res.text();
    let parsed: { success?: boolean; data?: T; error?: Record<string, unknown> } = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new ApiError(res.status, "INTERNAL_ERROR", "The server sent an answer the console cannot read.");
    }
    if (res.ok && parsed.success) return parsed.data as T;
    const e = parsed.error ?? {};
    const err = new ApiError(
      res.status,
      // The server answers with codes of its catalog only (src/core/errors.ts).
      typeof e.code === "string" ? (e.code as ErrorCode) : "INTERNAL_ERROR",
      typeof e.message === "string" ? e.message : `HTTP ${res.status}`,
      typeof e.field === "string" ? e.field : undefined,
      (e.details as Record<string, unknown> | undefined) ?? {},
      typeof e.request_id === "string" ? e.request_id : undefined,
    );
    if (err.code === "SESSION_EXPIRED" || (err.code === "UNAUTHORIZED" && name !== "login"))
      this.onSessionEnded?.();
    throw err;
  }

  // Sign-in and the signed-in person.
  login(body: { email: string; password: string; totp_code?: string }) {
    return this.call<LoginResult>("login", { body });
  }
  logout() {
    return this.call<unknown>("logout", { body: {} });
  }
  me() {
    return this.call<Me>("me");
  }
  /** Ends this session and opens one in another company of the person's; its CSRF token is kept. */
  async switchCompany(company_id: string) {
    const out = await this.call<{ csrf_token: string; company: { id: string; name: string } }>(
      "switchCompany",
      {
        body: { company_id },
      },
    );
    this.csrf = out.csrf_token;
    return out;
  }
  /** Takes a company's offer to this login with its link's token; the answer names the company. */
  acceptMembership(token: string) {
    return this.call<{ company: { id: string; name: string; slug: string }; role: string }>(
      "acceptMembership",
      { body: { token } },
    );
  }
  changePassword(current_password: string, new_password: string) {
    return this.call<{ csrf_token: string }>("changePassword", { body: { current_password, new_password } });
  }
  /** The pending secret, the same on every call until confirmed; `restart` asks for a new one. */
  totpSetup(restart = false) {
    return this.call<{ secret: string; otpauth_url: string; qr_svg: string }>("totpSetup", {
      body: restart ? { restart: true } : {},
    });
  }
  forgotPassword(email: string) {
    return this.call<{ message: string }>("forgotPassword", { body: { email } });
  }
  resetPassword(token: string, new_password: string) {
    return this.call<{ email: string }>("resetPassword", { body: { token, new_password } });
  }
  regenerateRecoveryCodes(code: string) {
    return this.call<{ recovery_codes: string[] }>("regenerateRecoveryCodes", { body: {}, totp: code });
  }
  totpConfirm(code: string) {
    return this.call<{ recovery_codes: string[]; csrf_token: string }>("totpConfirm", { body: { code } });
  }
  catalog() {
    return this.call<CatalogDoc>("catalog");
  }

  // People.
  listUsers() {
    return this.call<{ users: UserView[] }>("listUsers");
  }
  /** `merchantAccountId` limits the person to one merchant account; null: the whole company. */
  inviteUser(email: string, role: Role, merchantAccountId: string | null = null) {
    return this.call<Invitation & { role: string }>("inviteUser", {
      body: { email, role, merchant_account_id: merchantAccountId },
    });
  }
  reinviteUser(id: string, code: string) {
    return this.call<Invitation>("reinviteUser", { params: { id }, body: {}, totp: code });
  }
  resetUserTotp(id: string, code: string) {
    return this.call<{ id: string; totp_enrolled: boolean }>("resetUserTotp", {
      params: { id },
      body: {},
      totp: code,
    });
  }
  updateUser(
    id: string,
    body: { role?: Role; status?: "active" | "disabled"; merchant_account_id?: string | null },
  ) {
    return this.call<UserView>("updateUser", { params: { id }, body });
  }

  // API users (credentials).
  /** Switched to Test, the server lists test API users only, whatever is asked. */
  async listCredentials(
    filters: { environment?: Environment; merchant_account_id?: string } = {},
  ): Promise<CredentialView[]> {
    return this.all<CredentialView, "credentials">("listCredentials", "credentials", filters);
  }
  getCredential(id: string) {
    return this.call<CredentialView>("getCredential", { params: { id } });
  }
  createCredential(
    body: {
      name: string;
      /** Fixed for the API user's life; its keys are of the same environment. */
      environment: Environment;
      /** Fixed too: the merchant account it acts within; absent: company-level. */
      merchant_account_id?: string;
      description?: string;
      /** Where its key notices also go; not a sign-in. */
      email?: string;
      /** `ws_…@Company.…` (the default) or `ws_…@Scope.Company_…`; fixed for good. */
      username_format?: "web_service" | "legal_entity_management";
      roles?: string[];
      permissions?: string[];
      allowed_ips?: string[];
      rate_limits?: RateLimit[];
    },
    totp?: string,
  ) {
    return this.call<CredentialView>("createCredential", { body, ...(totp ? { totp } : {}) });
  }
  updateCredential(
    id: string,
    body: {
      name?: string;
      description?: string;
      /** null clears it. */
      email?: string | null;
      roles?: string[];
      permissions?: string[];
      allowed_ips?: string[];
      rate_limits?: RateLimit[];
      status?: "active" | "inactive";
    },
    totp?: string,
  ) {
    return this.call<CredentialView>("updateCredential", { params: { id }, body, ...(totp ? { totp } : {}) });
  }
  generatePassword(id: string, totp: string) {
    return this.call<{ username: string; password: string; created_at: string }>("generatePassword", {
      params: { id },
      body: {},
      totp,
    });
  }

  // Merchant accounts: company-wide, so the Live / Test switch does not change the list.
  listMerchantAccounts() {
    return this.all<MerchantAccountView, "merchant_accounts">(
      "listMerchantAccounts",
      "merchant_accounts",
      {},
    );
  }
  getMerchantAccount(id: string) {
    return this.call<MerchantAccountView>("getMerchantAccount", { params: { id } });
  }
  createMerchantAccount(body: { name: string; code: string }) {
    return this.call<MerchantAccountView>("createMerchantAccount", { body });
  }
  updateMerchantAccount(id: string, body: { name?: string; status?: "active" | "inactive" }) {
    return this.call<MerchantAccountView>("updateMerchantAccount", { params: { id }, body });
  }

  // Keys.
  listKeys(filters: { credential_id?: string; environment?: Environment; status?: string } = {}) {
    return this.all<KeyView, "keys">("listKeys", "keys", filters);
  }
  getKey(id: string) {
    return this.call<KeyView>("getKey", { params: { id } });
  }
  createKey(
    body: {
      name: string;
      environment: Environment;
      credential_id: string;
      description?: string;
      permissions?: string[];
      allowed_ips?: string[];
      expires_at?: string;
      with_secret?: boolean;
      rate_limits?: RateLimit[];
      remaining?: number;
      refill?: Refill;
      meta?: Record<string, unknown>;
      external_id?: string;
    },
    totp: string,
  ) {
    return this.call<CreatedKey>("createKey", { body, totp });
  }
  /**
   * Name, description, rate limits, credits, meta or external id (null clears the last four); a change
   * of allowed IPs would need a 2FA code.
   */
  updateKey(
    id: string,
    body: {
      name?: string;
      description?: string;
      rate_limits?: RateLimit[];
      remaining?: number | null;
      refill?: Refill | null;
      meta?: Record<string, unknown> | null;
      external_id?: string | null;
    },
  ) {
    return this.call<KeyView>("updateKey", { params: { id }, body });
  }
  revokeKey(id: string, totp: string) {
    return this.call<{ message: string; id: string; revoked_at: string }>("revokeKey", {
      params: { id },
      totp,
    });
  }
  rotateKey(id: string, grace_seconds: number, totp: string) {
    return this.call<RotatedKey>("rotateKey", { params: { id }, body: { grace_seconds }, totp });
  }
  changeExpiry(id: string, action: "reset" | "now", totp: string) {
    return this.call<KeyView>("changeExpiry", { params: { id }, body: { action }, totp });
  }
  keyUsage(id: string, days = 30) {
    return this.call<KeyUsage>("keyUsage", { params: { id }, query: { days } });
  }

  /** The company's requests per day over the keys of the environment the console is switched to. */
  companyUsage(days = 30) {
    return this.call<CompanyUsage>("companyUsage", { query: { days, environment: this.environment } });
  }

  // Leaked keys.
  leakPolicies() {
    return this.call<{ policies: LeakPolicyView[] }>("leakPolicies");
  }
  setLeakPolicy(environment: Environment, action: LeakPolicyView["action"], totp: string) {
    return this.call<LeakPolicyView>("setLeakPolicy", { body: { environment, action }, totp });
  }

  // Audit.
  listAudit(filters: { actor?: string; action?: string; since?: string; until?: string; cursor?: string }) {
    return this.call<{ events: AuditEvent[]; next_cursor: string | null }>("listAudit", {
      query: { ...filters, limit: 100 },
    });
  }

  /** Checks the company's hash chain: an edited or deleted event is found. */
  verifyAudit() {
    return this.call<{ valid: boolean; events_checked: number; first_broken_event_id: string | null }>(
      "verifyAudit",
    );
  }
  /** The trail as NDJSON (oldest first), with the same filters as the list, for a download. */
  async exportAudit(filters: { actor?: string; action?: string; since?: string; until?: string }) {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) search.set(k, v);
    const url = `${this.base}${ENDPOINTS.exportAudit[1]}${search.size > 0 ? `?${search}` : ""}`;
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        headers: { "latchkey-environment": this.environment },
        credentials: "same-origin",
      });
    } catch {
      throw new ApiError(
        0,
        "NETWORK",
        "The server could not be reached. Check your connection and try again.",
      );
    }
    if (res.ok) return res.blob();
    // A refusal is the usual JSON error: the JSON route's reading of it says what went wrong.
    const e = ((await res.json().catch(() => ({}))) as { error?: Record<string, unknown> }).error ?? {};
    throw new ApiError(
      res.status,
      typeof e.code === "string" ? (e.code as ErrorCode) : "INTERNAL_ERROR",
      typeof e.message === "string" ? e.message : `HTTP ${res.status}`,
    );
  }

  // Expiry policy.
  getExpiryPolicy() {
    return this.call<ExpiryPolicyDoc>("getExpiryPolicy");
  }
  updateExpiryPolicy(body: ExpiryPolicyPatch, totp: string) {
    return this.call<ExpiryPolicyDoc>("updateExpiryPolicy", { body, totp });
  }
  // Webhooks.
  listWebhooks(filters: { environment?: Environment } = {}) {
    return this.all<WebhookView, "webhooks">("listWebhooks", "webhooks", filters);
  }
  createWebhook(body: { url: string; events?: string[]; description?: string }, totp: string) {
    return this.call<WebhookWithSecret>("createWebhook", { body, totp });
  }
  /** A new URL needs a 2FA code; events, description and status do not. */
  updateWebhook(
    id: string,
    body: { url?: string; events?: string[] | null; description?: string; status?: "enabled" | "disabled" },
    totp?: string,
  ) {
    return this.call<WebhookView>("updateWebhook", { params: { id }, body, ...(totp ? { totp } : {}) });
  }
  deleteWebhook(id: string) {
    return this.call<WebhookView>("deleteWebhook", { params: { id } });
  }
  rotateWebhookSecret(id: string, totp: string) {
    return this.call<WebhookWithSecret>("rotateWebhookSecret", { params: { id }, body: {}, totp });
  }
  /** The newest hundred: enough to see what is failing and retry it. */
  listWebhookDeliveries(id: string) {
    return this.call<{ deliveries: WebhookDeliveryView[]; next_cursor: string | null }>(
      "listWebhookDeliveries",
      {
        params: { id },
        query: { limit: 100 },
      },
    );
  }
  retryWebhookDelivery(id: string, deliveryId: string) {
    return this.call<WebhookDeliveryView>("retryWebhookDelivery", {
      params: { id, delivery_id: deliveryId },
      body: {},
    });
  }
  sendWebhookTest(id: string) {
    return this.call<{ event_id: string; delivery_id: string }>("sendWebhookTest", {
      params: { id },
      body: {},
    });
  }

  /** Follows next_cursor to the end: companies have tens or hundreds of keys, not millions. */
  private async all<T, K extends string>(name: Endpoint, field: K, query: Query): Promise<T[]> {
    const out: T[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 50; page++) {
      const data = await this.call<Record<K, T[]> & { next_cursor: string | null }>(name, {
        query: { ...query, limit: 100, ...(cursor ? { cursor } : {}) },
      });
      out.push(...data[field]);
      if (!data.next_cursor) break;
      cursor = data.next_cursor;
    }
    return out;
  }
}

export const api = new Client();
