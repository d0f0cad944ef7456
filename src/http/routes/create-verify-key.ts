import { Type } from "typebox";
import { ctxOf, requirePlatform } from "../auth.ts";
import { ErrorEnvelope, Name, Ok, RateLimits } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function createVerifyKey(app: App, { services, platformTokens, controlToken }: RouteDeps) {
  app.post(
    "/v1/admin/verify-keys",
    {
      schema: {
        tags: ["platform"],
        summary: "Create a platform-wide key that may only verify keys (for the gateway)",
        security: [{ bearer: [] }],
        body: Type.Object(
          { name: Name, rate_limits: Type.Optional(RateLimits) },
          { additionalProperties: false },
        ),
        response: {
          201: Ok(Type.Object({ id: Type.String(), key: Type.String(), prefix: Type.String() })),
          "4xx": ErrorEnvelope,
        },
      },
      onRequest: requirePlatform(platformTokens, controlToken),
    },
    async (request, reply) => {
      const data = await services.keys.createVerifyKey(
        request.body.name,
        ctxOf(request),
        request.body.rate_limits,
      );
      return reply.status(201).send({ success: true, data });
    },
  );
}
