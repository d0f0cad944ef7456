import { Type } from "typebox";
import type { App } from "../app.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { AllowedIps, CredentialView, Description, ErrorEnvelope, Name, Ok, Permissions } from "../schemas.ts";
import type { RouteDeps } from "./deps.ts";

export default function createCredential(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/credentials",
    {
      schema: {
        tags: ["credentials"],
        summary: "Create a dedicated API user (never a human login)",
        body: Type.Object(
          {
            name: Name,
            description: Type.Optional(Description),
            permissions: Permissions,
            allowed_ips: Type.Optional(AllowedIps),
          },
          { additionalProperties: false },
        ),
        response: { 201: Ok(CredentialView), "4xx": ErrorEnvelope },
      },
      preHandler: requireCaller(services, { all: ["credentials:manage"] }),
    },
    async (request, reply) => {
      const data = await services.credentials.create(companyOf(request), request.body, ctxOf(request));
      return reply.status(201).send({ success: true, data });
    },
  );
}
