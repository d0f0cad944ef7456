import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCatalog } from "../../src/core/catalog.ts";
import { createRuntime } from "../../src/runtime.ts";
import { PLATFORM_SCOPE } from "../../src/services/verification.ts";
import { migrateToLatest, openStore, type Store } from "../../src/store/store.ts";
import { BACKENDS, createTestSchema, TEST_DATABASE_URL } from "../helpers/backends.ts";

const SECRET = "restart-secret-0123456789abcdef0123456789";
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
/** The operator's catalog at the first start, and at the next one: the role grew, another went. */
const FIRST = loadCatalog({
  groups: GROUPS,
  roles: [
    { id: "refunds", name: "Refunds", permissions: ["payment:read", "payment:refund"] },
    { id: "reports", name: "Reports", permissions: ["statement:read"] },
  ],
});
const NEXT = loadCatalog({
  groups: GROUPS,
  roles: [
    { id: "refunds", name: "Refunds", permissions: ["payment:read", "payment:refund", "statement:read"] },
  ],
});
const ctx = { actor: { kind: "platform" as const }, ip: "127.0.0.1", userAgent: null, totpUsed: false };

/** A role's permissions are the catalog's as loaded: a changed role applies to its API users at next start. */
describe.each(BACKENDS)("a catalog's roles across a restart on %s", (kind) => {
  let store: Store;
  let drop = async () => {};
  beforeAll(async () => {
    if (kind === "pglite") {
      store = await openStore({ kind: "pglite" });
    } else {
      const schema = await createTestSchema();
      store = await openStore({
        kind: "postgres",
        url: TEST_DATABASE_URL,
        schema: schema.schema,
        poolSize: 2,
      });
      drop = schema.drop;
    }
    await migrateToLatest(store.db);
  });
  afterAll(async () => {
    await store.close();
    await drop();
  });

  it("applies a changed role at the next start, and a removed one grants nothing", async () => {
    const start = (catalog: typeof FIRST) =>
      createRuntime({
        store,
        catalog,
        secret: SECRET,
        keyPrefix: "lk",
        services: { clock: () => new Date() },
      });
    const first = await start(FIRST);
    let companyId = "";
    let credentialId = "";
    let both = "";
    try {
      const made = await first.services.companies.create(
        { name: "Restart Co", owner_email: "o@restart.example" },
        ctx,
      );
      companyId = made.company.id;
      const cred = await first.services.credentials.create(
        companyId,
        { name: "Refunds", roles: ["refunds", "reports"] },
        ctx,
      );
      credentialId = cred.id;
      expect([...cred.granted_permissions].sort()).toEqual([
        "payment:read",
        "payment:refund",
        "statement:read",
      ]);
      const key = await first.services.keys.create(
        companyId,
        { name: "k", environment: "live", credential_id: credentialId },
        ctx,
      );
      both = key.key;
      const ok = await first.services.verification.verify(
        { key: both, permissions: ["statement:read"] },
        PLATFORM_SCOPE,
      );
      expect(ok.code).toBe("VALID");
    } finally {
      await first.close();
    }

    const next = await start(NEXT);
    try {
      const view = await next.services.credentials.get(companyId, credentialId, { kind: "platform" });
      expect(view).toMatchObject({ roles: ["refunds", "reports"], unknown_roles: ["reports"] });
      // "refunds" now carries statement:read, so the key keeps it though "reports" is gone.
      expect([...view.granted_permissions].sort()).toEqual([
        "payment:read",
        "payment:refund",
        "statement:read",
      ]);
      const still = await next.services.verification.verify(
        { key: both, permissions: ["statement:read"] },
        PLATFORM_SCOPE,
      );
      expect(still.code).toBe("VALID");
      // Without "refunds", only the removed role is left: nothing is granted and the key can do nothing.
      await expect(
        next.services.credentials.update(companyId, credentialId, { roles: ["reports"] }, ctx),
      ).rejects.toMatchObject({ code: "GRANT_EMPTY" });
    } finally {
      await next.close();
    }
  });
});
