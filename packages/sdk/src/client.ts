import type {
  AcceptedMembership,
  AuditEvent,
  AuditQuery,
  AuditVerification,
  Catalog,
  CompanyUsage,
  CreateCredentialBody,
  CreatedCompany,
  CreatedKey,
  CreatedVerifyKey,
  CreateKeyBody,
  Credential,
  CredentialPassword,
  Environment,
  EnvironmentExpiryPolicy,
  ExpiryPolicy,
  FoundToken,
  Health,
  InvitedUser,
  Key,
  KeyUsage,
  LeakPolicy,
  ListKeysQuery,
  Me,
  MerchantAccount,
  PlatformAuditVerification,
  RateLimit,
  RevokedKey,
  Role,
  RotatedKey,
  Session,
  SwitchedCompany,
  TokenFeedback,
  UpdateCredentialBody,
  UpdateKeyBody,
  User,
  VerifyBody,
  VerifyResult,
  Webhook,
  WebhookDelivery,
  WebhookWithSecret,
} from "./api-types.ts";

/**
 * A typed client for Latchkey's whole v1 API. `OPERATIONS` lists every operation with its method, its
 * path as /openapi.json writes it, who may call it and the fields it takes; the client's test holds
 * that table to the server's document both ways, so an operation added to the server without a client
 * method (or a field the client does not know) fails the build.
 */

/** Who calls an operation: a key, the platform's admin token, a dashboard session, a gateway, anyone. */
export type Caller = "key" | "admin" | "session" | "gateway" | "public";

export interface Operation {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" | "ALL";
  path: string;
  caller: Caller;
  query?: readonly string[];
  body?: readonly string[];
}

const KEY_BODY = [
  "name",
  "environment",
  "description",
  "credential_id",
  "permissions",
  "preset",
  "allowed_ips",
  "rate_limits",
  "expires_at",
  "with_secret",
  "remaining",
  "refill",
  "meta",
  "external_id",
  "totp_code",
] as const;
const AUDIT_FILTERS = ["actor", "action", "target", "since", "until"] as const;

/** Every operation, by the client method that calls it. */
export const OPERATIONS = {
  health: { method: "GET", path: "/healthz", caller: "public" },
  ready: { method: "GET", path: "/readyz", caller: "public" },
  metrics: { method: "GET", path: "/metrics", caller: "admin" },
  catalog: { method: "GET", path: "/v1/catalog", caller: "public" },
  "admin.createCompany": {
    method: "POST",
    path: "/v1/admin/companies",
    caller: "admin",
    body: ["name", "owner_email"],
  },
  "admin.createVerifyKey": {
    method: "POST",
    path: "/v1/admin/verify-keys",
    caller: "admin",
    body: ["name", "rate_limits"],
  },
  "admin.verifyAudit": { method: "GET", path: "/v1/admin/audit/verify", caller: "admin" },
  "credentials.create": {
    method: "POST",
    path: "/v1/credentials",
    caller: "key",
    body: [
      "name",
      "environment",
      "merchant_account_id",
      "description",
      "email",
      "username_format",
      "roles",
      "permissions",
      "allowed_ips",
      "rate_limits",
      "totp_code",
    ],
  },
  "credentials.list": {
    method: "GET",
    path: "/v1/credentials",
    caller: "key",
    query: ["environment", "merchant_account_id", "limit", "cursor"],
  },
  "credentials.get": { method: "GET", path: "/v1/credentials/{id}", caller: "key" },
  "credentials.update": {
    method: "PATCH",
    path: "/v1/credentials/{id}",
    caller: "key",
    body: [
      "name",
      "description",
      "email",
      "roles",
      "permissions",
      "allowed_ips",
      "rate_limits",
      "status",
      "totp_code",
    ],
  },
  "credentials.password": { method: "POST", path: "/v1/credentials/{id}/password", caller: "key" },
  "merchantAccounts.create": {
    method: "POST",
    path: "/v1/merchant-accounts",
    caller: "key",
    body: ["name", "code"],
  },
  "merchantAccounts.list": {
    method: "GET",
    path: "/v1/merchant-accounts",
    caller: "key",
    query: ["status", "limit", "cursor"],
  },
  "merchantAccounts.get": { method: "GET", path: "/v1/merchant-accounts/{id}", caller: "key" },
  "merchantAccounts.update": {
    method: "PATCH",
    path: "/v1/merchant-accounts/{id}",
    caller: "key",
    body: ["name", "status"],
  },
  "keys.create": { method: "POST", path: "/v1/keys", caller: "key", body: KEY_BODY },
  "keys.list": {
    method: "GET",
    path: "/v1/keys",
    caller: "key",
    query: [
      "credential_id",
      "environment",
      "status",
      "external_id",
      "merchant_account_id",
      "limit",
      "cursor",
    ],
  },
  "keys.get": { method: "GET", path: "/v1/keys/{id}", caller: "key" },
  "keys.update": {
    method: "PATCH",
    path: "/v1/keys/{id}",
    caller: "key",
    body: [
      "name",
      "description",
      "allowed_ips",
      "rate_limits",
      "permissions",
      "remaining",
      "refill",
      "meta",
      "external_id",
      "totp_code",
    ],
  },
  "keys.revoke": { method: "DELETE", path: "/v1/keys/{id}", caller: "key" },
  "keys.usage": { method: "GET", path: "/v1/keys/{id}/usage", caller: "key", query: ["days"] },
  "usage.company": { method: "GET", path: "/v1/usage", caller: "key", query: ["days", "environment"] },
  "keys.rotate": {
    method: "POST",
    path: "/v1/keys/{id}/rotate",
    caller: "key",
    body: ["grace_seconds", "expires_at", "totp_code"],
  },
  "keys.expiry": {
    method: "POST",
    path: "/v1/keys/{id}/expiry",
    caller: "key",
    body: ["action", "totp_code"],
  },
  verify: {
    method: "POST",
    path: "/v1/verify",
    caller: "key",
    body: ["key", "secret", "username", "password", "permissions", "ip", "environment", "cost"],
  },
  authorize: { method: "ALL", path: "/v1/authorize", caller: "gateway" },
  verifyChanges: { method: "GET", path: "/v1/verify/changes", caller: "key" },
  "auth.login": {
    method: "POST",
    path: "/v1/auth/login",
    caller: "public",
    body: ["email", "password", "totp_code"],
  },
  "auth.logout": { method: "POST", path: "/v1/auth/logout", caller: "session" },
  "auth.switchCompany": {
    method: "POST",
    path: "/v1/auth/switch-company",
    caller: "session",
    body: ["company_id"],
  },
  "auth.acceptMembership": {
    method: "POST",
    path: "/v1/auth/accept-membership",
    caller: "session",
    body: ["token"],
  },
  "auth.changePassword": {
    method: "POST",
    path: "/v1/auth/password",
    caller: "session",
    body: ["current_password", "new_password"],
  },
  "auth.totpSetup": { method: "POST", path: "/v1/auth/totp/setup", caller: "session", body: ["restart"] },
  "auth.forgotPassword": {
    method: "POST",
    path: "/v1/auth/forgot-password",
    caller: "public",
    body: ["email"],
  },
  "auth.resetPassword": {
    method: "POST",
    path: "/v1/auth/reset-password",
    caller: "public",
    body: ["token", "new_password"],
  },
  "auth.recoveryCodes": {
    method: "POST",
    path: "/v1/auth/recovery-codes",
    caller: "session",
    body: ["totp_code"],
  },
  "auth.totpConfirm": { method: "POST", path: "/v1/auth/totp/confirm", caller: "session", body: ["code"] },
  me: { method: "GET", path: "/v1/me", caller: "session" },
  "users.list": { method: "GET", path: "/v1/users", caller: "session" },
  "users.invite": {
    method: "POST",
    path: "/v1/users",
    caller: "session",
    body: ["email", "role", "merchant_account_id"],
  },
  "users.update": {
    method: "PATCH",
    path: "/v1/users/{id}",
    caller: "session",
    body: ["role", "status", "merchant_account_id"],
  },
  "users.reinvite": {
    method: "POST",
    path: "/v1/users/{id}/reinvite",
    caller: "session",
    body: ["totp_code"],
  },
  "users.resetTotp": {
    method: "POST",
    path: "/v1/users/{id}/reset-totp",
    caller: "session",
    body: ["totp_code"],
  },
  "leaks.report": { method: "POST", path: "/v1/leaks", caller: "public", body: ["token", "url", "source"] },
  "leaks.github": { method: "POST", path: "/v1/leaks/github", caller: "public" },
  "leakPolicy.get": { method: "GET", path: "/v1/policies/leaks", caller: "key" },
  "leakPolicy.update": {
    method: "PATCH",
    path: "/v1/policies/leaks",
    caller: "session",
    body: ["environment", "action", "totp_code"],
  },
  "webhooks.create": {
    method: "POST",
    path: "/v1/webhooks",
    caller: "key",
    body: ["url", "events", "description", "totp_code"],
  },
  "webhooks.list": {
    method: "GET",
    path: "/v1/webhooks",
    caller: "key",
    query: ["environment", "limit", "cursor"],
  },
  "webhooks.get": { method: "GET", path: "/v1/webhooks/{id}", caller: "key" },
  "webhooks.update": {
    method: "PATCH",
    path: "/v1/webhooks/{id}",
    caller: "key",
    body: ["url", "events", "description", "status", "totp_code"],
  },
  "webhooks.delete": { method: "DELETE", path: "/v1/webhooks/{id}", caller: "key" },
  "webhooks.rotateSecret": {
    method: "POST",
    path: "/v1/webhooks/{id}/rotate-secret",
    caller: "key",
    body: ["totp_code"],
  },
  "webhooks.deliveries": {
    method: "GET",
    path: "/v1/webhooks/{id}/deliveries",
    caller: "key",
    query: ["status", "limit", "cursor"],
  },
  "webhooks.retry": {
    method: "POST",
    path: "/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
    caller: "key",
  },
  "webhooks.test": { method: "POST", path: "/v1/webhooks/{id}/test", caller: "key" },
  "expiryPolicy.get": { method: "GET", path: "/v1/policies/expiry", caller: "key" },
  "expiryPolicy.update": {
    method: "PATCH",
    path: "/v1/policies/expiry",
    caller: "session",
    body: ["live", "test", "totp_code"],
  },
  "audit.list": {
    method: "GET",
    path: "/v1/audit",
    caller: "key",
    query: [...AUDIT_FILTERS, "merchant_account_id", "limit", "cursor"],
  },
  "audit.verify": { method: "GET", path: "/v1/audit/verify", caller: "key" },
  "audit.export": { method: "GET", path: "/v1/audit/export", caller: "key", query: AUDIT_FILTERS },
} as const satisfies Record<string, Operation>;

export type OperationName = keyof typeof OPERATIONS;

/** A refusal from Latchkey: its error envelope, with the HTTP status. */
export class LatchkeyApiError extends Error {
  override name = "LatchkeyApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Latchkey's id for the request, to find it in its logs. */
    readonly requestId: string | null,
    readonly details: Record<string, unknown> | undefined,
    readonly field: string | undefined,
    /** The answer's headers (Retry-After, RateLimit-*). */
    readonly headers: Headers,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  /** Latchkey's base URL. */
  url: string;
  /** An API key (a management key, or a verify key for `verify`); with `secret` for a key + secret pair. */
  key?: string;
  secret?: string;
  /** The platform operator's token, for `/v1/admin/*` and `/metrics`. */
  adminToken?: string;
  /** Default 10 s. */
  timeoutMs?: number;
}

/** Per call: a step-up code (for actions that need one), or headers of your own. */
export interface CallOptions {
  totpCode?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

interface Call {
  params?: Record<string, string>;
  query?: object | undefined;
  body?: unknown;
  options?: CallOptions | undefined;
  /** The raw Response (a stream, a text document) rather than the envelope's data. */
  raw?: boolean;
  method?: string;
}

export interface ForwardAuthRequest {
  /** The verify key of the gateway (defaults to the client's key). */
  verifyKey?: string;
  /** The client's request, as a gateway would describe it. */
  method: string;
  uri: string;
  /** The client's own headers (X-API-Key, Authorization, X-Forwarded-For, ...). */
  headers?: Record<string, string>;
}

export interface ForwardAuthAnswer {
  allowed: boolean;
  status: number;
  keyId: string | null;
  credentialId: string | null;
  companyId: string | null;
  environment: Environment | null;
  /** The refusal's envelope, when refused. */
  error: { code: string; message: string } | null;
  headers: Headers;
}

const orNull = (value: string | null) => (value === null || value === "" ? null : value);

export class LatchkeyClient {
  private readonly base: string;
  private session: { cookie: string; csrf: string } | null = null;

  constructor(private readonly opts: ClientOptions) {
    this.base = opts.url.replace(/\/+$/, "");
  }

  /** Calls one operation of the table; the typed methods below are this with their shapes. */
  async call<T>(name: OperationName, call: Call = {}): Promise<T> {
    const op: Operation = OPERATIONS[name];
    const path = op.path.replace(/\{(\w+)\}/g, (_, p: string) => {
      const value = call.params?.[p];
      if (value === undefined || value === "") throw new TypeError(`${name}: ${p} is required`);
      return encodeURIComponent(value);
    });
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(call.query ?? {}))
      if (v !== undefined && v !== null) search.set(k, String(v));
    const qs = search.size > 0 ? `?${search}` : "";
    const method = call.method ?? (op.method === "ALL" ? "GET" : op.method);
    const headers: Record<string, string> = { ...this.authHeaders(op.caller, method) };
    if (call.options?.totpCode !== undefined) headers["x-totp-code"] = call.options.totpCode;
    Object.assign(headers, call.options?.headers);
    let body: string | undefined;
    if (call.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(call.body);
    }
    const res = await fetch(`${this.base}${path}${qs}`, {
      method,
      headers,
      body,
      signal: call.options?.signal ?? AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
    });
    // A session that is replaced (a password change) comes back with its new cookie.
    const renewed = res.headers.getSetCookie();
    if (this.session !== null && renewed.length > 0) this.session.cookie = cookieHeader(renewed);
    if (call.raw && res.ok) return res as T;
    const text = await res.text();
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok) throw toError(res, json, text);
    const envelope = json as { success?: boolean; data?: unknown } | undefined;
    return (envelope && envelope.success === true && "data" in envelope ? envelope.data : json) as T;
  }

  private authHeaders(caller: Caller, method: string): Record<string, string> {
    const h: Record<string, string> = {};
    if (caller === "public") return h;
    if (caller === "admin") {
      if (this.opts.adminToken) h.authorization = `Bearer ${this.opts.adminToken}`;
      return h;
    }
    if (caller === "key" && this.opts.key) {
      h["x-api-key"] = this.opts.key;
      if (this.opts.secret) h["x-api-secret"] = this.opts.secret;
      return h;
    }
    if (this.session !== null) {
      // A dashboard session: its cookie, and its CSRF token on anything that changes something.
      h.cookie = this.session.cookie;
      if (method !== "GET" && method !== "HEAD") h["x-csrf-token"] = this.session.csrf;
    }
    return h;
  }

  // --- public and operator ---------------------------------------------------------------------

  health = () => this.call<Health>("health");
  ready = () => this.call<{ status: "ready" }>("ready");
  /** Prometheus text. */
  metrics = async () => (await this.call<Response>("metrics", { raw: true })).text();
  catalog = () => this.call<Catalog>("catalog");

  readonly admin = {
    createCompany: (body: { name: string; owner_email: string }) =>
      this.call<CreatedCompany>("admin.createCompany", { body }),
    createVerifyKey: (body: { name: string; rate_limits?: RateLimit[] }) =>
      this.call<CreatedVerifyKey>("admin.createVerifyKey", { body }),
    verifyAudit: () => this.call<PlatformAuditVerification>("admin.verifyAudit"),
  };

  // --- keys and API users ----------------------------------------------------------------------

  readonly keys = {
    create: (body: CreateKeyBody, options?: CallOptions) =>
      this.call<CreatedKey>("keys.create", { body, options }),
    list: (query?: ListKeysQuery) =>
      this.call<{ keys: Key[]; next_cursor: string | null }>("keys.list", { query }),
    get: (id: string) => this.call<Key>("keys.get", { params: { id } }),
    update: (id: string, body: UpdateKeyBody, options?: CallOptions) =>
      this.call<Key>("keys.update", { params: { id }, body, options }),
    revoke: (id: string, options?: CallOptions) =>
      this.call<RevokedKey>("keys.revoke", { params: { id }, options }),
    rotate: (
      id: string,
      body: { grace_seconds?: number; expires_at?: string; totp_code?: string } = {},
      options?: CallOptions,
    ) => this.call<RotatedKey>("keys.rotate", { params: { id }, body, options }),
    /** For a rotated key in its overlap: `reset` its expiry to 24 h from now, or expire it `now`. */
    expiry: (id: string, action: "reset" | "now", options?: CallOptions) =>
      this.call<Key>("keys.expiry", { params: { id }, body: { action }, options }),
    usage: (id: string, query?: { days?: number }) =>
      this.call<KeyUsage>("keys.usage", { params: { id }, query }),
  };

  /** The company's requests per day, summed over the keys the caller may see. */
  readonly usage = {
    company: (query?: { days?: number; environment?: Environment }) =>
      this.call<CompanyUsage>("usage.company", { query }),
  };

  readonly credentials = {
    create: (body: CreateCredentialBody, options?: CallOptions) =>
      this.call<Credential>("credentials.create", { body, options }),
    list: (query?: {
      environment?: Environment;
      merchant_account_id?: string;
      limit?: number;
      cursor?: string;
    }) => this.call<{ credentials: Credential[]; next_cursor: string | null }>("credentials.list", { query }),
    get: (id: string) => this.call<Credential>("credentials.get", { params: { id } }),
    update: (id: string, body: UpdateCredentialBody, options?: CallOptions) =>
      this.call<Credential>("credentials.update", { params: { id }, body, options }),
    /** A new Basic auth password, shown once; the previous one stops working at once. */
    password: (id: string, options?: CallOptions) =>
      this.call<CredentialPassword>("credentials.password", { params: { id }, options }),
  };

  /** Merchant accounts: set up at company level; a merchant account's own key reads its own only. */
  readonly merchantAccounts = {
    create: (body: { name: string; code: string }) =>
      this.call<MerchantAccount>("merchantAccounts.create", { body }),
    list: (query?: { status?: "active" | "inactive"; limit?: number; cursor?: string }) =>
      this.call<{ merchant_accounts: MerchantAccount[]; next_cursor: string | null }>(
        "merchantAccounts.list",
        { query },
      ),
    get: (id: string) => this.call<MerchantAccount>("merchantAccounts.get", { params: { id } }),
    update: (id: string, body: { name?: string; status?: "active" | "inactive" }) =>
      this.call<MerchantAccount>("merchantAccounts.update", { params: { id }, body }),
  };

  // --- verification ----------------------------------------------------------------------------

  /** One question to Latchkey (the client's key must hold `keys:verify`); LatchkeyVerifier caches them. */
  verify = (body: VerifyBody) => this.call<VerifyResult>("verify", { body });

  /** The change stream as a raw server-sent-events Response (LatchkeyVerifier reads it for you). */
  verifyChanges = (options?: CallOptions) => this.call<Response>("verifyChanges", { raw: true, options });

  /** Asks `/v1/authorize` as a forward-auth gateway would (nginx's headers), and reads its answer. */
  authorize = async (request: ForwardAuthRequest): Promise<ForwardAuthAnswer> => {
    const verifyKey = request.verifyKey ?? this.opts.key ?? "";
    const res = await fetch(`${this.base}${OPERATIONS.authorize.path}`, {
      headers: {
        ...request.headers,
        "latchkey-verify-key": verifyKey,
        "x-original-method": request.method,
        "x-original-uri": request.uri,
      },
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
    });
    const text = await res.text();
    const error = res.ok
      ? null
      : ((JSON.parse(text) as { error: { code: string; message: string } }).error ?? null);
    return {
      allowed: res.ok,
      status: res.status,
      keyId: orNull(res.headers.get("latchkey-key-id")),
      credentialId: orNull(res.headers.get("latchkey-credential-id")),
      companyId: orNull(res.headers.get("latchkey-company-id")),
      environment: orNull(res.headers.get("latchkey-environment")) as Environment | null,
      error,
      headers: res.headers,
    };
  };

  // --- people (dashboard sessions) -------------------------------------------------------------

  readonly auth = {
    /** Signs in; later session calls (me, users, ...) carry the session's cookie and CSRF token. */
    login: async (body: { email: string; password: string; totp_code?: string }): Promise<Session> => {
      const res = await fetch(`${this.base}${OPERATIONS["auth.login"].path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
      const text = await res.text();
      const json = text === "" ? undefined : (JSON.parse(text) as { data: Session });
      if (!res.ok) throw toError(res, json, text);
      const session = (json as { data: Session }).data;
      this.session = { cookie: cookieHeader(res.headers.getSetCookie()), csrf: session.csrf_token };
      return session;
    },
    logout: async () => {
      const out = await this.call<{ message: string }>("auth.logout");
      this.session = null;
      return out;
    },
    /**
     * Acts in another company of the person's (one of `me().companies`): the session is replaced by
     * one in that company, with a new cookie (kept by call()) and a new CSRF token.
     */
    switchCompany: async (companyId: string) => {
      const out = await this.call<SwitchedCompany>("auth.switchCompany", { body: { company_id: companyId } });
      if (this.session !== null) this.session.csrf = out.csrf_token;
      return out;
    },
    /**
     * Joins a company that invited this existing login, with the token from its accept link; then
     * `switchCompany(out.company.id)` acts there.
     */
    acceptMembership: (token: string) =>
      this.call<AcceptedMembership>("auth.acceptMembership", { body: { token } }),
    changePassword: async (body: { current_password: string; new_password: string }) => {
      const out = await this.call<{ csrf_token: string }>("auth.changePassword", { body });
      // The session is replaced: call() kept its new cookie, and this is its new CSRF token.
      if (this.session !== null) this.session.csrf = out.csrf_token;
      return out;
    },
    /** The same pending secret until it is confirmed; `restart: true` starts enrolment again. */
    totpSetup: (body: { restart?: boolean } = {}) =>
      this.call<{ secret: string; otpauth_url: string; qr_svg: string }>("auth.totpSetup", { body }),
    /** Always the same 202: whether the email has an account is never told. */
    forgotPassword: (email: string) =>
      this.call<{ message: string }>("auth.forgotPassword", { body: { email } }),
    /** With the token from a reset or invitation link: single use. */
    resetPassword: (body: { token: string; new_password: string }) =>
      this.call<{ email: string }>("auth.resetPassword", { body }),
    /** New recovery codes, shown once; the old ones stop working. Needs a current code. */
    recoveryCodes: (options?: CallOptions) =>
      this.call<{ recovery_codes: string[] }>("auth.recoveryCodes", { body: {}, options }),
    totpConfirm: (code: string) =>
      this.call<{ recovery_codes: string[]; csrf_token: string }>("auth.totpConfirm", { body: { code } }),
  };

  me = () => this.call<Me>("me");

  readonly users = {
    list: () => this.call<{ users: User[] }>("users.list"),
    /** `merchant_account_id` limits the person to one merchant account; null or absent: the whole company. */
    invite: (body: { email: string; role: Role; merchant_account_id?: string | null }) =>
      this.call<InvitedUser>("users.invite", { body }),
    update: (
      id: string,
      body: { role?: Role; status?: "active" | "disabled"; merchant_account_id?: string | null },
    ) => this.call<User>("users.update", { params: { id }, body }),
    /** A new invitation for a person who has not signed in yet; the old one stops working. */
    reinvite: (id: string, options?: CallOptions) =>
      this.call<{
        id: string;
        email: string;
        invitation_sent: boolean;
        temporary_password?: string;
        accept_link?: string;
      }>("users.reinvite", { params: { id }, body: {}, options }),
    /** Owners only: the person enrols 2FA again at their next sign-in. */
    resetTotp: (id: string, options?: CallOptions) =>
      this.call<{ id: string; totp_enrolled: boolean }>("users.resetTotp", {
        params: { id },
        body: {},
        options,
      }),
  };

  // --- leaked keys -----------------------------------------------------------------------------

  readonly leaks = {
    /** Reports a key found in public: the answer is the same whatever the token was. */
    report: (body: { token: string; url?: string; source?: string }) =>
      this.call<{ message: string }>("leaks.report", { body }),
    /**
     * GitHub's secret scanning call, for testing a deployment: the signature must cover
     * `JSON.stringify(found)`, which is the body sent.
     */
    github: (found: FoundToken[], signature: { keyId: string; signature: string }) =>
      this.call<TokenFeedback[]>("leaks.github", {
        body: found,
        options: {
          headers: {
            "github-public-key-identifier": signature.keyId,
            "github-public-key-signature": signature.signature,
          },
        },
      }),
  };

  readonly leakPolicy = {
    get: () => this.call<{ policies: LeakPolicy[] }>("leakPolicy.get"),
    /** Owners only, with a current 2FA code. */
    update: (body: { environment?: Environment; action: LeakPolicy["action"] }, options?: CallOptions) =>
      this.call<LeakPolicy>("leakPolicy.update", { body, options }),
  };

  readonly webhooks = {
    /** The signing secret is in this answer only. */
    create: (body: { url: string; events?: string[]; description?: string }, options?: CallOptions) =>
      this.call<WebhookWithSecret>("webhooks.create", { body, options }),
    list: (query?: { environment?: Environment; limit?: number; cursor?: string }) =>
      this.call<{ webhooks: Webhook[]; next_cursor: string | null }>("webhooks.list", { query }),
    get: (id: string) => this.call<Webhook>("webhooks.get", { params: { id } }),
    /** `events: null` hears every type; `status: "enabled"` re-enables a disabled endpoint. */
    update: (
      id: string,
      body: { url?: string; events?: string[] | null; description?: string; status?: Webhook["status"] },
      options?: CallOptions,
    ) => this.call<Webhook>("webhooks.update", { params: { id }, body, options }),
    delete: (id: string, options?: CallOptions) =>
      this.call<Webhook>("webhooks.delete", { params: { id }, options }),
    /** A new secret, shown once; the old one keeps signing beside it for 24 h. */
    rotateSecret: (id: string, options?: CallOptions) =>
      this.call<WebhookWithSecret>("webhooks.rotateSecret", { params: { id }, body: {}, options }),
    deliveries: (
      id: string,
      query?: { status?: WebhookDelivery["status"]; limit?: number; cursor?: string },
    ) =>
      this.call<{ deliveries: WebhookDelivery[]; next_cursor: string | null }>("webhooks.deliveries", {
        params: { id },
        query,
      }),
    retry: (id: string, deliveryId: string) =>
      this.call<WebhookDelivery>("webhooks.retry", { params: { id, delivery_id: deliveryId }, body: {} }),
    /** A `webhook.test` event to this endpoint only. */
    test: (id: string) =>
      this.call<{ event_id: string; delivery_id: string }>("webhooks.test", { params: { id }, body: {} }),
  };

  readonly expiryPolicy = {
    get: () => this.call<ExpiryPolicy>("expiryPolicy.get"),
    /** Owners only, with a current 2FA code; only the environments and fields given change. */
    update: (
      body: { live?: Partial<EnvironmentExpiryPolicy>; test?: Partial<EnvironmentExpiryPolicy> },
      options?: CallOptions,
    ) => this.call<ExpiryPolicy>("expiryPolicy.update", { body, options }),
  };

  // --- audit -----------------------------------------------------------------------------------

  readonly audit = {
    list: (query?: AuditQuery) =>
      this.call<{ events: AuditEvent[]; next_cursor: string | null }>("audit.list", { query }),
    verify: () => this.call<AuditVerification>("audit.verify"),
    /** The whole trail, oldest first, one event a line. */
    export: async (
      query?: Omit<AuditQuery, "limit" | "cursor" | "merchant_account_id">,
    ): Promise<AuditEvent[]> => {
      const res = await this.call<Response>("audit.export", { query, raw: true });
      const text = await res.text();
      return text
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line) as AuditEvent);
    },
  };
}

/** `Set-Cookie` answers as one `Cookie` request header: names and values only. */
function cookieHeader(setCookies: string[]): string {
  return setCookies.map((c) => c.split(";", 1)[0] as string).join("; ");
}

function toError(res: Response, json: unknown, text: string): LatchkeyApiError {
  const error = (json as { error?: Record<string, unknown> } | undefined)?.error;
  if (error && typeof error.code === "string") {
    return new LatchkeyApiError(
      res.status,
      error.code,
      typeof error.message === "string" ? error.message : error.code,
      typeof error.request_id === "string" ? error.request_id : null,
      error.details as Record<string, unknown> | undefined,
      typeof error.field === "string" ? error.field : undefined,
      res.headers,
    );
  }
  return new LatchkeyApiError(
    res.status,
    "HTTP_ERROR",
    text.slice(0, 200) || res.statusText,
    null,
    undefined,
    undefined,
    res.headers,
  );
}
