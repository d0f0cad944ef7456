import { type TSchema, Type } from "typebox";

// The answers' shapes are defined once, in core, for the services and the console too.
export {
  AuditEvent,
  CatalogDoc,
  CompanyUsage,
  CreatedKey,
  CredentialView,
  Environment,
  EnvironmentExpiryPolicy,
  ExpiryPolicyDoc,
  ExternalId,
  KeyUsage,
  KeyView,
  MerchantAccountView,
  Meta,
  Nullable,
  RateLimit,
  RateLimitState,
  RateLimits,
  Refill,
  Remaining,
  RoleName,
  UsernameFormat,
  UserView,
} from "../core/views.ts";

/**
 * Free text: no control characters (they break logs and terminals, and NUL breaks PostgreSQL) and no
 * unpaired surrogates (not Unicode; jsonb refuses them).
 */
const TEXT = "^[^\\u0000-\\u001f\\u007f\\ud800-\\udfff]*$";

export const Name = Type.String({ minLength: 1, maxLength: 200, pattern: TEXT });
export const Description = Type.String({ maxLength: 1000, pattern: TEXT });
/** An email address as people's are given (invites, a company's owner, an API user's notices). */
export const Email = Type.String({ format: "email", minLength: 3, maxLength: 254 });
const Permission = Type.String({
  minLength: 3,
  maxLength: 81,
  pattern: "^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$",
});
export const Permissions = Type.Array(Permission, { maxItems: 500 });
/** Catalog role ids, as `GET /v1/catalog` lists them. */
export const RoleIds = Type.Array(
  Type.String({ minLength: 1, maxLength: 48, pattern: "^[a-z][a-z0-9_]*$" }),
  {
    maxItems: 100,
  },
);
export const AllowedIps = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 100 });
const PresetName = Type.Union([
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

/** A person's id in a path. */
export const UserIdParams = Type.Object({ id: Type.String({ pattern: "^usr_[0-9A-Za-z]{22}$" }) });

/** The body of an action that takes nothing but (optionally) its step-up code; no body reads as `{}`. */
export const StepUpBody = Type.Object(
  { totp_code: Type.Optional(TotpCode) },
  { additionalProperties: false },
);

export const KeyIdParams = Type.Object({ id: Type.String({ pattern: "^key_[0-9A-Za-z]{22}$" }) });
export const CredentialIdParams = Type.Object({ id: Type.String({ pattern: "^cred_[0-9A-Za-z]{22}$" }) });
export const MerchantAccountId = Type.String({ pattern: "^ma_[0-9A-Za-z]{22}$" });
export const MerchantAccountIdParams = Type.Object({ id: MerchantAccountId });
/** A merchant account's short code: letters, digits, `-` and `_`, starting with a letter or digit. */
export const MerchantAccountCode = Type.String({
  minLength: 2,
  maxLength: 64,
  pattern: "^[A-Za-z0-9][A-Za-z0-9_-]*$",
});

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
