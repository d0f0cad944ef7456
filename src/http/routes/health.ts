import { Type } from "typebox";
import type { App } from "../app.ts";
import type { RouteDeps } from "./deps.ts";

export default function health(app: App, { health }: RouteDeps) {
  app.get(
    "/healthz",
    {
      schema: {
        tags: ["operations"],
        summary: "Liveness and the store in use",
        security: [],
        response: { 200: Type.Object({ status: Type.Literal("ok") }, { additionalProperties: true }) },
      },
    },
    async () => ({ status: "ok" as const, ...health() }),
  );
}
