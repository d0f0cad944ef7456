import type { FastifyReply, FastifyRequest } from "fastify";
import { POLICY, type Policy } from "../../core/access/policy.ts";
import { LatchkeyError } from "../../core/errors.ts";
import { formatIp, parseIp } from "../../core/ip.ts";
import { windowMs } from "../../core/rate-limit.ts";
import { ROUTE_METHODS } from "../../core/routes.ts";
import type { Authorization } from "../../services/authorization.ts";
import { verifierScope } from "../../services/verification.ts";
import { authorizeKeyCaller, presentedCredentials } from "../auth.ts";
import { latchkeyErrorReply, unexpectedErrorReply } from "../errors.ts";
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

const PREFIX = "/v1/authorize";
const WWW_AUTHENTICATE = 'Bearer realm="api"';

function single(request: FastifyRequest, name: string): string | undefined | null {
  const value = request.headers[name];
  if (Array.isArray(value)) return null;
  return value === "" ? undefined : value;
}

/**
 * The route the client asked for. Envoy's form (a path under the prefix) says it in the request line,
 * and then no header is read. Otherwise the gateway's headers: `X-Original-Method` + `X-Original-URI`
 * (nginx, as the shipped configuration sets them) or `X-Forwarded-Method` + `X-Forwarded-Uri` (Traefik,
 * Caddy). A gateway sets its own pair but passes the client's other headers on, so a client could add
 * the other pair: when both are there they must agree, or nothing is authorized.
 */
function routeOf(request: FastifyRequest): { method: string; url: string } | null {
  const url = request.raw.url ?? "";
  const rest = url.slice(PREFIX.length);
  if (rest.startsWith("/")) return { method: request.method, url: rest };
  const claims: { method: string; url: string }[] = [];
  for (const [methodHeader, uriHeader] of [
    ["x-original-method", "x-original-uri"],
    ["x-forwarded-method", "x-forwarded-uri"],
  ] as const) {
    const uri = single(request, uriHeader);
    const method = single(request, methodHeader);
    if (uri === null || method === null) return null;
    if (uri === undefined && method === undefined) continue;
    if (uri === undefined || method === undefined) return null;
    claims.push({ method: method.toUpperCase(), url: uri });
  }
  const [first, ...others] = claims;
  if (first === undefined) return null;
  return others.every((c) => c.method === first.method && c.url === first.url) ? first : null;
}

/** A gateway serving one environment (a live host, a test host) says so; a key of the other is refused. */
function environmentOf(request: FastifyRequest): "live" | "test" | undefined {
  const given = single(request, "latchkey-environment");
  if (given === undefined || given === "live" || given === "test") return given;
  throw new LatchkeyError("VALIDATION_ERROR", 'Latchkey-Environment must be "live" or "test".', {
    field: "latchkey-environment",
  });
}

/** The gateway's own address: its verify key's allowlist is about it, not about its clients. */
function peerOf(request: FastifyRequest): string {
  const peer = request.socket.remoteAddress ?? "";
  const parsed = parseIp(peer);
  return parsed === null ? peer : formatIp(parsed);
}

function setRateLimitHeaders(reply: FastifyReply, limit: Authorization["result"]["rate_limit"]): void {
  if (limit === null) return;
  reply.header("ratelimit-limit", String(limit.limit));
  reply.header("ratelimit-remaining", String(limit.remaining));
  reply.header("ratelimit-reset", String(limit.reset));
  reply.header("ratelimit-policy", `${limit.limit};w=${(windowMs(limit.window) ?? 0) / 1000}`);
  if (limit.retry_after !== null) reply.header("retry-after", String(limit.retry_after));
}

/**
 * nginx's `auth_request` passes on only a 401 or a 403 (anything else becomes a 500) and drops the
 * body. A gateway that says `Latchkey-Gateway: nginx` gets every other refusal as a 403, with the real
 * status in `Latchkey-Status` and the envelope in `Latchkey-Error`, which the shipped configuration
 * sends on to the client as they were.
 */
function sendRefusal(request: FastifyRequest, reply: FastifyReply, err: unknown) {
  const answer =
    err instanceof LatchkeyError
      ? latchkeyErrorReply(err, request.id)
      : unexpectedErrorReply(err, request.id, (e) => request.log.error({ err: e }, "unhandled error"));
  if (answer.retryAfter !== null) reply.header("retry-after", String(answer.retryAfter));
  let status = answer.status;
  if (single(request, "latchkey-gateway") === "nginx") {
    // A header carries Latin-1 only: anything beyond ASCII is escaped, which JSON reads back the same.
    const body = JSON.stringify(answer.body).replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
    reply.header("latchkey-status", String(status));
    reply.header("latchkey-error", body);
    if (status !== 401 && status !== 403) status = 403;
  }
  return reply.code(status).type("application/json").send(answer.body);
}

function authorize(services: RouteDeps["services"], metrics: RouteDeps["metrics"], access: Policy) {
  const decide = decideFor(services, metrics, access);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      return await decide(request, reply);
    } catch (err) {
      return sendRefusal(request, reply, err);
    }
  };
}

function decideFor(services: RouteDeps["services"], metrics: RouteDeps["metrics"], access: Policy) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const verifyKey = single(request, "latchkey-verify-key");
    if (!verifyKey) {
      throw new LatchkeyError("UNAUTHORIZED", "The gateway must send its verify key in Latchkey-Verify-Key.");
    }
    const gateway = await authorizeKeyCaller(services, access, { key: verifyKey }, peerOf(request));
    if (gateway.refusal !== null) {
      if (gateway.refusal.code === "UNAUTHORIZED")
        throw new LatchkeyError(
          "UNAUTHORIZED",
          "The gateway's Latchkey-Verify-Key is not a valid verify key.",
        );
      throw gateway.refusal;
    }
    const route = routeOf(request);
    if (route === null) throw new LatchkeyError("ROUTE_UNKNOWN");
    const environment = environmentOf(request);
    const presented = presentedCredentials(request.headers);
    if (presented === null) {
      reply.header("www-authenticate", WWW_AUTHENTICATE);
      throw new LatchkeyError("UNAUTHORIZED", "Missing or invalid API key.");
    }
    const { result, refusal } = await services.authorization.authorize(
      { ...presented, ip: request.clientIp, environment, method: route.method, url: route.url },
      verifierScope(gateway.actor),
    );
    // A verification of the client's key, as /v1/verify's are counted.
    metrics.verified(result.code);
    setRateLimitHeaders(reply, result.rate_limit);
    if (refusal !== null) {
      if (refusal.code === "UNAUTHORIZED") reply.header("www-authenticate", WWW_AUTHENTICATE);
      throw new LatchkeyError(refusal.code, refusal.message, refusal.details);
    }
    // Always all four, empty when there is none (an API user's password has no key id): a gateway that
    // copies a header it did not get may pass on the client's own, or (Caddy 2.6) a placeholder.
    reply.header("latchkey-key-id", result.key_id ?? "");
    reply.header("latchkey-credential-id", result.credential_id ?? "");
    reply.header("latchkey-company-id", result.company_id ?? "");
    reply.header("latchkey-environment", result.environment ?? "");
    return reply.code(200).send();
  };
}

export default function authorizeRequest(app: App, { services, metrics }: RouteDeps) {
  for (const [url, access] of [
    [PREFIX, POLICY["keys.authorize"]],
    [`${PREFIX}/*`, POLICY["keys.authorize_path"]],
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
        ...(url === PREFIX ? {} : { hide: true }),
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
