import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Action, needsStepUp, POLICY, type Policy } from "../../src/core/access/policy.ts";
import { ROLES, type Role } from "../../src/core/roles.ts";
import { ROUTE_METHODS } from "../../src/core/routes.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "../helpers/harness.ts";
import {
  asPerson,
  invite,
  type NewCompany,
  newCompany,
  onboardOwner,
  type Person,
} from "../people/people-helpers.ts";

/**
 * Walks the policy table: every route the server registers has an entry, and every entry is enforced
 * as written (who may call it, which roles, what a person must show). The per-route refusals of key
 * callers (dead, lacking, another company's, wrong address) are in security.test.ts, from the same table.
 */

type Tree = { path: string; methods: string[] }[];

/** The routes Fastify registered, from its route tree (HEAD is added by Fastify to every GET). */
function registeredRoutes(printed: string): Tree {
  const stack: string[] = [];
  const out: Tree = [];
  for (const line of printed.split("\n")) {
    const m = /^([│ ]*)[├└]── (\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!m) continue;
    const depth = (m[1] as string).length / 4;
    stack.length = depth;
    // A wildcard under a path prints without the "/" between them (find-my-way folds that empty node).
    const segment = m[2] === "*" && !stack.join("").endsWith("/") ? "/*" : (m[2] as string);
    const path = `${stack.join("")}${segment}`;
    stack.push(segment);
    if (m[3]) out.push({ path, methods: m[3].split(", ").filter((x) => x !== "HEAD") });
  }
  return out;
}

/** The error code of an answer, if it is an error envelope (an export answers NDJSON). */
function errorCode(res: { statusCode: number; json(): { error?: { code?: string } } }): string | undefined {
  return res.statusCode >= 400 ? res.json().error?.code : undefined;
}

/**
 * The API's own routes: under /v1, liveness, readiness, metrics and the OpenAPI document (the rest
 * serves the console).
 */
const isApi = (path: string) =>
  path.startsWith("/v1/") || ["/healthz", "/readyz", "/metrics", "/openapi.json"].includes(path);

const FAKE_ID: Record<string, string> = {
  keys: "key_0000000000000000000000",
  credentials: "cred_0000000000000000000000",
  users: "usr_0000000000000000000000",
  webhooks: "wh_0000000000000000000000",
};
function urlOf(policy: Policy): { method: "GET" | "POST" | "PATCH" | "DELETE"; url: string } {
  const [method, path] = policy.route.split(" ") as ["GET" | "POST" | "PATCH" | "DELETE", string];
  const resource = path.split("/")[2] ?? "";
  return {
    method,
    url: path.replace(":id", FAKE_ID[resource] ?? "x").replace(":delivery_id", "dlv_0000000000000000000000"),
  };
}

describe("the policy table, as the server enforces it", () => {
  let h: Harness;
  let co: NewCompany;
  const people = {} as Record<Role, Person>;
  let unenrolled: Person;

  beforeAll(async () => {
    h = await createHarness("pglite");
    co = await newCompany(h, "Policy Co");
    people.owner = await onboardOwner(h, co);
    for (const role of ["moderator", "developer", "viewer"] as const)
      people[role] = await invite(h, people.owner, role);
    unenrolled = await invite(h, people.owner, "owner", { enrol: false, tag: "unenrolled" });
  });
  afterAll(() => h.close());

  const entries = Object.entries(POLICY) as [Action, Policy][];

  it("has an entry for every route the server registers, and a route for every entry", () => {
    const registered = registeredRoutes(h.app.printRoutes({ commonPrefix: false }))
      .filter((r) => isApi(r.path))
      .flatMap((r) => r.methods.map((m) => `${m} ${r.path}`))
      .sort();
    expect(registered.length).toBeGreaterThan(30);
    // `ALL /path` stands for every method a gateway may forward (HEAD is left out, as above).
    const declared = entries.flatMap(([, p]) => {
      const [method, path] = p.route.split(" ") as [string, string];
      return method === "ALL"
        ? ROUTE_METHODS.filter((m) => m !== "HEAD").map((m) => `${m} ${path}`)
        : [p.route];
    });
    expect(registered).toEqual(declared.sort());
  });

  describe.each(entries.filter(([, p]) => p.caller === "session" || p.roles !== undefined))(
    "%s",
    (action, policy) => {
      const { method, url } = urlOf(policy);
      // Signing out, changing a password and re-enrolling would end the very sessions the table is walked
      // with; their role rule is the same for everyone, so only the refusals are sent.
      const harmless = !action.startsWith("auth.");

      it.each([...ROLES])("answers a %s's session as the table's roles say", async (role) => {
        const allowed = (policy.roles ?? []).includes(role);
        if (allowed && !harmless) return;
        const res = await asPerson(h, (people[role] as Person).session, method, url, {
          ...(method === "GET" ? {} : { json: {} }),
        });
        if (allowed) expect(errorCode(res), `${role} ${policy.route}: ${res.body}`).not.toBe("FORBIDDEN");
        else expect(errorCode(res), `${role} ${policy.route}: ${res.body}`).toBe("FORBIDDEN");
      });
    },
  );

  describe.each(entries.filter(([, p]) => p.caller === "session"))(
    "%s (sessions only)",
    (_action, policy) => {
      it("refuses a key", async () => {
        const { method, url } = urlOf(policy);
        const res = await h.call(method, url, { key: co.key, ...(method === "GET" ? {} : { json: {} }) });
        expect(res.statusCode, res.body).toBe(401);
      });
    },
  );

  describe.each(entries.filter(([, p]) => p.caller === "platform"))(
    "%s (the operator only)",
    (_action, policy) => {
      const { method, url } = urlOf(policy);
      it("refuses a company's key and a session, and takes the admin token", async () => {
        const body = method === "GET" ? {} : { json: {} };
        expect((await h.call(method, url, { key: co.key, ...body })).statusCode).toBe(401);
        expect((await asPerson(h, people.owner.session, method, url, body)).statusCode).toBe(401);
        const admin = await h.call(method, url, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
          ...body,
        });
        expect([401, 403, 404], admin.body).not.toContain(admin.statusCode);
      });
    },
  );

  describe.each(entries.filter(([, p]) => p.caller === "public"))("%s (anyone)", (_action, policy) => {
    it("answers without credentials", async () => {
      const { method, url } = urlOf(policy);
      const res = await h.call(method, url, method === "GET" ? {} : { json: {} });
      expect([401, 403], res.body).not.toContain(res.statusCode);
    });
  });

  /** A request body each step-up action accepts, so only the second factor stands in its way. */
  const STEP_UP_INPUT: Partial<Record<Action, () => unknown>> = {
    "keys.create": () => ({
      name: "k",
      environment: "test",
      credential_id: co.testCredentialId,
      permissions: ["payin:read"],
    }),
    "keys.update": () => ({ allowed_ips: ["10.0.0.1"] }),
    "keys.rotate": () => ({}),
    "keys.expiry": () => ({ action: "now" }),
    "keys.revoke": () => undefined,
    "credentials.create": () => ({ name: "c", permissions: ["payin:read"], allowed_ips: ["10.0.0.1"] }),
    "credentials.update": () => ({ allowed_ips: ["10.0.0.1"] }),
    "credentials.password": () => undefined,
    "leak_policy.update": () => ({ environment: "test", action: "notify" }),
    "policies.expiry_update": () => ({ live: { max_lifetime_days: 90 } }),
    // A public address as a literal: checked without a DNS lookup, and never sent to (nothing delivers here).
    "webhooks.create": () => ({ url: "https://93.184.215.14/hook" }),
    "webhooks.update": () => ({ url: "https://93.184.215.14/other" }),
    "webhooks.rotate_secret": () => undefined,
    "auth.recovery_codes": () => undefined,
    "users.reinvite": () => undefined,
    "users.reset_totp": () => undefined,
  };

  it("has a sample input for every action that can ask for a code", () => {
    const stepUps = entries.filter(([, p]) => p.stepUp !== undefined).map(([a]) => a);
    expect(Object.keys(STEP_UP_INPUT).sort()).toEqual(stepUps.sort());
  });

  describe.each(Object.keys(STEP_UP_INPUT) as Action[])("%s", (action) => {
    const policy = POLICY[action] as Policy;
    const { method, url } = urlOf(policy);

    it("asks an enrolled person for a fresh code before anything else, and an unenrolled one to enrol", async () => {
      const input = STEP_UP_INPUT[action]?.();
      expect(needsStepUp(action, input as Record<string, unknown>)).toBe(true);
      const body = input === undefined ? {} : { json: input };
      const asked = await asPerson(h, people.owner.session, method, url, body);
      expect(asked.statusCode, asked.body).toBe(403);
      expect(asked.json().error.code).toBe("TOTP_REQUIRED");
      const enrol = await asPerson(h, unenrolled.session, method, url, body);
      expect(enrol.json().error.code, enrol.body).toBe("TOTP_ENROLMENT_REQUIRED");
      // A key is an integration's own factor: it is not asked (here the object is simply not there).
      const byKey = await h.call(method, url, { key: co.key, ...body });
      expect(byKey.json().error?.code ?? "none", byKey.body).not.toMatch(/^TOTP_/);
    });
  });

  it("asks in the service itself, whatever the way in", async () => {
    const actor = (await h.services.people.authenticate(people.owner.session.cookie.split("=")[1] as string))
      ?.actor;
    expect(actor).toBeDefined();
    const ctx = { actor: actor as NonNullable<typeof actor>, ip: null, userAgent: null, totpUsed: false };
    await expect(
      h.services.keys.create(
        co.id,
        { name: "k", environment: "test", credential_id: co.testCredentialId, permissions: ["payin:read"] },
        ctx,
      ),
    ).rejects.toMatchObject({ code: "TOTP_REQUIRED" });
    await expect(h.services.keys.revoke(co.id, co.keyId, ctx)).rejects.toMatchObject({
      code: "TOTP_REQUIRED",
    });
    await expect(h.services.credentials.generatePassword(co.id, co.credentialId, ctx)).rejects.toMatchObject({
      code: "TOTP_REQUIRED",
    });
  });
});
