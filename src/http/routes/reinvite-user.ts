import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { ErrorEnvelope, Ok, StepUpBody, UserIdParams } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function reinviteUser(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/users/:id/reinvite",
    {
      schema: {
        tags: ["people"],
        summary: "Reissue the invitation of a person who has not signed in yet; the old one stops working",
        description:
          "With SMTP a new link is mailed (`invitation_sent: true`); without, a new temporary password is " +
          "returned, shown once. Needs the caller's own fresh code.",
        params: UserIdParams,
        body: StepUpBody,
        response: {
          200: Ok(
            Type.Object({
              id: Type.String(),
              email: Type.String(),
              invitation_sent: Type.Boolean(),
              temporary_password: Type.Optional(Type.String()),
              /** No SMTP, an existing login's pending offer: its fresh accept link, shown once. */
              accept_link: Type.Optional(Type.String()),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireSession(services, POLICY["users.reinvite"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.people.reinvite(userCtxOf(request), request.params.id),
    }),
  );
}
