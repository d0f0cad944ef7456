import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import { setSessionCookie } from "../session-cookie.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function changePassword(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/auth/password",
    {
      schema: {
        tags: ["people"],
        summary: "Change your password; the session is replaced and your other sessions end",
        body: Type.Object(
          {
            current_password: Type.String({ minLength: 1, maxLength: 256 }),
            new_password: Type.String({ minLength: 1, maxLength: 256 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Ok(Type.Object({ csrf_token: Type.String() })), "4xx": ErrorEnvelope },
      },
      preValidation: requireSession(services, POLICY["auth.password"]),
    },
    async (request, reply) => {
      const session = await services.people.changePassword(
        userCtxOf(request),
        request.body.current_password,
        request.body.new_password,
      );
      setSessionCookie(reply, request, session);
      return { success: true as const, data: { csrf_token: session.csrf_token } };
    },
  );
}
