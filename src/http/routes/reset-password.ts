import { Type } from "typebox";
import { TOKEN_PATTERN } from "../../core/recovery.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function resetPassword(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/auth/reset-password",
    {
      schema: {
        tags: ["people"],
        summary: "Set a new password with the token of a reset or invitation link; the token works once",
        description:
          "The person's sessions end; they then sign in with the new password (and their second factor). " +
          "A used, expired or replaced token answers 400 TOKEN_INVALID.",
        security: [],
        body: Type.Object(
          {
            token: Type.String({ pattern: TOKEN_PATTERN }),
            new_password: Type.String({ minLength: 1, maxLength: 256 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Ok(Type.Object({ email: Type.String() })), "4xx": ErrorEnvelope },
      },
    },
    async (request) => ({
      success: true as const,
      data: await services.people.resetPassword(
        request.body.token,
        request.body.new_password,
        request.clientIp || null,
        request.headers["user-agent"] ?? null,
      ),
    }),
  );
}
