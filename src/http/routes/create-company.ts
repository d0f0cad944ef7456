import { Type } from "typebox";
import { ctxOf, requirePlatform } from "../auth.ts";
import { CreatedKey, Email, ErrorEnvelope, Name, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function createCompany(app: App, { services, platformTokens, controlToken }: RouteDeps) {
  app.post(
    "/v1/admin/companies",
    {
      schema: {
        tags: ["platform"],
        summary: "Create a company with its owner, default API credential and management key",
        security: [{ bearer: [] }],
        body: Type.Object(
          {
            name: Name,
            owner_email: Email,
          },
          { additionalProperties: false },
        ),
        response: {
          201: Ok(
            Type.Object({
              company: Type.Object({
                id: Type.String(),
                name: Type.String(),
                slug: Type.String(),
                created_at: Type.String(),
              }),
              owner: Type.Object({
                id: Type.String(),
                email: Type.String(),
                existing_login: Type.Boolean(),
                temporary_password: Type.Optional(Type.String()),
                /** An existing login's ownership waits for its person to accept it with this link. */
                accept_link: Type.Optional(Type.String()),
              }),
              default_credential: Type.Object({ id: Type.String(), username: Type.String() }),
              default_test_credential: Type.Object({ id: Type.String(), username: Type.String() }),
              management_key: CreatedKey,
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      onRequest: requirePlatform(platformTokens, controlToken),
    },
    async (request, reply) => {
      const data = await services.companies.create(request.body, ctxOf(request));
      return reply.status(201).send({ success: true, data });
    },
  );
}
