import FindMyWay from "find-my-way";

/**
 * The platform's routes mapped to the permission each needs, as Latchkey's catalog declares them, so
 * the middleware asks the same question `/v1/authorize` asks. Latchkey's own matcher is server code
 * this package must not import (it is published on its own), so the rules are kept here and a parity
 * test holds the two to the same answers: one radix tree (find-my-way, with Latchkey's options), `ALL`
 * for every method, a HEAD covered by its GET, `:param` segments, a final `*`, the more specific pattern
 * winning, and paths not in normal form never matched.
 */

/** `GET /v1/catalog`'s answer, or as much of it as route mapping reads. */
export interface CatalogDocument {
  groups: {
    id: string;
    name?: string;
    entities: {
      id: string;
      name?: string;
      /** As served, objects; a catalog file may name an action with a bare string (no routes). */
      actions: (string | { id: string; name?: string; routes?: string[] })[];
    }[];
  }[];
  permissions?: string[];
  presets?: string[];
  /** Routes for Latchkey's built-in permissions: `{"keys:manage": ["ALL /v1/keys"]}`. */
  management_routes?: Record<string, string[]>;
  unmapped_routes?: "deny" | "allow";
}

export type RouteMatch =
  | { kind: "mapped"; permission: string; pattern: string }
  | { kind: "unmapped" }
  /** Not in normal form: an upstream could read it as another route than the tree would. */
  | { kind: "invalid" };

export interface RouteMapper {
  /** What a route the catalog does not map gets. */
  readonly unmappedRoutes: "deny" | "allow";
  /** Method + pattern pairs held (0: the catalog maps no route). */
  readonly size: number;
  /** `url` may carry a query string; it is not part of the match. */
  match(method: string, url: string): RouteMatch;
}

export class CatalogRouteError extends Error {
  override name = "CatalogRouteError";
}

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
type Method = (typeof METHODS)[number];

const PATTERN = /^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|ALL) (\/\S*)$/;
const NAME = /^[A-Za-z0-9._~!$&'()+,;=@-]+$/;
const PARAM = /^:[A-Za-z_][A-Za-z0-9_]{0,31}$/;
// Encoded `/`, `\`, `.` and NUL: decoded, each names another path than the one the tree saw.
const ENCODED_SEPARATOR = /%(?:2f|5c|2e|00)/i;

/** A pattern's methods, path, and its shape (parameter names erased) for spotting overlaps. */
function parsePattern(
  pattern: string,
  where: string,
): { methods: readonly Method[]; path: string; shape: string } {
  const m = typeof pattern === "string" && pattern.length <= 512 ? PATTERN.exec(pattern) : null;
  if (m === null)
    throw new CatalogRouteError(`${where}: "${String(pattern)}" is not a "METHOD /path" pattern`);
  const [, method, path] = m as unknown as [string, Method | "ALL", string];
  const parts = path === "/" ? [] : path.slice(1).split("/");
  const shape = parts.map((part, i) => {
    if (part === "*" && i === parts.length - 1) return "*";
    if (PARAM.test(part)) return ":";
    if (NAME.test(part) && part !== "." && part !== ".." && !part.includes("*")) return part;
    throw new CatalogRouteError(
      `${where}: segment "${part}" of "${pattern}" is not a name, a :param or a final *`,
    );
  });
  return { methods: method === "ALL" ? METHODS : [method], path, shape: `/${shape.join("/")}` };
}

/** Whether a path is one this tree may answer for (see RouteMatch "invalid"). */
function inNormalForm(path: string): boolean {
  if (!path.startsWith("/")) return false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x5c /* \ */) return false;
  }
  if (ENCODED_SEPARATOR.test(path)) return false;
  for (const segment of path.split("/")) if (segment === "." || segment === "..") return false;
  // An empty segment only at the very end (`/v1/keys/`, `/v1/keys//`), where find-my-way reads it as a
  // wildcard's empty tail; never within the path, where an upstream may collapse it into another route.
  const double = path.indexOf("//");
  return double === -1 || double >= path.length - 2;
}

/** Every `METHOD /path` the catalog declares, with the permission it needs and where it was declared. */
function declarations(doc: CatalogDocument): { pattern: string; permission: string; where: string }[] {
  const out: { pattern: string; permission: string; where: string }[] = [];
  for (const group of doc.groups ?? [])
    for (const entity of group.entities ?? [])
      for (const action of entity.actions ?? [])
        if (typeof action !== "string")
          for (const [i, pattern] of (action.routes ?? []).entries())
            out.push({
              pattern,
              permission: `${entity.id}:${action.id}`,
              where: `${entity.id}:${action.id} routes[${i}]`,
            });
  for (const [permission, patterns] of Object.entries(doc.management_routes ?? {}))
    for (const [i, pattern] of patterns.entries())
      out.push({ pattern, permission, where: `management_routes["${permission}"][${i}]` });
  return out;
}

/** Compiles a catalog document's routes once; asking then costs one tree walk. */
export function compileCatalogRoutes(doc: CatalogDocument): RouteMapper {
  const unmapped = doc.unmapped_routes ?? "deny";
  if (unmapped !== "deny" && unmapped !== "allow")
    throw new CatalogRouteError(`unmapped_routes must be "deny" or "allow"`);
  // The options Latchkey's tree uses: case-sensitive, and parameters as long as a URL may carry.
  const tree = FindMyWay({ caseSensitive: true, maxParamLength: 500 });
  const seen = new Map<string, string>();
  let size = 0;
  for (const { pattern, permission, where } of declarations(doc)) {
    const { methods, path, shape } = parsePattern(pattern, where);
    for (const method of methods) {
      const earlier = seen.get(`${method} ${shape}`);
      // Latchkey refuses such a catalog at start-up; one that reaches here was not served by it.
      if (earlier !== undefined) throw new CatalogRouteError(`${where} "${pattern}" overlaps ${earlier}`);
      seen.set(`${method} ${shape}`, `${where} "${pattern}"`);
    }
    const answer: RouteMatch = Object.freeze({ kind: "mapped", permission, pattern });
    try {
      tree.on([...methods], path, () => {}, answer);
    } catch (err) {
      throw new CatalogRouteError(`${where} "${pattern}": ${(err as Error).message}`);
    }
    size += methods.length;
  }
  const UNMAPPED: RouteMatch = Object.freeze({ kind: "unmapped" });
  const INVALID: RouteMatch = Object.freeze({ kind: "invalid" });
  return {
    unmappedRoutes: unmapped,
    size,
    match(method, url) {
      const q = url.indexOf("?");
      const path = q < 0 ? url : url.slice(0, q);
      if (!inNormalForm(path)) return INVALID;
      const m = method.toUpperCase();
      const hit = tree.find(m as Method, path) ?? (m === "HEAD" ? tree.find("GET", path) : null);
      return hit === null ? UNMAPPED : (hit.store as RouteMatch);
    },
  };
}

/** Reads `GET /v1/catalog` from Latchkey (it needs no key). */
export async function fetchCatalog(url: string, timeoutMs = 5_000): Promise<CatalogDocument> {
  const res = await fetch(`${url.replace(/\/+$/, "")}/v1/catalog`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new CatalogRouteError(`GET /v1/catalog answered ${res.status}`);
  }
  return ((await res.json()) as { data: CatalogDocument }).data;
}
