import type { FastifyReply, FastifyRequest } from "fastify";
import { POLICY, type Policy } from "../../core/access/policy.ts";
import { LatchkeyError } from "../../core/errors.ts";
import { ROUTE_METHODS } from "../../core/routes.ts";
import { AUTHORIZE_PREFIX, authorizeAnswer } from "../authorize-answer.ts";
import type { App } from "../types.ts";
import type { RouteDeps } from "./deps.ts";

/**
 * Forward auth, one endpoint for every gateway: nginx `auth_request`, Traefik `forwardAuth` and Caddy
 * `forward_auth` call `/v1/authorize` (a GET with no body) and say which route the client asked for
 * in headers; Envoy's `ext_authz` sends the client's own method to `/v1/authorize` + the client's path.
 * The gateway proves itself with a verify key in `Latchkey-Verify-Key`: the request's `Authorization`
 * and `X-API-Key` are its client's. A 2xx lets the request through, with an empty body (nginx keeps
 * its connection to the authorizer only then) and the identity in headers for the upstream.
 */

/** Answers in the route's onRequest hook, before any body is read; the decision is authorize-answer.ts's. */
function authorize(services: RouteDeps["services"], metrics: RouteDeps["metrics"], access: Policy) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const answer = await authorizeAnswer(
      { services, metrics, logError: (err) => request.log.error({ err }, "unhandled error") },
      access,
      {
        method: request.method,
        url: request.raw.url ?? "",
        headers: request.headers,
        peer: request.socket.remoteAddress ?? "",
        clientIp: request.clientIp,
        requestId: request.id,
      },
    );
    reply.code(answer.status);
    const headers = answer.headers;
    for (let i = 0; i < headers.length; i += 2) reply.header(headers[i] as string, headers[i + 1] as string);
    return answer.body.length === 0 ? reply.send() : reply.send(answer.body);
  };
}

export default function authorizeRequest(app: App, { services, metrics }: RouteDeps) {
  for (const [url, access] of [
    [AUTHORIZE_PREFIX, POLICY["keys.authorize"]],
    [`${AUTHORIZE_PREFIX}/*`, POLICY["keys.authorize_path"]],
  ] as const) {
    app.route({
      method: [...ROUTE_METHODS],
      url,
      exposeHeadRoute: false,
      schema: {
        tags: ["verification"],
        summary: "Forward auth: may this request of the gateway's client pass?",
        description:
          "For nginx auth_request, Traefik forwardAuth, Caddy forward_auth (the route in X-Original-Method + " +
          "X-Original-URI or X-Forwarded-Method + X-Forwarded-Uri) and Envoy ext_authz (the client's method, " +
          "and its path after /v1/authorize). The gateway sends its verify key in Latchkey-Verify-Key; the " +
          "client's key is read from the client's own headers. 200 (empty body, identity in Latchkey-* " +
          "headers), 401 with WWW-Authenticate, 403, or 429 with Retry-After.",
        security: [{ verifyKey: [] }],
        // Envoy's form, a path under the prefix, is the same endpoint; one entry documents both.
        ...(url === AUTHORIZE_PREFIX ? {} : { hide: true }),
      },
      // As /v1/verify: a gateway asks once per request it serves. Usage counts them; errors are logged.
      logLevel: "warn",
      // Answered before any body is read: a gateway's request carries none worth reading (Envoy may pass
      // the client's), and whatever it is must not decide the answer.
      onRequest: authorize(services, metrics, access),
      handler: async () => {
        throw new LatchkeyError("INTERNAL_ERROR");
      },
    });
  }
}
