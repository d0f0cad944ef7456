import { type Static, type TSchema, Type } from "typebox";
import { EXTERNAL_ID_PATTERN, MAX_CREDITS, MAX_META_KEYS } from "./credits.ts";
import { MAX_LIFETIME_DAYS, MIN_UNUSED_DAYS, UNUSED_NOTICE_DAYS } from "./expiry-policy.ts";
import { MAX_LIMIT, MAX_LIMITS, WINDOW_PATTERN } from "./rate-limit.ts";

/*
 * The public shapes of what Latchkey answers with, defined once as TypeBox schemas: the routes validate
 * and document their answers with them, the services build values of their types, and the console
 * type-checks against the same definitions.
 */

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
/** `{limit, window}`: at most `limit` requests in any sliding `window` ("1s" to "1d"). */
export const RateLimit = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: MAX_LIMIT }),
    window: Type.String({ pattern: WINDOW_PATTERN, description: 'e.g. "1s", "1m", "1h", "1d" (at most 1d)' }),
  },
  { additionalProperties: false },
);
export const RateLimits = Type.Array(RateLimit, { maxItems: MAX_LIMITS });
export const RateLimitState = Type.Object({
  limit: Type.Integer(),
  window: Type.String(),
  remaining: Type.Integer(),
  reset: Type.Integer({ description: "seconds until the limit's current window ends" }),
  retry_after: Nullable(Type.Integer({ description: "seconds to wait, when refused" })),
});
export const Environment = Type.Union([Type.Literal("live"), Type.Literal("test")]);
/** The latest report that a key was found in public, and how many there were (see README, Leaked keys). */
export const KeyLeak = Type.Object({
  reported_at: Type.String(),
  first_reported_at: Type.String(),
  reports: Type.Integer({ minimum: 1 }),
  reporter: Type.Union([Type.Literal("github"), Type.Literal("public")]),
  url: Nullable(Type.String()),
  source: Nullable(Type.String()),
  action: Type.Union([Type.Literal("revoked"), Type.Literal("notified"), Type.Literal("already_revoked")]),
});
/** Why a key falls short of its expiry policy: it never expires, or lives longer than the maximum. */
export const ExpiryPolicyIssue = Type.Union([Type.Literal("no_expiry"), Type.Literal("lifetime_too_long")]);
/** Credits: how many uses a key's family has left; null: unlimited. */
export const Remaining = Type.Integer({ minimum: 0, maximum: MAX_CREDITS });
/** `{amount, interval}`: the balance is set to `amount` at the start of each UTC day or month. */
export const Refill = Type.Object(
  {
    amount: Type.Integer({ minimum: 1, maximum: MAX_CREDITS }),
    interval: Type.Union([Type.Literal("day"), Type.Literal("month")]),
  },
  { additionalProperties: false },
);
/** The platform's own small JSON object on a key (size and depth are checked by the key service). */
export const Meta = Type.Record(Type.String(), Type.Unknown(), {
  maxProperties: MAX_META_KEYS,
  description: "A JSON object: at most 16 keys (1 to 64 characters each), 3 levels deep and 1 KiB as JSON",
});
/** The platform's id for the key's owner: visible ASCII, so it can travel as a header. */
export const ExternalId = Type.String({ pattern: EXTERNAL_ID_PATTERN, maxLength: 128 });
export const KeyView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  environment: Environment,
  prefix: Type.String(),
  permissions: Type.Array(Type.String()),
  permission_summary: Type.Record(Type.String(), Type.String()),
  allowed_ips: Type.Array(Type.String()),
  rate_limits: RateLimits,
  status: Type.Union([Type.Literal("active"), Type.Literal("revoked"), Type.Literal("expired")]),
  has_secret: Type.Boolean(),
  credential_id: Nullable(Type.String()),
  /** Its API user's merchant account; null: company-level. */
  merchant_account_id: Nullable(Type.String()),
  expires_at: Nullable(Type.String()),
  revoked_at: Nullable(Type.String()),
  replaced_by: Nullable(Type.String()),
  last_used_at: Nullable(Type.String()),
  last_used_ip: Nullable(Type.String()),
  created_at: Type.String(),
  created_by: Type.String(),
  /** Null unless the key was reported as found in public. */
  leak: Nullable(KeyLeak),
  /**
   * Where the key falls short of its environment's expiry policy as it is now (see ExpiryPolicyDoc);
   * empty when it complies. Policies apply to new keys, so an older key is reported, never changed.
   */
  policy_issues: Type.Optional(Type.Array(ExpiryPolicyIssue)),
  remaining: Nullable(Remaining),
  refill: Nullable(Refill),
  meta: Nullable(Meta),
  external_id: Nullable(Type.String()),
});

/** A key as shown once: id, then the key (and secret), then its metadata, as the Web3pay doc shows it. */
const { id: _keyId, ...keyMetadata } = KeyView.properties;
export const CreatedKey = Type.Object({
  id: Type.String(),
  key: Type.String({ description: "The full key. Shown this once, never again." }),
  secret: Type.Optional(Type.String({ description: "The secret of a key + secret pair. Shown this once." })),
  ...keyMetadata,
});

export const UsernameFormat = Type.Union([
  Type.Literal("web_service"),
  Type.Literal("legal_entity_management"),
]);

export const CredentialView = Type.Object({
  id: Type.String(),
  username: Type.String(),
  name: Type.String(),
  environment: Environment,
  /** The merchant account it acts within, fixed at creation; null: the company as a whole. */
  merchant_account_id: Nullable(Type.String()),
  description: Type.String(),
  status: Type.Union([Type.Literal("active"), Type.Literal("inactive")]),
  is_default: Type.Boolean(),
  /** `ws_…@Company.…` (web service) or `ws_…@Scope.Company_…` (legal entity management); fixed. */
  username_format: UsernameFormat,
  /** The catalog roles it has enabled, by id. */
  roles: Type.Array(Type.String()),
  /** Those of `roles` the catalog no longer defines: they grant nothing until the operator restores them. */
  unknown_roles: Type.Array(Type.String()),
  /** The permissions given one by one, beside its roles. */
  permissions: Type.Array(Type.String()),
  /** Everything it holds: its roles' permissions and its single ones. */
  granted_permissions: Type.Array(Type.String()),
  permission_summary: Type.Record(Type.String(), Type.String()),
  allowed_ips: Type.Array(Type.String()),
  rate_limits: RateLimits,
  /** Where its key notices also go (leaked, expiring); null: the owners only. */
  email: Nullable(Type.String()),
  has_password: Type.Boolean(),
  password_created_at: Nullable(Type.String()),
  created_at: Type.String(),
  created_by: Type.String(),
  updated_at: Type.String(),
});

/** A merchant account (see README, Merchant accounts): company-wide, for live and test alike. */
export const MerchantAccountView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  /** Short, unique within the company, fixed at creation. */
  code: Type.String(),
  status: Type.Union([Type.Literal("active"), Type.Literal("inactive")]),
  /** Its API users, live and test, active or not. */
  api_user_count: Type.Integer(),
  /** Its API users' unrevoked keys (an expired one counts until it is revoked). */
  key_count: Type.Integer(),
  created_at: Type.String(),
  created_by: Type.String(),
  updated_at: Type.String(),
});

export const RoleName = Type.Union([
  Type.Literal("owner"),
  Type.Literal("moderator"),
  Type.Literal("developer"),
  Type.Literal("viewer"),
]);

export const UserView = Type.Object({
  id: Type.String(),
  email: Type.String(),
  role: RoleName,
  /** `invited`: a login of another company was offered this one and has not accepted yet. */
  status: Type.Union([Type.Literal("invited"), Type.Literal("active"), Type.Literal("disabled")]),
  /** The merchant account the person's membership is limited to; null: the whole company. */
  merchant_account_id: Type.Union([Type.String(), Type.Null()]),
  totp_enrolled: Type.Boolean(),
  password_change_required: Type.Boolean(),
  created_at: Type.String(),
});

/** An audit event as it is read back: never a secret, and the environment of what it is about. */
export const AuditEvent = Type.Object({
  id: Type.String(),
  seq: Type.Integer(),
  at: Type.String(),
  action: Type.String(),
  actor: Type.Object({
    type: Type.String(),
    id: Type.Union([Type.String(), Type.Null()]),
    label: Type.Union([Type.String(), Type.Null()]),
  }),
  target: Type.Union([
    Type.Object({
      type: Type.String(),
      id: Type.String(),
      /**
       * In lists: the target's name as it is now (a key's or API user's name, a person's email, a
       * webhook's URL), looked up when read, never stored in the event; null when it is gone or of a
       * world the reader cannot see.
       */
      label: Type.Optional(Type.Union([Type.String(), Type.Null()])),
      /** In lists, for a key target the reader may see: its API user, whose page shows the key. */
      credential_id: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    }),
    Type.Null(),
  ]),
  changes: Type.Unknown(),
  ip: Type.Union([Type.String(), Type.Null()]),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  totp_used: Type.Boolean(),
  /** What the event is about: a live or test object; null for company-wide events (people, sign-ins). */
  environment: Type.Union([Type.Literal("live"), Type.Literal("test"), Type.Null()]),
  /** The merchant account of what the event is about; null: company-level. */
  merchant_account_id: Nullable(Type.String()),
});

export const KeyUsage = Type.Object({
  key_id: Type.String(),
  merchant_account_id: Nullable(Type.String()),
  days: Type.Array(Type.Object({ day: Type.String(), requests: Type.Integer(), denied: Type.Integer() })),
  total_requests: Type.Integer(),
  last_used_at: Nullable(Type.String()),
  last_used_ip: Nullable(Type.String()),
});

/** The company's requests per day, summed over its keys (of one environment, or both for a live caller). */
export const CompanyUsage = Type.Object({
  /** The environment counted; null: both. */
  environment: Nullable(Environment),
  days: Type.Array(Type.Object({ day: Type.String(), requests: Type.Integer(), denied: Type.Integer() })),
  total_requests: Type.Integer(),
  total_denied: Type.Integer(),
  /** How many keys were counted at least once in the period. */
  keys_used: Type.Integer(),
});

const CatalogAction = Type.Object({
  id: Type.String(),
  name: Type.String(),
  /** The platform's routes the permission allows, as `METHOD /path` patterns. */
  routes: Type.Optional(Type.Array(Type.String())),
});
const CatalogEntity = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.Optional(Type.String()),
  actions: Type.Array(CatalogAction),
});
const CatalogGroup = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.Optional(Type.String()),
  entities: Type.Array(CatalogEntity),
  built_in: Type.Optional(Type.Boolean()),
});
/**
 * `GET /v1/catalog`: the groups, every permission, the preset names, and how routes map, so a gateway
 * that maps its own routes (the SDK's middleware) answers exactly as `/v1/authorize` does.
 */
export const CatalogRole = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.Optional(Type.String()),
  permissions: Type.Array(Type.String()),
  built_in: Type.Optional(Type.Boolean()),
});

export const CatalogDoc = Type.Object({
  groups: Type.Array(CatalogGroup),
  /** Named bundles of permissions an API user can be given (the platform's, then Latchkey's own). */
  roles: Type.Array(CatalogRole),
  permissions: Type.Array(Type.String()),
  presets: Type.Array(Type.String()),
  /** The platform's routes for Latchkey's built-in permissions: `{"keys:manage": ["ALL /v1/keys"]}`. */
  management_routes: Type.Record(Type.String(), Type.Array(Type.String())),
  /** What a route the catalog does not map gets: refused, or let by for any good key. */
  unmapped_routes: Type.Union([Type.Literal("deny"), Type.Literal("allow")]),
});

/** One environment's expiry policy, as stored and as changed (every field null or false: no policy). */
export const EnvironmentExpiryPolicy = Type.Object({
  max_lifetime_days: Nullable(
    Type.Integer({
      minimum: 1,
      maximum: MAX_LIFETIME_DAYS,
      description: "new keys expire at most this many days on",
    }),
  ),
  must_expire: Type.Boolean({ description: "new keys must have an expiry" }),
  revoke_unused_after_days: Nullable(
    Type.Integer({
      minimum: MIN_UNUSED_DAYS,
      maximum: MAX_LIFETIME_DAYS,
      description: `active keys unused this long are revoked, after a key.unused notice at least ${UNUSED_NOTICE_DAYS} days before`,
    }),
  ),
});

/** `GET /v1/policies/expiry`: the company's policy per environment and the keys that fall short of it. */
export const ExpiryPolicyDoc = Type.Object({
  /** Absent for a caller acting in test, which sees the test policy only. */
  live: Type.Optional(
    Type.Object({
      ...EnvironmentExpiryPolicy.properties,
      updated_at: Nullable(Type.String()),
      updated_by: Nullable(Type.String()),
    }),
  ),
  test: Type.Object({
    ...EnvironmentExpiryPolicy.properties,
    updated_at: Nullable(Type.String()),
    updated_by: Nullable(Type.String()),
  }),
  /** Days before its revocation at which an unused key's `key.unused` notice goes out, at the least. */
  unused_notice_days: Type.Integer(),
  /** Days before a key's expiry at which `key.expiring` goes out, once each. */
  expiring_notice_days: Type.Array(Type.Integer()),
  /** Active keys that do not comply with the policy of their environment (the first 100). */
  noncompliant_keys: Type.Array(
    Type.Object({
      id: Type.String(),
      name: Type.String(),
      prefix: Type.String(),
      environment: Environment,
      expires_at: Nullable(Type.String()),
      issues: Type.Array(ExpiryPolicyIssue),
    }),
  ),
  noncompliant_count: Type.Integer(),
});

export type Environment = Static<typeof Environment>;
export type RateLimit = Static<typeof RateLimit>;
export type Refill = Static<typeof Refill>;
export type KeyView = Static<typeof KeyView>;
export type CreatedKey = Static<typeof CreatedKey>;
export type CredentialView = Static<typeof CredentialView>;
export type MerchantAccountView = Static<typeof MerchantAccountView>;
export type UserView = Static<typeof UserView>;
export type AuditEvent = Static<typeof AuditEvent>;
export type KeyUsage = Static<typeof KeyUsage>;
export type CompanyUsage = Static<typeof CompanyUsage>;
export type CatalogDoc = Static<typeof CatalogDoc>;
export type KeyLeak = Static<typeof KeyLeak>;
export type LeakPolicyView = Static<typeof LeakPolicyView>;

/** What a company does with a leaked key of one environment. */
export const LeakPolicyView = Type.Object({
  environment: Environment,
  action: Type.Union([Type.Literal("revoke"), Type.Literal("notify")]),
  /** True while the company has not chosen: the default of the environment applies. */
  is_default: Type.Boolean(),
  updated_at: Nullable(Type.String()),
});
export type ExpiryPolicyDoc = Static<typeof ExpiryPolicyDoc>;
export type EnvironmentExpiryPolicy = Static<typeof EnvironmentExpiryPolicy>;
