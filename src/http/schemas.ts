import { type TSchema, Type } from "typebox";
import { MAX_LIMIT, MAX_LIMITS, WINDOW_PATTERN } from "../core/rate-limit.ts";

/**
 * Free text: no control characters (they break logs and terminals, and NUL breaks PostgreSQL) and no
 * unpaired surrogates (not Unicode; jsonb refuses them).
 */
const TEXT = "^[^\\u0000-\\u001f\\u007f\\ud800-\\udfff]*$";

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const Name = Type.String({ minLength: 1, maxLength: 200, pattern: TEXT });
export const Description = Type.String({ maxLength: 1000, pattern: TEXT });
export const Permission = Type.String({
  minLength: 3,
  maxLength: 81,
  pattern: "^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$",
});
export const Permissions = Type.Array(Permission, { maxItems: 500 });
export const AllowedIps = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 100 });
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
export const PresetName = Type.Union([
  Type.Literal("read_only"),
  Type.Literal("write"),
  Type.Literal("full_access"),
]);
export const Preset = Type.Union([
  PresetName,
  Type.Record(Type.String({ pattern: "^[a-z][a-z0-9_]{0,47}$" }), PresetName, { maxProperties: 100 }),
]);
/** A TOTP code or a recovery code, for step-up; the X-TOTP-Code header works as well. */
export const TotpCode = Type.String({ minLength: 6, maxLength: 16, pattern: "^[0-9A-Za-z-]+$" });
export const DateTime = Type.String({ format: "date-time", maxLength: 40 });

export const KeyIdParams = Type.Object({ id: Type.String({ pattern: "^key_[0-9A-Za-z]{22}$" }) });
export const CredentialIdParams = Type.Object({ id: Type.String({ pattern: "^cred_[0-9A-Za-z]{22}$" }) });

export const Page = {
  limit: Type.Optional(
    Type.String({ pattern: "^(?:[1-9]|[1-9][0-9]|100)$", description: "1 to 100, default 50" }),
  ),
  cursor: Type.Optional(Type.String({ maxLength: 40, pattern: "^[a-z]+_[0-9A-Za-z]{22}$" })),
};
export const pageOf = (q: { limit?: string | undefined; cursor?: string | undefined }) => ({
  limit: q.limit ? Number(q.limit) : 50,
  cursor: q.cursor,
});

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
  expires_at: Nullable(Type.String()),
  revoked_at: Nullable(Type.String()),
  replaced_by: Nullable(Type.String()),
  last_used_at: Nullable(Type.String()),
  last_used_ip: Nullable(Type.String()),
  created_at: Type.String(),
  created_by: Type.String(),
});

/** A key as shown once: id, then the key (and secret), then its metadata, as the Web3pay doc shows it. */
const { id: _keyId, ...keyMetadata } = KeyView.properties;
export const CreatedKey = Type.Object({
  id: Type.String(),
  key: Type.String({ description: "The full key. Shown this once, never again." }),
  secret: Type.Optional(Type.String({ description: "The secret of a key + secret pair. Shown this once." })),
  ...keyMetadata,
});

export const CredentialView = Type.Object({
  id: Type.String(),
  username: Type.String(),
  name: Type.String(),
  environment: Environment,
  description: Type.String(),
  status: Type.Union([Type.Literal("active"), Type.Literal("inactive")]),
  is_default: Type.Boolean(),
  permissions: Type.Array(Type.String()),
  permission_summary: Type.Record(Type.String(), Type.String()),
  allowed_ips: Type.Array(Type.String()),
  rate_limits: RateLimits,
  has_password: Type.Boolean(),
  password_created_at: Nullable(Type.String()),
  created_at: Type.String(),
  created_by: Type.String(),
  updated_at: Type.String(),
});

/** The success envelope every route answers with. */
export const Ok = <T extends TSchema>(data: T) => Type.Object({ success: Type.Literal(true), data });

export const ErrorEnvelope = Type.Object({
  success: Type.Literal(false),
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    request_id: Type.String(),
    field: Type.Optional(Type.String()),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
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
  status: Type.Union([Type.Literal("active"), Type.Literal("disabled")]),
  totp_enrolled: Type.Boolean(),
  password_change_required: Type.Boolean(),
  created_at: Type.String(),
});
