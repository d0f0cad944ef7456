import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { LeakPolicyView } from "../../core/views.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { Environment, ErrorEnvelope, Ok, TotpCode } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function updateLeakPolicy(app: App, { services }: RouteDeps) {
  app.patch(
    "/v1/policies/leaks",
    {
      schema: {
        tags: ["leaks"],
        summary: "Revoke leaked keys at once, or only notify, for one environment (owners, with a code)",
        body: Type.Object(
          {
            environment: Type.Optional(Environment),
            action: Type.Union([Type.Literal("revoke"), Type.Literal("notify")]),
            totp_code: Type.Optional(TotpCode),
          },
          { additionalProperties: false },
        ),
        response: { 200: Ok(LeakPolicyView), "4xx": ErrorEnvelope },
      },
      preValidation: requireSession(services, POLICY["leak_policy.update"]),
    },
    async (request) => {
      const ctx = userCtxOf(request);
      return {
        success: true as const,
        data: await services.leaks.setPolicy(
          ctx.actor.companyId,
          { environment: request.body.environment, action: request.body.action },
          ctx,
        ),
      };
    },
  );
}
