import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, requireSession, userCtxOf } from "../auth.ts";
import { EnvironmentExpiryPolicy, ErrorEnvelope, ExpiryPolicyDoc, Ok, TotpCode } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

/** Any of an environment's fields; those left out stay as they are. */
const EnvironmentPatch = Type.Partial(EnvironmentExpiryPolicy, {
  additionalProperties: false,
  minProperties: 1,
});

export default function updateExpiryPolicy(app: App, { services }: RouteDeps) {
  app.patch(
    "/v1/policies/expiry",
    {
      schema: {
        tags: ["policies"],
        summary: "Change the expiry policy of live or test keys (owners, with a fresh two-factor code)",
        body: Type.Object(
          {
            live: Type.Optional(EnvironmentPatch),
            test: Type.Optional(EnvironmentPatch),
            totp_code: Type.Optional(TotpCode),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Ok(ExpiryPolicyDoc), "4xx": ErrorEnvelope },
      },
      preValidation: requireSession(services, POLICY["policies.expiry_update"]),
    },
    async (request) => {
      const { totp_code: _, ...patch } = request.body;
      return {
        success: true as const,
        data: await services.expiryPolicies.update(companyOf(request), patch, userCtxOf(request)),
      };
    },
  );
}
