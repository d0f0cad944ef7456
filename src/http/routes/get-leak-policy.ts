import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { LeakPolicyView } from "../../core/views.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function getLeakPolicy(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/policies/leaks",
    {
      schema: {
        tags: ["leaks"],
        summary: "What happens to a leaked key, per environment (a test caller sees test only)",
        response: {
          200: Ok(Type.Object({ policies: Type.Array(LeakPolicyView) })),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["leak_policy.get"]),
    },
    async (request) => ({
      success: true as const,
      data: { policies: await services.leaks.policies(companyOf(request), actorOf(request)) },
    }),
  );
}
