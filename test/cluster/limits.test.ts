import { randomBytes } from "node:crypto";
import { verify } from "@node-rs/argon2";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { totpCode } from "../../src/core/totp.ts";
import type { Running } from "../../src/server.ts";
import { createTestSchema } from "../helpers/backends.ts";
import { ADMIN_TOKEN } from "../helpers/harness.ts";
import { startNode } from "../helpers/nodes.ts";
import { type Answer, burst, tally } from "../people/limit-helpers.ts";
import { GOOD_PASSWORD, wrongCode } from "../people/people-helpers.ts";
import { DisposableRedis } from "./disposable-redis.ts";

/**
 * The security counters across a cluster: two full nodes on one PostgreSQL schema and the shared Redis
 * (under a prefix of this run's own). Step-up codes are counted in Redis, sign-in failures in
 * PostgreSQL; either way a burst spread over both nodes gets no more checks than one node would give.
 */

// Every argon2 verification is counted: a password checked is a guess an attacker got.
vi.mock("@node-rs/argon2", async (importOriginal) => {
  const real = await importOriginal<typeof import("@node-rs/argon2")>();
  return { ...real, verify: vi.fn(real.verify) };
});
const passwordChecks = () => vi.mocked(verify).mock.calls.length;

/** Only the lockout and the step-up count are under test here. */
const LIMITS_ENV = { LATCHKEY_LOGIN_RATE_LIMIT: "off", LATCHKEY_LOGIN_IP_RATE_LIMIT: "off" };

interface Session {
  cookie: string;
  csrf: string;
}

async function call(
  node: Running,
  method: string,
  path: string,
  opts: { json?: unknown; session?: Session; code?: string; admin?: boolean } = {},
) {
  const headers: Record<string, string> = {};
  if (opts.admin) headers.authorization = `Bearer ${ADMIN_TOKEN}`;
  if (opts.session) {
    headers.cookie = opts.session.cookie;
    headers["x-csrf-token"] = opts.session.csrf;
  }
  if (opts.code !== undefined) headers["x-totp-code"] = opts.code;
  if (opts.json !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${node.url}${path}`, {
    method,
    headers,
    ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : {}),
  });
  const body = (await res.json()) as {
    // biome-ignore lint/suspicious/noExplicitAny: JSON from the server, checked by each test
    data: any;
    error?: { code: string; details?: { retry_after?: number } };
  };
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(";")[0] as string)
    .find((c) => c.startsWith("lk_session=") && c !== "lk_session=");
  const answer: Answer = {
    status: res.status,
    code: body.error?.code ?? "OK",
    retryAfter: body.error?.details?.retry_after ?? null,
  };
  return { ...answer, data: body.data, cookie };
}

/** A company made on `first` and its owner signed in on `second`, with a new password and 2FA enrolled. */
async function enrolledOwner(first: Running, second: Running) {
  const email = `owner-${randomBytes(4).toString("hex")}@example.test`;
  const company = await call(first, "POST", "/v1/admin/companies", {
    admin: true,
    json: { name: `Cluster limits ${randomBytes(3).toString("hex")}`, owner_email: email },
  });
  expect(company.status).toBe(201);
  const temporary = company.data.owner.temporary_password;
  const signedIn = await call(second, "POST", "/v1/auth/login", { json: { email, password: temporary } });
  expect(signedIn.status).toBe(200);
  let s: Session = { cookie: signedIn.cookie as string, csrf: signedIn.data.csrf_token };
  const changed = await call(second, "POST", "/v1/auth/password", {
    session: s,
    json: { current_password: temporary, new_password: GOOD_PASSWORD },
  });
  expect(changed.status).toBe(200);
  s = { cookie: changed.cookie as string, csrf: changed.data.csrf_token };
  const setup = await call(second, "POST", "/v1/auth/totp/setup", { session: s });
  expect(setup.status).toBe(200);
  const secret: string = setup.data.secret;
  const confirmed = await call(second, "POST", "/v1/auth/totp/confirm", {
    session: s,
    json: { code: totpCode(secret, new Date()) },
  });
  expect(confirmed.status).toBe(200);
  return {
    email,
    secret,
    recoveryCodes: confirmed.data.recovery_codes as string[],
    session: { cookie: confirmed.cookie as string, csrf: confirmed.data.csrf_token } as Session,
    testCredentialId: company.data.default_test_credential.id as string,
  };
}

/** Asks `node` to create a test key as the owner, with `code` for the step-up. */
function createKey(node: Running, owner: Awaited<ReturnType<typeof enrolledOwner>>, code: string) {
  return call(node, "POST", "/v1/keys", {
    session: owner.session,
    code,
    json: { name: "guarded", environment: "test", credential_id: owner.testCredentialId },
  });
}

describe("two nodes share the step-up count and the sign-in lockout", () => {
  let db: Awaited<ReturnType<typeof createTestSchema>>;
  let a: Running;
  let b: Running;
  let owner: Awaited<ReturnType<typeof enrolledOwner>>;
  const prefix = `lk-test-${randomBytes(4).toString("hex")}:`;

  beforeAll(async () => {
    db = await createTestSchema();
    a = await startNode({ databaseUrl: db.url, prefix, env: LIMITS_ENV });
    b = await startNode({ databaseUrl: db.url, prefix, env: LIMITS_ENV });
    owner = await enrolledOwner(a, b);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await db?.drop();
  });

  it("100 wrong step-up codes spread over both nodes get ten checks in all; then both refuse everyone, a right code too", async () => {
    const spies = [a, b].map((node) => vi.spyOn(node.services.people.secondFactor, "use"));
    const wrong = wrongCode(owner.secret, new Date());
    const [recovery] = owner.recoveryCodes as [string];
    const { results, inside } = await burst(
      100,
      (i) => createKey(i % 2 === 0 ? a : b, owner, wrong),
      () => createKey(a, owner, recovery),
      (r) => r.status,
    );
    const checks = spies.reduce((n, spy) => n + spy.mock.calls.length, 0);
    for (const spy of spies) spy.mockRestore();

    expect(checks).toBe(10);
    expect(tally(results)).toEqual({ "403 TOTP_INVALID": 10, "429 RATE_LIMITED": 90 });
    expect(inside).toMatchObject({ status: 429, code: "RATE_LIMITED" });
    expect(inside.retryAfter).toBeGreaterThan(0);
    // The other node refuses the right code as well: the count is one for the cluster.
    const other = await createKey(b, owner, recovery);
    expect(other).toMatchObject({ status: 429, code: "RATE_LIMITED" });
    const keys = await call(a, "GET", "/v1/keys?environment=test", { session: owner.session });
    expect(keys.status).toBe(200);
    expect(keys.data.keys.filter((k: { name: string }) => k.name === "guarded")).toEqual([]);
  });

  it("60 concurrent wrong passwords for one email over both nodes get five checks in all; the right one inside the burst is locked out", async () => {
    const before = passwordChecks();
    const { results, inside } = await burst(
      60,
      (i) =>
        call(i % 2 === 0 ? a : b, "POST", "/v1/auth/login", {
          json: { email: owner.email, password: `Wrong-${i}-x` },
        }),
      () =>
        call(b, "POST", "/v1/auth/login", {
          json: { email: owner.email, password: GOOD_PASSWORD, totp_code: owner.recoveryCodes[1] },
        }),
      (r) => r.status,
    );
    expect(passwordChecks() - before).toBe(5);
    expect(tally(results)).toEqual({ "401 INVALID_LOGIN": 5, "429 LOGIN_LOCKED": 55 });
    expect(inside).toMatchObject({ status: 429, code: "LOGIN_LOCKED" });
    // The first lock is 30 s, counted from the fifth failure a moment ago.
    expect(inside.retryAfter).toBeGreaterThan(0);
    expect(inside.retryAfter).toBeLessThanOrEqual(30);
  });
});

describe("the step-up count while Redis is away", () => {
  const redis = new DisposableRedis(18_000 + Math.floor(Math.random() * 2000));
  let db: Awaited<ReturnType<typeof createTestSchema>>;
  let open: Running;
  let closed: Running;
  let owner: Awaited<ReturnType<typeof enrolledOwner>>;

  beforeAll(async () => {
    await redis.start();
    db = await createTestSchema();
    open = await startNode({ databaseUrl: db.url, prefix: "lk:", redisUrl: redis.url, env: LIMITS_ENV });
    closed = await startNode({
      databaseUrl: db.url,
      prefix: "lk:",
      redisUrl: redis.url,
      env: { ...LIMITS_ENV, LATCHKEY_RATE_LIMIT_WHEN_REDIS_DOWN: "closed" },
    });
    owner = await enrolledOwner(open, closed);
  });
  afterAll(async () => {
    await Promise.all([open?.stop(), closed?.stop()]);
    await redis.stop();
    await db?.drop();
  });

  const healthy = async (node: Running) =>
    ((await (await fetch(`${node.url}/healthz`)).json()) as { status: string }).status === "ok";
  async function until(check: () => Promise<boolean>, withinMs: number) {
    const started = Date.now();
    while (!(await check())) {
      if (Date.now() - started > withinMs) throw new Error(`not within ${withinMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('"closed" refuses every code, a right one too, with a short wait; "open" still allows ten guesses a node; both count in Redis again when it is back', async () => {
    await redis.stop();
    await until(async () => !(await healthy(closed)) && !(await healthy(open)), 5000);
    const [first, second] = owner.recoveryCodes as [string, string];

    const refused = await createKey(closed, owner, first);
    expect(refused).toMatchObject({ status: 429, code: "RATE_LIMITED", retryAfter: 1 });

    const wrong = wrongCode(owner.secret, new Date());
    const guesses = await Promise.all(Array.from({ length: 30 }, () => createKey(open, owner, wrong)));
    expect(tally(guesses)).toEqual({ "403 TOTP_INVALID": 10, "429 RATE_LIMITED": 20 });

    await redis.start();
    for (const node of [open, closed]) await until(() => healthy(node), 5000);
    // A refused code was never checked, so it is still good; the counting client may reconnect a
    // moment after the bus does, so ask until the refusals stop.
    let ok = await createKey(closed, owner, first);
    await until(async () => {
      if (ok.status === 429) ok = await createKey(closed, owner, first);
      return ok.status !== 429;
    }, 5000);
    expect(ok.status).toBe(201);
    // Redis came back empty, so the count starts afresh there: a right code goes through on "open" too.
    expect((await createKey(open, owner, second)).status).toBe(201);
  });
});
