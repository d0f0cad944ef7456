import { Type } from "typebox";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

const MESSAGE = "If that email belongs to an active account, a link to reset its password is on its way.";

export default function forgotPassword(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/auth/forgot-password",
    {
      schema: {
        tags: ["people"],
        summary: "Ask for a password reset link by email; the same 202 whether or not the account exists",
        description:
          "Rate-limited per email (3 per 15 minutes, 10 a day) and per address (20 per 15 minutes, 100 a day), " +
          "known or not. The link works once, for an hour. Without SMTP it is printed to the operator's log.",
        security: [],
        body: Type.Object(
          { email: Type.String({ minLength: 3, maxLength: 254 }) },
          { additionalProperties: false },
        ),
        response: { 202: Ok(Type.Object({ message: Type.String() })), "4xx": ErrorEnvelope },
      },
    },
    async (request, reply) => {
      await services.people.forgotPassword(
        request.body.email,
        request.clientIp || null,
        request.headers["user-agent"] ?? null,
      );
      return reply.status(202).send({ success: true, data: { message: MESSAGE } });
    },
  );
}
