import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import { setSessionCookie } from "../session-cookie.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function totpConfirm(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/auth/totp/confirm",
    {
      schema: {
        tags: ["people"],
        summary: "Finish enrolment with a first code; returns ten single-use recovery codes, shown once",
        body: Type.Object({ code: Type.String({ pattern: "^\\d{6}$" }) }, { additionalProperties: false }),
        response: {
          200: Ok(Type.Object({ recovery_codes: Type.Array(Type.String()), csrf_token: Type.String() })),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireSession(services, POLICY["auth.totp_confirm"]),
    },
    async (request, reply) => {
      const result = await services.people.totpConfirm(userCtxOf(request), request.body.code);
      setSessionCookie(reply, request, result.session);
      return {
        success: true as const,
        data: { recovery_codes: result.recovery_codes, csrf_token: result.session.csrf_token },
      };
    },
  );
}
