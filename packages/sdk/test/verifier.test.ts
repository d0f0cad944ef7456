import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../../src/core/key-format.ts";
import { type Company, createHarness, type Harness } from "../../../test/helpers/harness.ts";
import { within } from "../../../test/helpers/wait.ts";
import { checkKey, LatchkeyVerifier, type VerifierOptions } from "../src/index.ts";

/**
 * The SDK against a real Latchkey (the embedded store, listening on a spare port): answers from its
 * cache, asks once per miss, and hears revocations over the change stream.
 */

describe("the SDK's in-process verification", () => {
  let h: Harness;
  let co: Company;
  let other: Company;
  let url = "";
  let verifyKey = "";
  /** Verifications Latchkey answered over HTTP. */
  let asked = 0;
  const verifiers: LatchkeyVerifier[] = [];

  const verifier = async (opts: Partial<VerifierOptions> = {}) => {
    const v = new LatchkeyVerifier({ url, verifyKey, ...opts });
    verifiers.push(v);
    await v.start();
    return v;
  };

  beforeAll(async () => {
    h = await createHarness("pglite");
    // Counted as the server receives them: the verify fast path answers before Fastify's hooks.
    h.app.server.prependListener("request", (req) => {
      if (req.url === "/v1/verify") asked++;
    });
    await h.app.listen({ port: 0, host: "127.0.0.1" });
    const address = h.app.server.address();
    url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
    co = await h.createCompany("SDK Co");
    other = await h.createCompany("Other SDK Co");
    verifyKey = await h.verifyKey("sdk");
  });
  afterAll(async () => {
    for (const v of verifiers) v.close();
    await h.close();
  });

  it("checks a key's checksum offline, as Latchkey does", async () => {
    const v = await verifier();
    const key = generateToken("lk", "live", "sk");
    expect(checkKey(key)).toEqual({ brand: "lk", environment: "live", kind: "sk" });
    const typo = `${key.slice(0, -1)}${key.endsWith("A") ? "B" : "A"}`;
    expect(checkKey(typo)).toBeNull();
    const before = asked;
    expect(await v.verify({ key: typo })).toMatchObject({
      valid: false,
      code: "MALFORMED",
      source: "offline",
    });
    expect(await v.verify({ key: "lk_live_sk_short" })).toMatchObject({ code: "MALFORMED" });
    expect(asked).toBe(before);
  });

  it("answers a cached key without its checksum, but never a key built to match another's cache entry", async () => {
    const v = await verifier();
    const pair = await h.createKey(co, { permissions: ["payin:read"], with_secret: true });
    const secret = pair.secret as string;
    const plain = await h.createKey(co, { permissions: ["payin:read"] });
    expect(await v.verify({ key: pair.key, secret, ip: "203.0.113.7" })).toMatchObject({ valid: true });
    expect(await v.verify({ key: plain.key, ip: "203.0.113.7" })).toMatchObject({ valid: true });
    expect(v.verify({ key: plain.key, ip: "203.0.113.7" })).toMatchObject({ valid: true, source: "cache" });
    // The cache keys of those two answers, presented as keys: refused offline, not answered VALID.
    for (const forged of [
      `${pair.key}\n${secret}`,
      `${pair.key}\n${secret}\n203.0.113.7`,
      `${plain.key}\n\n203.0.113.7`,
    ])
      expect(await v.verify({ key: forged })).toMatchObject({
        valid: false,
        code: "MALFORMED",
        source: "offline",
      });
    expect(await v.verify({ key: plain.key, secret: "\n203.0.113.7" })).toMatchObject({ code: "MALFORMED" });
  });

  it("asks Latchkey once per key, however many ask at once, then answers from its cache", async () => {
    const v = await verifier();
    expect(v.streamState).toBe("live");
    const k = await h.createKey(co, { permissions: ["payin:read", "payout:create"] });
    const before = asked;
    const answers = await Promise.all(Array.from({ length: 20 }, () => v.verify({ key: k.key })));
    expect(asked - before).toBe(1);
    expect(answers[0]).toMatchObject({
      valid: true,
      code: "VALID",
      keyId: k.id,
      companyId: co.id,
      source: "latchkey",
    });
    const cached = v.verify({ key: k.key });
    expect(cached).not.toBeInstanceOf(Promise);
    expect(cached).toMatchObject({ valid: true, keyId: k.id, source: "cache" });
    // Permissions and environment are checked here, against what the key holds.
    expect(v.verify({ key: k.key, permissions: ["payin:read"] })).toMatchObject({ valid: true });
    expect(v.verify({ key: k.key, permissions: ["payin:read", "kyc:create"] })).toMatchObject({
      valid: false,
      code: "INSUFFICIENT_PERMISSIONS",
    });
    expect(v.verify({ key: k.key, environment: "test" })).toMatchObject({ code: "ENVIRONMENT_MISMATCH" });
    expect(asked - before).toBe(1);
  });

  it("hears a revocation over the change stream and refuses the key at once, though it was cached", async () => {
    const v = await verifier();
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await v.verify({ key: k.key })).valid).toBe(true);
    expect((await h.call("DELETE", `/v1/keys/${k.id}`, { key: co.key })).statusCode).toBe(200);
    const took = await within(1000, async () => (await v.verify({ key: k.key })).code === "REVOKED");
    expect(took).toBeLessThan(1000);
  });

  it("hears an API user's deactivation, which refuses all its keys", async () => {
    const v = await verifier();
    const cred = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "SDK user", permissions: ["payin:read"] },
    });
    const k = await h.createKey(co, { permissions: ["payin:read"], credential_id: cred.json().data.id });
    expect((await v.verify({ key: k.key })).valid).toBe(true);
    const off = await h.call("PATCH", `/v1/credentials/${cred.json().data.id}`, {
      key: co.key,
      json: { status: "inactive" },
    });
    expect(off.statusCode, off.body).toBe(200);
    await within(1000, async () => (await v.verify({ key: k.key })).code === "DISABLED");
  });

  it("keeps answers only briefly while Latchkey cannot hear its other nodes, and starts afresh after", async () => {
    let now = 1_000_000;
    const v = await verifier({ clock: () => now, ttlMs: 60_000, fallbackTtlMs: 500 });
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    await v.verify({ key: k.key });
    h.services.changeStream.setHearing(false);
    await within(1000, () => v.streamState === "degraded");
    expect(v.size).toBe(0);
    const before = asked;
    await v.verify({ key: k.key });
    now += 400;
    expect(v.verify({ key: k.key })).toMatchObject({ source: "cache" });
    now += 200;
    await v.verify({ key: k.key });
    expect(asked - before).toBe(2);
    h.services.changeStream.setHearing(true);
    await within(1000, () => v.streamState === "live");
    expect(v.size).toBe(0);
  });

  it("tells its reset listeners when the stream resets, and when it is back after being lost", async () => {
    const v = await verifier();
    let resets = 0;
    const stop = v.onReset(() => resets++);
    h.services.changeStream.setHearing(false);
    await within(1000, () => v.streamState === "degraded");
    expect(resets).toBe(0);
    h.services.changeStream.setHearing(true);
    await within(1000, () => resets === 1);
    stop();
    h.services.changeStream.setHearing(false);
    h.services.changeStream.setHearing(true);
    await within(1000, () => v.streamState === "live");
    expect(resets).toBe(1);
    // A stream taken for dead (here: silent for longer than 50 ms) is opened again: that counts too.
    const silent = await verifier({ streamSilenceMs: 50 });
    let back = 0;
    silent.onReset(() => back++);
    await within(4000, () => back > 0);
    silent.close();
  });

  it("without the stream, keeps answers for the fallback TTL only", async () => {
    let now = 5_000_000;
    const v = await verifier({ stream: false, clock: () => now, fallbackTtlMs: 1000 });
    expect(v.streamState).toBe("off");
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    const before = asked;
    await v.verify({ key: k.key });
    now += 900;
    expect(v.verify({ key: k.key })).toMatchObject({ source: "cache" });
    now += 200;
    expect(await v.verify({ key: k.key })).toMatchObject({ source: "latchkey" });
    expect(asked - before).toBe(2);
  });

  it("asks about a rate-limited key every time, so Latchkey counts every request", async () => {
    const v = await verifier();
    const k = await h.createKey(co, {
      permissions: ["payin:read"],
      rate_limits: [{ limit: 2, window: "1m" }],
    });
    const before = asked;
    expect((await v.verify({ key: k.key })).rateLimit).toMatchObject({ limit: 2, remaining: 1 });
    expect((await v.verify({ key: k.key })).valid).toBe(true);
    expect(await v.verify({ key: k.key })).toMatchObject({ valid: false, code: "RATE_LIMITED" });
    expect(asked - before).toBe(3);
  });

  it("names a key's merchant account in its verdicts, cached or asked, and null for a company-level key", async () => {
    const v = await verifier();
    const made = await h.call("POST", "/v1/merchant-accounts", {
      key: co.key,
      json: { name: "SDK shop", code: `sdk-${Date.now()}` },
    });
    expect(made.statusCode, made.body).toBe(201);
    const account = made.json().data.id as string;
    const user = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "SDK merchant", permissions: ["payin:read"], merchant_account_id: account },
    });
    expect(user.statusCode, user.body).toBe(201);
    const inside = await h.createKey(co, { credential_id: user.json().data.id, permissions: ["payin:read"] });
    const outside = await h.createKey(co, { permissions: ["payin:read"] });
    expect(await v.verify({ key: inside.key })).toMatchObject({ valid: true, merchantAccountId: account });
    expect(await v.verify({ key: inside.key })).toMatchObject({
      source: "cache",
      merchantAccountId: account,
    });
    expect(await v.verify({ key: outside.key })).toMatchObject({ valid: true, merchantAccountId: null });
  });

  it("asks about a key with credits every time, spending only on requests Latchkey allows", async () => {
    const v = await verifier();
    const k = await h.createKey(co, {
      permissions: ["payin:read"],
      remaining: 3,
      meta: { plan: "pro" },
      external_id: "acct_7",
    });
    const before = asked;
    expect(await v.verify({ key: k.key })).toMatchObject({
      valid: true,
      remaining: 2,
      meta: { plan: "pro" },
      externalId: "acct_7",
      source: "latchkey",
    });
    // Known to be metered now: a request refused for its permissions is decided by Latchkey and spends nothing.
    expect(await v.verify({ key: k.key, permissions: ["payout:create"] })).toMatchObject({
      valid: false,
      code: "INSUFFICIENT_PERMISSIONS",
    });
    // Concurrent requests are each asked (and each spends), never answered from one shared answer.
    const [x, y] = await Promise.all([v.verify({ key: k.key }), v.verify({ key: k.key })]);
    expect([x.remaining, y.remaining].sort()).toEqual([0, 1]);
    expect(await v.verify({ key: k.key, cost: 0 })).toMatchObject({
      valid: false,
      code: "USAGE_EXCEEDED",
      remaining: 0,
    });
    expect(asked - before).toBe(5);
  });

  it("asks once for a key without an allowlist, whatever address it is used from", async () => {
    const v = await verifier();
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    const pair = await h.createKey(co, { permissions: ["payin:read"], with_secret: true });
    const secret = pair.secret as string;
    const before = asked;
    expect(await v.verify({ key: k.key, ip: "203.0.113.9" })).toMatchObject({
      valid: true,
      source: "latchkey",
    });
    expect(v.verify({ key: k.key, ip: "198.51.100.1" })).toMatchObject({ valid: true, source: "cache" });
    expect(v.verify({ key: k.key })).toMatchObject({ valid: true, source: "cache" });
    expect(await v.verify({ key: pair.key, secret, ip: "203.0.113.9" })).toMatchObject({ valid: true });
    expect(v.verify({ key: pair.key, secret, ip: "198.51.100.1" })).toMatchObject({ source: "cache" });
    expect(asked - before).toBe(2);
    expect(v.size).toBe(2);
  });

  it("answers per address for a key with an allowlist, or whose API user has one", async () => {
    const v = await verifier();
    const k = await h.createKey(co, { permissions: ["payin:read"], allowed_ips: ["203.0.113.0/24"] });
    const cred = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "Listed SDK user", permissions: ["payin:read"], allowed_ips: ["203.0.113.0/24"] },
    });
    expect(cred.statusCode, cred.body).toBe(201);
    const underListed = await h.createKey(co, {
      permissions: ["payin:read"],
      credential_id: cred.json().data.id,
    });
    for (const key of [k.key, underListed.key]) {
      const before = asked;
      expect(await v.verify({ key, ip: "203.0.113.9" })).toMatchObject({ valid: true });
      expect(await v.verify({ key, ip: "198.51.100.1" })).toMatchObject({ code: "IP_NOT_ALLOWED" });
      expect(await v.verify({ key })).toMatchObject({ code: "IP_NOT_ALLOWED" });
      expect(asked - before).toBe(3);
      expect(v.verify({ key, ip: "203.0.113.9" })).toMatchObject({ valid: true, source: "cache" });
      expect(v.verify({ key, ip: "198.51.100.1" })).toMatchObject({
        code: "IP_NOT_ALLOWED",
        source: "cache",
      });
      expect(asked - before).toBe(3);
    }
  });

  it("stops answering a key for every address once it is given an allowlist", async () => {
    const v = await verifier();
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    expect(await v.verify({ key: k.key, ip: "198.51.100.1" })).toMatchObject({ valid: true });
    expect(v.verify({ key: k.key, ip: "198.51.100.2" })).toMatchObject({ valid: true, source: "cache" });
    const listed = await h.call("PATCH", `/v1/keys/${k.id}`, {
      key: co.key,
      json: { allowed_ips: ["203.0.113.0/24"] },
    });
    expect(listed.statusCode, listed.body).toBe(200);
    await within(
      1000,
      async () => (await v.verify({ key: k.key, ip: "198.51.100.2" })).code === "IP_NOT_ALLOWED",
    );
    expect(await v.verify({ key: k.key, ip: "203.0.113.9" })).toMatchObject({ valid: true });
    expect(await v.verify({ key: k.key, ip: "198.51.100.1" })).toMatchObject({ code: "IP_NOT_ALLOWED" });
  });

  it("with a company's verify key, knows only its company's keys", async () => {
    const own = await h.createKey(co, { permissions: ["keys:verify"] });
    const v = await verifier({ verifyKey: own.key });
    const theirs = await h.createKey(other, { permissions: ["payin:read"] });
    const mine = await h.createKey(co, { permissions: ["payin:read"] });
    expect(await v.verify({ key: theirs.key })).toMatchObject({ valid: false, code: "NOT_FOUND" });
    expect(await v.verify({ key: mine.key })).toMatchObject({ valid: true });
  });

  it("fails closed when Latchkey cannot be asked, and open only when told to", async () => {
    const key = generateToken("lk", "live", "sk");
    const closed = new LatchkeyVerifier({
      url: "http://127.0.0.1:1",
      verifyKey,
      stream: false,
      timeoutMs: 500,
    });
    expect(await closed.verify({ key })).toMatchObject({ valid: false, code: "UNAVAILABLE" });
    const open = new LatchkeyVerifier({
      url: "http://127.0.0.1:1",
      verifyKey,
      stream: false,
      failOpen: true,
      timeoutMs: 500,
    });
    expect(await open.verify({ key })).toMatchObject({ valid: true, source: "fail-open", keyId: null });
    // A verify key Latchkey refuses is no answer either.
    const refused = new LatchkeyVerifier({
      url,
      verifyKey: generateToken("lk", "live", "sk"),
      stream: false,
    });
    expect(await refused.verify({ key })).toMatchObject({ valid: false, code: "UNAVAILABLE" });
  });
});
