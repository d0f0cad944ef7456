import { Readable } from "node:stream";
import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";
import { AuditQuery, auditFilters } from "./list-audit.ts";

export default function exportAudit(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/audit/export",
    {
      schema: {
        tags: ["audit"],
        summary: "The whole trail as NDJSON, oldest first, streamed",
        querystring: Type.Object(AuditQuery, { additionalProperties: false }),
      },
      preValidation: requireCaller(services, POLICY["audit.export"]),
    },
    async (request, reply) => {
      const f = auditFilters(request.query);
      const events = services.audit.export(companyOf(request), actorOf(request));
      async function* lines() {
        for await (const e of events) {
          if (
            f.action &&
            !(f.action.endsWith(".*") ? e.action.startsWith(f.action.slice(0, -1)) : e.action === f.action)
          )
            continue;
          if (f.actor && e.actor.id !== f.actor && e.actor.label !== f.actor) continue;
          if (f.target && e.target?.id !== f.target) continue;
          if (f.since && new Date(e.at) < f.since) continue;
          if (f.until && new Date(e.at) >= f.until) continue;
          yield `${JSON.stringify(e)}\n`;
        }
      }
      reply.type("application/x-ndjson");
      return reply.send(Readable.from(lines()));
    },
  );
}
