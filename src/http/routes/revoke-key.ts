import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { companyOf, ctxOf, requireCaller } from "../auth.ts";
import { ErrorEnvelope, KeyIdParams, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function revokeKey(app: App, { services }: RouteDeps) {
  app.delete(
    "/v1/keys/:id",
    {
      schema: {
        tags: ["keys"],
        summary: "Revoke a key, immediately and for good",
        params: KeyIdParams,
        response: {
          200: Ok(Type.Object({ message: Type.String(), id: Type.String(), revoked_at: Type.String() })),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["keys.revoke"]),
    },
    async (request) => {
      const key = await services.keys.revoke(companyOf(request), request.params.id, ctxOf(request));
      return {
        success: true as const,
        data: { message: "API key revoked successfully", id: key.id, revoked_at: key.revoked_at as string },
      };
    },
  );
}
