import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { Environment, ErrorEnvelope, Ok, Page, pageOf } from "../schemas.ts";
import type { App } from "../types.ts";
import { WebhookView } from "../webhook-schemas.ts";
import type { RouteDeps } from "./deps.ts";

export default function listWebhooks(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/webhooks",
    {
      schema: {
        tags: ["webhooks"],
        summary: "List the company's webhook endpoints, newest first (never their secrets)",
        querystring: Type.Object(
          { environment: Type.Optional(Environment), ...Page },
          { additionalProperties: false },
        ),
        response: {
          200: Ok(
            Type.Object({
              webhooks: Type.Array(WebhookView),
              next_cursor: Type.Union([Type.String(), Type.Null()]),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["webhooks.list"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.webhooks.list(
        companyOf(request),
        { environment: request.query.environment },
        pageOf(request.query),
        actorOf(request),
      ),
    }),
  );
}
