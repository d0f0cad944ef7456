import { Type } from "typebox";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export default function health(app: App, { health }: RouteDeps) {
  app.get(
    "/healthz",
    {
      schema: {
        tags: ["operations"],
        summary: "Liveness, the store in use and, in cluster mode, whether this node hears the others",
        description:
          "`degraded` means this node cannot reach Redis: it still answers correctly, but keeps cached keys only briefly and counts rate limits as configured for that case.",
        security: [],
        response: {
          200: Type.Object(
            { status: Type.Union([Type.Literal("ok"), Type.Literal("degraded")]) },
            { additionalProperties: true },
          ),
        },
      },
    },
    async () => ({ status: "ok" as const, ...health() }),
  );
}
