import type { Catalog } from "../core/catalog.ts";
import type { ErrorCode, VerifyCode } from "../core/errors.ts";
import type { Environment } from "../core/key-format.ts";
import type { RouteAnswer } from "../core/routes.ts";
import type { VerificationService, VerifierScope, VerifyResult } from "./verification.ts";

/** A request a gateway asks about: its client's credentials and address, and the route it is for. */
export interface AuthorizeInput {
  key?: string | undefined;
  secret?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  ip?: string | undefined;
  /** Set when the gateway serves one environment only (a live host, a test host). */
  environment?: Environment | undefined;
  method: string;
  url: string;
}

/** Why a request may not pass, as the error catalog names it. */
export interface Refusal {
  code: ErrorCode;
  message?: string;
  details?: Record<string, unknown>;
}

export interface Authorization {
  result: VerifyResult;
  route: RouteAnswer;
  /** Null: the request may pass. */
  refusal: Refusal | null;
}

/**
 * A permission no key holds (it is not a permission string), asked for a route the catalog does not
 * map: the key is still verified, so a dead key is told it is dead and the refusal counts in its usage
 * like any other, but it cannot pass.
 */
const NO_PERMISSION_COVERS_THIS = "(unmapped route)";

const DEAD_KEY: ReadonlySet<VerifyCode> = new Set([
  "MALFORMED",
  "NOT_FOUND",
  "REVOKED",
  "EXPIRED",
  "DISABLED",
]);

/**
 * Forward auth: may this request of a gateway's client pass? The route is mapped to a permission by
 * the catalog, then the client's key is verified for it exactly as `POST /v1/verify` would (same
 * cache, scope, rate limits and usage counts).
 */
export class AuthorizationService {
  constructor(
    private readonly deps: {
      catalog: Catalog;
      verification: Pick<VerificationService, "verify">;
    },
  ) {}

  async authorize(input: AuthorizeInput, scope: VerifierScope): Promise<Authorization> {
    const route = this.deps.catalog.routes.lookup(input.method, input.url);
    const permissions =
      route.kind === "mapped"
        ? [route.permission]
        : route.kind === "unmapped" && this.deps.catalog.unmappedRoutes === "allow"
          ? []
          : [NO_PERMISSION_COVERS_THIS];
    const result = await this.deps.verification.verify(
      {
        key: input.key,
        secret: input.secret,
        username: input.username,
        password: input.password,
        ip: input.ip,
        environment: input.environment,
        permissions,
      },
      scope,
    );
    return { result, route, refusal: refusalOf(result, route, input.ip) };
  }
}

function refusalOf(result: VerifyResult, route: RouteAnswer, ip: string | undefined): Refusal | null {
  const code = result.code;
  if (code === "VALID") return null;
  // Any dead or unknown key gets the same answer, as on the management API: a client learns nothing
  // about a key it does not hold.
  if (DEAD_KEY.has(code)) return { code: "UNAUTHORIZED", message: "Missing or invalid API key." };
  if (code === "ENVIRONMENT_MISMATCH") return { code: "ENVIRONMENT_MISMATCH" };
  if (code === "IP_NOT_ALLOWED")
    return {
      code: "IP_NOT_ALLOWED",
      message: `Requests from ${ip} are not allowed for this key.`,
      details: { ip },
    };
  if (code === "RATE_LIMITED") {
    const limit = result.rate_limit;
    return {
      code: "RATE_LIMITED",
      ...(limit ? { message: `Rate limit of ${limit.limit} per ${limit.window} reached.` } : {}),
      details: { retry_after: limit?.retry_after ?? 1 },
    };
  }
  if (code === "USAGE_EXCEEDED")
    return {
      code: "USAGE_EXCEEDED",
      message: "The key has no credits left for this request.",
      details: { remaining: result.remaining },
    };
  // INSUFFICIENT_PERMISSIONS: for a mapped route, the one permission it needs.
  if (route.kind === "mapped") {
    return {
      code: "INSUFFICIENT_PERMISSIONS",
      message: `This needs ${route.permission}.`,
      details: { required: [route.permission] },
    };
  }
  return route.kind === "invalid"
    ? { code: "ROUTE_NOT_MAPPED", message: "The path is not in normal form, so no route can match it." }
    : { code: "ROUTE_NOT_MAPPED" };
}
