import type { FastifyReply, FastifyRequest } from "fastify";
import { LatchkeyError } from "../core/errors.ts";
import { safeEqual } from "../core/hashing.ts";
import type { Actor, Ctx } from "../services/actor.ts";
import type { Services } from "../services/services.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** The caller's address, after the trusted-proxy rule. */
    clientIp: string;
    actor: Actor | null;
    /** Set when this request carried a valid second factor (step-up). */
    totpUsed: boolean;
  }
}

/** The key, key + secret pair or Basic auth pair a request carries, or null when it carries none. */
export function presentedCredentials(request: FastifyRequest) {
  const header = (name: string) => {
    const v = request.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const apiKey = header("x-api-key");
  const secret = header("x-api-secret");
  if (apiKey !== undefined) return { key: apiKey, secret };
  const auth = header("authorization");
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

/** A requirement on the caller: all of `all`, or any one of `any`. */
export type Requirement = { all: string[] } | { any: string[] };

/**
 * Authenticates a management or verification caller and checks it may do the route's work.
 * Any dead or unknown credential gets the same 401; IP and permission refusals are 403.
 */
export function requireCaller(
  services: Services,
  requirement: Requirement,
  opts: { companyScoped?: boolean } = {},
) {
  return async (request: FastifyRequest, _reply: FastifyReply) => {
    const presented = presentedCredentials(request);
    if (!presented) throw new LatchkeyError("UNAUTHORIZED");
    const { code, actor } = await services.verification.authenticate({ ...presented, ip: request.clientIp });
    if (code === "IP_NOT_ALLOWED") {
      throw new LatchkeyError(
        "IP_NOT_ALLOWED",
        `Requests from ${request.clientIp} are not allowed for this key.`,
        {
          ip: request.clientIp,
        },
      );
    }
    if (!actor || actor.kind === "platform") throw new LatchkeyError("UNAUTHORIZED");
    const held = new Set(actor.permissions);
    const ok =
      "all" in requirement
        ? requirement.all.every((p) => held.has(p))
        : requirement.any.some((p) => held.has(p));
    if (!ok) {
      const needed = "all" in requirement ? requirement.all : requirement.any;
      throw new LatchkeyError(
        "INSUFFICIENT_PERMISSIONS",
        `This needs ${"all" in requirement ? "" : "one of "}${needed.join(", ")}.`,
        { required: needed },
      );
    }
    if (opts.companyScoped !== false && actor.companyId === null) {
      throw new LatchkeyError("FORBIDDEN", "A platform verify key cannot manage a company's objects.");
    }
    request.actor = actor;
  };
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
    totpUsed: request.totpUsed,
  };
}

/** The company a management request acts on: always the caller's own. */
export function companyOf(request: FastifyRequest): string {
  const actor = request.actor;
  if (!actor || actor.kind === "platform" || actor.companyId === null) throw new LatchkeyError("FORBIDDEN");
  return actor.companyId;
}

/**
 * Platform operator routes. With no admin token configured (and no local control token) they do not
 * exist: 404, so a scanner cannot tell them apart from any unknown path.
 */
export function requirePlatform(tokens: readonly string[]) {
  return async (request: FastifyRequest) => {
    if (tokens.length === 0) throw new LatchkeyError("ROUTE_NOT_FOUND");
    const auth = request.headers.authorization ?? "";
    const given = auth.toLowerCase().startsWith("bearer ") ? auth.slice(7) : "";
    // Every token is compared, so the time taken does not say which (if any) matched.
    let match = false;
    for (const token of tokens) match = safeEqual(given, token) || match;
    if (!given || !match) throw new LatchkeyError("UNAUTHORIZED");
    request.actor = { kind: "platform" };
  };
}
