import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CatalogError, loadCatalog } from "../../src/core/catalog.ts";
import { compileRoutes, type RouteAnswer } from "../../src/core/routes.ts";

const WEB3PAY = JSON.parse(
  readFileSync(join(import.meta.dirname, "../../examples/catalogs/web3pay.json"), "utf8"),
) as unknown;

const permission = (answer: RouteAnswer) => (answer.kind === "mapped" ? answer.permission : answer.kind);

/** A catalog of one group whose actions carry the given routes. */
function withRoutes(actions: Record<string, string[]>, extra: Record<string, unknown> = {}) {
  return loadCatalog({
    groups: [
      {
        id: "pay",
        name: "Payments",
        entities: [
          {
            id: "payment",
            name: "Payment",
            actions: Object.entries(actions).map(([id, routes]) => ({ id, routes })),
          },
        ],
      },
    ],
    ...extra,
  });
}

describe("routes in the catalog: the Web3pay doc's table", () => {
  const { routes, unmappedRoutes } = loadCatalog(WEB3PAY);

  it.each([
    ["POST", "/v1/onramp", "onramp:create"],
    ["GET", "/v1/onramp", "onramp:read"],
    ["GET", "/v1/onramp/ses_123?expand=quote", "onramp:read"],
    ["HEAD", "/v1/onramp/ses_123", "onramp:read"],
    ["GET", "/v1/transactions", "transactions:read"],
    ["GET", "/v1/transactions/tx_9", "transactions:read"],
    ["DELETE", "/v1/keys/key_1", "keys:manage"],
    ["POST", "/v1/keys", "keys:manage"],
    ["PATCH", "/v1/webhooks/wh_1/secret", "webhooks:manage"],
  ])("%s %s needs %s", (method, url, wanted) => {
    expect(permission(routes.lookup(method, url))).toBe(wanted);
  });

  it.each([
    ["DELETE", "/v1/onramp/ses_123"],
    ["POST", "/v1/transactions"],
    ["GET", "/v1/onramp/ses_123/extra"],
    ["GET", "/v1/other"],
    ["FETCH", "/v1/onramp"],
  ])("%s %s is not mapped, and refused by default", (method, url) => {
    expect(routes.lookup(method, url)).toEqual({ kind: "unmapped" });
    expect(unmappedRoutes).toBe("deny");
  });

  it.each([
    "/v1/keys/../onramp",
    "/v1/onramp/./x",
    "/v1/keys/a%2F..%2Fb",
    "/v1/onramp/%2e%2e",
    "/v1//keys",
    "/v1/keys\\x",
    "/v1/onramp/a\u0000",
    "v1/onramp",
  ])("never matches %s, which is not in normal form", (url) => {
    expect(routes.lookup("GET", url)).toEqual({ kind: "invalid" });
  });

  it("maps a route to its action's permission only: no prefix matching", () => {
    expect(permission(routes.lookup("POST", "/v1/onrampx"))).toBe("unmapped");
    expect(permission(routes.lookup("post", "/v1/onramp"))).toBe("onramp:create");
  });

  it("shows each action's routes in the catalog document", () => {
    const catalog = loadCatalog(WEB3PAY);
    const onramp = catalog.groups[0]?.entities[0]?.actions.find((a) => a.id === "create");
    expect(onramp?.routes).toEqual(["POST /v1/onramp"]);
  });
});

describe("routes: what counts as normal form", () => {
  /** The rule as the route map states it, written plainly (a scan for each part of it). */
  function normal(path: string): boolean {
    if (!path.startsWith("/")) return false;
    if ([...path].some((c) => c < " " || c === "\u007f" || c === "\\")) return false;
    if (/%(2f|5c|2e|00)/i.test(path)) return false;
    if (
      path
        .slice(1)
        .split("/")
        .some((segment) => segment === "." || segment === "..")
    )
      return false;
    return !path.slice(0, -1).includes("//");
  }
  const { routes } = withRoutes({ any: ["ALL /*"] });

  it("refuses exactly the paths the rule refuses, over many short paths of the characters that matter", () => {
    // Every path of up to 5 characters over this alphabet, after a leading "/" (and a few without it).
    const alphabet = ["/", ".", "%", "2", "5", "0", "f", "E", "c", "a", "\\", "\u0001"];
    const paths: string[] = ["", "a", ".", "%2f"];
    let layer = ["/"];
    for (let depth = 0; depth < 5; depth++) {
      layer = layer.flatMap((p) => alphabet.map((c) => p + c));
      for (const p of layer) paths.push(p);
    }
    const wrong = paths.filter((p) => (routes.lookup("GET", p).kind === "invalid") === normal(p));
    expect(paths.length).toBeGreaterThan(200_000);
    expect(wrong).toEqual([]);
  });
});

describe("routes in the catalog: the Adyen example (its balance platform APIs' paths)", () => {
  const { routes } = loadCatalog(
    JSON.parse(readFileSync(join(import.meta.dirname, "../../examples/catalogs/adyen.json"), "utf8")),
  );
  it.each([
    ["POST", "/transfers", "transfer:create"],
    ["GET", "/transactions/EVJN42272224222B5JB8BRC84N686ZEUR", "transfer:read"],
    ["PATCH", "/accountHolders/AH3227C223222B5GG3XHDRBCN", "account_holder:write"],
    ["POST", "/paymentInstruments/reveal", "payment_instrument:reveal"],
    ["GET", "/paymentInstruments/PI32272223222B5CMD3MQ3HXX", "unmapped"],
    ["POST", "/legalEntities/LE322JV223222D5GG42KN6869/onboardingLinks", "onboarding_session:create"],
  ])("%s %s needs %s", (method, url, wanted) => {
    expect(permission(routes.lookup(method, url))).toBe(wanted);
  });
});

describe("routes in the catalog: what is refused at load", () => {
  it.each([
    [{ a: ["POST /v1/x"], b: ["POST /v1/x"] }, /overlaps .*actions\[0\]\.routes\[0\] "POST \/v1\/x"/],
    [{ a: ["GET /v1/x/:id"], b: ["GET /v1/x/:name"] }, /overlaps/],
    [{ a: ["ALL /v1/x"], b: ["DELETE /v1/x"] }, /overlaps .* \(both map DELETE \/v1\/x\)/],
    [{ a: ["FETCH /v1/x"] }, /must be a method/],
    [{ a: ["GET v1/x"] }, /must be a method .* path starting with \//],
    [{ a: ["GET  /v1/x"] }, /must be a method/],
    [{ a: ["GET /v1/*/x"] }, /segment "\*"/],
    [{ a: ["GET /v1/x*"] }, /segment "x\*"/],
    [{ a: ["GET /v1/../x"] }, /segment "\.\."/],
    [{ a: ["GET /v1//x"] }, /segment ""/],
    [{ a: ["GET /v1/:1d"] }, /segment ":1d"/],
    [{ a: [42 as unknown as string] }, /must be a string/],
  ])("%j", (actions, message) => {
    expect(() => withRoutes(actions)).toThrow(CatalogError);
    expect(() => withRoutes(actions)).toThrow(message);
  });

  it("refuses routes that are not a list, an unknown management permission, and an unknown unmapped policy", () => {
    expect(() =>
      loadCatalog({
        groups: [
          {
            id: "p",
            name: "P",
            entities: [{ id: "e", name: "E", actions: [{ id: "read", routes: "GET /x" }] }],
          },
        ],
      }),
    ).toThrow(/routes must be an array/);
    expect(() => withRoutes({ a: [] }, { management_routes: { "keys:destroy": ["ALL /v1/keys"] } })).toThrow(
      /"keys:destroy" is not one of keys:manage/,
    );
    expect(() => withRoutes({ a: [] }, { management_routes: ["ALL /v1/keys"] })).toThrow(
      /management_routes must be an object/,
    );
    expect(() => withRoutes({ a: [] }, { unmapped_routes: "maybe" })).toThrow(
      /unmapped_routes must be "deny" or "allow"/,
    );
  });

  it("lets a static segment win over a parameter, and a parameter over a wildcard", () => {
    const { routes } = withRoutes({
      read: ["GET /v1/p/*"],
      list: ["GET /v1/p/:id"],
      export: ["GET /v1/p/export"],
    });
    expect(permission(routes.lookup("GET", "/v1/p/export"))).toBe("payment:export");
    expect(permission(routes.lookup("GET", "/v1/p/pay_1"))).toBe("payment:list");
    expect(permission(routes.lookup("GET", "/v1/p/pay_1/refunds"))).toBe("payment:read");
  });

  it("keeps the management routes as declared, for GET /v1/catalog to hand to the SDK", () => {
    expect(loadCatalog(WEB3PAY).managementRoutes).toEqual({
      "keys:manage": ["ALL /v1/keys", "ALL /v1/keys/*"],
      "webhooks:manage": ["ALL /v1/webhooks", "ALL /v1/webhooks/*"],
    });
    expect(withRoutes({ a: ["GET /x"] }).managementRoutes).toEqual({});
  });

  it("allows unmapped routes when the catalog says so", () => {
    expect(withRoutes({ a: ["GET /x"] }, { unmapped_routes: "allow" }).unmappedRoutes).toBe("allow");
    expect(withRoutes({ a: [] }).routes.size).toBe(0);
  });

  it("compiles a large map once and answers from the tree", () => {
    const entries = Array.from({ length: 2000 }, (_, i) => ({
      route: `GET /v1/r${i}/:id`,
      permission: `e:r${i}`,
      where: `r${i}`,
    }));
    const map = compileRoutes(entries);
    expect(map.size).toBe(2000);
    expect(permission(map.lookup("GET", "/v1/r1999/abc"))).toBe("e:r1999");
  });
});
