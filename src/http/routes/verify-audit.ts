import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function verifyAudit(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/audit/verify",
    {
      schema: {
        tags: ["audit"],
        summary: "Check the company's hash chain: an edited or deleted event is found",
        response: {
          200: Ok(
            Type.Object({
              valid: Type.Boolean(),
              events_checked: Type.Integer(),
              first_broken_event_id: Type.Union([Type.String(), Type.Null()]),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["audit.verify"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.audit.verifyCompany(companyOf(request), actorOf(request)),
    }),
  );
}
