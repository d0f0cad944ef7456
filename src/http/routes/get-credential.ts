import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { CredentialIdParams, CredentialView, ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function getCredential(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/credentials/:id",
    {
      schema: {
        tags: ["credentials"],
        summary: "Get one API credential",
        params: CredentialIdParams,
        response: { 200: Ok(CredentialView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["credentials.get"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.credentials.get(companyOf(request), request.params.id, actorOf(request)),
    }),
  );
}
