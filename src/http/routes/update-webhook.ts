import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { Description, ErrorEnvelope, Ok, TotpCode } from "../schemas.ts";
import type { App } from "../types.ts";
import { EventTypes, WebhookIdParams, WebhookUrl, WebhookView } from "../webhook-schemas.ts";
import type { RouteDeps } from "./deps.ts";

export default function updateWebhook(app: App, { services }: RouteDeps) {
  app.patch(
    "/v1/webhooks/:id",
    {
      schema: {
        tags: ["webhooks"],
        summary: "Change a webhook endpoint's URL, events or description, or disable or re-enable it",
        description:
          '`events: null` hears every type again. `status: "enabled"` re-enables an endpoint that was ' +
          "disabled (by a person, a 410 Gone or persistent failure); its waiting deliveries go out in order.",
        params: WebhookIdParams,
        body: Type.Object(
          {
            url: Type.Optional(WebhookUrl),
            events: Type.Optional(Type.Union([EventTypes, Type.Null()])),
            description: Type.Optional(Description),
            status: Type.Optional(Type.Union([Type.Literal("enabled"), Type.Literal("disabled")])),
            totp_code: Type.Optional(TotpCode),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Ok(WebhookView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["webhooks.update"]),
    },
    async (request) => {
      const { totp_code: _, ...input } = request.body;
      return {
        success: true as const,
        data: await services.webhooks.update(companyOf(request), request.params.id, input, ctxOf(request)),
      };
    },
  );
}
