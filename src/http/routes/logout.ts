import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userCtxOf } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import { clearSessionCookie } from "../session-cookie.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function logout(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/auth/logout",
    {
      schema: {
        tags: ["people"],
        summary: "End this session (server-side)",
        response: { 200: Ok(Type.Object({ message: Type.String() })), "4xx": ErrorEnvelope },
      },
      preValidation: requireSession(services, POLICY["auth.logout"]),
    },
    async (request, reply) => {
      await services.people.logout(userCtxOf(request));
      clearSessionCookie(reply);
      return { success: true as const, data: { message: "Signed out" } };
    },
  );
}
