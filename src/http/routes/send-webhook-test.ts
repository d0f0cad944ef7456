import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import { WebhookIdParams } from "../webhook-schemas.ts";
import type { RouteDeps } from "./deps.ts";

export default function sendWebhookTest(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/webhooks/:id/test",
    {
      schema: {
        tags: ["webhooks"],
        summary: "Send a webhook.test event to this endpoint only",
        params: WebhookIdParams,
        response: {
          202: Ok(Type.Object({ event_id: Type.String(), delivery_id: Type.String() })),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["webhooks.test"]),
    },
    async (request, reply) => {
      const data = await services.webhooks.sendTest(companyOf(request), request.params.id, ctxOf(request));
      return reply.status(202).send({ success: true, data });
    },
  );
}
