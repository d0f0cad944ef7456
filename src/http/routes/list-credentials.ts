import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import {
  CredentialView,
  Environment,
  ErrorEnvelope,
  MerchantAccountId,
  Ok,
  Page,
  pageOf,
} from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function listCredentials(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/credentials",
    {
      schema: {
        tags: ["credentials"],
        summary: "List the company's API credentials, newest first",
        querystring: Type.Object(
          {
            environment: Type.Optional(Environment),
            merchant_account_id: Type.Optional(MerchantAccountId),
            ...Page,
          },
          { additionalProperties: false },
        ),
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
      preValidation: requireCaller(services, POLICY["credentials.list"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.credentials.list(
        companyOf(request),
        { environment: request.query.environment, merchant_account_id: request.query.merchant_account_id },
        pageOf(request.query),
        actorOf(request),
      ),
    }),
  );
}
