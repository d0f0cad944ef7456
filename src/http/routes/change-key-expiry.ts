import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, KeyIdParams, KeyView, Ok, TotpCode } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function changeKeyExpiry(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/keys/:id/expiry",
    {
      schema: {
        tags: ["keys"],
        summary: "For a rotated key in its overlap: reset its expiry to 24 h from now, or expire it now",
        params: KeyIdParams,
        body: Type.Object(
          {
            action: Type.Union([Type.Literal("reset"), Type.Literal("now")]),
            totp_code: Type.Optional(TotpCode),
          },
          { additionalProperties: false },
        ),
        response: { 200: Ok(KeyView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["keys.expiry"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.keys.changeExpiry(
        companyOf(request),
        request.params.id,
        request.body.action,
        ctxOf(request),
      ),
    }),
  );
}
