import { Type } from "typebox";
import { EVERY_ROLE } from "../../core/roles.ts";
import { companyOf, requireCaller } from "../auth.ts";
import { CredentialView, ErrorEnvelope, Ok, Page, pageOf } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function listCredentials(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/credentials",
    {
      schema: {
        tags: ["credentials"],
        summary: "List the company's API credentials, newest first",
        querystring: Type.Object(Page, { additionalProperties: false }),
        response: {
          200: Ok(
            Type.Object({
              credentials: Type.Array(CredentialView),
              next_cursor: Type.Union([Type.String(), Type.Null()]),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, {
        perms: { any: ["credentials:manage", "keys:manage"] },
        roles: EVERY_ROLE,
      }),
    },
    async (request) => ({
      success: true as const,
      data: await services.credentials.list(companyOf(request), pageOf(request.query)),
    }),
  );
}
