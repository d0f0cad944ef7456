import { describe, expect, it } from "vitest";
import {
  actingEnvironment,
  assertActsInLive,
  assertMayChange,
  assertMayCreateIn,
  listedEnvironment,
  sees,
  seesActor,
} from "../../src/core/access/environments.ts";
import { assertHoldsAll, effectivePermissions, grantable, keyGrant } from "../../src/core/access/grants.ts";
import { needsEnrolment, needsStepUp, POLICY } from "../../src/core/access/policy.ts";
import type { Actor } from "../../src/core/actor.ts";
import { loadCatalog } from "../../src/core/catalog.ts";
import { LatchkeyError } from "../../src/core/errors.ts";
import type { Role } from "../../src/core/roles.ts";

const key = (environment: "live" | "test", permissions: string[] = []): Actor => ({
  kind: "key",
  keyId: "key_1",
  prefix: "lk_live_sk_x",
  companyId: "co_1",
  credentialId: "cred_1",
  environment,
  merchantAccountId: null,
  permissions,
});
const person = (role: Role, environment: "live" | "test" = "live"): Actor => ({
  kind: "user",
  userId: "usr_1",
  email: "a@b.test",
  companyId: "co_1",
  role,
  sessionId: "ses_1",
  totpEnrolled: true,
  environment,
  permissions: [],
});
const platform: Actor = { kind: "platform" };

function codeOf(fn: () => void): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    return err instanceof LatchkeyError ? err.code : String(err);
  }
}

describe("environments", () => {
  it("a test caller sees test objects only; a live caller and the platform see both", () => {
    for (const actor of [key("test"), person("owner", "test")]) {
      expect(actingEnvironment(actor)).toBe("test");
      expect(sees(actor, "test")).toBe(true);
      expect(sees(actor, "live")).toBe(false);
      // Company-wide objects (people, sign-in events) belong to no environment: live callers only.
      expect(sees(actor, null)).toBe(false);
    }
    for (const actor of [key("live"), person("viewer"), platform]) {
      expect(sees(actor, "live")).toBe(true);
      expect(sees(actor, "test")).toBe(true);
      expect(sees(actor, null)).toBe(true);
    }
  });

  it("cuts a test caller's lists to test, whatever it asks for", () => {
    expect(listedEnvironment(key("test"), "live")).toBe("test");
    expect(listedEnvironment(key("test"))).toBe("test");
    expect(listedEnvironment(key("live"), "test")).toBe("test");
    expect(listedEnvironment(key("live"))).toBeUndefined();
  });

  it("a test caller creates test objects only; a developer test keys only", () => {
    expect(codeOf(() => assertMayCreateIn(key("test"), "live"))).toBe("ENVIRONMENT_NOT_ALLOWED");
    expect(codeOf(() => assertMayCreateIn(person("owner", "test"), "live"))).toBe("ENVIRONMENT_NOT_ALLOWED");
    expect(codeOf(() => assertMayCreateIn(person("developer"), "live"))).toBe("FORBIDDEN");
    expect(codeOf(() => assertMayCreateIn(person("developer"), "test"))).toBeNull();
    expect(codeOf(() => assertMayCreateIn(key("live"), "live"))).toBeNull();
    expect(codeOf(() => assertMayCreateIn(platform, "live"))).toBeNull();
  });

  it("an object a caller cannot see is not there (404); a developer sees live objects but cannot change them", () => {
    expect(codeOf(() => assertMayChange(key("test"), "live"))).toBe("NOT_FOUND");
    expect(codeOf(() => assertMayChange(person("owner", "test"), "live"))).toBe("NOT_FOUND");
    expect(codeOf(() => assertMayChange(person("developer"), "live"))).toBe("FORBIDDEN");
    expect(codeOf(() => assertMayChange(person("developer"), "test"))).toBeNull();
    expect(codeOf(() => assertMayChange(key("live"), "test"))).toBeNull();
  });

  it("a test caller is not told which live key or API user acted; people and the platform are no secret", () => {
    expect(seesActor(key("test"), "key", "live")).toBe(false);
    expect(seesActor(key("test"), "credential", "live")).toBe(false);
    expect(seesActor(key("test"), "key", null)).toBe(false);
    expect(seesActor(key("test"), "key", "test")).toBe(true);
    expect(seesActor(key("test"), "user", "live")).toBe(true);
    expect(seesActor(key("test"), "platform", null)).toBe(true);
    expect(seesActor(key("live"), "key", "live")).toBe(true);
  });

  it("what spans both worlds is for live callers", () => {
    expect(codeOf(() => assertActsInLive(key("test")))).toBe("ENVIRONMENT_NOT_ALLOWED");
    expect(codeOf(() => assertActsInLive(key("live")))).toBeNull();
  });
});

describe("grants", () => {
  const catalog = loadCatalog({
    groups: [
      {
        id: "payments",
        name: "Payments",
        entities: [{ id: "payout", name: "Payout", actions: ["read", "create"] }],
      },
    ],
  });

  it("a key can do what it was given that its API user still holds", () => {
    expect(effectivePermissions(["payout:read", "payout:create"], ["payout:read"])).toEqual(["payout:read"]);
    expect(effectivePermissions(["payout:read"], ["payout:read", "payout:create"])).toEqual(["payout:read"]);
    // A platform verify key has no API user.
    expect(effectivePermissions(["keys:verify"], null)).toEqual(["keys:verify"]);
  });

  it("gives a new key what it asks for, never more than its API user and the caller both hold", () => {
    const user = ["payout:read", "payout:create"];
    const reader = new Set(["payout:read", "keys:manage"]);
    expect(keyGrant(catalog, {}, user, "all")).toEqual(user);
    expect(keyGrant(catalog, {}, user, reader)).toEqual(["payout:read"]);
    expect(keyGrant(catalog, { permissions: ["payout:read"] }, user, reader)).toEqual(["payout:read"]);
    expect(codeOf(() => keyGrant(catalog, { permissions: ["payout:create"] }, user, reader))).toBe(
      "PERMISSION_NOT_HELD",
    );
    expect(codeOf(() => keyGrant(catalog, { permissions: ["refund:create"] }, user, "all"))).toBe(
      "UNKNOWN_PERMISSION",
    );
    // A preset is a level of what is held, so it is cut rather than refused.
    expect(keyGrant(catalog, { preset: "full_access" }, ["payout:read"], "all")).toEqual(["payout:read"]);
    expect(codeOf(() => keyGrant(catalog, { preset: "write" }, ["payout:read"], "all"))).toBe(
      "VALIDATION_ERROR",
    );
    expect(codeOf(() => keyGrant(catalog, { permissions: [] }, user, "all"))).toBe("VALIDATION_ERROR");
  });

  it("loosening a guard takes a caller who holds everything behind it", () => {
    const weaker = key("live", ["keys:manage", "payout:read"]);
    expect(codeOf(() => assertHoldsAll(catalog, weaker, ["keys:manage", "payout:create"]))).toBe(
      "PERMISSION_NOT_HELD",
    );
    expect(codeOf(() => assertHoldsAll(catalog, weaker, ["payout:read"]))).toBeNull();
    expect(codeOf(() => assertHoldsAll(catalog, platform, ["payout:create"]))).toBeNull();
    expect(grantable(platform)).toBe("all");
  });
});

describe("the policy table", () => {
  it("names each route once", () => {
    const routes = Object.values(POLICY).map((p) => p.route);
    expect(new Set(routes).size).toBe(routes.length);
  });

  it("asks a person for a fresh code on every sensitive key action, and on IP changes only when there are any", () => {
    for (const action of [
      "keys.create",
      "keys.revoke",
      "keys.rotate",
      "keys.expiry",
      "credentials.password",
    ] as const) {
      expect(needsStepUp(action, {}), action).toBe(true);
    }
    expect(needsStepUp("keys.update", { name: "x" })).toBe(false);
    expect(needsStepUp("keys.update", { allowed_ips: [] })).toBe(true);
    expect(needsStepUp("credentials.update", { allowed_ips: ["10.0.0.1"] })).toBe(true);
    expect(needsStepUp("credentials.update", { status: "inactive" })).toBe(false);
    expect(needsStepUp("credentials.create", { allowed_ips: [] })).toBe(false);
    expect(needsStepUp("credentials.create", { allowed_ips: ["10.0.0.1"] })).toBe(true);
    expect(needsStepUp("keys.list", undefined)).toBe(false);
  });

  it("needs enrolled 2FA for every key, credential, webhook and key-policy write, and for nothing else", () => {
    const writes = Object.entries(POLICY)
      .filter(([action]) => needsEnrolment(action as keyof typeof POLICY))
      .map(([action]) => action)
      .sort();
    expect(writes).toEqual(
      [
        "credentials.create",
        "credentials.password",
        "credentials.update",
        "keys.create",
        "keys.expiry",
        "keys.revoke",
        "keys.rotate",
        "keys.update",
        "leak_policy.update",
        "merchant_accounts.create",
        "merchant_accounts.update",
        "policies.expiry_update",
        "webhooks.create",
        "webhooks.delete",
        "webhooks.retry",
        "webhooks.rotate_secret",
        "webhooks.test",
        "webhooks.update",
      ].sort(),
    );
  });

  it("lets only managers write credentials and read the audit trail, and viewers write nothing", () => {
    for (const [action, policy] of Object.entries(POLICY)) {
      const roles: readonly string[] = "roles" in policy ? policy.roles : [];
      if ("write" in policy && policy.write) expect(roles, action).not.toContain("viewer");
      if (action.startsWith("credentials.") && "write" in policy)
        expect(roles, action).toEqual(["owner", "moderator"]);
      if (action.startsWith("audit.") && policy.caller === "caller")
        expect(roles, action).toEqual(["owner", "moderator"]);
    }
  });
});
