import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import { DeliveryIdParams, WebhookDeliveryView } from "../webhook-schemas.ts";
import type { RouteDeps } from "./deps.ts";

export default function retryWebhookDelivery(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/webhooks/:id/deliveries/:delivery_id/retry",
    {
      schema: {
        tags: ["webhooks"],
        summary: "Queue a delivery again, due now, with the same webhook-id",
        params: DeliveryIdParams,
        response: { 200: Ok(WebhookDeliveryView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["webhooks.retry"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.webhooks.retry(
        companyOf(request),
        request.params.id,
        request.params.delivery_id,
        ctxOf(request),
      ),
    }),
  );
}
