import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, KeyIdParams, KeyUsage, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function getKeyUsage(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/keys/:id/usage",
    {
      schema: {
        tags: ["keys"],
        summary: "A key's requests per day (UTC), and when and from where it was last used",
        description:
          "Counts are gathered in memory and written every few seconds (LATCHKEY_USAGE_FLUSH_MS), by every " +
          "node; `requests` are verifications and calls that were allowed, `denied` those refused.",
        params: KeyIdParams,
        querystring: Type.Object(
          {
            days: Type.Optional(
              Type.String({ pattern: "^(?:[1-9]|[1-8][0-9]|90)$", description: "1 to 90, default 30" }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Ok(KeyUsage),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["keys.usage"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.keys.usage(
        companyOf(request),
        request.params.id,
        request.query.days ? Number(request.query.days) : 30,
        actorOf(request),
      ),
    }),
  );
}
