import { Type } from "typebox";
import { platformCtx } from "../../services/actor.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

const RECEIVED = "Thank you. The report was received.";

/**
 * Anyone who finds a key may report it (as GitHub's `POST /credentials/revoke` takes any token). The
 * answer is the same 202 whatever the token was, and the report is handled after it is sent, so
 * neither the answer nor its timing says whether a key exists. Rate-limited per client address.
 */
export default function reportLeak(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/leaks",
    {
      schema: {
        tags: ["leaks"],
        summary: "Report a key found in public; 202 whatever it is",
        security: [],
        body: Type.Object(
          {
            token: Type.String({ minLength: 1, maxLength: 256 }),
            url: Type.Optional(Type.String({ maxLength: 2048, description: "where it was found" })),
            source: Type.Optional(Type.String({ maxLength: 200, description: "e.g. a paste site, a forum" })),
          },
          { additionalProperties: false },
        ),
        response: { 202: Ok(Type.Object({ message: Type.String() })), "4xx": ErrorEnvelope },
      },
    },
    async (request, reply) => {
      await services.leaks.submitPublic(request.body, {
        ...platformCtx(),
        ip: request.clientIp || null,
        userAgent: request.headers["user-agent"] ?? null,
      });
      reply.status(202);
      return { success: true as const, data: { message: RECEIVED } };
    },
  );
}
