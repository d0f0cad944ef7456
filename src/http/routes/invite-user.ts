import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { Email, ErrorEnvelope, MerchantAccountId, Nullable, Ok, RoleName } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function inviteUser(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/users",
    {
      schema: {
        tags: ["people"],
        summary: "Invite a person: a link by email (SMTP), or a temporary password shown once (no SMTP)",
        body: Type.Object(
          {
            email: Email,
            role: RoleName,
            merchant_account_id: Type.Optional(Nullable(MerchantAccountId)),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Ok(
            Type.Object({
              id: Type.String(),
              email: Type.String(),
              role: Type.String(),
              merchant_account_id: Type.Union([Type.String(), Type.Null()]),
              /** True: a link to choose a password was mailed, and no temporary password is shown. */
              invitation_sent: Type.Boolean(),
              temporary_password: Type.Optional(Type.String()),
              /** No SMTP, an existing login: the link its person accepts the membership with, shown once. */
              accept_link: Type.Optional(Type.String()),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireSession(services, POLICY["users.invite"]),
    },
    async (request, reply) => {
      const data = await services.people.invite(userCtxOf(request), request.body);
      return reply.status(201).send({ success: true, data });
    },
  );
}
