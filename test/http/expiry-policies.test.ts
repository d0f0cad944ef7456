import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { createHarness, type Harness } from "../helpers/harness.ts";
import {
  asPerson,
  freshCode,
  invite,
  type NewCompany,
  newCompany,
  onboardOwner,
  type Person,
} from "../people/people-helpers.ts";

const DAY = 86_400_000;
const URL = "/v1/policies/expiry";

describe.each(BACKENDS)("expiry policies on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let owner: Person;
  const people = {} as Record<"moderator" | "developer" | "viewer", Person>;

  /** Changes the policy as `person`, with a fresh code; `env` switches the console to Test. */
  const patch = (person: Person, json: unknown, env?: "test") =>
    asPerson(h, person.session, "PATCH", URL, {
      json,
      code: freshCode(h, person),
      ...(env ? { headers: { "latchkey-environment": env } } : {}),
    });
  const getPolicy = (key: string) => h.call("GET", URL, { key });
  const inDays = (n: number) => new Date(h.clock.now.getTime() + n * DAY).toISOString();
  const createKey = (company: NewCompany, body: Record<string, unknown>) =>
    h.call("POST", "/v1/keys", {
      key: company.key,
      json: {
        name: "k",
        environment: "live",
        ...(body.environment === "test" ? { credential_id: company.testCredentialId } : {}),
        ...body,
      },
    });

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h, "Expiry Co");
    owner = await onboardOwner(h, co);
    for (const role of ["moderator", "developer", "viewer"] as const)
      people[role] = await invite(h, owner, role);
  });
  afterAll(() => h.close());

  it("starts with no policy, readable by a management key and by every role", async () => {
    const res = await getPolicy(co.key);
    expect(res.statusCode, res.body).toBe(200);
    const none = { max_lifetime_days: null, must_expire: false, revoke_unused_after_days: null };
    expect(res.json().data).toMatchObject({
      live: { ...none, updated_at: null, updated_by: null },
      test: none,
      unused_notice_days: 7,
      expiring_notice_days: [7, 1],
      noncompliant_keys: [],
      noncompliant_count: 0,
    });
    for (const p of [owner, people.moderator, people.developer, people.viewer]) {
      const seen = await asPerson(h, p.session, "GET", URL);
      expect(seen.statusCode, seen.body).toBe(200);
    }
  });

  it("lets owners only change it, with a fresh code, and audits before and after", async () => {
    for (const p of [people.moderator, people.developer, people.viewer]) {
      const res = await patch(p, { live: { max_lifetime_days: 90 } });
      expect(res.statusCode, res.body).toBe(403);
      expect(res.json().error.code).toBe("FORBIDDEN");
    }
    const noCode = await asPerson(h, owner.session, "PATCH", URL, {
      json: { live: { max_lifetime_days: 90 } },
    });
    expect(noCode.json().error.code, noCode.body).toBe("TOTP_REQUIRED");
    const byKey = await h.call("PATCH", URL, { key: co.key, json: { live: { max_lifetime_days: 90 } } });
    expect(byKey.statusCode, byKey.body).toBe(401);
    expect((await getPolicy(co.key)).json().data.live.max_lifetime_days).toBeNull();

    const res = await patch(owner, { live: { max_lifetime_days: 90, revoke_unused_after_days: 60 } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().data.live).toMatchObject({
      max_lifetime_days: 90,
      must_expire: false,
      revoke_unused_after_days: 60,
      updated_by: owner.id,
    });
    // A patch leaves the fields it does not name as they are; null turns one off.
    const second = await patch(owner, { live: { must_expire: true, revoke_unused_after_days: null } });
    expect(second.json().data.live).toMatchObject({
      max_lifetime_days: 90,
      must_expire: true,
      revoke_unused_after_days: null,
    });

    const audit = await h.call("GET", "/v1/audit?action=expiry_policy.changed", { key: co.key });
    const events = audit.json().data.events;
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({
      actor: { type: "user", id: owner.id },
      environment: "live",
      totp_used: true,
      changes: {
        before: { max_lifetime_days: 90, must_expire: false, revoke_unused_after_days: 60 },
        after: { max_lifetime_days: 90, must_expire: true, revoke_unused_after_days: null },
      },
    });
    expect(events[1].changes.before).toEqual({
      max_lifetime_days: null,
      must_expire: false,
      revoke_unused_after_days: null,
    });
    // Back to none for the tests below.
    const reset = await patch(owner, { live: { max_lifetime_days: null, must_expire: false } });
    expect(reset.statusCode, reset.body).toBe(200);
  });

  it("refuses malformed, out-of-range, wrong-typed and hostile bodies with 400, changing nothing", async () => {
    const before = (await getPolicy(co.key)).json().data;
    const bodies: unknown[] = [
      {},
      { live: {} },
      { live: null },
      { live: { max_lifetime_days: 0 } },
      { live: { max_lifetime_days: 3651 } },
      { live: { max_lifetime_days: 1.5 } },
      { live: { max_lifetime_days: "30" } },
      { live: { max_lifetime_days: -1 } },
      { live: { revoke_unused_after_days: 13 } },
      { live: { revoke_unused_after_days: 1e12 } },
      { live: { must_expire: "yes" } },
      { live: { max_lifetime_days: 30, extra: 1 } },
      { production: { max_lifetime_days: 30 } },
      { live: [30] },
      { live: { __proto__: { max_lifetime_days: 1 } } },
      { live: { max_lifetime_days: 30 }, totp_code: "x".repeat(5000) },
      [],
      "live",
    ];
    for (const json of bodies) {
      const res = await asPerson(h, owner.session, "PATCH", URL, { json });
      expect(res.statusCode, `${JSON.stringify(json)}: ${res.body}`).toBe(400);
      expect(res.json().error.code).toBe("VALIDATION_ERROR");
    }
    const raw = await asPerson(h, owner.session, "PATCH", URL, {
      headers: { "content-type": "application/json" },
    });
    expect(raw.statusCode).toBeLessThan(500);
    expect((await getPolicy(co.key)).json().data).toEqual(before);
  });

  it("keeps each company's policy its own", async () => {
    const other = await newCompany(h, "Other Co");
    const otherOwner = await onboardOwner(h, other);
    const res = await patch(otherOwner, { live: { max_lifetime_days: 5, must_expire: true } });
    expect(res.statusCode, res.body).toBe(200);
    const otherKey = await createKey(other, {});
    expect(otherKey.statusCode, otherKey.body).toBe(201);
    expect((await getPolicy(co.key)).json().data.live.max_lifetime_days).toBeNull();
    // Ours makes keys without an expiry still; theirs does not show in our report.
    const ours = await createKey(co, {});
    expect(ours.json().data.expires_at).toBeNull();
    expect(
      (await getPolicy(other.key)).json().data.noncompliant_keys.map((k: { id: string }) => k.id),
    ).not.toContain(ours.json().data.id);
    await h.call("DELETE", `/v1/keys/${ours.json().data.id}`, { key: co.key });
  });

  it("lets a caller acting in test read and change the test policy only", async () => {
    const live = await patch(owner, { live: { max_lifetime_days: 10 } }, "test");
    expect(live.statusCode, live.body).toBe(403);
    expect(live.json().error.code).toBe("ENVIRONMENT_NOT_ALLOWED");
    const both = await patch(
      owner,
      { live: { max_lifetime_days: 10 }, test: { max_lifetime_days: 10 } },
      "test",
    );
    expect(both.json().error.code).toBe("ENVIRONMENT_NOT_ALLOWED");
    expect((await getPolicy(co.key)).json().data).toMatchObject({
      live: { max_lifetime_days: null },
      test: { max_lifetime_days: null },
    });

    const test = await patch(owner, { test: { max_lifetime_days: 10 } }, "test");
    expect(test.statusCode, test.body).toBe(200);
    expect(test.json().data.live).toBeUndefined();
    expect(test.json().data.test.max_lifetime_days).toBe(10);

    const testKey = await createKey(co, { environment: "test" });
    expect(testKey.statusCode, testKey.body).toBe(201);
    const testManager = await h.call("POST", "/v1/keys", {
      key: co.key,
      json: {
        name: "test manager",
        environment: "test",
        credential_id: co.testCredentialId,
        permissions: ["keys:manage"],
      },
    });
    expect(testManager.statusCode, testManager.body).toBe(201);
    const seen = await getPolicy(testManager.json().data.key);
    expect(seen.statusCode, seen.body).toBe(200);
    expect(seen.json().data.live).toBeUndefined();
    for (const k of seen.json().data.noncompliant_keys) expect(k.environment).toBe("test");

    const off = await patch(owner, { test: { max_lifetime_days: null } });
    expect(off.statusCode, off.body).toBe(200);
  });

  describe("on new keys", () => {
    it("gives a key asked without expiry the maximum lifetime, and refuses one beyond it", async () => {
      expect((await patch(owner, { live: { max_lifetime_days: 30 } })).statusCode).toBe(200);
      const defaulted = await createKey(co, {});
      expect(defaulted.statusCode, defaulted.body).toBe(201);
      expect(defaulted.json().data.expires_at).toBe(inDays(30));

      const beyond = await createKey(co, {
        expires_at: new Date(Date.parse(inDays(30)) + 1000).toISOString(),
      });
      expect(beyond.statusCode, beyond.body).toBe(400);
      expect(beyond.json().error).toMatchObject({ code: "EXPIRY_POLICY", field: "expires_at" });

      const within = await createKey(co, { expires_at: inDays(10) });
      expect(within.statusCode, within.body).toBe(201);
      expect(within.json().data.expires_at).toBe(inDays(10));

      // The test policy has no maximum: test keys are as before.
      const testKey = await createKey(co, { environment: "test" });
      expect(testKey.json().data.expires_at).toBeNull();
    });

    it("applies to a rotated key's replacement, a new key, and refuses it beyond the maximum", async () => {
      const old = await createKey(co, { expires_at: inDays(20) });
      const refused = await h.call("POST", `/v1/keys/${old.json().data.id}/rotate`, {
        key: co.key,
        json: { expires_at: inDays(31) },
      });
      expect(refused.statusCode, refused.body).toBe(400);
      expect(refused.json().error.code).toBe("EXPIRY_POLICY");
      const unchanged = await h.call("GET", `/v1/keys/${old.json().data.id}`, { key: co.key });
      expect(unchanged.json().data).toMatchObject({ replaced_by: null, expires_at: inDays(20) });

      const rotated = await h.call("POST", `/v1/keys/${old.json().data.id}/rotate`, {
        key: co.key,
        json: {},
      });
      expect(rotated.statusCode, rotated.body).toBe(200);
      expect(rotated.json().data.expires_at).toBe(inDays(30));
    });

    it("refuses a live key without expiry where live keys must expire and no maximum is set", async () => {
      expect((await patch(owner, { live: { max_lifetime_days: null, must_expire: true } })).statusCode).toBe(
        200,
      );
      const refused = await createKey(co, {});
      expect(refused.statusCode, refused.body).toBe(400);
      expect(refused.json().error).toMatchObject({ code: "EXPIRY_POLICY", field: "expires_at" });
      const ok = await createKey(co, { expires_at: inDays(400) });
      expect(ok.statusCode, ok.body).toBe(201);
      const testKey = await createKey(co, { environment: "test" });
      expect(testKey.statusCode, testKey.body).toBe(201);
      expect((await patch(owner, { live: { must_expire: false } })).statusCode).toBe(200);
    });
  });

  it("never changes existing keys, and reports those that do not comply", async () => {
    const forever = (await createKey(co, { name: "forever" })).json().data;
    const long = (await createKey(co, { name: "long", expires_at: inDays(100) })).json().data;
    const short = (await createKey(co, { name: "short", expires_at: inDays(5) })).json().data;
    expect((await patch(owner, { live: { max_lifetime_days: 30 } })).statusCode).toBe(200);

    const get = async (id: string) => (await h.call("GET", `/v1/keys/${id}`, { key: co.key })).json().data;
    expect(await get(forever.id)).toMatchObject({
      expires_at: null,
      status: "active",
      policy_issues: ["no_expiry"],
    });
    expect(await get(long.id)).toMatchObject({
      expires_at: long.expires_at,
      policy_issues: ["lifetime_too_long"],
    });
    expect(await get(short.id)).toMatchObject({ policy_issues: [] });

    const list = (await h.call("GET", "/v1/keys?limit=100", { key: co.key })).json().data.keys;
    expect(list.find((k: { id: string }) => k.id === forever.id).policy_issues).toEqual(["no_expiry"]);

    const report = (await getPolicy(co.key)).json().data;
    const byId = new Map(report.noncompliant_keys.map((k: { id: string }) => [k.id, k]));
    expect(byId.get(forever.id)).toMatchObject({
      name: "forever",
      environment: "live",
      issues: ["no_expiry"],
    });
    expect(byId.get(long.id)).toMatchObject({ issues: ["lifetime_too_long"] });
    expect(byId.has(short.id)).toBe(false);
    expect(report.noncompliant_count).toBe(report.noncompliant_keys.length);
    // A revoked key is on its way out: not reported.
    await h.call("DELETE", `/v1/keys/${forever.id}`, { key: co.key });
    const after = (await getPolicy(co.key)).json().data.noncompliant_keys.map((k: { id: string }) => k.id);
    expect(after).not.toContain(forever.id);
    expect((await patch(owner, { live: { max_lifetime_days: null } })).statusCode).toBe(200);
  });
});
