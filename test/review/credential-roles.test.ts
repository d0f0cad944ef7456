import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;

/**
 * Attack review of API-user roles (issue 15): a weaker caller trying to gain through roles, and LEM
 * usernames used where only people sign in.
 */
describe.each(BACKENDS)("review: credential roles on %s", (kind) => {
  let h: Harness;
  let co: Company;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Review Roles");
  });
  afterAll(() => h.close());

  const createCred = async (body: Record<string, unknown>, key = co.key) =>
    h.call("POST", "/v1/credentials", { key, json: { name: "c", environment: "live", ...body } });

  /** An API user with only `credentials:manage` (no key or verify permission) and a key of it. */
  async function weakCaller(): Promise<string> {
    const made = await createCred({ name: "weak", permissions: ["credentials:manage"] });
    expect(made.statusCode, made.body).toBe(201);
    const key = await h.createKey(co, {
      name: "weak",
      environment: "live",
      credential_id: made.json().data.id,
    });
    return key.key;
  }

  it("a caller cannot reach a role's permissions it lacks: not at creation, not by narrowing then loosening", async () => {
    const weak = await weakCaller();
    // credential_manager carries keys:manage and keys:verify, which the weak caller lacks.
    const made = await createCred({ roles: ["credential_manager"] }, weak);
    expect(made.statusCode, made.body).toBe(403);
    expect(made.json().error.code).toBe("PERMISSION_NOT_HELD");
    // A strong API user made by the management key; the weak caller narrows it to nothing it lacks...
    const strong = await createCred({ name: "strong", roles: ["credential_manager"] });
    expect(strong.statusCode, strong.body).toBe(201);
    const id = strong.json().data.id;
    const narrowed = await h.call("PATCH", `/v1/credentials/${id}`, {
      key: weak,
      json: { roles: [], permissions: ["credentials:manage"] },
    });
    // ...which would let it lift the guards of something stronger than itself, so it is refused.
    expect(narrowed.statusCode, narrowed.body).toBe(403);
    const after = await h.call("GET", `/v1/credentials/${id}`, { key: co.key });
    expect(after.json().data.roles).toEqual(["credential_manager"]);
    // Every path keeps one role or permission: an emptied grant and unknown roles are refused.
    for (const json of [
      { roles: [], permissions: [] },
      { roles: ["no_such_role"], permissions: [] },
    ]) {
      const res = await h.call("PATCH", `/v1/credentials/${id}`, { key: co.key, json });
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
      expect(res.statusCode).toBeLessThan(500);
      expect(["GRANT_EMPTY", "UNKNOWN_ROLE"]).toContain(res.json().error.code);
    }
  });

  it("an LEM username is no sign-in, its Basic auth is exact, and a person's login is no Basic auth", async () => {
    const made = await createCred({
      name: "lem",
      username_format: "legal_entity_management",
      roles: ["credential_manager"],
    });
    expect(made.statusCode, made.body).toBe(201);
    const pw = await h.call("POST", `/v1/credentials/${made.json().data.id}/password`, { key: co.key });
    expect(pw.statusCode, pw.body).toBe(200);
    const { username, password } = pw.json().data;
    expect(
      (await h.call("GET", "/v1/credentials", { headers: { authorization: basic(username, password) } }))
        .statusCode,
    ).toBe(200);
    for (const u of [username.toUpperCase(), username.toLowerCase(), ` ${username}`, `${username} `]) {
      const res = await h.call("GET", "/v1/credentials", { headers: { authorization: basic(u, password) } });
      expect(res.statusCode, u).toBe(401);
    }
    for (const email of [username, username.toLowerCase(), ` ${username.toUpperCase()} `]) {
      const login = await h.call("POST", "/v1/auth/login", { json: { email, password } });
      expect(login.statusCode, email).toBe(401);
      expect(login.json().error.code).toBe("INVALID_LOGIN");
    }
    const invite = await h.call("POST", "/v1/admin/companies", {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      json: { name: "LEM owner", owner_email: username.toLowerCase() },
    });
    expect(invite.statusCode).toBeGreaterThanOrEqual(400);
    expect(invite.statusCode).toBeLessThan(500);
  });
});
