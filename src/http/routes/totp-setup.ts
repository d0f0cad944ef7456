import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function totpSetup(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/auth/totp/setup",
    {
      schema: {
        tags: ["people"],
        summary: "Start two-factor enrolment: a TOTP secret, its otpauth:// URL and a QR code",
        description:
          "Answers the same pending secret until enrolment is confirmed, so a code scanned before a reload " +
          "still works; `{restart: true}` makes a new one on purpose.",
        body: Type.Object({ restart: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
        response: {
          200: Ok(Type.Object({ secret: Type.String(), otpauth_url: Type.String(), qr_svg: Type.String() })),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireSession(services, POLICY["auth.totp_setup"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.people.totpSetup(userCtxOf(request), { restart: request.body.restart }),
    }),
  );
}
