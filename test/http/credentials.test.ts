import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

const basic = (username: string, password: string) =>
  `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;

describe.each(BACKENDS)("API credentials on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Northwind Traders");
  });
  afterAll(() => h.close());

  async function createCredential(body: Record<string, unknown>) {
    const res = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "Integration", ...body },
    });
    expect(res.statusCode).toBe(201);
    return res.json().data;
  }
  const patch = (id: string, json: Record<string, unknown>) =>
    h.call("PATCH", `/v1/credentials/${id}`, { key: co.key, json });
  const get = async (id: string) => {
    const res = await h.call("GET", `/v1/credentials/${id}`, { key: co.key });
    expect(res.statusCode).toBe(200);
    return res.json().data;
  };
  const verify = async (body: Record<string, unknown>) => {
    const res = await h.call("POST", "/v1/verify", { key: co.key, json: body });
    expect(res.statusCode).toBe(200);
    return res.json().data;
  };
  const newPassword = async (id: string) => {
    const res = await h.call("POST", `/v1/credentials/${id}/password`, { key: co.key });
    expect(res.statusCode).toBe(200);
    return res.json().data as { username: string; password: string };
  };

  it("creates a dedicated API user with an Adyen-style username", async () => {
    const cred = await createCredential({
      name: "Checkout backend",
      description: "server-to-server",
      permissions: ["payin:read", "payin:create"],
      allowed_ips: ["10.0.0.7/8"],
    });
    expect(cred.id).toMatch(/^cred_[0-9A-Za-z]{22}$/);
    expect(cred.username).toMatch(/^ws_\d{6}@Company\.NorthwindTraders\d*$/);
    expect(cred).toMatchObject({
      name: "Checkout backend",
      description: "server-to-server",
      status: "active",
      is_default: false,
      allowed_ips: ["10.0.0.0/8"],
      has_password: false,
      created_at: h.clock.now.toISOString(),
    });
    expect([...cred.permissions].sort()).toEqual(["payin:create", "payin:read"]);
    expect(cred.username).not.toBe(co.username);
  });

  it("refuses a credential without a role or a permission", async () => {
    for (const json of [
      { name: "Empty", permissions: [] },
      { name: "Missing" },
      { name: "No roles", roles: [], permissions: [] },
    ]) {
      const res = await h.call("POST", "/v1/credentials", { key: co.key, json });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ code: "GRANT_EMPTY", field: "permissions" });
    }
  });

  it("lists and gets credentials, and answers 404 for an unknown one", async () => {
    const cred = await createCredential({ name: "Listed", permissions: ["statement:read"] });
    const list = await h.call("GET", "/v1/credentials", { key: co.key });
    expect(list.statusCode).toBe(200);
    const ids = list.json().data.credentials.map((c: { id: string }) => c.id);
    expect(ids).toContain(cred.id);
    expect(ids).toContain(co.credentialId);
    expect(await get(cred.id)).toMatchObject({
      id: cred.id,
      name: "Listed",
      permissions: ["statement:read"],
    });
    const missing = await h.call("GET", `/v1/credentials/cred_${"0".repeat(22)}`, { key: co.key });
    expect(missing.statusCode).toBe(404);
  });

  it("updates name, description, permissions and allowed IPs", async () => {
    const cred = await createCredential({ name: "Before", permissions: ["payin:read"] });
    const res = await patch(cred.id, {
      name: "After",
      description: "changed",
      permissions: ["payin:read", "payout:read"],
      allowed_ips: ["2001:DB8:0:0::1", "192.0.2.1"],
    });
    expect(res.statusCode).toBe(200);
    const shown = await get(cred.id);
    expect(shown).toMatchObject({
      name: "After",
      description: "changed",
      allowed_ips: ["2001:db8::1", "192.0.2.1"],
      username: cred.username,
    });
    expect([...shown.permissions].sort()).toEqual(["payin:read", "payout:read"]);
  });

  it("disables every key and the password of an inactive credential, and re-enables them", async () => {
    const cred = await createCredential({ name: "Toggled", permissions: ["payin:read"] });
    const plain = await h.createKey(co, { credential_id: cred.id });
    const pair = await h.createKey(co, { credential_id: cred.id, with_secret: true });
    const { username, password } = await newPassword(cred.id);
    const checks = [{ key: plain.key }, { key: pair.key, secret: pair.secret }, { username, password }];
    for (const body of checks) expect((await verify(body)).code).toBe("VALID");

    const off = await patch(cred.id, { status: "inactive" });
    expect(off.statusCode).toBe(200);
    expect(off.json().data.status).toBe("inactive");
    for (const body of checks) expect(await verify(body)).toMatchObject({ valid: false, code: "DISABLED" });

    expect((await patch(cred.id, { status: "active" })).statusCode).toBe(200);
    for (const body of checks) expect(await verify(body)).toMatchObject({ valid: true, code: "VALID" });
  });

  it("has no way to delete a credential", async () => {
    const cred = await createCredential({ name: "Permanent", permissions: ["payin:read"] });
    const res = await h.call("DELETE", `/v1/credentials/${cred.id}`, { key: co.key });
    expect([404, 405]).toContain(res.statusCode);
    expect((await get(cred.id)).status).toBe("active");
  });

  it("generates a Basic auth password shown once, good for verify and for management calls", async () => {
    const cred = await createCredential({ name: "Basic", permissions: ["keys:manage", "payin:read"] });
    const { username, password } = await newPassword(cred.id);
    expect(username).toBe(cred.username);
    expect(password.length).toBeGreaterThanOrEqual(20);

    const shown = await get(cred.id);
    expect(shown.has_password).toBe(true);
    expect(JSON.stringify(shown)).not.toContain(password);

    expect(await verify({ username, password, permissions: ["payin:read"] })).toMatchObject({
      valid: true,
      code: "VALID",
      credential_id: cred.id,
      company_id: co.id,
    });
    const asBasic = await h.call("GET", "/v1/keys", {
      headers: { authorization: basic(username, password) },
    });
    expect(asBasic.statusCode).toBe(200);
  });

  it("stops the previous password the moment a new one is generated", async () => {
    const cred = await createCredential({ name: "Rotated", permissions: ["keys:manage"] });
    const first = await newPassword(cred.id);
    const second = await newPassword(cred.id);
    expect(second.password).not.toBe(first.password);

    const pair = ({ username, password }: { username: string; password: string }) => ({ username, password });
    expect((await verify(pair(first))).code).toBe("NOT_FOUND");
    expect((await verify(pair(second))).code).toBe("VALID");
    const old = await h.call("GET", "/v1/keys", {
      headers: { authorization: basic(first.username, first.password) },
    });
    expect(old.statusCode).toBe(401);
    const current = await h.call("GET", "/v1/keys", {
      headers: { authorization: basic(second.username, second.password) },
    });
    expect(current.statusCode).toBe(200);
  });

  it("narrows existing keys at once when the credential's permissions shrink", async () => {
    const cred = await createCredential({ name: "Shrinking", permissions: ["payin:read", "payin:create"] });
    const key = await h.createKey(co, { credential_id: cred.id });
    const before = await verify({ key: key.key, permissions: ["payin:create"] });
    expect(before.code).toBe("VALID");
    expect([...before.permissions].sort()).toEqual(["payin:create", "payin:read"]);

    expect((await patch(cred.id, { permissions: ["payin:read"] })).statusCode).toBe(200);
    expect(await verify({ key: key.key, permissions: ["payin:create"] })).toMatchObject({
      valid: false,
      code: "INSUFFICIENT_PERMISSIONS",
    });
    const after = await verify({ key: key.key, permissions: ["payin:read"] });
    expect(after.code).toBe("VALID");
    expect(after.permissions).toEqual(["payin:read"]);
  });
});
