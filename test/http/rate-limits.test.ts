import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/http/app.ts";
import { createRuntime } from "../../src/runtime.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness, SECRET } from "../helpers/harness.ts";

const PLATFORM = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** The RateLimit-* and Retry-After headers of a response, as numbers (undefined when absent). */
function limitHeaders(res: LightMyRequestResponse) {
  const n = (name: string) => (res.headers[name] === undefined ? undefined : Number(res.headers[name]));
  return {
    limit: n("ratelimit-limit"),
    remaining: n("ratelimit-remaining"),
    reset: n("ratelimit-reset"),
    retryAfter: n("retry-after"),
  };
}

describe.each(BACKENDS)("rate limits over HTTP on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let other: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Limited Company");
    other = await h.createCompany("Other Company");
  });
  afterAll(() => h.close());

  /** Moves the clock forward to the start of the next window of `seconds` (windows are aligned to the epoch). */
  const toWindowStart = (seconds: number) => {
    const ms = seconds * 1000;
    const into = h.clock.now.getTime() % ms;
    h.clock.advance((ms - into) / 1000);
  };

  const patchKey = (id: string, json: unknown, key = co.key) =>
    h.call("PATCH", `/v1/keys/${id}`, { key, json });
  const getKey = (id: string, key: string) => h.call("GET", `/v1/keys/${id}`, { key });
  const verify = (key: string, as = co.key, extra: Record<string, unknown> = {}) =>
    h.call("POST", "/v1/verify", { key: as, json: { key, ...extra } });

  async function credential(body: Record<string, unknown>) {
    const res = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "Integration", permissions: ["payin:read", "keys:manage"], ...body },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data as { id: string; rate_limits: unknown };
  }

  it("a key's limit set through the API applies from its next call: 429 RATE_LIMITED with the headers", async () => {
    const mk = await h.createKey(co, { permissions: ["keys:manage"] });
    // Used (and so cached) before the limit is set.
    expect((await getKey(mk.id, mk.key)).statusCode).toBe(200);
    expect(limitHeaders(await getKey(mk.id, mk.key)).limit).toBeUndefined();

    const set = await patchKey(mk.id, { rate_limits: [{ limit: 3, window: "1m" }] });
    expect(set.statusCode, set.body).toBe(200);
    expect(set.json().data.rate_limits).toEqual([{ limit: 3, window: "1m" }]);

    toWindowStart(60);
    h.clock.advance(15);
    for (const remaining of [2, 1, 0]) {
      const ok = await getKey(mk.id, mk.key);
      expect(ok.statusCode).toBe(200);
      expect(limitHeaders(ok)).toEqual({ limit: 3, remaining, reset: 45, retryAfter: undefined });
      expect(ok.headers["ratelimit-policy"]).toBe("3;w=60");
    }
    const refused = await getKey(mk.id, mk.key);
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error).toMatchObject({ code: "RATE_LIMITED", details: { retry_after: 65 } });
    // 3 counted in this window: one more fits a third of the way into the next one, 45 + 20 s from now.
    expect(limitHeaders(refused)).toEqual({ limit: 3, remaining: 0, reset: 45, retryAfter: 65 });
    // Any route, read or write, counts; the refusal comes before the route's own checks.
    const write = await patchKey(mk.id, { name: "renamed" }, mk.key);
    expect(write.statusCode).toBe(429);
    expect((await getKey(mk.id, co.key)).json().data.name).toBe("k");

    // Retry-After is honest: a second early is still refused, then it is allowed.
    h.clock.advance(64);
    expect((await getKey(mk.id, mk.key)).statusCode).toBe(429);
    h.clock.advance(1);
    expect((await getKey(mk.id, mk.key)).statusCode).toBe(200);

    // Another key of the same API user is not limited by this key's limit.
    for (let i = 0; i < 5; i++) expect((await getKey(mk.id, co.key)).statusCode).toBe(200);

    // Lifting the limit takes effect at once too.
    expect((await getKey(mk.id, mk.key)).statusCode).toBe(429);
    expect((await patchKey(mk.id, { rate_limits: [] })).statusCode).toBe(200);
    const free = await getKey(mk.id, mk.key);
    expect(free.statusCode).toBe(200);
    expect(limitHeaders(free).limit).toBeUndefined();
  });

  it("verifications of a key and the management calls it makes draw on one budget", async () => {
    const mk = await h.createKey(co, {
      permissions: ["keys:manage"],
      rate_limits: [{ limit: 3, window: "1m" }],
    });
    toWindowStart(60);
    expect((await verify(mk.key)).json().data.rate_limit).toMatchObject({ remaining: 2 });
    expect(limitHeaders(await getKey(mk.id, mk.key))).toMatchObject({ remaining: 1 });
    expect((await verify(mk.key)).json().data.rate_limit).toMatchObject({ remaining: 0 });
    expect((await getKey(mk.id, mk.key)).statusCode).toBe(429);
    expect((await verify(mk.key)).json().data.code).toBe("RATE_LIMITED");
  });

  it("the tightest of several limits is the one the headers describe", async () => {
    const mk = await h.createKey(co, {
      permissions: ["keys:manage"],
      rate_limits: [
        { limit: 100, window: "1h" },
        { limit: 2, window: "1s" },
      ],
    });
    toWindowStart(3600);
    const first = await getKey(mk.id, mk.key);
    expect(limitHeaders(first)).toMatchObject({ limit: 2, remaining: 1, reset: 1 });
    expect(first.headers["ratelimit-policy"]).toBe("2;w=1");
    await getKey(mk.id, mk.key);
    const refused = await getKey(mk.id, mk.key);
    expect(refused.statusCode).toBe(429);
    expect(limitHeaders(refused)).toMatchObject({ limit: 2, remaining: 0, retryAfter: 2 });
    h.clock.advance(2);
    expect(limitHeaders(await getKey(mk.id, mk.key))).toMatchObject({ limit: 2, remaining: 1 });
  });

  it("an API user's limit is shared by all its keys and its Basic auth password", async () => {
    const cred = await credential({ rate_limits: [{ limit: 4, window: "1m" }] });
    expect(cred.rate_limits).toEqual([{ limit: 4, window: "1m" }]);
    const a = await h.createKey(co, { credential_id: cred.id, permissions: ["keys:manage"] });
    const b = await h.createKey(co, { credential_id: cred.id, permissions: ["keys:manage"] });
    const pw = await h.call("POST", `/v1/credentials/${cred.id}/password`, { key: co.key, json: {} });
    expect(pw.statusCode, pw.body).toBe(200);
    const { username, password } = pw.json().data;
    const basic = { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}` };

    toWindowStart(60);
    const remaining: number[] = [];
    for (const key of [a.key, b.key, a.key]) {
      const res = await getKey(a.id, key);
      expect(res.statusCode).toBe(200);
      remaining.push(limitHeaders(res).remaining as number);
    }
    const viaPassword = await h.call("GET", `/v1/keys/${a.id}`, { headers: basic });
    expect(viaPassword.statusCode, viaPassword.body).toBe(200);
    expect(remaining.concat(limitHeaders(viaPassword).remaining as number)).toEqual([3, 2, 1, 0]);

    for (const res of [
      await getKey(a.id, a.key),
      await getKey(a.id, b.key),
      await h.call("GET", `/v1/keys/${a.id}`, { headers: basic }),
    ]) {
      expect(res.statusCode).toBe(429);
      expect(res.json().error.code).toBe("RATE_LIMITED");
      expect(limitHeaders(res)).toMatchObject({ limit: 4, remaining: 0 });
      expect(limitHeaders(res).retryAfter).toBeGreaterThan(0);
    }
    // A key on another API user is not touched.
    expect((await getKey(a.id, co.key)).statusCode).toBe(200);
    // Raising the API user's limit frees its keys at once.
    const raise = await h.call("PATCH", `/v1/credentials/${cred.id}`, {
      key: co.key,
      json: { rate_limits: [{ limit: 10, window: "1m" }] },
    });
    expect(raise.statusCode, raise.body).toBe(200);
    expect(limitHeaders(await getKey(a.id, b.key))).toMatchObject({ limit: 10, remaining: 5 });
  });

  it("/v1/verify answers RATE_LIMITED for a key over its limit, with what to pass on", async () => {
    const k = await h.createKey(co, {
      permissions: ["payin:read"],
      rate_limits: [{ limit: 2, window: "10s" }],
    });
    toWindowStart(10);
    h.clock.advance(4);
    const answers = [];
    for (let i = 0; i < 3; i++) {
      const res = await verify(k.key);
      expect(res.statusCode).toBe(200);
      answers.push(res.json().data);
      // The verified key's limit is in the body; the response's own headers are the caller's business.
      expect(limitHeaders(res).limit).toBeUndefined();
    }
    expect(answers[0]).toMatchObject({
      valid: true,
      code: "VALID",
      key_id: k.id,
      rate_limit: { limit: 2, window: "10s", remaining: 1, reset: 6, retry_after: null },
    });
    expect(answers[1]).toMatchObject({ valid: true, rate_limit: { remaining: 0 } });
    expect(answers[2]).toMatchObject({
      valid: false,
      code: "RATE_LIMITED",
      key_id: k.id,
      rate_limit: { limit: 2, window: "10s", remaining: 0, reset: 6, retry_after: 11 },
    });
    // Half way through the next window one more fits; a refusal for another reason (a permission it
    // lacks) does not use it up.
    h.clock.advance(11);
    expect((await verify(k.key, co.key, { permissions: ["payout:create"] })).json().data).toMatchObject({
      code: "INSUFFICIENT_PERMISSIONS",
      rate_limit: null,
    });
    expect((await verify(k.key)).json().data).toMatchObject({ code: "VALID", rate_limit: { remaining: 0 } });
    // A key without limits carries no rate_limit.
    const free = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await verify(free.key)).json().data).toMatchObject({ code: "VALID", rate_limit: null });
  });

  it("a gateway's verify key has its own budget, apart from the keys it verifies", async () => {
    const gw = await h.createKey(co, {
      permissions: ["keys:verify"],
      rate_limits: [{ limit: 3, window: "1m" }],
    });
    const k = await h.createKey(co, {
      permissions: ["payin:read"],
      rate_limits: [{ limit: 100, window: "1m" }],
    });
    toWindowStart(60);
    for (const remaining of [2, 1, 0]) {
      const res = await verify(k.key, gw.key);
      expect(res.statusCode).toBe(200);
      expect(limitHeaders(res)).toMatchObject({ limit: 3, remaining });
      expect(res.json().data).toMatchObject({ code: "VALID", rate_limit: { limit: 100 } });
    }
    const refused = await verify(k.key, gw.key);
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error.code).toBe("RATE_LIMITED");
    expect(limitHeaders(refused)).toMatchObject({ limit: 3, remaining: 0, retryAfter: 80 });
    // The verified key was not counted by the refused call: 3 used of its 100.
    expect((await verify(k.key)).json().data.rate_limit).toMatchObject({ limit: 100, remaining: 96 });
  });

  it("a rotated key's replacement carries its limits, and throttled calls show as denied in its usage", async () => {
    const k = await h.createKey(co, {
      permissions: ["payin:read"],
      rate_limits: [{ limit: 2, window: "1h" }],
    });
    const rotated = await h.call("POST", `/v1/keys/${k.id}/rotate`, {
      key: co.key,
      json: { grace_seconds: 60 },
    });
    expect(rotated.statusCode, rotated.body).toBe(200);
    const fresh = rotated.json().data;
    expect(fresh.rate_limits).toEqual([{ limit: 2, window: "1h" }]);
    toWindowStart(3600);
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await verify(fresh.key)).json().data.code);
    expect(codes).toEqual(["VALID", "VALID", "RATE_LIMITED", "RATE_LIMITED"]);
    await h.services.usage.flush();
    const usage = await h.call("GET", `/v1/keys/${fresh.id}/usage?days=1`, { key: co.key });
    expect(usage.json().data).toMatchObject({ total_requests: 2, days: [{ requests: 2, denied: 2 }] });
  });

  it("a rotated key and its replacement share one budget during the overlap", async () => {
    const k = await h.createKey(co, {
      permissions: ["payin:read"],
      rate_limits: [{ limit: 3, window: "1h" }],
    });
    toWindowStart(3600);
    expect((await verify(k.key)).json().data.code).toBe("VALID");
    const first = await h.call("POST", `/v1/keys/${k.id}/rotate`, {
      key: co.key,
      json: { grace_seconds: 600 },
    });
    expect(first.statusCode, first.body).toBe(200);
    const second = await h.call("POST", `/v1/keys/${first.json().data.id}/rotate`, {
      key: co.key,
      json: { grace_seconds: 600 },
    });
    expect(second.statusCode, second.body).toBe(200);
    // Three generations, all still working: together they have what is left of the one budget.
    const codes = [];
    for (const key of [first.json().data.key, second.json().data.key, k.key, second.json().data.key])
      codes.push((await verify(key)).json().data.code);
    expect(codes).toEqual(["VALID", "VALID", "RATE_LIMITED", "RATE_LIMITED"]);
  });

  it("refuses bad rate_limits with 400, never 500, and leaves the limits as they were", async () => {
    const cred = await credential({ rate_limits: [{ limit: 7, window: "1h" }] });
    const k = await h.createKey(co, {
      permissions: ["payin:read"],
      rate_limits: [{ limit: 5, window: "1m" }],
    });
    const bad: unknown[] = [
      null,
      "10/1m",
      { limit: 10, window: "1m" },
      [null],
      ["10/1m"],
      [{ limit: "10", window: "1m" }],
      [{ limit: 10 }],
      [{ window: "1m" }],
      [{ limit: 10, window: "1m", burst: 20 }],
      [{ limit: 10, window: 60 }],
      [{ limit: 0, window: "1m" }],
      [{ limit: -5, window: "1m" }],
      [{ limit: 1.5, window: "1m" }],
      [{ limit: 1e12, window: "1m" }],
      [{ limit: 10, window: "2d" }],
      [{ limit: 10, window: "25h" }],
      [{ limit: 10, window: "86401s" }],
      [{ limit: 10, window: "1w" }],
      [{ limit: 10, window: "0s" }],
      [{ limit: 10, window: "1 m" }],
      [{ limit: 10, window: "" }],
      [
        { limit: 5, window: "1m" },
        { limit: 10, window: "60s" },
      ],
      ["1s", "2s", "3s", "4s", "5s", "6s"].map((window) => ({ limit: 10, window })),
    ];
    const attempts: [string, () => Promise<LightMyRequestResponse>][] = [];
    for (const rate_limits of bad) {
      attempts.push(
        [`PATCH key ${JSON.stringify(rate_limits)}`, () => patchKey(k.id, { rate_limits })],
        [
          `POST key ${JSON.stringify(rate_limits)}`,
          () =>
            h.call("POST", "/v1/keys", {
              key: co.key,
              json: { name: "bad", environment: "live", permissions: ["payin:read"], rate_limits },
            }),
        ],
        [
          `PATCH credential ${JSON.stringify(rate_limits)}`,
          () => h.call("PATCH", `/v1/credentials/${cred.id}`, { key: co.key, json: { rate_limits } }),
        ],
        [
          `POST credential ${JSON.stringify(rate_limits)}`,
          () =>
            h.call("POST", "/v1/credentials", {
              key: co.key,
              json: { name: "bad", permissions: ["payin:read"], rate_limits },
            }),
        ],
      );
    }
    const codes = new Set<string>();
    for (const [what, attempt] of attempts) {
      const res = await attempt();
      expect(res.statusCode, `${what}: ${res.body}`).toBe(400);
      const code = res.json().error.code;
      expect(["VALIDATION_ERROR", "INVALID_RATE_LIMIT"], what).toContain(code);
      codes.add(code);
    }
    // Both layers are exercised: the schema and the service's own check (windows over a day, duplicates).
    expect(codes).toEqual(new Set(["VALIDATION_ERROR", "INVALID_RATE_LIMIT"]));
    const dup = await patchKey(k.id, {
      rate_limits: [
        { limit: 5, window: "1m" },
        { limit: 10, window: "60s" },
      ],
    });
    expect(dup.json().error).toMatchObject({ code: "INVALID_RATE_LIMIT", field: "rate_limits" });
    expect((await getKey(k.id, co.key)).json().data.rate_limits).toEqual([{ limit: 5, window: "1m" }]);
    const credNow = await h.call("GET", `/v1/credentials/${cred.id}`, { key: co.key });
    expect(credNow.json().data.rate_limits).toEqual([{ limit: 7, window: "1h" }]);
  });

  it("records every change of limits in the audit trail, and none when nothing changed", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    const cred = await credential({});
    const trail = async (target: string) =>
      (await h.call("GET", `/v1/audit?action=rate_limits.changed&target=${target}`, { key: co.key })).json()
        .data.events as {
        action: string;
        target: { id: string };
        changes: unknown;
        actor: { type: string };
      }[];

    expect((await patchKey(k.id, { rate_limits: [{ limit: 5, window: "1s" }] })).statusCode).toBe(200);
    expect((await patchKey(k.id, { rate_limits: [{ limit: 5, window: "1s" }] })).statusCode).toBe(200);
    expect((await patchKey(k.id, { rate_limits: [] })).statusCode).toBe(200);
    const forKey = await trail(k.id);
    expect(forKey).toHaveLength(2);
    const changes = forKey.map((e) => e.changes);
    expect(changes).toContainEqual({
      before: { rate_limits: [] },
      after: { rate_limits: [{ limit: 5, window: "1s" }] },
    });
    expect(changes).toContainEqual({
      before: { rate_limits: [{ limit: 5, window: "1s" }] },
      after: { rate_limits: [] },
    });
    expect(forKey.every((e) => e.target.id === k.id && e.actor.type === "key")).toBe(true);

    const patched = await h.call("PATCH", `/v1/credentials/${cred.id}`, {
      key: co.key,
      json: { rate_limits: [{ limit: 1000, window: "1d" }] },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    const forCredential = await trail(cred.id);
    expect(forCredential).toHaveLength(1);
    expect(JSON.stringify(forCredential[0]?.changes)).toContain('"window":"1d"');
    // The other company's trail has none of it.
    const foreign = await h.call("GET", "/v1/audit?action=rate_limits.changed", { key: other.key });
    expect(foreign.statusCode).toBe(200);
    expect(foreign.json().data.events).toEqual([]);
  });

  it("keeps another company away from a key's and an API user's limits", async () => {
    const k = await h.createKey(co, {
      permissions: ["payin:read"],
      rate_limits: [{ limit: 5, window: "1m" }],
    });
    const cred = await credential({ rate_limits: [{ limit: 9, window: "1m" }] });
    const tries = [
      await patchKey(k.id, { rate_limits: [{ limit: 1000000, window: "1s" }] }, other.key),
      await patchKey(k.id, { rate_limits: [] }, other.key),
      await getKey(k.id, other.key),
      await h.call("GET", `/v1/keys/${k.id}/usage`, { key: other.key }),
      await h.call("PATCH", `/v1/credentials/${cred.id}`, { key: other.key, json: { rate_limits: [] } }),
      await h.call("GET", `/v1/credentials/${cred.id}`, { key: other.key }),
    ];
    for (const res of tries) {
      expect(res.statusCode, res.body).toBe(404);
      expect(res.body).not.toContain("rate_limits");
    }
    // Verifying the key from another company says nothing and counts nothing against it.
    for (let i = 0; i < 10; i++) {
      expect((await verify(k.key, other.key)).json().data).toMatchObject({
        code: "NOT_FOUND",
        rate_limit: null,
      });
    }
    toWindowStart(60);
    h.clock.advance(30);
    const own = (await verify(k.key)).json().data;
    expect(own.rate_limit).toMatchObject({ limit: 5, remaining: 4 });
    expect((await getKey(k.id, co.key)).json().data.rate_limits).toEqual([{ limit: 5, window: "1m" }]);
    expect(
      (await h.call("GET", `/v1/credentials/${cred.id}`, { key: co.key })).json().data.rate_limits,
    ).toEqual([{ limit: 9, window: "1m" }]);
  });
});

describe.each(BACKENDS)("sign-in limits on %s", (kind) => {
  let h: Harness;
  let node: Awaited<ReturnType<typeof buildApp>>;
  let stopNode: () => Promise<void>;
  let ownerEmail: string;
  let temporaryPassword: string;
  beforeAll(async () => {
    h = await createHarness(kind);
    // A second node on the same store and clock, configured with sign-in limits.
    const runtime = await createRuntime({
      store: h.store,
      secret: SECRET,
      catalog: h.catalog,
      keyPrefix: "lk",
      services: {
        clock: h.clock.read,
        loginLimits: [{ limit: 3, window: "1m" }],
        loginIpLimits: [{ limit: 4, window: "1m" }],
      },
    });
    node = await buildApp({
      services: runtime.services,
      trustedProxies: [],
      platformTokens: [ADMIN_TOKEN],
      logger: false,
    });
    stopNode = () => runtime.close();
    const res = await h.call("POST", "/v1/admin/companies", {
      headers: PLATFORM,
      json: {
        name: "Sign-in Company",
        owner_email: `owner-${Math.random().toString(36).slice(2)}@example.test`,
      },
    });
    ownerEmail = res.json().data.owner.email;
    temporaryPassword = res.json().data.owner.temporary_password;
  });
  afterAll(async () => {
    await node.close();
    await stopNode();
    await h.close();
  });

  const login = (email: string, password: string, ip: string) =>
    node.inject({
      method: "POST",
      url: "/v1/auth/login",
      payload: { email, password },
      remoteAddress: ip,
    });

  it("limits attempts at one account from any number of addresses, even with the right password", async () => {
    const start = h.clock.now.getTime();
    h.clock.advance((60_000 - (start % 60_000)) / 1000);
    for (let i = 0; i < 3; i++) {
      const res = await login(ownerEmail, "wrong-password-1", `198.51.100.${i + 1}`);
      expect(res.statusCode).toBe(401);
    }
    const refused = await login(ownerEmail.toUpperCase(), temporaryPassword, "198.51.100.50");
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error.code).toBe("RATE_LIMITED");
    expect(Number(refused.headers["retry-after"])).toBe(80);
    h.clock.advance(80);
    const ok = await login(ownerEmail, temporaryPassword, "198.51.100.51");
    expect(ok.statusCode, ok.body).toBe(200);
  });

  it("limits attempts from one address across any number of accounts", async () => {
    const start = h.clock.now.getTime();
    h.clock.advance((60_000 - (start % 60_000)) / 1000 + 30);
    for (let i = 0; i < 4; i++) {
      const res = await login(`nobody${i}@example.test`, "whatever-password", "203.0.113.9");
      expect(res.statusCode).toBe(401);
    }
    const refused = await login(ownerEmail, temporaryPassword, "203.0.113.9");
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error.code).toBe("RATE_LIMITED");
    const retryAfter = Number(refused.headers["retry-after"]);
    expect(retryAfter).toBe(45);
    // The account itself was not charged for the refused attempt: from another address it signs in.
    const elsewhere = await login(ownerEmail, temporaryPassword, "203.0.113.10");
    expect(elsewhere.statusCode, elsewhere.body).toBe(200);
    h.clock.advance(retryAfter - 1);
    expect((await login("nobody9@example.test", "whatever-password", "203.0.113.9")).statusCode).toBe(429);
    h.clock.advance(1);
    expect((await login("nobody9@example.test", "whatever-password", "203.0.113.9")).statusCode).toBe(401);
  });
});
