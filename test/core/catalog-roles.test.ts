import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkCredentialGrant, credentialPermissions, unknownRoles } from "../../src/core/access/grants.ts";
import { CatalogError, loadCatalog } from "../../src/core/catalog.ts";
import { LatchkeyError } from "../../src/core/errors.ts";

const DEFAULT = JSON.parse(
  readFileSync(join(import.meta.dirname, "../../src/core/default-catalog.json"), "utf8"),
) as Record<string, unknown>;

const GROUPS = [
  {
    id: "payments",
    name: "Payments",
    entities: [
      { id: "payment", name: "Payment", actions: ["read", "write", "refund"] },
      { id: "statement", name: "Statement", actions: ["read"] },
    ],
  },
];
const withRoles = (roles: unknown) => loadCatalog({ groups: GROUPS, roles });

const thrown = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("did not throw");
};

describe("catalog roles: loading", () => {
  it("loads the platform's roles, then Latchkey's built-in ones", () => {
    const catalog = withRoles([
      {
        id: "refunds",
        name: "Refunds role",
        description: "Refund payments.",
        permissions: ["payment:refund"],
      },
      { id: "reader", name: "Read-only", permissions: ["payment:read", "statement:read", "payment:read"] },
    ]);
    expect(catalog.roles.map((r) => r.id)).toEqual([
      "refunds",
      "reader",
      "key_manager",
      "credential_manager",
      "audit_reader",
      "webhook_manager",
    ]);
    expect(catalog.rolesById.get("refunds")).toEqual({
      id: "refunds",
      name: "Refunds role",
      description: "Refund payments.",
      permissions: ["payment:refund"],
    });
    // A permission listed twice counts once.
    expect(catalog.rolesById.get("reader")?.permissions).toEqual(["payment:read", "statement:read"]);
    for (const role of catalog.roles.filter((r) => r.built_in)) {
      expect(
        role.permissions.every((p) => catalog.permissions.has(p)),
        role.id,
      ).toBe(true);
    }
  });

  it("has none of its own without a roles list, but the built-in ones", () => {
    const catalog = loadCatalog({ groups: GROUPS });
    expect(catalog.roles.every((r) => r.built_in)).toBe(true);
    expect(catalog.rolesById.get("audit_reader")?.permissions).toEqual(["audit:read"]);
  });

  it("ships a default catalog whose roles all load, with a read-only one", () => {
    const catalog = loadCatalog(DEFAULT);
    const own = catalog.roles.filter((r) => !r.built_in);
    expect(own.length).toBeGreaterThanOrEqual(5);
    const reporting = catalog.rolesById.get("reporting");
    expect(reporting?.permissions.every((p) => p.endsWith(":read"))).toBe(true);
    // Every read action of the platform's groups, none of the management group's.
    const reads = [...catalog.permissions].filter((p) => p.endsWith(":read") && p !== "audit:read");
    expect(new Set(reporting?.permissions)).toEqual(new Set(reads));
    // No default role reaches Latchkey's own management: that is asked for by name.
    for (const role of own)
      expect(
        role.permissions.some((p) => p.includes("manage")),
        role.id,
      ).toBe(false);
  });

  it.each([
    [{}, /roles must be an array/],
    [["x"], /roles\[0\] must be an object/],
    [[{ name: "No id", permissions: ["payment:read"] }], /roles\[0\]\.id must be a non-empty string/],
    [[{ id: "Bad-Id", name: "x", permissions: ["payment:read"] }], /roles\[0\]\.id "Bad-Id" must match/],
    [[{ id: "r", permissions: ["payment:read"] }], /roles\[0\] \("r"\)\.name must be/],
    [[{ id: "r", name: "R" }], /roles\[0\] \("r"\)\.permissions must be a non-empty array/],
    [[{ id: "r", name: "R", permissions: [] }], /roles\[0\] \("r"\)\.permissions must be a non-empty array/],
    [
      [{ id: "r", name: "R", permissions: ["payment:read", "payment:delete"] }],
      /roles\[0\] \("r"\)\.permissions: "payment:delete" is not a permission of the catalog/,
    ],
    [[{ id: "r", name: "R", permissions: [7] }], /roles\[0\] \("r"\)\.permissions: 7 is not/],
    [
      [
        { id: "dup", name: "One", permissions: ["payment:read"] },
        { id: "dup", name: "Two", permissions: ["statement:read"] },
      ],
      /roles\[1\] \("dup"\): the id is used twice or is reserved/,
    ],
    [
      [{ id: "key_manager", name: "Mine", permissions: ["payment:read"] }],
      /roles\[0\] \("key_manager"\).*reserved/,
    ],
  ])("refuses %j with a CatalogError naming the role", (roles, message) => {
    const err = thrown(() => withRoles(roles));
    expect(err).toBeInstanceOf(CatalogError);
    expect(err.message).toMatch(message);
  });
});

describe("credential grants: roles and single permissions", () => {
  const catalog = withRoles([
    { id: "refunds", name: "Refunds", permissions: ["payment:read", "payment:refund"] },
    { id: "reader", name: "Reader", permissions: ["payment:read", "statement:read"] },
  ]);

  it("holds the union of its roles' permissions and its own", () => {
    expect(
      new Set(
        credentialPermissions(catalog, { roles: ["refunds", "reader"], permissions: ["payment:write"] }),
      ),
    ).toEqual(new Set(["payment:read", "payment:refund", "statement:read", "payment:write"]));
    expect(credentialPermissions(catalog, { roles: [], permissions: ["payment:write"] })).toEqual([
      "payment:write",
    ]);
  });

  it("gets nothing from a role the catalog does not define", () => {
    expect(credentialPermissions(catalog, { roles: ["gone"], permissions: ["statement:read"] })).toEqual([
      "statement:read",
    ]);
    expect(unknownRoles(catalog, ["gone", "reader", "also_gone"])).toEqual(["gone", "also_gone"]);
  });

  const code = (fn: () => unknown) => {
    const err = thrown(fn);
    expect(err).toBeInstanceOf(LatchkeyError);
    return { code: (err as LatchkeyError).code, details: (err as LatchkeyError).details };
  };

  it("needs at least one known role or one permission", () => {
    expect(code(() => checkCredentialGrant(catalog, { roles: [], permissions: [] }, "all")).code).toBe(
      "GRANT_EMPTY",
    );
    expect(
      code(() => checkCredentialGrant(catalog, { roles: ["gone"], permissions: [] }, "all", ["gone"])).code,
    ).toBe("GRANT_EMPTY");
    expect(checkCredentialGrant(catalog, { roles: ["reader", "reader"], permissions: [] }, "all")).toEqual({
      roles: ["reader"],
      permissions: [],
    });
  });

  it("refuses a role it does not know unless the credential already had it", () => {
    expect(
      code(() => checkCredentialGrant(catalog, { roles: ["gone"], permissions: ["payment:read"] }, "all")),
    ).toMatchObject({
      code: "UNKNOWN_ROLE",
      details: { field: "roles", roles: ["gone"] },
    });
    expect(
      checkCredentialGrant(catalog, { roles: ["gone", "reader"], permissions: [] }, "all", ["gone"]).roles,
    ).toEqual(["gone", "reader"]);
  });

  it("lets a caller give a role only when it holds every permission of it", () => {
    const caller = new Set(["payment:read", "statement:read"]);
    expect(checkCredentialGrant(catalog, { roles: ["reader"], permissions: [] }, caller).roles).toEqual([
      "reader",
    ]);
    expect(
      code(() => checkCredentialGrant(catalog, { roles: ["refunds"], permissions: [] }, caller)),
    ).toMatchObject({
      code: "PERMISSION_NOT_HELD",
      details: { field: "roles", permissions: ["payment:refund"] },
    });
    expect(
      code(() =>
        checkCredentialGrant(catalog, { roles: ["reader"], permissions: ["payment:write"] }, caller),
      ),
    ).toMatchObject({ code: "PERMISSION_NOT_HELD", details: { field: "permissions" } });
  });
});
