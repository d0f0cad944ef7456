import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { MAX_GRACE_SECONDS } from "../../services/keys.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { CreatedKey, DateTime, ErrorEnvelope, KeyIdParams, Ok, TotpCode } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function rotateKey(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/keys/:id/rotate",
    {
      schema: {
        tags: ["keys"],
        summary:
          "Replace a key with a new one; the old one keeps working for the grace period (default 24 h)",
        params: KeyIdParams,
        body: Type.Object(
          {
            grace_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_GRACE_SECONDS })),
            expires_at: Type.Optional(DateTime),
            totp_code: Type.Optional(TotpCode),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Ok(
            Type.Object({
              ...CreatedKey.properties,
              previous_key: Type.Object({ id: Type.String(), expires_at: Type.String() }),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["keys.rotate"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.keys.rotate(companyOf(request), request.params.id, request.body, ctxOf(request)),
    }),
  );
}
