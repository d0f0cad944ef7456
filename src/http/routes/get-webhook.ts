import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import { WebhookIdParams, WebhookView } from "../webhook-schemas.ts";
import type { RouteDeps } from "./deps.ts";

export default function getWebhook(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/webhooks/:id",
    {
      schema: {
        tags: ["webhooks"],
        summary: "Get one webhook endpoint (never its secret)",
        params: WebhookIdParams,
        response: { 200: Ok(WebhookView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["webhooks.get"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.webhooks.get(companyOf(request), request.params.id, actorOf(request)),
    }),
  );
}
