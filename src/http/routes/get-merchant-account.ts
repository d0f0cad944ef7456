import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, MerchantAccountIdParams, MerchantAccountView, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function getMerchantAccount(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/merchant-accounts/:id",
    {
      schema: {
        tags: ["merchant-accounts"],
        summary: "Get one merchant account, with how many API users and keys it has",
        params: MerchantAccountIdParams,
        response: { 200: Ok(MerchantAccountView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["merchant_accounts.get"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.merchantAccounts.get(companyOf(request), request.params.id, actorOf(request)),
    }),
  );
}
