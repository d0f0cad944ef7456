import { Type } from "typebox";
import { requirePlatform } from "../auth.ts";
import { ErrorEnvelope } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

/** Prometheus metrics, for the operator's scraper: the admin token, as on every platform route. */
export default function getMetrics(app: App, { metrics, platformTokens, controlToken }: RouteDeps) {
  app.get(
    "/metrics",
    {
      schema: {
        tags: ["operations"],
        summary: "Prometheus metrics in the text exposition format",
        description:
          "Verifications by outcome, request durations by route, the verification cache, store and Redis errors, bus lag, rate-limit decisions, the usage backlog and the process's own metrics. No label carries a key, an id or an address.",
        security: [{ bearer: [] }],
        response: {
          200: Type.String({ description: "text/plain; version=0.0.4: the Prometheus text format" }),
          "4xx": ErrorEnvelope,
        },
      },
      // A scraper asks every few seconds: a log line each would be noise.
      logLevel: "warn",
      onRequest: requirePlatform(platformTokens, controlToken),
    },
    async (_request, reply) => reply.type(metrics.contentType).send(await metrics.scrape()),
  );
}
