import { Type } from "typebox";
import { requirePlatform } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

/** Every chain at once, for the operator (and `latchkey audit verify` against a running server). */
export default function verifyAllAudit(app: App, { services, platformTokens, controlToken }: RouteDeps) {
  app.get(
    "/v1/admin/audit/verify",
    {
      schema: {
        tags: ["platform"],
        summary: "Check every company's audit chain and the platform's",
        security: [{ bearer: [] }],
        response: {
          200: Ok(
            Type.Object({
              valid: Type.Boolean(),
              chains: Type.Array(
                Type.Object({
                  chain: Type.String(),
                  valid: Type.Boolean(),
                  events_checked: Type.Integer(),
                  first_broken_event_id: Type.Union([Type.String(), Type.Null()]),
                }),
              ),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      onRequest: requirePlatform(platformTokens, controlToken),
    },
    async () => ({ success: true as const, data: await services.audit.verifyAll() }),
  );
}
