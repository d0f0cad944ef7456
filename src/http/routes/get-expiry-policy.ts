import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, ExpiryPolicyDoc, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function getExpiryPolicy(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/policies/expiry",
    {
      schema: {
        tags: ["policies"],
        summary: "The company's expiry policy per environment, and the active keys that do not comply",
        response: { 200: Ok(ExpiryPolicyDoc), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["policies.expiry_get"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.expiryPolicies.get(companyOf(request), actorOf(request)),
    }),
  );
}
