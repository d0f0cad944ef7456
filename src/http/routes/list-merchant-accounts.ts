import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, MerchantAccountView, Ok, Page, pageOf } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function listMerchantAccounts(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/merchant-accounts",
    {
      schema: {
        tags: ["merchant-accounts"],
        summary: "List the company's merchant accounts, newest first (a merchant account's caller: its own)",
        querystring: Type.Object(
          {
            status: Type.Optional(Type.Union([Type.Literal("active"), Type.Literal("inactive")])),
            ...Page,
          },
          { additionalProperties: false },
        ),
        response: {
          200: Ok(
            Type.Object({
              merchant_accounts: Type.Array(MerchantAccountView),
              next_cursor: Type.Union([Type.String(), Type.Null()]),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["merchant_accounts.list"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.merchantAccounts.list(
        companyOf(request),
        { status: request.query.status },
        pageOf(request.query),
        actorOf(request),
      ),
    }),
  );
}
