import { Type } from "typebox";
import { ErrorEnvelope, Ok, TotpCode } from "../schemas.ts";
import { setSessionCookie } from "../session-cookie.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function login(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/auth/login",
    {
      schema: {
        tags: ["people"],
        summary: "Sign in with email and password (and a TOTP or recovery code once enrolled)",
        security: [],
        body: Type.Object(
          {
            email: Type.String({ minLength: 3, maxLength: 254 }),
            password: Type.String({ minLength: 1, maxLength: 256 }),
            totp_code: Type.Optional(TotpCode),
          },
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
              password_change_required: Type.Boolean(),
              totp_enrolled: Type.Boolean(),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
    },
    async (request, reply) => {
      const result = await services.people.login(
        request.body,
        request.clientIp || null,
        request.headers["user-agent"] ?? null,
      );
      setSessionCookie(reply, request, result.session);
      return {
        success: true as const,
        data: {
          user: { id: result.user.id, email: result.user.email },
          company: result.company,
          role: result.user.role,
          csrf_token: result.session.csrf_token,
          expires_at: result.session.expires_at,
          password_change_required: result.user.password_change_required,
          totp_enrolled: result.user.totp_enrolled,
        },
      };
    },
  );
}
