import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { ErrorEnvelope, MerchantAccountId, Nullable, Ok, RoleName, UserView } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function updateUser(app: App, { services }: RouteDeps) {
  app.patch(
    "/v1/users/:id",
    {
      schema: {
        tags: ["people"],
        summary: "Change a person's role or merchant account, or disable them; the last owner stays",
        params: Type.Object({ id: Type.String({ pattern: "^usr_[0-9A-Za-z]{22}$" }) }),
        body: Type.Object(
          {
            role: Type.Optional(RoleName),
            status: Type.Optional(Type.Union([Type.Literal("active"), Type.Literal("disabled")])),
            merchant_account_id: Type.Optional(Nullable(MerchantAccountId)),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Ok(UserView), "4xx": ErrorEnvelope },
      },
      preValidation: requireSession(services, POLICY["users.update"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.people.update(userCtxOf(request), request.params.id, request.body),
    }),
  );
}
