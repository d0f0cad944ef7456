import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import {
  AllowedIps,
  CredentialView,
  Description,
  Email,
  Environment,
  ErrorEnvelope,
  MerchantAccountId,
  Name,
  Nullable,
  Ok,
  Permissions,
  RateLimits,
  RoleIds,
  TotpCode,
  UsernameFormat,
} from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function createCredential(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/credentials",
    {
      schema: {
        tags: ["credentials"],
        summary: "Create a dedicated API user (never a human login)",
        description:
          "An API user belongs to one environment (`live` unless given) for good, and so do its keys and " +
          "its Basic auth password. A caller acting in test creates test API users only. It needs at least " +
          "one enabled role or permission (`GRANT_EMPTY`); `username_format` picks `ws_…@Company.…` (web " +
          "service, the default) or `ws_…@Scope.Company_…` (legal entity management), fixed for good. With " +
          "`merchant_account_id` it belongs to that merchant account for good and acts within it only; " +
          "a merchant account's caller creates in its own account.",
        body: Type.Object(
          {
            name: Name,
            environment: Type.Optional(Environment),
            merchant_account_id: Type.Optional(Nullable(MerchantAccountId)),
            description: Type.Optional(Description),
            email: Type.Optional(Nullable(Email)),
            username_format: Type.Optional(UsernameFormat),
            roles: Type.Optional(RoleIds),
            permissions: Type.Optional(Permissions),
            allowed_ips: Type.Optional(AllowedIps),
            rate_limits: Type.Optional(RateLimits),
            totp_code: Type.Optional(TotpCode),
          },
          { additionalProperties: false },
        ),
        response: { 201: Ok(CredentialView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["credentials.create"]),
    },
    async (request, reply) => {
      const data = await services.credentials.create(companyOf(request), request.body, ctxOf(request));
      return reply.status(201).send({ success: true, data });
    },
  );
}
