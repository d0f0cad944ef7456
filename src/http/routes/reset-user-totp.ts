import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { ErrorEnvelope, Ok, StepUpBody, UserIdParams } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function resetUserTotp(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/users/:id/reset-totp",
    {
      schema: {
        tags: ["people"],
        summary: "Reset a person's lost two-factor device: they enrol again at their next sign-in",
        description:
          "Owners only, with their own fresh code; not for oneself. The person's secret and recovery codes " +
          "go, their sessions end, and they are told by email.",
        params: UserIdParams,
        body: StepUpBody,
        response: {
          200: Ok(Type.Object({ id: Type.String(), totp_enrolled: Type.Boolean() })),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireSession(services, POLICY["users.reset_totp"]),
    },
    async (request) => {
      await services.people.resetTotp(userCtxOf(request), request.params.id);
      return { success: true as const, data: { id: request.params.id, totp_enrolled: false } };
    },
  );
}
