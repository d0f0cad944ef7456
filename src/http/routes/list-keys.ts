import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import {
  Environment,
  ErrorEnvelope,
  ExternalId,
  KeyView,
  MerchantAccountId,
  Ok,
  Page,
  pageOf,
} from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function listKeys(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/keys",
    {
      schema: {
        tags: ["keys"],
        summary: "List the company's API keys (prefixes only, never a key or secret), newest first",
        querystring: Type.Object(
          {
            credential_id: Type.Optional(Type.String({ pattern: "^cred_[0-9A-Za-z]{22}$" })),
            environment: Type.Optional(Environment),
            status: Type.Optional(
              Type.Union([Type.Literal("active"), Type.Literal("revoked"), Type.Literal("expired")]),
            ),
            external_id: Type.Optional(ExternalId),
            merchant_account_id: Type.Optional(MerchantAccountId),
            ...Page,
          },
          { additionalProperties: false },
        ),
        response: {
          200: Ok(
            Type.Object({ keys: Type.Array(KeyView), next_cursor: Type.Union([Type.String(), Type.Null()]) }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["keys.list"]),
    },
    async (request) => {
      const q = request.query;
      return {
        success: true as const,
        data: await services.keys.list(
          companyOf(request),
          {
            credentialId: q.credential_id,
            environment: q.environment,
            status: q.status,
            externalId: q.external_id,
            merchantAccountId: q.merchant_account_id,
          },
          pageOf(q),
          actorOf(request),
        ),
      };
    },
  );
}
