import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../src/core/key-format.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";

/** The same key with one letter of its random part in the other case. */
function flipCase(key: string): string {
  const start = key.indexOf("_sk_") + 4;
  for (let i = start; i < key.length; i++) {
    const c = key.charAt(i);
    const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
    if (flipped !== c) return key.slice(0, i) + flipped + key.slice(i + 1);
  }
  throw new Error(`no letter in ${key}`);
}

describe.each(BACKENDS)("verification on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Verify Company");
  });
  afterAll(() => h.close());

  const verify = async (body: Record<string, unknown>, as = co.key) => {
    const res = await h.call("POST", "/v1/verify", { key: as, json: body });
    expect(res.statusCode).toBe(200);
    return res.json().data;
  };
  const code = async (body: Record<string, unknown>) => (await verify(body)).code;
  async function credential(body: Record<string, unknown>) {
    const res = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "Gateway user", permissions: ["payin:read", "payin:create"], ...body },
    });
    expect(res.statusCode).toBe(201);
    return res.json().data as { id: string };
  }

  it("answers VALID with the key's identity, scope and expiry", async () => {
    const expiresAt = new Date(h.clock.now.getTime() + 7 * 86_400_000).toISOString();
    const key = await h.createKey(co, { permissions: ["payin:read", "payin:create"], expires_at: expiresAt });
    const answer = await verify({ key: key.key, permissions: ["payin:read"] });
    expect({ ...answer, permissions: [...answer.permissions].sort() }).toEqual({
      valid: true,
      code: "VALID",
      key_id: key.id,
      credential_id: co.credentialId,
      company_id: co.id,
      environment: "live",
      merchant_account_id: null,
      permissions: ["payin:create", "payin:read"],
      expires_at: expiresAt,
      rate_limit: null,
      remaining: null,
      meta: null,
      external_id: null,
      ip_restricted: false,
    });
  });

  it("answers MALFORMED for garbage, a broken checksum and a secret passed as a key", async () => {
    const pair = await h.createKey(co, { permissions: ["payin:read"], with_secret: true });
    const last = pair.key.slice(-1);
    const badChecksum = pair.key.slice(0, -1) + (last === "A" ? "B" : "A");
    for (const key of ["hello", "lk_live_sk_", `${pair.key}x`, badChecksum, pair.secret as string]) {
      expect(await verify({ key })).toMatchObject({ valid: false, code: "MALFORMED", key_id: null });
    }
  });

  it("answers MALFORMED for a pair key presented without its secret", async () => {
    const pair = await h.createKey(co, { permissions: ["payin:read"], with_secret: true });
    expect(await code({ key: pair.key })).toBe("MALFORMED");
  });

  it("answers NOT_FOUND for an unknown key, a wrong secret, a wrong password and an unknown username", async () => {
    expect(await code({ key: generateToken("lk", "live", "sk") })).toBe("NOT_FOUND");

    const pair = await h.createKey(co, { permissions: ["payin:read"], with_secret: true });
    const other = await h.createKey(co, { permissions: ["payin:read"], with_secret: true });
    expect(await code({ key: pair.key, secret: other.secret })).toBe("NOT_FOUND");
    expect(await code({ key: pair.key, secret: generateToken("lk", "live", "ss") })).toBe("NOT_FOUND");

    const pw = await h.call("POST", `/v1/credentials/${co.credentialId}/password`, { key: co.key });
    const { username, password } = pw.json().data;
    expect(await code({ username, password })).toBe("VALID");
    expect(await code({ username, password: `${password}x` })).toBe("NOT_FOUND");
    expect(await code({ username: "ws_000000@Company.Nobody", password })).toBe("NOT_FOUND");
  });

  it("is case-sensitive about keys", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    expect(["MALFORMED", "NOT_FOUND"]).toContain(await code({ key: flipCase(key.key) }));
    expect(await code({ key: key.key.toUpperCase() })).toBe("MALFORMED");
    expect(await code({ key: key.key })).toBe("VALID");
  });

  it("answers REVOKED on the request right after revocation", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    await h.call("DELETE", `/v1/keys/${key.id}`, { key: co.key });
    expect(await verify({ key: key.key })).toMatchObject({ valid: false, code: "REVOKED" });
  });

  it("answers EXPIRED once expires_at has passed", async () => {
    const key = await h.createKey(co, {
      permissions: ["payin:read"],
      expires_at: new Date(h.clock.now.getTime() + 60_000).toISOString(),
    });
    h.clock.advance(59);
    expect(await code({ key: key.key })).toBe("VALID");
    h.clock.advance(1);
    expect(await verify({ key: key.key })).toMatchObject({ valid: false, code: "EXPIRED" });
  });

  it("answers DISABLED for a key of an inactive credential", async () => {
    const cred = await credential({});
    const key = await h.createKey(co, { credential_id: cred.id });
    await h.call("PATCH", `/v1/credentials/${cred.id}`, { key: co.key, json: { status: "inactive" } });
    expect(await verify({ key: key.key })).toMatchObject({ valid: false, code: "DISABLED" });
  });

  it("checks the key's allowlist and fails closed without an ip", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"], allowed_ips: ["10.0.0.0/8"] });
    expect(await code({ key: key.key, ip: "10.20.30.40" })).toBe("VALID");
    expect(await verify({ key: key.key, ip: "11.0.0.1" })).toMatchObject({
      valid: false,
      code: "IP_NOT_ALLOWED",
    });
    expect(await code({ key: key.key })).toBe("IP_NOT_ALLOWED");
  });

  it("checks the credential's allowlist for its keys and its password", async () => {
    const cred = await credential({ allowed_ips: ["192.0.2.0/24"] });
    const key = await h.createKey(co, { credential_id: cred.id });
    expect(await code({ key: key.key, ip: "192.0.2.99" })).toBe("VALID");
    expect(await code({ key: key.key, ip: "198.51.100.1" })).toBe("IP_NOT_ALLOWED");
    expect(await code({ key: key.key })).toBe("IP_NOT_ALLOWED");

    const pw = await h.call("POST", `/v1/credentials/${cred.id}/password`, { key: co.key });
    const { username, password } = pw.json().data;
    expect(await code({ username, password, ip: "192.0.2.1" })).toBe("VALID");
    expect(await code({ username, password, ip: "198.51.100.1" })).toBe("IP_NOT_ALLOWED");
  });

  it("requires both allowlists to allow the caller when both are set", async () => {
    const cred = await credential({ allowed_ips: ["10.0.0.0/8"] });
    const narrower = await h.createKey(co, { credential_id: cred.id, allowed_ips: ["10.1.0.0/16"] });
    expect(await code({ key: narrower.key, ip: "10.1.2.3" })).toBe("VALID");
    expect(await code({ key: narrower.key, ip: "10.2.0.1" })).toBe("IP_NOT_ALLOWED");

    const outside = await h.createKey(co, { credential_id: cred.id, allowed_ips: ["192.168.1.1"] });
    expect(await code({ key: outside.key, ip: "192.168.1.1" })).toBe("IP_NOT_ALLOWED");
  });

  it("says whether the answer depends on the address: an allowlist on the key or on its API user", async () => {
    const open = await h.createKey(co, { permissions: ["payin:read"] });
    const listed = await h.createKey(co, { permissions: ["payin:read"], allowed_ips: ["10.0.0.0/8"] });
    const cred = await credential({ allowed_ips: ["10.0.0.0/8"] });
    const underListed = await h.createKey(co, { credential_id: cred.id });
    const restricted = async (body: Record<string, unknown>) => {
      const answer = await verify(body);
      return [answer.code, answer.ip_restricted];
    };
    expect(await restricted({ key: open.key, ip: "10.1.2.3" })).toEqual(["VALID", false]);
    expect(await restricted({ key: open.key })).toEqual(["VALID", false]);
    expect(await restricted({ key: listed.key, ip: "10.1.2.3" })).toEqual(["VALID", true]);
    expect(await restricted({ key: listed.key, ip: "192.0.2.1" })).toEqual(["IP_NOT_ALLOWED", true]);
    expect(await restricted({ key: underListed.key, ip: "10.1.2.3" })).toEqual(["VALID", true]);
    expect(await restricted({ key: underListed.key, ip: "192.0.2.1" })).toEqual(["IP_NOT_ALLOWED", true]);
    // An unknown key's answer is the same from everywhere.
    expect(await restricted({ key: generateToken("lk", "live", "sk"), ip: "10.1.2.3" })).toEqual([
      "NOT_FOUND",
      false,
    ]);
    // Lifting the allowlist is seen at once, as every change to a key is.
    const lifted = await h.call("PATCH", `/v1/keys/${listed.id}`, { key: co.key, json: { allowed_ips: [] } });
    expect(lifted.statusCode, lifted.body).toBe(200);
    expect(await restricted({ key: listed.key, ip: "192.0.2.1" })).toEqual(["VALID", false]);
  });

  it("matches IPv4 addresses, IPv6 addresses and ranges, and IPv4-mapped IPv6", async () => {
    const allowing = async (allowed_ips: string[]) =>
      (await h.createKey(co, { permissions: ["payin:read"], allowed_ips })).key;
    const cases: [string[], string, string][] = [
      [["203.0.113.7"], "VALID", "203.0.113.7"],
      [["203.0.113.7"], "IP_NOT_ALLOWED", "203.0.113.8"],
      [["2001:db8::1"], "VALID", "2001:db8::1"],
      [["2001:db8::1"], "VALID", "2001:0DB8:0:0:0:0:0:1"],
      [["2001:db8::1"], "IP_NOT_ALLOWED", "2001:db8::2"],
      [["2001:db8:abcd::/48"], "VALID", "2001:db8:abcd:12::1"],
      [["2001:db8:abcd::/48"], "IP_NOT_ALLOWED", "2001:db8:abce::1"],
      [["2001:db8:abcd::/48"], "IP_NOT_ALLOWED", "10.0.0.1"],
      [["10.0.0.0/8"], "VALID", "::ffff:10.1.2.3"],
      [["10.0.0.0/8"], "IP_NOT_ALLOWED", "::ffff:11.1.2.3"],
      [["::ffff:10.1.2.3"], "VALID", "10.1.2.3"],
      [["10.0.0.0/8"], "IP_NOT_ALLOWED", "not-an-ip"],
    ];
    for (const [rules, expected, ip] of cases) {
      const key = await allowing(rules);
      expect({ rules, ip, code: await code({ key, ip }) }).toEqual({ rules, ip, code: expected });
    }
  });

  it("answers ENVIRONMENT_MISMATCH when the key is for the other environment", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"], environment: "test" });
    expect(await code({ key: key.key, environment: "live" })).toBe("ENVIRONMENT_MISMATCH");
    expect(await code({ key: key.key, environment: "test" })).toBe("VALID");
  });

  it("requires every listed permission", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read", "payin:create"] });
    expect(await code({ key: key.key, permissions: ["payin:read"] })).toBe("VALID");
    expect(await code({ key: key.key, permissions: ["payin:read", "payin:create"] })).toBe("VALID");
    expect(await verify({ key: key.key, permissions: ["payin:read", "payout:create"] })).toMatchObject({
      valid: false,
      code: "INSUFFICIENT_PERMISSIONS",
    });
  });

  it("verifies a key + secret pair given in the body", async () => {
    const pair = await h.createKey(co, { permissions: ["payin:read"], with_secret: true });
    expect(await verify({ key: pair.key, secret: pair.secret })).toMatchObject({
      valid: true,
      code: "VALID",
      key_id: pair.id,
    });
  });

  it("lets a pair key act as a management caller only with its secret", async () => {
    const pair = await h.createKey(co, { permissions: ["keys:manage"], with_secret: true });
    const withSecret = await h.call("GET", "/v1/keys", { key: pair.key, secret: pair.secret });
    expect(withSecret.statusCode).toBe(200);
    const without = await h.call("GET", "/v1/keys", { key: pair.key });
    expect(without.statusCode).toBe(401);
    expect(without.json().error.code).toBe("UNAUTHORIZED");
    const other = await h.createKey(co, { permissions: ["keys:manage"], with_secret: true });
    const wrong = await h.call("GET", "/v1/keys", { key: pair.key, secret: other.secret });
    expect(wrong.statusCode).toBe(401);
  });

  it("verifies only the caller's own company's keys, unless it is a platform verify key", async () => {
    const other = await h.createCompany("Other Verify Company");
    const theirs = await h.createKey(other, { permissions: ["payin:read"] });
    expect(await code({ key: theirs.key })).toBe("NOT_FOUND");
    const platform = await h.verifyKey();
    expect(await verify({ key: theirs.key }, platform)).toMatchObject({
      valid: true,
      code: "VALID",
      company_id: other.id,
    });
  });

  it("gives a gateway's platform verify key a budget of its own", async () => {
    const created = await h.call("POST", "/v1/admin/verify-keys", {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      json: { name: "gateway with a budget", rate_limits: [{ limit: 2, window: "1m" }] },
    });
    expect(created.statusCode).toBe(201);
    const gateway = created.json().data.key;
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    for (let i = 0; i < 2; i++) {
      const ok = await h.call("POST", "/v1/verify", { key: gateway, json: { key: key.key } });
      expect(ok.statusCode).toBe(200);
      expect(ok.headers["ratelimit-remaining"]).toBe(String(1 - i));
    }
    const over = await h.call("POST", "/v1/verify", { key: gateway, json: { key: key.key } });
    expect(over.statusCode).toBe(429);
    expect(over.json().error.code).toBe("RATE_LIMITED");
    expect(Number(over.headers["retry-after"])).toBeGreaterThan(0);
    // The verified key's own budget was not touched by the refused call.
    expect(await code({ key: key.key })).toBe("VALID");

    const bad = await h.call("POST", "/v1/admin/verify-keys", {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      json: { name: "bad", rate_limits: [{ limit: 2, window: "2d" }] },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe("INVALID_RATE_LIMIT");
  });
});
