import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, Ok, TotpCode } from "../schemas.ts";
import type { App } from "../types.ts";
import { WebhookIdParams, WebhookWithSecret } from "../webhook-schemas.ts";
import type { RouteDeps } from "./deps.ts";

export default function rotateWebhookSecret(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/webhooks/:id/rotate-secret",
    {
      schema: {
        tags: ["webhooks"],
        summary: "A new signing secret, shown this once; the old one keeps signing beside it for 24 h",
        params: WebhookIdParams,
        body: Type.Optional(
          Type.Object({ totp_code: Type.Optional(TotpCode) }, { additionalProperties: false }),
        ),
        response: { 200: Ok(WebhookWithSecret), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["webhooks.rotate_secret"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.webhooks.rotateSecret(companyOf(request), request.params.id, ctxOf(request)),
    }),
  );
}
