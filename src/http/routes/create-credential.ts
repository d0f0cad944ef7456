import { Type } from "typebox";
import { MANAGER_ROLES } from "../../core/roles.ts";
import { bodyField, companyOf, ctxOf, requireCaller } from "../auth.ts";
import {
  AllowedIps,
  CredentialView,
  Description,
  ErrorEnvelope,
  Name,
  Ok,
  Permissions,
  RateLimits,
  TotpCode,
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
        body: Type.Object(
          {
            name: Name,
            description: Type.Optional(Description),
            permissions: Permissions,
            allowed_ips: Type.Optional(AllowedIps),
            rate_limits: Type.Optional(RateLimits),
            totp_code: Type.Optional(TotpCode),
          },
          { additionalProperties: false },
        ),
        response: { 201: Ok(CredentialView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, {
        perms: { all: ["credentials:manage"] },
        roles: MANAGER_ROLES,
        write: true,
        stepUp: (r) =>
          Array.isArray(bodyField(r, "allowed_ips")) && (bodyField(r, "allowed_ips") as unknown[]).length > 0,
      }),
    },
    async (request, reply) => {
      const data = await services.credentials.create(companyOf(request), request.body, ctxOf(request));
      return reply.status(201).send({ success: true, data });
    },
  );
}
