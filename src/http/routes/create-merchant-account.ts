import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, MerchantAccountCode, MerchantAccountView, Name, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function createMerchantAccount(app: App, { services }: RouteDeps) {
  app.post(
    "/v1/merchant-accounts",
    {
      schema: {
        tags: ["merchant-accounts"],
        summary: "Create a merchant account, within which its API users and their keys act",
        description:
          "A merchant account is company-wide: it has live and test API users under it. Its `code` is " +
          "unique within the company and fixed. A merchant account's own caller cannot create one.",
        body: Type.Object({ name: Name, code: MerchantAccountCode }, { additionalProperties: false }),
        response: { 201: Ok(MerchantAccountView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["merchant_accounts.create"]),
    },
    async (request, reply) => {
      const data = await services.merchantAccounts.create(companyOf(request), request.body, ctxOf(request));
      return reply.status(201).send({ success: true, data });
    },
  );
}
