import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, KeyIdParams, KeyView, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function getKey(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/keys/:id",
    {
      schema: {
        tags: ["keys"],
        summary: "Get one API key's metadata",
        params: KeyIdParams,
        response: { 200: Ok(KeyView), "4xx": ErrorEnvelope },
      },
      preValidation: requireCaller(services, POLICY["keys.get"]),
    },
    async (request) => ({
      success: true as const,
      data: await services.keys.get(companyOf(request), request.params.id, actorOf(request)),
    }),
  );
}
