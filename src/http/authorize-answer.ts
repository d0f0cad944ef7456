import type { IncomingHttpHeaders } from "node:http";
import type { Policy } from "../core/access/policy.ts";
import { LatchkeyError } from "../core/errors.ts";
import { formatIp, parseIp } from "../core/ip.ts";
import { windowMs } from "../core/rate-limit.ts";
import type { Authorization } from "../services/authorization.ts";
import type { Services } from "../services/services.ts";
import { verifierScope } from "../services/verification.ts";
import { authorizeKeyCaller, presentedCredentials } from "./auth.ts";
import { latchkeyErrorReply, unexpectedErrorReply } from "./errors.ts";
import type { Metrics } from "./metrics.ts";

/**
 * Forward auth's decision, in one place for its two callers: the `/v1/authorize` route (Fastify) and
 * the fast path in front of Fastify (verify-fast-path.ts). Both write exactly what this returns, so
 * their answers cannot drift apart; neither adds anything of its own but `x-request-id`,
 * `cache-control` (first) and `content-length` (last), which every answer of Latchkey carries.
 */

export const AUTHORIZE_PREFIX = "/v1/authorize";
const WWW_AUTHENTICATE = 'Bearer realm="api"';
const JSON_TYPE = "application/json; charset=utf-8";
const EMPTY = Buffer.alloc(0);

/** What a forward-auth request is, as either caller sees it. */
export interface AuthorizeRequest {
  method: string;
  /** The request line's URL, undecoded. */
  url: string;
  headers: IncomingHttpHeaders;
  /** The connection's peer: the gateway. */
  peer: string;
  /** The client's address (X-Forwarded-For / X-Real-IP when the peer is a trusted proxy). */
  clientIp: string;
  requestId: string;
}

/**
 * An answer, ready to write: headers as name, value, name, value, … in the order they go on the wire
 * (a name set twice keeps its place and the later value), after the `first` the caller gave.
 */
export interface AuthorizeAnswer {
  status: number;
  headers: string[];
  /** Empty for a 200, the envelope's JSON for a refusal. */
  body: Buffer;
}

export interface AuthorizeDeps {
  services: Services;
  metrics: Metrics;
  logError: (err: unknown) => void;
}

/** A header given once: "" reads as absent; given twice (an array) is null, which nothing accepts. */
function single(headers: IncomingHttpHeaders, name: string): string | undefined | null {
  const value = headers[name];
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
function routeOf(req: AuthorizeRequest): { method: string; url: string } | null {
  const rest = req.url.slice(AUTHORIZE_PREFIX.length);
  if (rest.startsWith("/")) return { method: req.method, url: rest };
  const original = claimed(req.headers, "x-original-method", "x-original-uri");
  const forwarded = claimed(req.headers, "x-forwarded-method", "x-forwarded-uri");
  if (original === null || forwarded === null) return null;
  if (original === undefined) return forwarded ?? null;
  if (forwarded === undefined) return original;
  return original.method === forwarded.method && original.url === forwarded.url ? original : null;
}

/** One pair's claim: undefined when neither header is there, null when only one is (or one is doubled). */
function claimed(
  headers: IncomingHttpHeaders,
  methodHeader: string,
  uriHeader: string,
): { method: string; url: string } | undefined | null {
  const uri = single(headers, uriHeader);
  const method = single(headers, methodHeader);
  if (uri === null || method === null) return null;
  if (uri === undefined && method === undefined) return undefined;
  if (uri === undefined || method === undefined) return null;
  return { method: method.toUpperCase(), url: uri };
}

/** A gateway serving one environment (a live host, a test host) says so; a key of the other is refused. */
function environmentOf(headers: IncomingHttpHeaders): "live" | "test" | undefined {
  const given = single(headers, "latchkey-environment");
  if (given === undefined || given === "live" || given === "test") return given;
  throw new LatchkeyError("VALIDATION_ERROR", 'Latchkey-Environment must be "live" or "test".', {
    field: "latchkey-environment",
  });
}

/**
 * The gateway's own address: its verify key's allowlist is about it, not about its clients. Remembered:
 * a node hears from a few gateways, and parsing and formatting an address (BigInts) on every request
 * was a visible part of an answer's cost. Bounded all the same, as peers are not ours to choose.
 */
const peers = new Map<string, string>();
function normalPeer(peer: string): string {
  const known = peers.get(peer);
  if (known !== undefined) return known;
  const parsed = parseIp(peer);
  const normal = parsed === null ? peer : formatIp(parsed);
  if (peers.size >= 256) peers.clear();
  peers.set(peer, normal);
  return normal;
}

/** Sets a header as Fastify's reply.header does: a name set again keeps its place and takes the value. */
function put(headers: string[], name: string, value: string): void {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === name) {
      headers[i + 1] = value;
      return;
    }
  }
  headers.push(name, value);
}

function putRateLimit(headers: string[], limit: Authorization["result"]["rate_limit"]): void {
  if (limit === null) return;
  put(headers, "ratelimit-limit", String(limit.limit));
  put(headers, "ratelimit-remaining", String(limit.remaining));
  put(headers, "ratelimit-reset", String(limit.reset));
  put(headers, "ratelimit-policy", `${limit.limit};w=${(windowMs(limit.window) ?? 0) / 1000}`);
  if (limit.retry_after !== null) put(headers, "retry-after", String(limit.retry_after));
}

/**
 * A refusal with the envelope. nginx's `auth_request` passes on only a 401 or a 403 (anything else
 * becomes a 500) and drops the body. A gateway that says `Latchkey-Gateway: nginx` gets every other
 * refusal as a 403, with the real status in `Latchkey-Status` and the envelope in `Latchkey-Error`,
 * which the shipped configuration sends on to the client as they were.
 */
function refusal(
  deps: AuthorizeDeps,
  req: AuthorizeRequest,
  headers: string[],
  err: unknown,
): AuthorizeAnswer {
  const answer =
    err instanceof LatchkeyError
      ? latchkeyErrorReply(err, req.requestId)
      : unexpectedErrorReply(err, req.requestId, deps.logError);
  if (answer.body.error.code === "STORE_UNAVAILABLE") deps.metrics.storeUnavailable();
  if (answer.retryAfter !== null) put(headers, "retry-after", String(answer.retryAfter));
  const body = JSON.stringify(answer.body);
  let status = answer.status;
  if (single(req.headers, "latchkey-gateway") === "nginx") {
    // A header carries Latin-1 only: anything beyond ASCII is escaped, which JSON reads back the same.
    const escaped = body.replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
    put(headers, "latchkey-status", String(status));
    put(headers, "latchkey-error", escaped);
    if (status !== 401 && status !== 403) status = 403;
  }
  put(headers, "content-type", JSON_TYPE);
  return { status, headers, body: Buffer.from(body) };
}

/** Encoded once per cached key's meta object (frozen and shared by its answers). */
const metaHeaders = new WeakMap<object, string>();
function metaHeader(meta: Record<string, unknown> | null): string {
  if (meta === null) return "";
  let encoded = metaHeaders.get(meta);
  if (encoded === undefined) {
    encoded = Buffer.from(JSON.stringify(meta)).toString("base64url");
    metaHeaders.set(meta, encoded);
  }
  return encoded;
}

/**
 * May this request of the gateway's client pass? `access` is the policy of the route it came by
 * (`/v1/authorize` or `/v1/authorize/*`). Never throws: every failure is an answer. `first`: headers
 * the caller writes before these (the fast path's x-request-id and cache-control), in the same form.
 */
export async function authorizeAnswer(
  deps: AuthorizeDeps,
  access: Policy,
  req: AuthorizeRequest,
  first: string[] = [],
): Promise<AuthorizeAnswer> {
  const { services, metrics } = deps;
  // Built on the caller's own first headers, so the fast path writes this array as it is.
  const headers = first;
  try {
    const verifyKey = single(req.headers, "latchkey-verify-key");
    if (!verifyKey) {
      throw new LatchkeyError("UNAUTHORIZED", "The gateway must send its verify key in Latchkey-Verify-Key.");
    }
    const gateway = await authorizeKeyCaller(services, access, { key: verifyKey }, normalPeer(req.peer));
    if (gateway.refusal !== null) {
      if (gateway.refusal.code === "UNAUTHORIZED")
        throw new LatchkeyError(
          "UNAUTHORIZED",
          "The gateway's Latchkey-Verify-Key is not a valid verify key.",
        );
      throw gateway.refusal;
    }
    const route = routeOf(req);
    if (route === null) throw new LatchkeyError("ROUTE_UNKNOWN");
    const environment = environmentOf(req.headers);
    const presented = presentedCredentials(req.headers);
    if (presented === null) {
      put(headers, "www-authenticate", WWW_AUTHENTICATE);
      throw new LatchkeyError("UNAUTHORIZED", "Missing or invalid API key.");
    }
    // Each field named, not `...presented`: built by a spread, this object made the whole answer about
    // twice as slow in-process (it ran at half /v1/verify's rate, and at about the same rate without).
    const { result, refusal: refused } = await services.authorization.authorize(
      {
        key: presented.key,
        secret: presented.secret,
        username: presented.username,
        password: presented.password,
        ip: req.clientIp,
        environment,
        method: route.method,
        url: route.url,
      },
      verifierScope(gateway.actor),
    );
    // A verification of the client's key, as /v1/verify's are counted.
    metrics.verified(result.code);
    putRateLimit(headers, result.rate_limit);
    if (refused !== null) {
      if (refused.code === "UNAUTHORIZED") put(headers, "www-authenticate", WWW_AUTHENTICATE);
      throw new LatchkeyError(refused.code, refused.message, refused.details);
    }
    // Always all four, empty when there is none (an API user's password has no key id): a gateway that
    // copies a header it did not get may pass on the client's own, or (Caddy 2.6) a placeholder.
    put(headers, "latchkey-key-id", result.key_id ?? "");
    put(headers, "latchkey-credential-id", result.credential_id ?? "");
    put(headers, "latchkey-company-id", result.company_id ?? "");
    put(headers, "latchkey-environment", result.environment ?? "");
    // Empty for a company-level key, for the same reason.
    put(headers, "latchkey-merchant-account-id", result.merchant_account_id ?? "");
    // The platform's own data on the key, as always-present headers too. The external id is visible
    // ASCII by construction; meta is JSON, which may hold newlines and any Unicode, so it goes as
    // base64url, which no header can be broken by.
    put(headers, "latchkey-external-id", result.external_id ?? "");
    put(headers, "latchkey-credits-remaining", result.remaining === null ? "" : String(result.remaining));
    put(headers, "latchkey-meta", metaHeader(result.meta));
    return { status: 200, headers, body: EMPTY };
  } catch (err) {
    return refusal(deps, req, headers, err);
  }
}
