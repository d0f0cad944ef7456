import { EVERY_ROLE, KEY_WRITER_ROLES, MANAGER_ROLES, type Role } from "../roles.ts";

/** A requirement on a key caller: all of `all`, or any one of `any`. */
export type Requirement = { all: readonly string[] } | { any: readonly string[] };

/**
 * Who may take an action, and what a person must show for it. Every route takes its access from one
 * entry of POLICY, and the services that do the work take the step-up rule from the same entry, so the
 * rule holds for every way in (HTTP, CLI, an SDK).
 */
export interface Policy {
  /** The route that does it, as registered: method and path. */
  route: `${"GET" | "POST" | "PATCH" | "DELETE" | "ALL"} /${string}`;
  /**
   * `public`: anyone; `platform`: the operator's admin token; `session`: a signed-in person only;
   * `caller`: a key, a Basic auth pair or (where `roles` say so) a session, of the company itself;
   * `verifier`: like `caller`, and a platform verify key too; `gateway`: a verifier's key in the
   * `Latchkey-Verify-Key` header, since the request's own credentials are its client's (forward auth).
   */
  caller: "public" | "platform" | "session" | "caller" | "verifier" | "gateway";
  /** For key and Basic auth callers. */
  perms?: Requirement;
  /** Roles whose sessions may call; none means keys only (a session is never an API credential). */
  roles?: readonly Role[];
  /** A person who has not finished a first-login password change may still call it. */
  allowPending?: boolean;
  /** A key or credential write: a person must have enrolled 2FA first. */
  write?: boolean;
  /**
   * A sensitive action: a person must send a fresh code with it (keys and passwords are not asked; they
   * are the second factor of an integration). A function decides from the action's input.
   */
  stepUp?: true | ((input: StepUpInput) => boolean);
  /**
   * Answers with a stream that stays open (server-sent events). The security suite's one-shot calls
   * cannot wait for its success; its refusals are tested beside the route (verify-changes.test.ts).
   */
  stream?: true;
}

/** What a step-up rule may look at: the action's input (a request body). */
export type StepUpInput = Readonly<Record<string, unknown>> | undefined;

const addsIps = (input: StepUpInput) => Array.isArray(input?.allowed_ips) && input.allowed_ips.length > 0;
const changesIps = (input: StepUpInput) => input?.allowed_ips !== undefined;

const KEYS_READ = { caller: "caller", perms: { all: ["keys:manage"] }, roles: EVERY_ROLE } as const;
const KEYS_WRITE = {
  caller: "caller",
  perms: { all: ["keys:manage"] },
  roles: KEY_WRITER_ROLES,
  write: true,
} as const;
const CREDENTIALS_READ = {
  caller: "caller",
  perms: { any: ["credentials:manage", "keys:manage"] },
  roles: EVERY_ROLE,
} as const;
const CREDENTIALS_WRITE = {
  caller: "caller",
  perms: { all: ["credentials:manage"] },
  roles: MANAGER_ROLES,
  write: true,
} as const;
const WEBHOOKS_READ = {
  caller: "caller",
  perms: { all: ["webhooks:manage"] },
  roles: MANAGER_ROLES,
} as const;
const WEBHOOKS_WRITE = { ...WEBHOOKS_READ, write: true } as const;
/** Pointing an endpoint somewhere else sends the company's events there: a credential-like write. */
const changesUrl = (input: StepUpInput) => input?.url !== undefined;
const AUDIT_READ = { caller: "caller", perms: { all: ["audit:read"] }, roles: MANAGER_ROLES } as const;
const OWN_SESSION = { caller: "session", roles: EVERY_ROLE, allowPending: true } as const;
const PEOPLE = { caller: "session", roles: MANAGER_ROLES } as const;

/** Every action Latchkey's API offers, with its access. The security suite walks this table. */
export const POLICY = {
  "health.get": { route: "GET /healthz", caller: "public" },
  "ready.get": { route: "GET /readyz", caller: "public" },
  "openapi.get": { route: "GET /openapi.json", caller: "public" },
  "catalog.get": { route: "GET /v1/catalog", caller: "public" },

  "companies.create": { route: "POST /v1/admin/companies", caller: "platform" },
  "verify_keys.create": { route: "POST /v1/admin/verify-keys", caller: "platform" },
  "audit.verify_all": { route: "GET /v1/admin/audit/verify", caller: "platform" },
  "metrics.get": { route: "GET /metrics", caller: "platform" },

  "credentials.create": { route: "POST /v1/credentials", ...CREDENTIALS_WRITE, stepUp: addsIps },
  "credentials.list": { route: "GET /v1/credentials", ...CREDENTIALS_READ },
  "credentials.get": { route: "GET /v1/credentials/:id", ...CREDENTIALS_READ },
  "credentials.update": { route: "PATCH /v1/credentials/:id", ...CREDENTIALS_WRITE, stepUp: changesIps },
  "credentials.password": { route: "POST /v1/credentials/:id/password", ...CREDENTIALS_WRITE, stepUp: true },

  // Merchant accounts: set up by the company's managers, read by everyone who may see API users.
  "merchant_accounts.create": { route: "POST /v1/merchant-accounts", ...CREDENTIALS_WRITE },
  "merchant_accounts.list": { route: "GET /v1/merchant-accounts", ...CREDENTIALS_READ },
  "merchant_accounts.get": { route: "GET /v1/merchant-accounts/:id", ...CREDENTIALS_READ },
  "merchant_accounts.update": { route: "PATCH /v1/merchant-accounts/:id", ...CREDENTIALS_WRITE },

  "keys.create": { route: "POST /v1/keys", ...KEYS_WRITE, stepUp: true },
  "keys.list": { route: "GET /v1/keys", ...KEYS_READ },
  "keys.get": { route: "GET /v1/keys/:id", ...KEYS_READ },
  "keys.usage": { route: "GET /v1/keys/:id/usage", ...KEYS_READ },
  "usage.company": { route: "GET /v1/usage", ...KEYS_READ },
  "keys.update": { route: "PATCH /v1/keys/:id", ...KEYS_WRITE, stepUp: changesIps },
  "keys.revoke": { route: "DELETE /v1/keys/:id", ...KEYS_WRITE, stepUp: true },
  "keys.rotate": { route: "POST /v1/keys/:id/rotate", ...KEYS_WRITE, stepUp: true },
  "keys.expiry": { route: "POST /v1/keys/:id/expiry", ...KEYS_WRITE, stepUp: true },

  "keys.verify": { route: "POST /v1/verify", caller: "verifier", perms: { all: ["keys:verify"] } },
  "keys.changes": {
    route: "GET /v1/verify/changes",
    caller: "verifier",
    perms: { all: ["keys:verify"] },
    stream: true,
  },
  "keys.authorize": { route: "ALL /v1/authorize", caller: "gateway", perms: { all: ["keys:verify"] } },
  "keys.authorize_path": { route: "ALL /v1/authorize/*", caller: "gateway", perms: { all: ["keys:verify"] } },

  "auth.login": { route: "POST /v1/auth/login", caller: "public" },
  "auth.logout": { route: "POST /v1/auth/logout", ...OWN_SESSION },
  "auth.password": { route: "POST /v1/auth/password", ...OWN_SESSION },
  "auth.totp_setup": { route: "POST /v1/auth/totp/setup", ...OWN_SESSION },
  "auth.totp_confirm": { route: "POST /v1/auth/totp/confirm", ...OWN_SESSION },
  "auth.switch_company": { route: "POST /v1/auth/switch-company", ...OWN_SESSION },
  // A session of the invited login and the link's token: the pair proves both the login and the mail.
  // Not with a temporary password still to change: that password was shown to someone else.
  "auth.accept_membership": {
    route: "POST /v1/auth/accept-membership",
    caller: "session",
    roles: EVERY_ROLE,
  },
  "me.get": { route: "GET /v1/me", ...OWN_SESSION },
  // Getting back in: public, enumeration-safe and rate-limited; a link's token is the proof.
  "auth.forgot_password": { route: "POST /v1/auth/forgot-password", caller: "public" },
  "auth.reset_password": { route: "POST /v1/auth/reset-password", caller: "public" },
  "auth.recovery_codes": {
    route: "POST /v1/auth/recovery-codes",
    caller: "session",
    roles: EVERY_ROLE,
    stepUp: true,
  },

  "users.list": { route: "GET /v1/users", ...PEOPLE },
  "users.invite": { route: "POST /v1/users", ...PEOPLE },
  "users.update": { route: "PATCH /v1/users/:id", ...PEOPLE },
  "users.reinvite": { route: "POST /v1/users/:id/reinvite", ...PEOPLE, stepUp: true },
  // Resetting someone's second factor hands their account to whoever knows the password: owners only.
  "users.reset_totp": {
    route: "POST /v1/users/:id/reset-totp",
    caller: "session",
    roles: ["owner"],
    stepUp: true,
  },

  "leaks.github": { route: "POST /v1/leaks/github", caller: "public" },
  "leaks.report": { route: "POST /v1/leaks", caller: "public" },
  "leak_policy.get": { route: "GET /v1/policies/leaks", ...KEYS_READ },
  "leak_policy.update": {
    route: "PATCH /v1/policies/leaks",
    caller: "session",
    roles: ["owner"],
    write: true,
    stepUp: true,
  },

  "audit.list": { route: "GET /v1/audit", ...AUDIT_READ },
  "audit.export": { route: "GET /v1/audit/export", ...AUDIT_READ },
  "audit.verify": { route: "GET /v1/audit/verify", ...AUDIT_READ },

  // Expiry policies: read by anyone who may see keys; changed by owners only, with a fresh code.
  "policies.expiry_get": { route: "GET /v1/policies/expiry", ...KEYS_READ },
  "policies.expiry_update": {
    route: "PATCH /v1/policies/expiry",
    caller: "session",
    roles: ["owner"],
    write: true,
    stepUp: true,
  },
  "webhooks.create": { route: "POST /v1/webhooks", ...WEBHOOKS_WRITE, stepUp: true },
  "webhooks.list": { route: "GET /v1/webhooks", ...WEBHOOKS_READ },
  "webhooks.get": { route: "GET /v1/webhooks/:id", ...WEBHOOKS_READ },
  "webhooks.update": { route: "PATCH /v1/webhooks/:id", ...WEBHOOKS_WRITE, stepUp: changesUrl },
  "webhooks.delete": { route: "DELETE /v1/webhooks/:id", ...WEBHOOKS_WRITE },
  "webhooks.rotate_secret": { route: "POST /v1/webhooks/:id/rotate-secret", ...WEBHOOKS_WRITE, stepUp: true },
  "webhooks.deliveries": { route: "GET /v1/webhooks/:id/deliveries", ...WEBHOOKS_READ },
  "webhooks.retry": {
    route: "POST /v1/webhooks/:id/deliveries/:delivery_id/retry",
    ...WEBHOOKS_WRITE,
  },
  "webhooks.test": { route: "POST /v1/webhooks/:id/test", ...WEBHOOKS_WRITE },
} as const satisfies Record<string, Policy>;

export type Action = keyof typeof POLICY;

/** The policy of an action, typed as the general shape. */
export function policyOf(action: Action): Policy {
  return POLICY[action];
}

/** Whether a person taking `action` with `input` must send a fresh two-factor code. */
export function needsStepUp(action: Action, input: StepUpInput): boolean {
  const rule = policyOf(action).stepUp;
  return rule === true || rule?.(input) === true;
}

/** Whether people must have enrolled two-factor authentication before taking `action`. */
export function needsEnrolment(action: Action): boolean {
  return policyOf(action).write === true;
}
