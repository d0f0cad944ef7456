import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import {
  AllowedIps,
  CredentialIdParams,
  CredentialView,
  Description,
  Email,
  ErrorEnvelope,
  Name,
  Nullable,
  Ok,
  Permissions,
  RateLimits,
  RoleIds,
  TotpCode,
} from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function updateCredential(app: App, { services }: RouteDeps) {
  app.patch(
    "/v1/credentials/:id",
    {
      schema: {
        tags: ["credentials"],
        summary:
          "Change an API credential: name, description, email for notices, roles, permissions, allowed IPs, or deactivate it",
        params: CredentialIdParams,
        body: Type.Object(
          {
            name: Type.Optional(Name),
            description: Type.Optional(Description),
            email: Type.Optional(Nullable(Email)),
            roles: Type.Optional(RoleIds),
            permissions: Type.Optional(Permissions),
            allowed_ips: Type.Optional(AllowedIps),
            rate_limits: Type.Optional(RateLimits),
            status: Type.Optional(Type.Union([Type.Literal("active"), Type.Literal("inactive")])),
            totp_code: Type.Optional(TotpCode),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Ok(CredentialView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["credentials.update"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.credentials.update(
        companyOf(request),
        request.params.id,
        request.body,
        ctxOf(request),
      ),
    }),
  );
}
