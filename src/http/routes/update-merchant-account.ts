import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, MerchantAccountIdParams, MerchantAccountView, Name, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function updateMerchantAccount(app: App, { services }: RouteDeps) {
  app.patch(
    "/v1/merchant-accounts/:id",
    {
      schema: {
        tags: ["merchant-accounts"],
        summary: "Rename a merchant account, or deactivate or reactivate it",
        description:
          "An inactive merchant account's keys and Basic auth passwords stop verifying at once (on " +
          "every node), as an inactive API user's do; reactivating it brings them back.",
        params: MerchantAccountIdParams,
        body: Type.Object(
          {
            name: Type.Optional(Name),
            status: Type.Optional(Type.Union([Type.Literal("active"), Type.Literal("inactive")])),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Ok(MerchantAccountView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["merchant_accounts.update"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.merchantAccounts.update(
        companyOf(request),
        request.params.id,
        request.body,
        ctxOf(request),
      ),
    }),
  );
}
