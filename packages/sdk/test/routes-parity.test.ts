import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CatalogError, loadCatalog } from "../../../src/core/catalog.ts";
import type { RouteAnswer } from "../../../src/core/routes.ts";
import { createHarness, type Harness } from "../../../test/helpers/harness.ts";
import { type CatalogDocument, CatalogRouteError, compileCatalogRoutes } from "../src/routes.ts";

/**
 * The SDK maps routes with its own code (it may not import the server's), so this holds it to the
 * server's answers: for every example catalog, and a few hundred generated requests each — real routes
 * with made-up ids, near misses, and hostile paths — both matchers must say the same thing.
 */

const CATALOGS = join(import.meta.dirname, "../../../examples/catalogs");
const read = (file: string) => JSON.parse(readFileSync(join(CATALOGS, file), "utf8")) as CatalogDocument;

/** A small seeded generator, so a failure names a request that fails again. */
function random(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T };
}

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get", "Head", "FETCH", "TRACE"];
const IDS = ["ses_123", "x", "a.b", "%41bc", "café", "ÿ", "id;v=1", "a b", "*", ":id", "x".repeat(600), "-"];
/** Ways a client might hide another route inside a path. */
const HOSTILE: ((path: string) => string)[] = [
  (p) => `${p}/`,
  (p) => `${p}//`,
  (p) => `${p}///`,
  (p) => p.replace("/", "//"),
  (p) => `${p}/..`,
  (p) => `${p}/../v1/keys`,
  (p) => `${p}/./`,
  (p) => `/.${p}`,
  (p) => p.replace(/\/([^/]*)$/, "/%2e%2e/$1"),
  (p) => p.replace(/\/([^/]*)$/, "%2F$1"),
  (p) => p.replace(/\/([^/]*)$/, "%2f$1"),
  (p) => `${p}%5c`,
  (p) => `${p}\\x`,
  (p) => `${p}%00`,
  (p) => `${p}\u0000`,
  (p) => `${p}\t`,
  (p) => `${p}\u007f`,
  (p) => p.toUpperCase(),
  (p) => `${p}?q=1`,
  (p) => `${p}?next=/../../v1/keys`,
  (p) => `${p}#frag`,
  (p) => p.slice(1),
  (p) => `${p}/extra`,
  (p) => `${p}%20`,
  (p) => `${p};jsessionid=1`,
  (p) => p.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`),
];

/** Paths to ask about, from the catalog's own patterns. */
function requests(doc: CatalogDocument, seed: number, count: number): [string, string][] {
  const rnd = random(seed);
  const patterns: string[] = [];
  for (const g of doc.groups)
    for (const e of g.entities)
      for (const a of e.actions) if (typeof a !== "string") patterns.push(...(a.routes ?? []));
  for (const list of Object.values(doc.management_routes ?? {})) patterns.push(...list);
  patterns.push("GET /", "GET /v1/other");
  const out: [string, string][] = [];
  while (out.length < count) {
    const pattern = rnd.pick(patterns);
    const [declared, rawPath] = pattern.split(" ") as [string, string];
    let path = rawPath
      .split("/")
      .map((seg) =>
        seg.startsWith(":") ? rnd.pick(IDS) : seg === "*" ? rnd.pick(["", "a", "a/b/c", "x.y"]) : seg,
      )
      .join("/");
    if (rnd.next() < 0.5) path = rnd.pick(HOSTILE)(path);
    const method = declared === "ALL" || rnd.next() < 0.4 ? rnd.pick(METHODS) : declared;
    out.push([method, path]);
  }
  return out;
}

const server = (answer: RouteAnswer) => answer;

/** A catalog where patterns meet: a static name, a parameter and a wildcard on one prefix. */
const MEETING: CatalogDocument = {
  groups: [
    {
      id: "pay",
      name: "Payments",
      entities: [
        {
          id: "payment",
          name: "Payment",
          actions: [
            { id: "read", routes: ["GET /v1/p/*", "HEAD /v1/h"] },
            { id: "list", routes: ["GET /v1/p/:id", "GET /v1/h", "ALL /"] },
            { id: "export", routes: ["GET /v1/p/export", "GET /v1/p/:id/refunds/:refund_id"] },
            "delete",
          ],
        },
      ],
    },
  ],
  management_routes: { "keys:manage": ["ALL /v1/keys", "ALL /v1/keys/*"] },
  unmapped_routes: "allow",
};

describe("the SDK's route matcher answers as Latchkey's does", () => {
  const files = readdirSync(CATALOGS).filter((f) => f.endsWith(".json"));

  it("has example catalogs with routes to compare", () => {
    expect(files.length).toBeGreaterThanOrEqual(5);
    expect(compileCatalogRoutes(read("web3pay.json")).size).toBeGreaterThan(10);
  });

  it.each([...files.map((f) => [f, read(f)] as const), ["a catalog where patterns meet", MEETING] as const])(
    "for %s, over 400 generated requests",
    (name, doc) => {
      const theirs = loadCatalog(doc);
      const ours = compileCatalogRoutes(doc);
      expect(ours.size).toBe(theirs.routes.size);
      expect(ours.unmappedRoutes).toBe(theirs.unmappedRoutes);
      const asked = requests(doc, name.length * 7919, 400);
      const kinds = new Set<string>();
      for (const [method, path] of asked) {
        const want = server(theirs.routes.lookup(method, path));
        kinds.add(want.kind);
        expect(ours.match(method, path), `${method} ${JSON.stringify(path)}`).toEqual(want);
      }
      // The generated requests reach every kind of answer, or the comparison proves little.
      if (ours.size > 0) expect([...kinds].sort()).toEqual(["invalid", "mapped", "unmapped"]);
    },
  );

  it("answers the specific cases the server's own tests pin", () => {
    const ours = compileCatalogRoutes(MEETING);
    const perm = (m: string, p: string) => {
      const a = ours.match(m, p);
      return a.kind === "mapped" ? a.permission : a.kind;
    };
    expect(perm("GET", "/v1/p/export")).toBe("payment:export");
    expect(perm("GET", "/v1/p/pay_1")).toBe("payment:list");
    expect(perm("GET", "/v1/p/pay_1/more")).toBe("payment:read");
    expect(perm("HEAD", "/v1/p/pay_1")).toBe("payment:list");
    expect(perm("HEAD", "/v1/h")).toBe("payment:read");
    expect(perm("DELETE", "/v1/keys/k_1")).toBe("keys:manage");
    expect(perm("GET", "/v1/keys/../p/export")).toBe("invalid");
    expect(perm("GET", "/v1/p%2Fexport")).toBe("invalid");
  });

  it.each([
    ["a bad method", ["FETCH /x"]],
    ["a pattern not starting with /", ["GET x"]],
    ["a wildcard not last", ["GET /a/*/b"]],
    ["a dot segment", ["GET /a/../b"]],
    ["two patterns on one shape", ["GET /a/:id", "GET /a/:other"]],
    ["ALL over a GET", ["ALL /a", "GET /a"]],
  ])("refuses a catalog with %s, as Latchkey does", (_, routes) => {
    const doc: CatalogDocument = {
      groups: [{ id: "g", name: "G", entities: [{ id: "e", name: "E", actions: [{ id: "a", routes }] }] }],
    };
    expect(() => loadCatalog(doc)).toThrow(CatalogError);
    expect(() => compileCatalogRoutes(doc)).toThrow(CatalogRouteError);
  });

  describe("from the document Latchkey serves", () => {
    let h: Harness;
    beforeAll(async () => {
      h = await createHarness("pglite", { catalogPath: "examples/catalogs/web3pay.json" });
    });
    afterAll(() => h.close());

    it("GET /v1/catalog carries everything the SDK needs to map routes as the server does", async () => {
      const res = await h.call("GET", "/v1/catalog");
      expect(res.statusCode).toBe(200);
      const served = res.json().data as CatalogDocument;
      expect(served.unmapped_routes).toBe("deny");
      expect(served.management_routes).toEqual(read("web3pay.json").management_routes);
      const ours = compileCatalogRoutes(served);
      expect(ours.size).toBe(h.catalog.routes.size);
      for (const [method, path] of requests(read("web3pay.json"), 42, 300))
        expect(ours.match(method, path), `${method} ${path}`).toEqual(h.catalog.routes.lookup(method, path));
    });
  });
});
