import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, Ok, Page, pageOf } from "../schemas.ts";
import type { App } from "../types.ts";
import { WebhookDeliveryView, WebhookIdParams } from "../webhook-schemas.ts";
import type { RouteDeps } from "./deps.ts";

export default function listWebhookDeliveries(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/webhooks/:id/deliveries",
    {
      schema: {
        tags: ["webhooks"],
        summary: "An endpoint's deliveries, newest first, each with its attempts",
        params: WebhookIdParams,
        querystring: Type.Object(
          {
            status: Type.Optional(
              Type.Union([Type.Literal("pending"), Type.Literal("delivered"), Type.Literal("failed")]),
            ),
            ...Page,
          },
          { additionalProperties: false },
        ),
        response: {
          200: Ok(
            Type.Object({
              deliveries: Type.Array(WebhookDeliveryView),
              next_cursor: Type.Union([Type.String(), Type.Null()]),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["webhooks.deliveries"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.webhooks.deliveries(
        companyOf(request),
        request.params.id,
        { status: request.query.status },
        pageOf(request.query),
        actorOf(request),
      ),
    }),
  );
}
