import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import {
  AllowedIps,
  CreatedKey,
  DateTime,
  Description,
  Environment,
  ErrorEnvelope,
  ExternalId,
  Meta,
  Name,
  Ok,
  Permissions,
  Preset,
  RateLimits,
  Refill,
  Remaining,
  TotpCode,
} from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export const CreateKeyBody = Type.Object(
  {
    name: Name,
    environment: Environment,
    description: Type.Optional(Description),
    credential_id: Type.Optional(Type.String({ pattern: "^cred_[0-9A-Za-z]{22}$" })),
    permissions: Type.Optional(Permissions),
    preset: Type.Optional(Preset),
    allowed_ips: Type.Optional(AllowedIps),
    rate_limits: Type.Optional(RateLimits),
    expires_at: Type.Optional(DateTime),
    with_secret: Type.Optional(Type.Boolean()),
    remaining: Type.Optional(Remaining),
    refill: Type.Optional(Refill),
    meta: Type.Optional(Meta),
    external_id: Type.Optional(ExternalId),
    totp_code: Type.Optional(TotpCode),
  },
  { additionalProperties: false },
);

export default function createKey(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/keys",
    {
      schema: {
        tags: ["keys"],
        summary: "Create an API key; the key (and secret) are returned this once",
        description:
          "Permissions default to the API user's. A preset (read_only, write, full_access, or one per group) " +
          "selects that level of what the API user holds. Nobody can grant more than they hold.",
        body: CreateKeyBody,
        response: { 201: Ok(CreatedKey), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["keys.create"]),
    },
    async (request, reply) => {
      const data = await services.keys.create(companyOf(request), request.body, ctxOf(request));
      return reply.status(201).send({ success: true, data });
    },
  );
}
