import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { ErrorEnvelope, Ok, StepUpBody } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function regenerateRecoveryCodes(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/auth/recovery-codes",
    {
      schema: {
        tags: ["people"],
        summary: "Replace your recovery codes with ten new ones, shown once; the old ones stop working",
        description: "Needs a current code (X-TOTP-Code or totp_code).",
        body: StepUpBody,
        response: {
          200: Ok(Type.Object({ recovery_codes: Type.Array(Type.String()) })),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireSession(services, POLICY["auth.recovery_codes"]),
    },
    async (request) => ({
      success: true as const,
      data: { recovery_codes: await services.people.regenerateRecoveryCodes(userCtxOf(request)) },
    }),
  );
}
