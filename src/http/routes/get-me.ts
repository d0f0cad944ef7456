import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userOf } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function getMe(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/me",
    {
      schema: {
        tags: ["people"],
        summary: "The signed-in person, their company, role, the session's CSRF token and their companies",
        response: {
          200: Ok(
            Type.Object({
              user: Type.Object({ id: Type.String(), email: Type.String() }),
              company_id: Type.String(),
              role: Type.String(),
              /** The merchant account this session acts within; null: the whole company. */
              merchant_account_id: Type.Union([Type.String(), Type.Null()]),
              csrf_token: Type.String(),
              password_change_required: Type.Boolean(),
              totp_enrolled: Type.Boolean(),
              /** Every company the person may act in; the console's switcher lists them. */
              companies: Type.Array(
                Type.Object({
                  id: Type.String(),
                  name: Type.String(),
                  slug: Type.String(),
                  role: Type.String(),
                  /** The merchant account the person acts within there; null: the whole company. */
                  merchant_account_id: Type.Union([Type.String(), Type.Null()]),
                }),
              ),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireSession(services, POLICY["me.get"]),
    },
    async (request) => {
      const actor = userOf(request);
      const me = await services.people.me(actor.userId, actor.companyId);
      const companies = await services.people.companies(actor.userId);
      const session = await services.people.sessionOf(actor.sessionId);
      return {
        success: true as const,
        data: {
          user: { id: me.id, email: me.email },
          company_id: actor.companyId,
          role: me.role,
          merchant_account_id: me.merchant_account_id,
          csrf_token: session.csrf_token,
          password_change_required: me.password_change_required,
          totp_enrolled: me.totp_enrolled,
          companies,
        },
      };
    },
  );
}
