import { Type } from "typebox";
import { POLICY } from "../../core/access/policy.ts";
import { actorOf, companyOf, requireCaller } from "../auth.ts";
import { AuditEvent, DateTime, ErrorEnvelope, MerchantAccountId, Ok } from "../schemas.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

export const AuditQuery = {
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 254 })),
  action: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: "^[a-z_.*]+$" })),
  target: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  since: Type.Optional(DateTime),
  until: Type.Optional(DateTime),
};

export function auditFilters(q: {
  actor?: string;
  action?: string;
  target?: string;
  since?: string;
  until?: string;
}) {
  return {
    actor: q.actor,
    action: q.action,
    target: q.target,
    since: q.since ? new Date(q.since) : undefined,
    until: q.until ? new Date(q.until) : undefined,
  };
}

export default function listAudit(app: App, { services }: RouteDeps) {
  app.get(
    "/v1/audit",
    {
      schema: {
        tags: ["audit"],
        summary: "The company's audit trail, newest first",
        querystring: Type.Object(
          {
            ...AuditQuery,
            merchant_account_id: Type.Optional(MerchantAccountId),
            limit: Type.Optional(Type.String({ pattern: "^(?:[1-9]|[1-9][0-9]|[1-4][0-9][0-9]|500)$" })),
            cursor: Type.Optional(Type.String({ pattern: "^[1-9][0-9]{0,15}$" })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Ok(
            Type.Object({
              events: Type.Array(AuditEvent),
              next_cursor: Type.Union([Type.String(), Type.Null()]),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      preValidation: requireCaller(services, POLICY["audit.list"]),
    },
    async (request) => {
      const q = request.query;
      return {
        success: true as const,
        data: await services.audit.list(
          companyOf(request),
          { ...auditFilters(q), merchantAccountId: q.merchant_account_id },
          {
            limit: q.limit ? Number(q.limit) : 50,
            cursor: q.cursor ? Number(q.cursor) : undefined,
          },
          actorOf(request),
        ),
      };
    },
  );
}
