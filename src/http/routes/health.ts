import { Type } from "typebox";
import { storeUnavailable } from "../errors.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

/** How long readiness waits for `SELECT 1`: a load balancer's probe should hear back well within its own timeout. */
const READY_TIMEOUT_MS = 1_000;

export default function health(app: App, { health, ready }: RouteDeps) {
  app.get(
    "/healthz",
    {
      schema: {
        tags: ["operations"],
        summary: "Liveness, the store in use and, in cluster mode, whether this node hears the others",
        description:
          "200 while the process runs, whether or not the store answers (readiness is `/readyz`). `degraded` means this node cannot reach Redis: it still answers correctly, but keeps cached keys only briefly and counts rate limits as configured for that case.",
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

  app.get(
    "/readyz",
    {
      schema: {
        tags: ["operations"],
        summary: "Readiness: whether this node's store answers",
        description:
          "200 when `SELECT 1` answers within a second; 503 `STORE_UNAVAILABLE` with `Retry-After` when it does not, so a load balancer takes the node out until the database is back.",
        security: [],
        response: { 200: Type.Object({ status: Type.Literal("ready") }) },
      },
    },
    async () => {
      try {
        await ready(READY_TIMEOUT_MS);
      } catch {
        throw storeUnavailable();
      }
      return { status: "ready" as const };
    },
  );
}
