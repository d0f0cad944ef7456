import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import {
  AllowedIps,
  Description,
  ErrorEnvelope,
  KeyIdParams,
  KeyView,
  Name,
  Ok,
  Permissions,
  RateLimits,
  TotpCode,
} from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function updateKey(app: App, { services }: RouteDeps) {
  app.patch(
    "/v1/keys/:id",
    {
      schema: {
        tags: ["keys"],
        summary: "Change a key's name, description or allowed IPs; its permissions are fixed at creation",
        params: KeyIdParams,
        body: Type.Object(
          {
            name: Type.Optional(Name),
            description: Type.Optional(Description),
            allowed_ips: Type.Optional(AllowedIps),
            rate_limits: Type.Optional(RateLimits),
            permissions: Type.Optional(Permissions),
            totp_code: Type.Optional(TotpCode),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Ok(KeyView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["keys.update"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.keys.update(companyOf(request), request.params.id, request.body, ctxOf(request)),
    }),
  );
}
