import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { Description, ErrorEnvelope, Ok, TotpCode } from "../schemas.ts";
import type { App } from "../types.ts";
import { EventTypes, WebhookUrl, WebhookWithSecret } from "../webhook-schemas.ts";
import type { RouteDeps } from "./deps.ts";

export default function createWebhook(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/webhooks",
    {
      schema: {
        tags: ["webhooks"],
        summary: "Add a webhook endpoint; its signing secret is shown this once",
        description:
          "The endpoint hears the events of the caller's environment only (a test caller makes test " +
          "endpoints, which hear test objects' events). `events` left out: every type.",
        body: Type.Object(
          {
            url: WebhookUrl,
            events: Type.Optional(EventTypes),
            description: Type.Optional(Description),
            totp_code: Type.Optional(TotpCode),
          },
          { additionalProperties: false },
        ),
        response: { 201: Ok(WebhookWithSecret), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["webhooks.create"]),
    },
    async (request, reply) => {
      const { totp_code: _, ...input } = request.body;
      const data = await services.webhooks.create(companyOf(request), input, ctxOf(request));
      return reply.status(201).send({ success: true, data });
    },
  );
}
