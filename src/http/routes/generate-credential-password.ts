import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { CredentialIdParams, ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function generateCredentialPassword(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/credentials/:id/password",
    {
      schema: {
        tags: ["credentials"],
        summary: "Generate a Basic auth password (shown once; the previous one stops working at once)",
        params: CredentialIdParams,
        response: {
          200: Ok(
            Type.Object({ username: Type.String(), password: Type.String(), created_at: Type.String() }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["credentials.password"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.credentials.generatePassword(
        companyOf(request),
        request.params.id,
        ctxOf(request),
      ),
    }),
  );
}
