import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  type Catalog,
  CatalogError,
  type CatalogGroup,
  describeSelection,
  expandPreset,
  loadCatalog,
  MANAGEMENT_GROUP_ID,
  presetPermissions,
} from "../../src/core/catalog.ts";

const MANAGEMENT = ["keys:manage", "keys:verify", "credentials:manage", "audit:read", "webhooks:manage"];
const readJson = (path: string): unknown => JSON.parse(readFileSync(path, "utf8"));
const DEFAULT_PATH = join(import.meta.dirname, "../../src/core/default-catalog.json");
const EXAMPLES_DIR = join(import.meta.dirname, "../../examples/catalogs");
const EXAMPLES = readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith(".json"));

const group = (catalog: Catalog, id: string): CatalogGroup => {
  const g = catalog.groups.find((x) => x.id === id);
  if (!g) throw new Error(`no group ${id}`);
  return g;
};

/** A small catalog with a known shape for the preset tests. */
const small = () =>
  loadCatalog({
    groups: [
      {
        id: "payments",
        name: "Payments",
        entities: [
          { id: "payment", name: "Payment", actions: ["read", "write", "refund"] },
          { id: "payment_route", name: "Route", actions: ["read"] },
        ],
      },
      {
        id: "onramp",
        name: "On-ramp",
        entities: [{ id: "onramp", name: "Session", actions: ["read", { id: "create", name: "Start" }] }],
      },
    ],
  });

describe("loadCatalog: shipped catalogs", () => {
  it("has example catalogs to check", () => {
    expect(EXAMPLES.length).toBeGreaterThanOrEqual(5);
  });

  it.each([DEFAULT_PATH, ...EXAMPLES.map((f) => join(EXAMPLES_DIR, f))])("loads %s", (path) => {
    const catalog = loadCatalog(readJson(path));
    const mgmt = group(catalog, MANAGEMENT_GROUP_ID);
    expect(mgmt.built_in).toBe(true);
    for (const p of MANAGEMENT) expect(catalog.permissions.has(p), p).toBe(true);
    expect(catalog.groups.filter((g) => g.built_in)).toHaveLength(1);
    expect(catalog.groups.length).toBeGreaterThan(1);
    for (const g of catalog.groups) {
      for (const e of g.entities) {
        for (const a of e.actions) expect(catalog.permissions.has(`${e.id}:${a.id}`)).toBe(true);
      }
    }
  });

  it("default catalog covers every entity the reference docs list", () => {
    const catalog = loadCatalog(readJson(DEFAULT_PATH));
    const entities = new Set(catalog.groups.flatMap((g) => g.entities.map((e) => e.id)));
    for (const e of [
      "payin",
      "payout",
      "statement",
      "kyc_document",
      "customer",
      "currency_account",
      "merchant_account",
      "payment_route",
      "payment_statement",
      "payment_transaction",
      "payment_commit",
      "payment_request",
      "payment_command",
      "payment_scheme",
      "onramp",
      "transactions",
      "message",
    ]) {
      expect(entities.has(e), e).toBe(true);
    }
    for (const p of ["payment_transaction:read", "onramp:create", "onramp:read", "transactions:read"]) {
      expect(catalog.permissions.has(p), p).toBe(true);
    }
  });

  it("does not mutate the document it was given", () => {
    const doc = readJson(DEFAULT_PATH);
    const before = JSON.stringify(doc);
    loadCatalog(doc);
    expect(JSON.stringify(doc)).toBe(before);
  });
});

describe("loadCatalog: invalid catalogs", () => {
  const entity = (id: string, actions: unknown[] = ["read"]) => ({ id, name: id, actions });
  const doc = (...groups: unknown[]) => ({ groups });
  const g = (id: string, entities: unknown[]) => ({ id, name: id, entities });

  it.each([
    ["null", null, /"groups" array/],
    ["a string", "catalog", /"groups" array/],
    ["an object without groups", {}, /"groups" array/],
    ["groups not an array", { groups: {} }, /"groups" array/],
    ["a group that is not an object", doc(42), /groups\[0\] must be an object/],
    ["a group without entities", doc({ id: "a", name: "A" }), /groups\[0\]\.entities must be a non-empty/],
    ["a group with no entities", doc(g("a", [])), /groups\[0\]\.entities must be a non-empty/],
    ["a group without a name", doc({ id: "a", entities: [entity("x")] }), /groups\[0\]\.name/],
    ["an uppercase group id", doc(g("Payments", [entity("x")])), /groups\[0\]\.id "Payments" must match/],
    ["a group id with a dash", doc(g("pay-ments", [entity("x")])), /groups\[0\]\.id "pay-ments"/],
    ["a group id starting with a digit", doc(g("1pay", [entity("x")])), /groups\[0\]\.id "1pay"/],
    ["an empty group id", doc(g("", [entity("x")])), /groups\[0\]\.id must be a non-empty string/],
    ["a numeric group id", doc(g(7 as unknown as string, [entity("x")])), /groups\[0\]\.id/],
    [
      "a duplicate group id",
      doc(g("a", [entity("x")]), g("a", [entity("y")])),
      /groups\[1\]\.id "a" is used twice/,
    ],
    ["the reserved group id", doc(g("latchkey", [entity("x")])), /groups\[0\]\.id "latchkey".*reserved/],
    [
      "an entity in two groups",
      doc(g("a", [entity("payin")]), g("b", [entity("payin")])),
      /groups\[1\]\.entities\[0\]\.id "payin" is used twice/,
    ],
    [
      "an entity twice in one group",
      doc(g("a", [entity("payin"), entity("payin")])),
      /groups\[0\]\.entities\[1\]\.id "payin" is used twice/,
    ],
    ["the reserved entity keys", doc(g("a", [entity("keys")])), /entities\[0\]\.id "keys".*reserved/],
    ["the reserved entity credentials", doc(g("a", [entity("credentials")])), /"credentials".*reserved/],
    ["an uppercase entity id", doc(g("a", [entity("PayIn")])), /entities\[0\]\.id "PayIn" must match/],
    ["an entity id with a colon", doc(g("a", [entity("pay:in")])), /entities\[0\]\.id "pay:in"/],
    ["an entity without a name", doc(g("a", [{ id: "x", actions: ["read"] }])), /entities\[0\]\.name/],
    ["an entity without actions", doc(g("a", [{ id: "x", name: "X" }])), /entities\[0\]\.actions must be/],
    [
      "an entity with empty actions",
      doc(g("a", [entity("x", [])])),
      /entities\[0\]\.actions must be a non-empty/,
    ],
    [
      "a duplicate action",
      doc(g("a", [entity("x", ["read", "write", "read"])])),
      /actions\[2\] "read" is listed twice/,
    ],
    [
      "a duplicate action in object form",
      doc(g("a", [entity("x", ["read", { id: "read", name: "See" }])])),
      /actions\[1\] "read" is listed twice/,
    ],
    ["an uppercase action", doc(g("a", [entity("x", ["Read"])])), /actions\[0\] "Read" must match/],
    ["an action with a space", doc(g("a", [entity("x", ["re ad"])])), /actions\[0\] "re ad" must match/],
    ["an empty action", doc(g("a", [entity("x", [""])])), /actions\[0\]\.id must be a non-empty/],
    ["a numeric action", doc(g("a", [entity("x", [5])])), /actions\[0\]\.id/],
    ["an action object without id", doc(g("a", [entity("x", [{ name: "Read" }])])), /actions\[0\]\.id/],
    ["an empty action label", doc(g("a", [entity("x", [{ id: "read", name: "" }])])), /actions\[0\]\.name/],
    ["a name over 200 characters", doc({ id: "a", name: "n".repeat(201), entities: [entity("x")] }), /name/],
  ])("throws CatalogError for %s", (_what, input, message) => {
    let caught: unknown;
    try {
      loadCatalog(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CatalogError);
    expect((caught as Error).message).toMatch(message);
  });
});

describe("presets", () => {
  it("presetPermissions: read_only is the read actions, write the others, full_access all", () => {
    const payments = group(small(), "payments");
    expect(presetPermissions(payments, "read_only").sort()).toEqual(["payment:read", "payment_route:read"]);
    expect(presetPermissions(payments, "write").sort()).toEqual(["payment:refund", "payment:write"]);
    expect(presetPermissions(payments, "full_access").sort()).toEqual([
      "payment:read",
      "payment:refund",
      "payment:write",
      "payment_route:read",
    ]);
  });

  it("presetPermissions on the management group", () => {
    const mgmt = group(small(), MANAGEMENT_GROUP_ID);
    expect(presetPermissions(mgmt, "read_only")).toEqual(["audit:read"]);
    expect(presetPermissions(mgmt, "full_access").sort()).toEqual([...MANAGEMENT].sort());
  });

  it("expandPreset with a single preset applies to every platform group but never the management group", () => {
    const catalog = small();
    expect(expandPreset(catalog, "read_only").sort()).toEqual([
      "onramp:read",
      "payment:read",
      "payment_route:read",
    ]);
    expect(expandPreset(catalog, "write").sort()).toEqual([
      "onramp:create",
      "payment:refund",
      "payment:write",
    ]);
    const full = expandPreset(catalog, "full_access");
    expect(full.sort()).toEqual([
      "onramp:create",
      "onramp:read",
      "payment:read",
      "payment:refund",
      "payment:write",
      "payment_route:read",
    ]);
    for (const p of MANAGEMENT) expect(full).not.toContain(p);
  });

  it("expandPreset on the default catalog leaves out every management permission", () => {
    const catalog = loadCatalog(readJson(DEFAULT_PATH));
    const full = expandPreset(catalog, "full_access");
    expect(full.length).toBe(catalog.permissions.size - MANAGEMENT.length);
    for (const p of MANAGEMENT) expect(full).not.toContain(p);
    expect(expandPreset(catalog, "read_only")).not.toContain("audit:read");
  });

  it("expandPreset with a map applies per group, the management group only when named", () => {
    const catalog = small();
    expect(expandPreset(catalog, { payments: "read_only" }).sort()).toEqual([
      "payment:read",
      "payment_route:read",
    ]);
    expect(expandPreset(catalog, { payments: "write", onramp: "full_access" }).sort()).toEqual([
      "onramp:create",
      "onramp:read",
      "payment:refund",
      "payment:write",
    ]);
    expect(expandPreset(catalog, { [MANAGEMENT_GROUP_ID]: "full_access" }).sort()).toEqual(
      [...MANAGEMENT].sort(),
    );
    expect(expandPreset(catalog, {})).toEqual([]);
  });

  it("expandPreset with an unknown group throws CatalogError naming it", () => {
    expect(() => expandPreset(small(), { payments: "read_only", nope: "full_access" })).toThrow(CatalogError);
    expect(() => expandPreset(small(), { nope: "full_access" })).toThrow(/"nope"/);
  });

  it("expandPreset never repeats a permission", () => {
    const catalog = loadCatalog(readJson(DEFAULT_PATH));
    const full = expandPreset(catalog, "full_access");
    expect(new Set(full).size).toBe(full.length);
  });
});

describe("describeSelection", () => {
  it("names the preset a group's selection matches", () => {
    const catalog = small();
    expect(describeSelection(catalog, ["payment:read", "payment_route:read"])).toEqual({
      payments: "read_only",
    });
    expect(describeSelection(catalog, ["payment:write", "payment:refund"])).toEqual({ payments: "write" });
    expect(describeSelection(catalog, presetPermissions(group(catalog, "payments"), "full_access"))).toEqual({
      payments: "full_access",
    });
  });

  it("says custom when a selection matches no preset", () => {
    const catalog = small();
    expect(describeSelection(catalog, ["payment:read"])).toEqual({ payments: "custom" });
    expect(describeSelection(catalog, ["payment:read", "payment:write"])).toEqual({ payments: "custom" });
  });

  it("describes each group on its own and omits groups with nothing selected", () => {
    const catalog = small();
    expect(
      describeSelection(catalog, ["onramp:read", "onramp:create", "payment:read", "keys:verify"]),
    ).toEqual({
      onramp: "full_access",
      payments: "custom",
      [MANAGEMENT_GROUP_ID]: "custom",
    });
    expect(describeSelection(catalog, [])).toEqual({});
    expect(describeSelection(catalog, ["unknown:read"])).toEqual({});
  });

  it("round-trips every expanded preset of the default catalog", () => {
    const catalog = loadCatalog(readJson(DEFAULT_PATH));
    for (const preset of ["read_only", "write", "full_access"] as const) {
      const selection = describeSelection(catalog, expandPreset(catalog, preset));
      for (const g of catalog.groups) {
        if (g.built_in || presetPermissions(g, preset).length === 0) {
          expect(selection[g.id]).toBeUndefined();
        } else {
          expect(selection[g.id], `${g.id} ${preset}`).toBe(
            // A group with no write actions has read_only equal to full_access; the wider name wins.
            presetPermissions(g, "write").length === 0 ? "full_access" : preset,
          );
        }
      }
    }
  });
});

describe("action labels", () => {
  it("labels well-known actions, humanises others, and lets the object form override", () => {
    const catalog = loadCatalog({
      groups: [
        {
          id: "g",
          name: "G",
          entities: [
            {
              id: "thing",
              name: "Thing",
              actions: ["read", "write", "start_session", { id: "create", name: "Create charges" }, "delete"],
            },
          ],
        },
      ],
    });
    expect(group(catalog, "g").entities[0]?.actions).toEqual([
      { id: "read", name: "View" },
      { id: "write", name: "Edit" },
      { id: "start_session", name: "Start session" },
      { id: "create", name: "Create charges" },
      { id: "delete", name: "Delete" },
    ]);
  });

  it("keeps the labels of the default catalog's object-form actions", () => {
    const catalog = loadCatalog(readJson(DEFAULT_PATH));
    const payin = catalog.groups.flatMap((g) => g.entities).find((e) => e.id === "payin");
    expect(payin?.actions).toEqual([
      { id: "read", name: "View" },
      { id: "create", name: "Create charges" },
    ]);
  });
});
