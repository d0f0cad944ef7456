import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

/**
 * A caller that holds less than a key (or an API user) may not loosen what guards it: its allowlist,
 * its rate limits, a longer life, a reactivation. Otherwise a narrow key holding keys:manage could open
 * the company's management key to the world. Revoking, ending an overlap and narrowing stay allowed:
 * they only ever reduce access.
 */
describe.each(BACKENDS)("nobody loosens what holds more than they do, on %s", (kind) => {
  let h: Harness;
  let co: Company;
  /** Holds keys:manage, credentials:manage and one data permission: less than the management key. */
  let narrow: string;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Weakening Co");
    narrow = (await h.createKey(co, { permissions: ["keys:manage", "credentials:manage", "payout:read"] }))
      .key;
  });
  afterAll(() => h.close());

  const asNarrow = (method: "PATCH" | "POST" | "DELETE", url: string, json?: unknown) =>
    h.call(method, url, { key: narrow, ...(json === undefined ? {} : { json }) });
  const read = async (path: string) => (await h.call("GET", path, { key: co.key })).json().data;

  it("refuses to widen or lift the management key's allowlist and limits", async () => {
    const guarded = await h.createKey(co, {
      name: "Guarded",
      allowed_ips: ["10.0.0.0/8"],
      rate_limits: [{ limit: 5, window: "1s" }],
    });
    for (const patch of [
      { allowed_ips: ["0.0.0.0/0"] },
      { allowed_ips: [] },
      { rate_limits: [] },
      { rate_limits: [{ limit: 1000, window: "1s" }] },
    ]) {
      const res = await asNarrow("PATCH", `/v1/keys/${guarded.id}`, patch);
      expect(res.statusCode, JSON.stringify(patch)).toBe(403);
      expect(res.json().error.code).toBe("PERMISSION_NOT_HELD");
    }
    for (const target of [guarded.id, co.keyId]) {
      const res = await asNarrow("PATCH", `/v1/keys/${target}`, { allowed_ips: ["203.0.113.7"] });
      expect(res.json().error.code).toBe("PERMISSION_NOT_HELD");
    }
    expect(await read(`/v1/keys/${guarded.id}`)).toMatchObject({
      allowed_ips: ["10.0.0.0/8"],
      rate_limits: [{ limit: 5, window: "1s" }],
    });
    // A name is no guard: renaming is allowed.
    expect((await asNarrow("PATCH", `/v1/keys/${guarded.id}`, { name: "Renamed" })).statusCode).toBe(200);
  });

  it("refuses to give a stronger key a longer overlap, and lets it end the overlap or revoke", async () => {
    const strong = await h.createKey(co, { name: "Strong" });
    const rotated = await h.call("POST", `/v1/keys/${strong.id}/rotate`, {
      key: co.key,
      json: { grace_seconds: 60 },
    });
    expect(rotated.statusCode).toBe(200);
    const reset = await asNarrow("POST", `/v1/keys/${strong.id}/expiry`, { action: "reset" });
    expect(reset.statusCode).toBe(403);
    expect(reset.json().error.code).toBe("PERMISSION_NOT_HELD");
    expect((await asNarrow("POST", `/v1/keys/${strong.id}/expiry`, { action: "now" })).statusCode).toBe(200);
    const fresh = rotated.json().data.id;
    expect((await asNarrow("DELETE", `/v1/keys/${fresh}`)).statusCode).toBe(200);
    expect((await read(`/v1/keys/${fresh}`)).status).toBe("revoked");
  });

  it("cannot narrow a stronger API user to get at its guards, nor loosen a key whose API user was narrowed", async () => {
    const made = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "Narrowed", permissions: ["payout:read", "payout:create"], allowed_ips: ["10.0.0.0/8"] },
    });
    const id = made.json().data.id;
    const key = await h.createKey(co, {
      credential_id: id,
      permissions: ["payout:read", "payout:create"],
      allowed_ips: ["10.1.0.0/16"],
    });
    const narrowing = await asNarrow("PATCH", `/v1/credentials/${id}`, { permissions: ["payout:read"] });
    expect(narrowing.statusCode).toBe(403);
    expect(narrowing.json().error.code).toBe("PERMISSION_NOT_HELD");

    // The owner narrows it; the key's own grant still counts for who may loosen or renew it.
    const owner = await h.call("PATCH", `/v1/credentials/${id}`, {
      key: co.key,
      json: { permissions: ["payout:read"] },
    });
    expect(owner.statusCode).toBe(200);
    expect((await read(`/v1/keys/${key.id}`)).permissions).toEqual(["payout:read"]);
    for (const [method, url, body] of [
      ["PATCH", `/v1/keys/${key.id}`, { allowed_ips: [] }],
      ["POST", `/v1/keys/${key.id}/rotate`, {}],
      ["PATCH", `/v1/credentials/${id}`, { allowed_ips: [] }],
    ] as const) {
      const res = await asNarrow(method, url, body);
      expect(res.json().error?.code, `${method} ${url}`).toBe("PERMISSION_NOT_HELD");
    }
    // Given its permissions back, the key is as guarded as before.
    await h.call("PATCH", `/v1/credentials/${id}`, {
      key: co.key,
      json: { permissions: ["payout:read", "payout:create"] },
    });
    const verified = await h.call("POST", "/v1/verify", {
      key: co.key,
      json: { key: key.key, ip: "203.0.113.9", permissions: ["payout:create"] },
    });
    expect(verified.json().data.code).toBe("IP_NOT_ALLOWED");
  });

  it("lets it loosen a key that holds no more than it does", async () => {
    const small = await h.createKey(co, { permissions: ["payout:read"], allowed_ips: ["10.0.0.0/8"] });
    const res = await asNarrow("PATCH", `/v1/keys/${small.id}`, { allowed_ips: ["10.0.0.0/8", "192.0.2.1"] });
    expect(res.statusCode, res.body).toBe(200);
  });

  it("refuses to loosen or reactivate an API user that holds more, and lets it deactivate one", async () => {
    const user = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: {
        name: "Strong user",
        permissions: ["payout:read", "payout:create"],
        allowed_ips: ["10.0.0.0/8"],
      },
    });
    const id = user.json().data.id;
    for (const patch of [{ allowed_ips: [] }, { rate_limits: [{ limit: 1, window: "1s" }] }]) {
      const res = await asNarrow("PATCH", `/v1/credentials/${id}`, patch);
      expect(res.json().error?.code, JSON.stringify(patch)).toBe("PERMISSION_NOT_HELD");
    }
    expect((await asNarrow("PATCH", `/v1/credentials/${id}`, { status: "inactive" })).statusCode).toBe(200);
    const back = await asNarrow("PATCH", `/v1/credentials/${id}`, { status: "active" });
    expect(back.json().error.code).toBe("PERMISSION_NOT_HELD");
    expect(await read(`/v1/credentials/${id}`)).toMatchObject({
      status: "inactive",
      allowed_ips: ["10.0.0.0/8"],
    });
  });
});
