import FindMyWay from "find-my-way";

/**
 * The platform's routes, mapped to the permission each needs, as the catalog declares them
 * (`POST /v1/onramp`, `GET /v1/onramp/:id`, `ALL /v1/keys/*`). Compiled once into a radix tree
 * (find-my-way, the router Fastify uses), so asking costs a tree walk whatever the catalog's size.
 * Where patterns meet, the more specific wins: a static segment before a `:param`, before a `*`.
 */

export const ROUTE_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
type RouteMethod = (typeof ROUTE_METHODS)[number];
const KNOWN_METHODS: ReadonlySet<string> = new Set(ROUTE_METHODS);

/** A route as a gateway asks about it, and what the catalog says of it. */
export type RouteAnswer =
  /** The catalog maps it: a key needs this permission. */
  | { kind: "mapped"; permission: string; pattern: string }
  /** The catalog does not map it. */
  | { kind: "unmapped" }
  /**
   * Not a path in normal form (a dot segment, an empty segment, an encoded slash or backslash, a
   * control character): an upstream may read it differently from this tree, so it is never matched.
   */
  | { kind: "invalid" };

export interface RouteMap {
  /** How many method + pattern pairs the map holds (0: the catalog maps no route). */
  readonly size: number;
  lookup(method: string, url: string): RouteAnswer;
}

/** One route as a catalog declares it, with where it was declared for error messages. */
export interface RouteEntry {
  route: string;
  permission: string;
  where: string;
}

export class RouteError extends Error {
  override name = "RouteError";
}

const ROUTE = /^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|ALL) (\/\S*)$/;
const STATIC_SEGMENT = /^[A-Za-z0-9._~!$&'()+,;=@-]+$/;
const PARAM_SEGMENT = /^:[A-Za-z_][A-Za-z0-9_]{0,31}$/;
const MAX_ROUTE_LENGTH = 512;

/** Checks one `METHOD /path` pattern; the message says what is wrong with it. */
function parseRoute(
  raw: unknown,
  where: string,
): { methods: readonly RouteMethod[]; path: string; shape: string } {
  if (typeof raw !== "string" || raw.length > MAX_ROUTE_LENGTH) {
    throw new RouteError(
      `${where} must be a string such as "POST /v1/onramp" of at most ${MAX_ROUTE_LENGTH} characters`,
    );
  }
  const m = ROUTE.exec(raw);
  if (!m) {
    throw new RouteError(
      `${where} "${raw}" must be a method (${[...ROUTE_METHODS, "ALL"].join(", ")}), one space and a path starting with /`,
    );
  }
  const method = m[1] as RouteMethod | "ALL";
  const path = m[2] as string;
  const segments = path === "/" ? [] : path.slice(1).split("/");
  const shape: string[] = [];
  for (const [i, segment] of segments.entries()) {
    const last = i === segments.length - 1;
    if (segment === "*" && last) shape.push("*");
    else if (PARAM_SEGMENT.test(segment)) shape.push(":");
    else if (STATIC_SEGMENT.test(segment) && segment !== "." && segment !== ".." && !segment.includes("*"))
      shape.push(segment);
    else
      throw new RouteError(
        `${where} "${raw}": segment "${segment}" must be a name (letters, digits, ._~-), a :param, or a final *`,
      );
  }
  return { methods: method === "ALL" ? ROUTE_METHODS : [method], path, shape: `/${shape.join("/")}` };
}

/** `%2f`, `%5c`, `%2e` or `%00` (either case) at `i`: an encoded slash, backslash, dot or NUL. */
function encodedSeparator(path: string, i: number): boolean {
  const a = path.charCodeAt(i + 1);
  const b = path.charCodeAt(i + 2) | 0x20; // lower case for letters; digits are compared below as they are
  if (a === 0x32) return b === 0x66 || b === 0x65; // %2f %2e
  if (a === 0x35) return b === 0x63; // %5c
  return a === 0x30 && path.charCodeAt(i + 2) === 0x30; // %00
}

/**
 * A path is matched only in normal form; see RouteAnswer "invalid". One pass over the characters: it
 * runs on every forward-auth request, and the regex, split and slices it replaced took half a
 * microsecond, more than the router's own walk.
 */
function normalPath(path: string): boolean {
  const length = path.length;
  if (length === 0 || path.charCodeAt(0) !== 47) return false;
  let segmentStart = 1;
  for (let i = 1; i <= length; i++) {
    const c = i === length ? 47 : path.charCodeAt(i);
    // Controls, a backslash, or an encoded slash, backslash or dot: each is read differently by some upstream.
    if (c < 0x20 || c === 0x7f || c === 0x5c) return false;
    if (c === 0x25 && i + 2 < length && encodedSeparator(path, i)) return false;
    if (c !== 47) continue;
    // A segment ends here (or the path does): "." and ".." are refused.
    const segment = i - segmentStart;
    if (
      (segment === 1 || segment === 2) &&
      path.charCodeAt(segmentStart) === 46 &&
      (segment === 1 || path.charCodeAt(segmentStart + 1) === 46)
    )
      return false;
    // An empty segment ("//", or a trailing slash) is allowed only at the very end, where find-my-way
    // treats it as a wildcard's empty tail, never in the middle.
    if (segment === 0 && i < length - 1) return false;
    segmentStart = i + 1;
  }
  return true;
}

/**
 * Builds the map from the catalog's declarations. Two declarations of one method on one path shape
 * (parameter names aside) are an error naming both, so which permission a route needs is never a
 * question of declaration order.
 */
export function compileRoutes(entries: readonly RouteEntry[]): RouteMap {
  const router = FindMyWay({ caseSensitive: true, maxParamLength: 500 });
  const declared = new Map<string, RouteEntry>();
  let size = 0;
  for (const entry of entries) {
    const { methods, path, shape } = parseRoute(entry.route, entry.where);
    for (const method of methods) {
      const key = `${method} ${shape}`;
      const earlier = declared.get(key);
      if (earlier) {
        throw new RouteError(
          `${entry.where} "${entry.route}" overlaps ${earlier.where} "${earlier.route}" (both map ${method} ${path})`,
        );
      }
      declared.set(key, entry);
    }
    const answer: RouteAnswer = { kind: "mapped", permission: entry.permission, pattern: entry.route };
    try {
      router.on([...methods], path, () => {}, answer);
    } catch (err) {
      throw new RouteError(`${entry.where} "${entry.route}": ${(err as Error).message}`);
    }
    size += methods.length;
  }
  return {
    size,
    lookup(method, url) {
      const q = url.indexOf("?");
      const path = q === -1 ? url : url.slice(0, q);
      if (!normalPath(path)) return { kind: "invalid" };
      // Gateways send the method in upper case already (the authorize answer upper-cases a header's).
      const upper = KNOWN_METHODS.has(method) ? method : method.toUpperCase();
      // A HEAD is a GET without the body: a GET route covers it unless HEAD is mapped on its own.
      const found =
        router.find(upper as RouteMethod, path) ?? (upper === "HEAD" ? router.find("GET", path) : null);
      return found ? (found.store as RouteAnswer) : { kind: "unmapped" };
    },
  };
}
