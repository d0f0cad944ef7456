import type { IncomingHttpHeaders } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Policy, Requirement } from "../core/access/policy.ts";
import type { Actor } from "../core/actor.ts";
import { LatchkeyError } from "../core/errors.ts";
import { safeEqual } from "../core/hashing.ts";
import { type LimitDecision, windowMs } from "../core/rate-limit.ts";
import type { Role } from "../core/roles.ts";
import type { Ctx } from "../services/actor.ts";
import type { Services } from "../services/services.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** The caller's address, after the trusted-proxy rule. */
    clientIp: string;
    actor: Actor | null;
    /** Over TLS here, or from a trusted proxy that says it terminated TLS (X-Forwarded-Proto). */
    isHttps: boolean;
  }
}

function firstHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** What a request presents: a key, a key + secret pair or a Basic auth pair. */
export interface Presented {
  key?: string | undefined;
  secret?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
}

/** The key, key + secret pair or Basic auth pair a request carries, or null when it carries none. */
export function presentedCredentials(headers: IncomingHttpHeaders): Presented | null {
  const apiKey = firstHeader(headers, "x-api-key");
  const secret = firstHeader(headers, "x-api-secret");
  if (apiKey !== undefined) return { key: apiKey, secret };
  const auth = firstHeader(headers, "authorization");
  if (!auth) return null;
  const [scheme, value = ""] = auth.split(" ", 2);
  if (scheme?.toLowerCase() === "bearer") return { key: value, secret };
  if (scheme?.toLowerCase() === "basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return { key: "" };
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return { key: "" };
}

/** The RateLimit-* headers (IETF draft names) for where a caller stands, and Retry-After when refused. */
export function rateLimitHeaders(decision: LimitDecision): [string, string][] {
  const headers: [string, string][] = [
    ["ratelimit-limit", String(decision.limit)],
    ["ratelimit-remaining", String(decision.remaining)],
    ["ratelimit-reset", String(decision.resetSeconds)],
    ["ratelimit-policy", `${decision.limit};w=${(windowMs(decision.window) ?? 0) / 1000}`],
  ];
  if (!decision.allowed) headers.push(["retry-after", String(decision.retryAfterSeconds)]);
  return headers;
}

function setRateLimitHeaders(reply: FastifyReply, decision: LimitDecision): void {
  for (const [name, value] of rateLimitHeaders(decision)) reply.header(name, value);
}

export const SESSION_COOKIE = "lk_session";

/** The header with which a person's console says it is switched to Test (or Live, the default). */
const ENVIRONMENT_HEADER = "latchkey-environment";

/** A field of a body that has not been validated yet (auth runs before validation). */
function bodyField(request: FastifyRequest, name: string): unknown {
  const body = request.body;
  return body !== null && typeof body === "object" && !Array.isArray(body)
    ? (body as Record<string, unknown>)[name]
    : undefined;
}

/** The code sent for a step-up, if any; the service doing the change decides whether it needs one. */
function totpCodeOf(request: FastifyRequest): string | undefined {
  const header = request.headers["x-totp-code"];
  if (typeof header === "string" && header !== "") return header;
  const code = bodyField(request, "totp_code");
  return typeof code === "string" ? code : undefined;
}

/** A session acts in live (seeing both worlds) unless its console is switched to Test. */
function sessionEnvironment(request: FastifyRequest): "live" | "test" {
  const given = request.headers[ENVIRONMENT_HEADER];
  if (given === undefined || given === "live") return "live";
  if (given === "test") return "test";
  throw new LatchkeyError("VALIDATION_ERROR", `${ENVIRONMENT_HEADER} must be "live" or "test".`, {
    field: ENVIRONMENT_HEADER,
  });
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Authenticates a session cookie: the session must be live, and a write must carry the session's
 * CSRF token. `allowPending` lets a person who must still change their password reach the auth routes.
 */
async function sessionActor(services: Services, request: FastifyRequest, allowPending = false) {
  const token = request.cookies?.[SESSION_COOKIE];
  if (!token) throw new LatchkeyError("UNAUTHORIZED");
  const found = await services.people.authenticate(token);
  if (!found) throw new LatchkeyError("SESSION_EXPIRED");
  if (!SAFE_METHODS.has(request.method)) {
    const given = request.headers["x-csrf-token"];
    if (!services.people.csrfMatches(found.session, typeof given === "string" ? given : undefined)) {
      throw new LatchkeyError("CSRF_INVALID");
    }
  }
  if (!allowPending && found.user.must_change_password) throw new LatchkeyError("PASSWORD_CHANGE_REQUIRED");
  const actor = { ...found.actor, environment: sessionEnvironment(request) };
  request.actor = actor;
  return { ...found, actor };
}

/**
 * Authenticates a management or verification caller (a key, a Basic auth pair, or a person's session)
 * and checks it may do the route's work, as its POLICY entry says. Any dead or unknown key gets the same
 * 401; IP, permission and role refusals are 403. What a person must show for a change (enrolled 2FA, a
 * step-up code) is checked by the service that makes it.
 */
export function requireCaller(services: Services, access: Policy) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const presented = presentedCredentials(request.headers);
    if (!presented && request.cookies?.[SESSION_COOKIE]) {
      const { actor } = await sessionActor(services, request);
      if (!access.roles?.includes(actor.role)) {
        throw new LatchkeyError(
          "FORBIDDEN",
          access.roles?.length
            ? `This needs the role ${access.roles.join(" or ")}.`
            : "This route takes an API key.",
        );
      }
      return;
    }
    if (!presented) throw new LatchkeyError("UNAUTHORIZED");
    const { actor, limit, refusal } = await authorizeKeyCaller(services, access, presented, request.clientIp);
    if (limit !== null) setRateLimitHeaders(reply, limit);
    if (refusal) throw refusal;
    request.actor = actor;
  };
}

/**
 * Checks a key or Basic auth caller against a route's access rule. The call counts against the
 * caller's rate limits; `limit` says where it stands (RateLimit-* headers), also when it is refused.
 * Any dead or unknown key gets the same 401; IP, permission and rate-limit refusals say what is wrong.
 */
export async function authorizeKeyCaller(
  services: Services,
  access: Policy,
  presented: Presented,
  clientIp: string,
): Promise<
  | { actor: Actor & { kind: "key" | "credential" }; limit: LimitDecision | null; refusal: null }
  | { actor: null; limit: LimitDecision | null; refusal: LatchkeyError }
> {
  const { code, actor, limit } = await services.verification.authenticate({
    key: presented.key,
    secret: presented.secret,
    username: presented.username,
    password: presented.password,
    ip: clientIp,
  });
  const refuse = (refusal: LatchkeyError) => ({ actor: null, limit, refusal });
  if (code === "RATE_LIMITED") {
    return refuse(
      new LatchkeyError("RATE_LIMITED", `Rate limit of ${limit?.limit} per ${limit?.window} reached.`, {
        retry_after: limit?.retryAfterSeconds,
      }),
    );
  }
  if (code === "IP_NOT_ALLOWED") {
    return refuse(
      new LatchkeyError("IP_NOT_ALLOWED", `Requests from ${clientIp} are not allowed for this key.`, {
        ip: clientIp,
      }),
    );
  }
  if (!actor || actor.kind === "platform" || actor.kind === "system" || actor.kind === "user")
    return refuse(new LatchkeyError("UNAUTHORIZED"));
  if (access.caller !== "verifier" && access.caller !== "gateway" && actor.companyId === null) {
    return refuse(new LatchkeyError("FORBIDDEN", "A platform verify key cannot manage a company's objects."));
  }
  const requirement: Requirement = access.perms ?? { all: [] };
  const held = actor.permissionSet ?? new Set(actor.permissions);
  const ok =
    "all" in requirement
      ? requirement.all.every((p) => held.has(p))
      : requirement.any.some((p) => held.has(p));
  if (!ok) {
    const needed = "all" in requirement ? requirement.all : requirement.any;
    return refuse(
      new LatchkeyError(
        "INSUFFICIENT_PERMISSIONS",
        `This needs ${"all" in requirement ? "" : "one of "}${needed.join(", ")}.`,
        { required: needed },
      ),
    );
  }
  return { actor, limit, refusal: null };
}

/** Session-only routes (sign-in housekeeping, people) with the roles their POLICY entry names. */
export function requireSession(services: Services, access: Policy) {
  const roles: readonly Role[] = access.roles ?? [];
  return async (request: FastifyRequest) => {
    const { actor } = await sessionActor(services, request, access.allowPending);
    if (!roles.includes(actor.role))
      throw new LatchkeyError("FORBIDDEN", `This needs the role ${roles.join(" or ")}.`);
  };
}

/** The signed-in person of a session route. */
export function userOf(request: FastifyRequest): Actor & { kind: "user" } {
  const actor = request.actor;
  if (actor?.kind !== "user") throw new LatchkeyError("UNAUTHORIZED");
  return actor;
}

export function userCtxOf(request: FastifyRequest): Ctx & { actor: Actor & { kind: "user" } } {
  return { ...ctxOf(request), actor: userOf(request) };
}

/** The authenticated caller of a route guarded by requireCaller or requirePlatform. */
export function actorOf(request: FastifyRequest): Actor {
  if (!request.actor) throw new LatchkeyError("UNAUTHORIZED");
  return request.actor;
}

/** Who acts, from where, with or without a second factor: what services record in the audit trail. */
export function ctxOf(request: FastifyRequest): Ctx {
  const agent = request.headers["user-agent"];
  return {
    actor: actorOf(request),
    ip: request.clientIp || null,
    userAgent: agent ?? null,
    totpUsed: false,
    secondFactor: totpCodeOf(request),
  };
}

/** The company a management request acts on: always the caller's own. */
export function companyOf(request: FastifyRequest): string {
  const actor = request.actor;
  if (!actor || actor.kind === "platform" || actor.companyId === null) throw new LatchkeyError("FORBIDDEN");
  return actor.companyId;
}

/**
 * Platform operator routes. With no admin token configured they do not exist for anyone but the local
 * CLI (which holds the control token from the lock file): 404, so a scanner cannot tell them apart
 * from any unknown path.
 */
export function requirePlatform(adminTokens: readonly string[], controlToken?: string) {
  const tokens = controlToken ? [...adminTokens, controlToken] : adminTokens;
  const refusal = adminTokens.length === 0 ? "ROUTE_NOT_FOUND" : "UNAUTHORIZED";
  return async (request: FastifyRequest) => {
    const auth = request.headers.authorization ?? "";
    const given = auth.toLowerCase().startsWith("bearer ") ? auth.slice(7) : "";
    // Every token is compared, so the time taken does not say which (if any) matched.
    let match = false;
    for (const token of tokens) match = safeEqual(given, token) || match;
    if (!given || !match) throw new LatchkeyError(refusal);
    request.actor = { kind: "platform" };
  };
}
