import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { requireSession, userOf } from "../auth.ts";
import { ErrorEnvelope, Ok, UserView } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function listUsers(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/users",
    {
      schema: {
        tags: ["people"],
        summary: "The company's people",
        response: { 200: Ok(Type.Object({ users: Type.Array(UserView) })), "4xx": ErrorEnvelope },
      },
      preValidation: requireSession(services, POLICY["users.list"]),
    },
    async (request) => ({
      success: true as const,
      data: { users: await services.people.list(userOf(request)) },
    }),
  );
}
