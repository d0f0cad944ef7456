import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

const HOUR = 3600;
const DAY = 24 * HOUR;

describe.each(BACKENDS)("key rotation on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Rotation Company");
  });
  afterAll(() => h.close());

  const rotate = (id: string, json: Record<string, unknown> = {}) =>
    h.call("POST", `/v1/keys/${id}/rotate`, { key: co.key, json });
  const expiry = (id: string, action: string) =>
    h.call("POST", `/v1/keys/${id}/expiry`, { key: co.key, json: { action } });
  const verify = async (body: Record<string, unknown>) =>
    (await h.call("POST", "/v1/verify", { key: co.key, json: body })).json().data.code;
  const getKey = async (id: string) => (await h.call("GET", `/v1/keys/${id}`, { key: co.key })).json().data;
  const inSeconds = (seconds: number) => new Date(h.clock.now.getTime() + seconds * 1000).toISOString();

  it("keeps the old key working for 24 hours by default", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    const res = await rotate(old.id);
    expect(res.statusCode).toBe(200);
    const fresh = res.json().data;
    expect(fresh.previous_key).toEqual({ id: old.id, expires_at: inSeconds(DAY) });
    expect(fresh.key).not.toBe(old.key);
    expect(await verify({ key: fresh.key })).toBe("VALID");

    h.clock.advance(DAY - 60);
    expect(await verify({ key: old.key })).toBe("VALID");
    h.clock.advance(61);
    expect(await verify({ key: old.key })).toBe("EXPIRED");
    expect(await verify({ key: fresh.key })).toBe("VALID");
  });

  it("rotates with the default grace when the request has no body", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    const res = await h.call("POST", `/v1/keys/${old.id}/rotate`, { key: co.key });
    expect(res.statusCode).toBe(200);
    expect(res.json().data.previous_key).toEqual({ id: old.id, expires_at: inSeconds(DAY) });
  });

  it("ends the old key at once with grace_seconds 0", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    const res = await rotate(old.id, { grace_seconds: 0 });
    expect(res.statusCode).toBe(200);
    expect(res.json().data.previous_key.expires_at).toBe(h.clock.now.toISOString());
    expect(await verify({ key: old.key })).toBe("EXPIRED");
    expect(await verify({ key: res.json().data.key })).toBe("VALID");
  });

  it("accepts a grace of up to 7 days and refuses more", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    for (const grace_seconds of [7 * DAY + 1, -1, 1.5]) {
      const res = await rotate(old.id, { grace_seconds });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe("VALIDATION_ERROR");
    }
    expect((await getKey(old.id)).replaced_by).toBeNull();
    const res = await rotate(old.id, { grace_seconds: 7 * DAY });
    expect(res.statusCode).toBe(200);
    expect(res.json().data.previous_key.expires_at).toBe(inSeconds(7 * DAY));
  });

  it("gives the new key the old key's credential, environment, permissions, IPs, description and secret", async () => {
    const cred = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: {
        name: "Rotated user",
        environment: "test",
        permissions: ["payin:read", "payin:create", "payout:read"],
      },
    });
    const credentialId = cred.json().data.id;
    const old = await h.createKey(co, {
      credential_id: credentialId,
      environment: "test",
      description: "checkout",
      permissions: ["payin:read", "payin:create"],
      allowed_ips: ["10.0.0.0/8", "2001:db8::/32"],
      with_secret: true,
    });
    const res = await rotate(old.id);
    expect(res.statusCode).toBe(200);
    const fresh = res.json().data;
    expect(fresh.id).not.toBe(old.id);
    expect(fresh.key).toMatch(/^lk_test_sk_/);
    expect(fresh.secret).toMatch(/^lk_test_ss_/);
    expect(fresh.secret).not.toBe(old.secret);
    expect(fresh).toMatchObject({
      credential_id: credentialId,
      environment: "test",
      description: "checkout",
      allowed_ips: ["10.0.0.0/8", "2001:db8::/32"],
      has_secret: true,
      status: "active",
    });
    expect([...fresh.permissions].sort()).toEqual(["payin:create", "payin:read"]);

    const ip = "10.1.1.1";
    expect(await verify({ key: fresh.key, secret: fresh.secret, ip })).toBe("VALID");
    expect(await verify({ key: old.key, secret: old.secret, ip })).toBe("VALID");
    expect(await verify({ key: fresh.key, secret: old.secret, ip })).toBe("NOT_FOUND");
  });

  it("gives a key without a secret a successor without one", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    const fresh = (await rotate(old.id)).json().data;
    expect(fresh).not.toHaveProperty("secret");
    expect(fresh.has_secret).toBe(false);
    expect(await verify({ key: fresh.key })).toBe("VALID");
  });

  it("shows the successor in the old key's replaced_by", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    const fresh = (await rotate(old.id, { grace_seconds: HOUR })).json().data;
    expect(await getKey(old.id)).toMatchObject({
      replaced_by: fresh.id,
      expires_at: inSeconds(HOUR),
      status: "active",
    });
    expect((await getKey(fresh.id)).replaced_by).toBeNull();
  });

  it("refuses to rotate a key twice", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await rotate(old.id)).statusCode).toBe(200);
    const again = await rotate(old.id);
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe("KEY_ALREADY_ROTATED");
  });

  it("refuses to rotate a revoked key", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    await h.call("DELETE", `/v1/keys/${old.id}`, { key: co.key });
    const res = await rotate(old.id);
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe("KEY_NOT_ACTIVE");
  });

  it("resets a rotated key's expiry to 24 hours from now", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await rotate(old.id, { grace_seconds: HOUR })).statusCode).toBe(200);
    h.clock.advance(HOUR / 2);
    const res = await expiry(old.id, "reset");
    expect(res.statusCode).toBe(200);
    expect(res.json().data.expires_at).toBe(inSeconds(DAY));
    expect((await getKey(old.id)).expires_at).toBe(inSeconds(DAY));

    h.clock.advance(DAY - 1);
    expect(await verify({ key: old.key })).toBe("VALID");
    h.clock.advance(1);
    expect(await verify({ key: old.key })).toBe("EXPIRED");
  });

  it("ends a rotated key's overlap now", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    const fresh = (await rotate(old.id)).json().data;
    const res = await expiry(old.id, "now");
    expect(res.statusCode).toBe(200);
    expect(res.json().data.status).toBe("expired");
    expect(await verify({ key: old.key })).toBe("EXPIRED");
    expect(await verify({ key: fresh.key })).toBe("VALID");

    const late = await expiry(old.id, "reset");
    expect(late.statusCode).toBe(409);
    expect(await verify({ key: old.key })).toBe("EXPIRED");
  });

  it("refuses to change the expiry of a key that was never rotated", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    for (const action of ["reset", "now"]) {
      const res = await expiry(key.id, action);
      expect(res.statusCode).toBe(409);
      expect(res.json().error.code).toBe("KEY_NOT_ROTATED");
    }
    expect(await verify({ key: key.key })).toBe("VALID");
  });

  it("refuses to revive a rotated key whose overlap has run out", async () => {
    const old = await h.createKey(co, { permissions: ["payin:read"] });
    await rotate(old.id, { grace_seconds: 60 });
    h.clock.advance(61);
    const res = await expiry(old.id, "reset");
    expect(res.statusCode).toBe(409);
    expect(await verify({ key: old.key })).toBe("EXPIRED");
  });
});
