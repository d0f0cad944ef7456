import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

const basic = (username: string, password: string) =>
  `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;

/** The default catalog's "Checkout role" (see src/core/default-catalog.json). */
const CHECKOUT = [
  "payin:read",
  "payin:create",
  "payment_request:read",
  "payment_request:write",
  "payment_transaction:read",
  "payment_commit:write",
  "payment_scheme:read",
];

describe.each(BACKENDS)("API credential roles on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let other: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Roles Co");
    other = await h.createCompany("Other Roles Co");
  });
  afterAll(() => h.close());

  const create = (json: Record<string, unknown>, key = co.key) =>
    h.call("POST", "/v1/credentials", { key, json: { name: "Integration", ...json } });
  const created = async (json: Record<string, unknown>, key = co.key) => {
    const res = await create(json, key);
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data;
  };
  const patch = (id: string, json: Record<string, unknown>, key = co.key) =>
    h.call("PATCH", `/v1/credentials/${id}`, { key, json });
  const verify = async (body: Record<string, unknown>) => {
    const res = await h.call("POST", "/v1/verify", { key: co.key, json: body });
    expect(res.statusCode).toBe(200);
    return res.json().data;
  };

  it("lists the catalog's roles, the platform's and Latchkey's own", async () => {
    const res = await h.call("GET", "/v1/catalog");
    expect(res.statusCode).toBe(200);
    const roles = res.json().data.roles as { id: string; name: string; permissions: string[] }[];
    expect(roles.find((r) => r.id === "checkout")).toMatchObject({ name: "Checkout role" });
    expect(new Set(roles.find((r) => r.id === "checkout")?.permissions)).toEqual(new Set(CHECKOUT));
    expect(roles.find((r) => r.id === "reporting")?.permissions.every((p) => p.endsWith(":read"))).toBe(true);
    expect(roles.find((r) => r.id === "key_manager")).toMatchObject({
      name: "Key manager",
      permissions: ["keys:manage", "keys:verify"],
      built_in: true,
    });
  });

  it("creates an API user from roles alone; what it holds is their permissions", async () => {
    const cred = await created({ roles: ["checkout"] });
    expect(cred).toMatchObject({
      roles: ["checkout"],
      unknown_roles: [],
      permissions: [],
      username_format: "web_service",
    });
    expect(new Set(cred.granted_permissions)).toEqual(new Set(CHECKOUT));
    expect(cred.username).toMatch(/^ws_\d{6}@Company\.RolesCo$/);
    // Roles and single permissions together: the union.
    const both = await created({ roles: ["checkout"], permissions: ["statement:read"] });
    expect(new Set(both.granted_permissions)).toEqual(new Set([...CHECKOUT, "statement:read"]));
    expect(both.permissions).toEqual(["statement:read"]);
    const read = await h.call("GET", `/v1/credentials/${both.id}`, { key: co.key });
    expect(read.json().data).toMatchObject({ roles: ["checkout"], permissions: ["statement:read"] });
  });

  it("needs at least one enabled role or permission, on create and on update", async () => {
    for (const json of [{}, { roles: [] }, { roles: [], permissions: [] }]) {
      const res = await create(json);
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ code: "GRANT_EMPTY", field: "permissions" });
    }
    const cred = await created({ roles: ["checkout"] });
    const emptied = await patch(cred.id, { roles: [] });
    expect(emptied.statusCode).toBe(400);
    expect(emptied.json().error.code).toBe("GRANT_EMPTY");
    // Swapping the role for a permission leaves it one: allowed.
    const swapped = await patch(cred.id, { roles: [], permissions: ["payout:read"] });
    expect(swapped.statusCode, swapped.body).toBe(200);
    expect(swapped.json().data).toMatchObject({ roles: [], granted_permissions: ["payout:read"] });
  });

  it("refuses a role the catalog does not define, and malformed role ids", async () => {
    const unknown = await create({ roles: ["checkout", "no_such_role"] });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error).toMatchObject({
      code: "UNKNOWN_ROLE",
      field: "roles",
      details: { roles: ["no_such_role"] },
    });
    for (const roles of [["Checkout"], [""], "checkout", [42], ["x".repeat(49)], ["a'; DROP TABLE x"]]) {
      const res = await create({ roles });
      expect(res.statusCode, JSON.stringify(roles)).toBe(400);
      expect(res.json().error.code).toBe("VALIDATION_ERROR");
    }
    const bad = await create({ roles: ["checkout"], username_format: "lem" });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe("VALIDATION_ERROR");
  });

  it("bounds its keys by its roles: a key gets the role's permissions and nothing beyond", async () => {
    const cred = await created({ roles: ["payouts"] });
    const key = await h.createKey(co, { credential_id: cred.id });
    const view = (await h.call("GET", `/v1/keys/${key.id}`, { key: co.key })).json().data;
    expect(new Set(view.permissions)).toEqual(
      new Set(["payout:read", "payout:create", "statement:read", "currency_account:read"]),
    );
    const beyond = await h.call("POST", "/v1/keys", {
      key: co.key,
      json: { name: "too much", environment: "live", credential_id: cred.id, permissions: ["payin:read"] },
    });
    expect(beyond.statusCode).toBe(403);
    expect(beyond.json().error.code).toBe("PERMISSION_NOT_HELD");
    expect((await verify({ key: key.key, permissions: ["payout:create"] })).valid).toBe(true);
    expect((await verify({ key: key.key, permissions: ["payin:read"] })).code).toBe(
      "INSUFFICIENT_PERMISSIONS",
    );
  });

  it("verifies and authorizes with role permissions, and drops them at once when the role goes", async () => {
    const cred = await created({ roles: ["checkout", "reporting"] });
    const key = await h.createKey(co, {
      credential_id: cred.id,
      permissions: ["payin:create", "statement:read"],
    });
    expect((await verify({ key: key.key, permissions: ["payin:create"] })).valid).toBe(true);
    expect((await verify({ key: key.key, permissions: ["statement:read"] })).valid).toBe(true);
    // The answer is cached; taking a role away must reach it (the change stream drops the entry).
    expect((await patch(cred.id, { roles: ["checkout"] })).statusCode).toBe(200);
    expect((await verify({ key: key.key, permissions: ["statement:read"] })).code).toBe(
      "INSUFFICIENT_PERMISSIONS",
    );
    expect((await verify({ key: key.key, permissions: ["payin:create"] })).valid).toBe(true);
    // The key view shows what the key can do now; given the role back, it can again.
    const shown = (await h.call("GET", `/v1/keys/${key.id}`, { key: co.key })).json().data;
    expect(shown.permissions).toEqual(["payin:create"]);
    expect((await patch(cred.id, { roles: ["checkout", "reporting"] })).statusCode).toBe(200);
    expect((await verify({ key: key.key, permissions: ["statement:read"] })).valid).toBe(true);
  });

  it("lets nobody give a role whose permissions they do not hold", async () => {
    // A management key that holds Pay-in and credential management only.
    const weak = await h.createKey(co, { permissions: ["credentials:manage", "payin:read", "payin:create"] });
    const refused = await create({ roles: ["checkout"] }, weak.key);
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error).toMatchObject({ code: "PERMISSION_NOT_HELD", field: "roles" });
    expect(refused.json().error.details.permissions).toContain("payment_request:write");
    const own = await created({ permissions: ["payin:read"] }, weak.key);
    const added = await patch(own.id, { roles: ["checkout"] }, weak.key);
    expect(added.statusCode).toBe(403);
    expect(added.json().error.code).toBe("PERMISSION_NOT_HELD");
    // Nor change the grant of an API user stronger than itself, even to narrow it.
    const strong = await created({ roles: ["checkout"] });
    const narrowed = await patch(strong.id, { roles: [], permissions: ["payin:read"] }, weak.key);
    expect(narrowed.statusCode).toBe(403);
    expect(narrowed.json().error.code).toBe("PERMISSION_NOT_HELD");
    // Nor issue it a password, which would act with its roles' permissions.
    const password = await h.call("POST", `/v1/credentials/${strong.id}/password`, { key: weak.key });
    expect(password.statusCode).toBe(403);
  });

  it("records roles in the audit trail and in the credential's events", async () => {
    const cred = await created({ name: "Audited", roles: ["onboarding"] });
    expect((await patch(cred.id, { roles: ["onboarding", "messaging"] })).statusCode).toBe(200);
    const trail = await h.call("GET", "/v1/audit?action=credential.created", { key: co.key });
    const made = trail.json().data.events.find((e: { target: { id: string } }) => e.target.id === cred.id);
    expect(made.changes.after).toMatchObject({ roles: ["onboarding"], permissions: [] });
    const changed = await h.call("GET", "/v1/audit?action=credential.permissions_changed", { key: co.key });
    const change = changed
      .json()
      .data.events.find((e: { target: { id: string } }) => e.target.id === cred.id);
    expect(change.changes).toEqual({
      before: { roles: ["onboarding"] },
      after: { roles: ["onboarding", "messaging"] },
    });
    const events = await h.store.db
      .selectFrom("events")
      .select(["type", "data"])
      .where("company_id", "=", co.id)
      .where("type", "in", ["credential.created", "credential.updated"])
      .orderBy("seq")
      .execute();
    const mine = events.filter((e) => (e.data as { id: string }).id === cred.id);
    expect(mine.map((e) => (e.data as { roles: string[] }).roles)).toEqual([
      ["onboarding"],
      ["onboarding", "messaging"],
    ]);
  });

  it("creates legal-entity-management API users whose Basic auth works like any other", async () => {
    const lem = await created({
      name: "KYC onboarding",
      username_format: "legal_entity_management",
      roles: ["onboarding"],
    });
    expect(lem.username).toMatch(/^ws_\d{6}@Scope\.Company_RolesCo$/);
    expect(lem.username_format).toBe("legal_entity_management");
    // The format is fixed: an update cannot name one.
    const changed = await patch(lem.id, { username_format: "web_service" });
    expect(changed.statusCode).toBe(400);
    const res = await h.call("POST", `/v1/credentials/${lem.id}/password`, { key: co.key });
    expect(res.statusCode).toBe(200);
    const { username, password } = res.json().data;
    expect(username).toBe(lem.username);
    const ok = await verify({ username, password, permissions: ["kyc_document:create"] });
    expect(ok).toMatchObject({ valid: true, credential_id: lem.id });
    const beyond = await verify({ username, password, permissions: ["payout:create"] });
    expect(beyond.code).toBe("INSUFFICIENT_PERMISSIONS");
    // As the Authorization header of a management call too (onboarding grants no management: 403).
    const call = await h.call("GET", "/v1/keys", { headers: { authorization: basic(username, password) } });
    expect(call.statusCode).toBe(403);
    // Another company's gateway key does not find it.
    const foreign = await h.call("POST", "/v1/verify", {
      key: other.key,
      json: { username, password },
    });
    expect(foreign.json().data.valid).toBe(false);
  });

  it("shows a role the operator removed as unknown; it grants nothing and may stay but not be added", async () => {
    const cred = await created({ roles: ["payouts"], permissions: ["statement:read"] });
    const key = await h.createKey(co, {
      credential_id: cred.id,
      permissions: ["payout:read", "statement:read"],
    });
    // As if the catalog of a later start no longer had "payouts" but had had "retired_role".
    await sql`UPDATE credentials SET roles = ${JSON.stringify(["retired_role"])}::jsonb WHERE id = ${cred.id}`.execute(
      h.store.db,
    );
    h.services.changes.emit({
      kind: "credential",
      credentialId: cred.id,
      companyId: co.id,
      environment: "live",
    });
    const shown = (await h.call("GET", `/v1/credentials/${cred.id}`, { key: co.key })).json().data;
    expect(shown).toMatchObject({
      roles: ["retired_role"],
      unknown_roles: ["retired_role"],
      granted_permissions: ["statement:read"],
    });
    expect((await verify({ key: key.key, permissions: ["payout:read"] })).code).toBe(
      "INSUFFICIENT_PERMISSIONS",
    );
    expect((await verify({ key: key.key, permissions: ["statement:read"] })).valid).toBe(true);
    // Kept where it was while something else changes; another unknown one is refused.
    expect((await patch(cred.id, { roles: ["retired_role", "payouts"] })).statusCode).toBe(200);
    const added = await patch(cred.id, { roles: ["retired_role", "other_gone"] });
    expect(added.json().error).toMatchObject({ code: "UNKNOWN_ROLE", details: { roles: ["other_gone"] } });
    // An unknown role alone is no grant.
    const alone = await patch(cred.id, { roles: ["retired_role"], permissions: [] });
    expect(alone.json().error.code).toBe("GRANT_EMPTY");
  });

  it("gives a test caller test API users with roles, and keeps companies apart", async () => {
    const testKey = await h.createKey(co, {
      environment: "test",
      permissions: ["credentials:manage", "keys:manage", ...CHECKOUT],
    });
    const cred = await created({ roles: ["checkout"] }, testKey.key);
    expect(cred).toMatchObject({ environment: "test", roles: ["checkout"] });
    // The live world's API user is not the test caller's to change.
    const live = await created({ roles: ["checkout"] });
    expect((await patch(live.id, { roles: ["checkout", "reporting"] }, testKey.key)).statusCode).toBe(404);
    // Nor another company's.
    expect((await patch(cred.id, { roles: ["reporting"] }, other.key)).statusCode).toBe(404);
  });
});

/** A platform catalog with routes and roles, as an operator would write one. */
const ROUTED = {
  groups: [
    {
      id: "onramp",
      name: "On-ramp",
      entities: [
        {
          id: "onramp",
          name: "On-ramp session",
          actions: [
            { id: "read", routes: ["GET /v1/onramp/:id"] },
            { id: "create", routes: ["POST /v1/onramp"] },
          ],
        },
        {
          id: "transactions",
          name: "Transactions",
          actions: [{ id: "read", routes: ["GET /v1/transactions"] }],
        },
      ],
    },
  ],
  roles: [
    {
      id: "onramp_integration",
      name: "On-ramp integration role",
      permissions: ["onramp:read", "onramp:create"],
    },
    { id: "bookkeeping", name: "Bookkeeping role", permissions: ["transactions:read"] },
  ],
};

describe.each(BACKENDS)("/v1/authorize with role permissions on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "latchkey-roles-"));
    const catalogPath = join(dir, "catalog.json");
    writeFileSync(catalogPath, JSON.stringify(ROUTED));
    h = await createHarness(kind, { catalogPath });
    co = await h.createCompany("Routed Co");
  });
  afterAll(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lets a key through for a route its API user's role covers, and only that", async () => {
    const gw = await h.verifyKey("gateway");
    const cred = (
      await h.call("POST", "/v1/credentials", {
        key: co.key,
        json: { name: "On-ramp", roles: ["onramp_integration"] },
      })
    ).json().data;
    expect(cred.granted_permissions.sort()).toEqual(["onramp:create", "onramp:read"]);
    const key = await h.createKey(co, { credential_id: cred.id });
    const ask = (method: string, uri: string) =>
      h.call("GET", "/v1/authorize", {
        headers: {
          "latchkey-verify-key": gw,
          "x-original-method": method,
          "x-original-uri": uri,
          "x-api-key": key.key,
        },
      });
    expect((await ask("POST", "/v1/onramp")).statusCode).toBe(200);
    expect((await ask("GET", "/v1/onramp/ses_1")).statusCode).toBe(200);
    expect((await ask("GET", "/v1/transactions")).statusCode).toBe(403);
    // Given the bookkeeping role too, the API user holds transactions:read; the key was given only
    // what the API user held at its creation, so it stays out (keys' permissions are fixed).
    const patched = await h.call("PATCH", `/v1/credentials/${cred.id}`, {
      key: co.key,
      json: { roles: ["onramp_integration", "bookkeeping"] },
    });
    expect(patched.statusCode).toBe(200);
    expect((await ask("GET", "/v1/transactions")).statusCode).toBe(403);
    const second = await h.createKey(co, { credential_id: cred.id });
    const asSecond = await h.call("GET", "/v1/authorize", {
      headers: {
        "latchkey-verify-key": gw,
        "x-original-method": "GET",
        "x-original-uri": "/v1/transactions",
        "x-api-key": second.key,
      },
    });
    expect(asSecond.statusCode).toBe(200);
  });
});
