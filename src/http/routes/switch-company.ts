import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import { setSessionCookie } from "../session-cookie.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function switchCompany(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/auth/switch-company",
    {
      schema: {
        tags: ["people"],
        summary: "Act in another company of yours: this session ends and a new one opens there",
        body: Type.Object(
          { company_id: Type.String({ pattern: "^co_[0-9A-Za-z]{22}$" }) },
          { additionalProperties: false },
        ),
        response: {
          200: Ok(
            Type.Object({
              user: Type.Object({ id: Type.String(), email: Type.String() }),
              company: Type.Object({ id: Type.String(), name: Type.String(), slug: Type.String() }),
              role: Type.String(),
              csrf_token: Type.String(),
              expires_at: Type.String(),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireSession(services, POLICY["auth.switch_company"]),
    },
    async (request, reply) => {
      const result = await services.people.switchCompany(userCtxOf(request), request.body.company_id);
      // A new cookie: the old session's token is dead, and so is its CSRF token.
      setSessionCookie(reply, request, result.session);
      return {
        success: true as const,
        data: {
          user: { id: result.user.id, email: result.user.email },
          company: result.company,
          role: result.user.role,
          csrf_token: result.session.csrf_token,
          expires_at: result.session.expires_at,
        },
      };
    },
  );
}
