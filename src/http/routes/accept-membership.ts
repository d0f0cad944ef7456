import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { TOKEN_PATTERN } from "../../core/recovery.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function acceptMembership(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/auth/accept-membership",
    {
      schema: {
        tags: ["people"],
        summary: "Join a company that invited your existing login, with the token of its accept link",
        description:
          "Needs a session of the invited login: the link proves it was sent, the session that you hold " +
          "the login. The membership turns active; switch to the company to act there. An unknown, used, " +
          "expired or another login's token answers 400 TOKEN_INVALID.",
        body: Type.Object(
          { token: Type.String({ pattern: TOKEN_PATTERN }) },
          { additionalProperties: false },
        ),
        response: {
          200: Ok(
            Type.Object({
              company: Type.Object({ id: Type.String(), name: Type.String(), slug: Type.String() }),
              role: Type.String(),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireSession(services, POLICY["auth.accept_membership"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.people.acceptMembership(userCtxOf(request), request.body.token),
    }),
  );
}
