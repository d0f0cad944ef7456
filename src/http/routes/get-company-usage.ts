import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { CompanyUsage, Environment, ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function getCompanyUsage(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/usage",
    {
      schema: {
        tags: ["keys"],
        summary: "The company's requests per day (UTC), summed over its keys",
        description:
          "The same counts as `GET /v1/keys/:id/usage`, added up over every key the caller may see: a test " +
          "caller counts test keys only; a live caller both environments, or the one `environment` names.",
        querystring: Type.Object(
          {
            days: Type.Optional(
              Type.String({ pattern: "^(?:[1-9]|[1-8][0-9]|90)$", description: "1 to 90, default 30" }),
            ),
            environment: Type.Optional(Environment),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Ok(CompanyUsage),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["usage.company"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.keys.companyUsage(
        companyOf(request),
        request.query.days ? Number(request.query.days) : 30,
        request.query.environment,
        actorOf(request),
      ),
    }),
  );
}
