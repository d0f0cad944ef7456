import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import { WebhookIdParams, WebhookView } from "../webhook-schemas.ts";
import type { RouteDeps } from "./deps.ts";

export default function deleteWebhook(app: App, { services }: RouteDeps) {
  app.delete(
    "/v1/webhooks/:id",
    {
      schema: {
        tags: ["webhooks"],
        summary: "Delete a webhook endpoint and its delivery log; nothing more is sent to it",
        params: WebhookIdParams,
        response: { 200: Ok(WebhookView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["webhooks.delete"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.webhooks.remove(companyOf(request), request.params.id, ctxOf(request)),
    }),
  );
}
