import { Type } from "typebox";
import { VERIFY_CODES, type VerifyCode } from "../../core/errors.ts";
import { verifierScope } from "../../services/verification.ts";
import { actorOf, requireCaller } from "../auth.ts";
import { Environment, ErrorEnvelope, Meta, Nullable, Ok, RateLimitState } from "../schemas.ts";
import type { App } from "../types.ts";
import { replayedBody } from "../verify-fast-path.ts";
import { VERIFY_ACCESS, VerifyBody } from "../verify-request.ts";
import type { RouteDeps } from "./deps.ts";

export default function verifyKey(app: App, { services, metrics }: RouteDeps) {
  app.post(
    "/v1/verify",
    {
      schema: {
        tags: ["verification"],
        summary: "Is this key (or key + secret, or username + password) good for this request?",
        description:
          "Always 200 for a well-formed question; the answer is in `valid` and `code`. A company's key " +
          "verifies only its own company's keys; a platform verify key verifies any. A valid request counts " +
          "against the key's and its API user's rate limits; over a limit the answer is `RATE_LIMITED`, and " +
          "`rate_limit` gives what to pass on as RateLimit-* and Retry-After headers. A key with credits spends " +
          "`cost` (default 1) of them on a request allowed in every other way, and with too few left the " +
          "answer is `USAGE_EXCEEDED`, spending nothing; `remaining` is what is left.",
        body: VerifyBody,
        response: {
          200: Ok(
            Type.Object({
              valid: Type.Boolean(),
              code: Type.Unsafe<VerifyCode>({ type: "string", enum: [...VERIFY_CODES] }),
              key_id: Nullable(Type.String()),
              credential_id: Nullable(Type.String()),
              company_id: Nullable(Type.String()),
              environment: Nullable(Environment),
              merchant_account_id: Nullable(
                Type.String({ description: "the merchant account the key acts within; null: company-level" }),
              ),
              permissions: Type.Array(Type.String()),
              expires_at: Nullable(Type.String()),
              rate_limit: Nullable(RateLimitState),
              remaining: Nullable(
                Type.Integer({ description: "credits left after this request; null: unlimited" }),
              ),
              meta: Nullable(Meta),
              external_id: Nullable(Type.String()),
              ip_restricted: Type.Boolean({
                description:
                  "Whether the key or its API user has an IP allowlist, so that the answer depends on `ip`. " +
                  "When false, a cache may keep the answer once for the key, whatever address asks.",
              }),
            }),
          ),
          "4xx": ErrorEnvelope,
        },
      },
      // A gateway verifies every request it serves: one log line each would drown everything else.
      // Usage counts them; errors are still logged.
      logLevel: "warn",
      // A body the fast path (verify-fast-path.ts) read and handed over is read again from its copy.
      preParsing: (request, _reply, payload, done) => done(null, replayedBody(request.raw) ?? payload),
      preValidation: requireCaller(services, VERIFY_ACCESS),
    },
    async (request) => {
      const actor = actorOf(request);
      const data = await services.verification.verify(request.body, verifierScope(actor));
      metrics.verified(data.code);
      return { success: true as const, data };
    },
  );
}
