import { type CatalogDocument, compileCatalogRoutes, fetchCatalog, type RouteMapper } from "./routes.ts";
import type { LatchkeyVerifier, Verdict } from "./verifier.ts";

/**
 * What every middleware does, apart from its framework: read the client's key, map the route through
 * the catalog, verify the key for that one permission, and either say who the caller is or how to
 * refuse them — with the statuses, codes and envelope `/v1/authorize` answers with, so a client sees
 * the same refusal whether the platform checks keys at its gateway or in its own process.
 */

/** Who a request's key belongs to, attached to the request by the middleware. */
export interface LatchkeyIdentity {
  keyId: string | null;
  credentialId: string | null;
  companyId: string | null;
  environment: "live" | "test" | null;
  permissions: readonly string[];
  /** The permission the route needed (null where the catalog lets an unmapped route by). */
  permission: string | null;
  /** `fail-open`: Latchkey could not be asked and `failOpen` let the request by, with no identity. */
  source: Verdict["source"];
}

export interface ErrorEnvelope {
  success: false;
  error: { code: string; message: string; details?: Record<string, unknown> };
}

export type GuardAnswer =
  | { ok: true; identity: LatchkeyIdentity; headers: Record<string, string> }
  | { ok: false; status: number; headers: Record<string, string>; body: ErrorEnvelope };

/** A request as the guard reads it; each middleware fills this from its framework. */
export interface GuardRequest {
  method: string;
  /** The path and query as the client sent them (not yet normalised by anyone). */
  url: string;
  header(name: string): string | undefined;
  /** The client's address as the framework reads it (its trust-proxy setting applied). */
  ip: string | undefined;
}

export interface GuardOptions {
  verifier: LatchkeyVerifier;
  /**
   * The catalog to map routes with, kept as given. By default `GET /v1/catalog` is read from the
   * verifier's Latchkey, and read again (see `catalogRefreshMs`).
   */
  catalog?: CatalogDocument;
  /**
   * How often Latchkey's catalog is read again, besides whenever the change stream resets or comes
   * back after being lost (a restarted Latchkey may serve another catalog). Default 60 s; 0: only then.
   */
  catalogRefreshMs?: number;
  /** A process that serves one environment refuses keys of the other. */
  environment?: "live" | "test";
}

const WWW_AUTHENTICATE = 'Bearer realm="api"';
/** A permission no key holds, asked for a route no permission covers: the key is still verified first. */
const NO_PERMISSION_COVERS_THIS = "(unmapped route)";
/** When Latchkey cannot be asked, clients are told to come back shortly, as Latchkey's own 503s do. */
const UNAVAILABLE_RETRY_AFTER = "1";

function refuse(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
  details?: Record<string, unknown>,
): GuardAnswer {
  return {
    ok: false,
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
    body: { success: false, error: { code, message, ...(details ? { details } : {}) } },
  };
}

const unauthorized = (message = "Missing or invalid API key.") =>
  refuse(401, "UNAUTHORIZED", message, { "www-authenticate": WWW_AUTHENTICATE });

type Presented = { key: string; secret: string | undefined } | { basic: true } | null;

/** The client's key as Latchkey reads it: `X-API-Key` (+ `X-API-Secret`), else `Authorization: Bearer`. */
function presented(request: GuardRequest): Presented {
  const secret = request.header("x-api-secret") || undefined;
  const apiKey = request.header("x-api-key");
  // Present though empty, X-API-Key is still the key presented (and refused): never a fallback to another.
  if (apiKey !== undefined) return { key: apiKey, secret };
  const auth = request.header("authorization");
  if (!auth) return null;
  const space = auth.indexOf(" ");
  const scheme = (space < 0 ? auth : auth.slice(0, space)).toLowerCase();
  if (scheme === "bearer") return { key: auth.slice(space + 1), secret };
  if (scheme === "basic") return { basic: true };
  return { key: "", secret: undefined };
}

function rateLimitHeaders(verdict: Verdict): Record<string, string> {
  const limit = verdict.rateLimit;
  if (limit === null) return {};
  return {
    "ratelimit-limit": String(limit.limit),
    "ratelimit-remaining": String(limit.remaining),
    "ratelimit-reset": String(limit.reset),
  };
}

export class LatchkeyGuard {
  private refreshing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopListening: (() => void) | null = null;

  private constructor(
    private readonly verifier: LatchkeyVerifier,
    private mapper: RouteMapper,
    private readonly environment: "live" | "test" | undefined,
  ) {}

  /**
   * Reads the catalog (unless given) and compiles its routes; a catalog that does not compile throws.
   * A catalog read from Latchkey is read again on the stream's resets and every `catalogRefreshMs`.
   */
  static async create(options: GuardOptions): Promise<LatchkeyGuard> {
    const doc = options.catalog ?? (await fetchCatalog(options.verifier.url));
    const guard = new LatchkeyGuard(options.verifier, compileCatalogRoutes(doc), options.environment);
    if (options.catalog === undefined) guard.follow(options.catalogRefreshMs ?? 60_000);
    return guard;
  }

  /** How the catalog maps routes: compiled once per catalog read. */
  get routes(): RouteMapper {
    return this.mapper;
  }

  private follow(everyMs: number): void {
    this.stopListening = this.verifier.onReset(() => void this.refresh());
    if (everyMs > 0) {
      this.timer = setInterval(() => void this.refresh(), everyMs);
      this.timer.unref();
    }
  }

  /**
   * Reads Latchkey's catalog again and maps routes with it from then on. One that cannot be read, or
   * does not compile, leaves the routes as they were (a refusal then is still the old catalog's, never
   * a route let by unchecked); the next reset or interval tries again.
   */
  refresh(): Promise<void> {
    this.refreshing ??= fetchCatalog(this.verifier.url)
      .then((doc) => {
        this.mapper = compileCatalogRoutes(doc);
      })
      .catch(() => {})
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  /** Stops reading the catalog again (the Fastify plugin calls this when its app closes). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopListening?.();
    this.stopListening = null;
  }

  /** May this request pass? Never throws. */
  async check(request: GuardRequest): Promise<GuardAnswer> {
    const routes = this.mapper;
    const route = routes.match(request.method, request.url);
    const creds = presented(request);
    if (creds === null) return unauthorized();
    if ("basic" in creds) {
      // The SDK verifies keys in-process; an API user's password is checked by Latchkey alone
      // (argon2 on its side, never cached here), so this middleware does not take Basic auth.
      return unauthorized("Basic auth is not accepted here; send an API key.");
    }
    const permission = route.kind === "mapped" ? route.permission : null;
    const permissions =
      permission !== null
        ? [permission]
        : route.kind === "unmapped" && routes.unmappedRoutes === "allow"
          ? []
          : [NO_PERMISSION_COVERS_THIS];
    const verdict = await this.verifier.verify({
      key: creds.key,
      secret: creds.secret,
      permissions,
      ip: request.ip,
      environment: this.environment,
    });
    const headers = rateLimitHeaders(verdict);
    if (verdict.valid) {
      return {
        ok: true,
        headers,
        identity: {
          keyId: verdict.keyId,
          credentialId: verdict.credentialId,
          companyId: verdict.companyId,
          environment: verdict.environment,
          permissions: verdict.permissions,
          permission,
          source: verdict.source,
        },
      };
    }
    switch (verdict.code) {
      case "IP_NOT_ALLOWED":
        return refuse(
          403,
          "IP_NOT_ALLOWED",
          `Requests from ${request.ip} are not allowed for this key.`,
          headers,
          {
            ip: request.ip,
          },
        );
      case "ENVIRONMENT_MISMATCH":
        return refuse(403, "ENVIRONMENT_MISMATCH", "The key belongs to the other environment.", headers);
      case "INSUFFICIENT_PERMISSIONS":
        if (permission !== null)
          return refuse(403, "INSUFFICIENT_PERMISSIONS", `This needs ${permission}.`, headers, {
            required: [permission],
          });
        return refuse(
          403,
          "ROUTE_NOT_MAPPED",
          route.kind === "invalid"
            ? "The path is not in normal form, so no route can match it."
            : "No permission in the catalog covers this route.",
          headers,
        );
      case "RATE_LIMITED": {
        const limit = verdict.rateLimit;
        const retryAfter = limit?.retry_after ?? 1;
        return refuse(
          429,
          "RATE_LIMITED",
          limit ? `Rate limit of ${limit.limit} per ${limit.window} reached.` : "Too many requests.",
          { ...headers, "retry-after": String(retryAfter) },
          { retry_after: retryAfter },
        );
      }
      case "USAGE_EXCEEDED":
        return refuse(429, "USAGE_EXCEEDED", "The key has no credits left for this request.", headers, {
          remaining: verdict.remaining,
        });
      case "UNAVAILABLE":
        return refuse(
          503,
          "SERVICE_UNAVAILABLE",
          "The key cannot be verified just now. Try again shortly.",
          { "retry-after": UNAVAILABLE_RETRY_AFTER },
          { retry_after: Number(UNAVAILABLE_RETRY_AFTER) },
        );
      default:
        // MALFORMED, NOT_FOUND, REVOKED, EXPIRED, DISABLED: one answer, so a client learns nothing about
        // a key it does not hold.
        return unauthorized();
    }
  }
}
