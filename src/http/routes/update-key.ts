import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import {
  AllowedIps,
  Description,
  ErrorEnvelope,
  ExternalId,
  KeyIdParams,
  KeyView,
  Meta,
  Name,
  Nullable,
  Ok,
  Permissions,
  RateLimits,
  Refill,
  Remaining,
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
        summary:
          "Change a key's name, description, allowed IPs, limits, credits, meta or external id; its permissions are fixed at creation",
        params: KeyIdParams,
        body: Type.Object(
          {
            name: Type.Optional(Name),
            description: Type.Optional(Description),
            allowed_ips: Type.Optional(AllowedIps),
            rate_limits: Type.Optional(RateLimits),
            permissions: Type.Optional(Permissions),
            // null makes the key unlimited, drops the refill, or clears meta or the external id.
            remaining: Type.Optional(Nullable(Remaining)),
            refill: Type.Optional(Nullable(Refill)),
            meta: Type.Optional(Nullable(Meta)),
            external_id: Type.Optional(Nullable(ExternalId)),
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
