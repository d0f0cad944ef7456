import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type LimitSubject,
  LocalRateLimiter,
  type RateLimiter,
  RedisRateLimiter,
} from "../../src/cluster/rate-limiter.ts";
import {
  type CompiledLimit,
  compileLimits,
  type LimitDecision,
  type RateLimit,
} from "../../src/core/rate-limit.ts";

/** CI has Redis here; these tests never stop it. */
const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
/** A port where nothing listens: Redis "down". */
const DEAD_REDIS_URL = "redis://127.0.0.1:6399";

/** The options cluster mode gives its counting client: fail fast rather than queue while Redis is away. */
const CLIENT_OPTIONS = {
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: 500,
  connectTimeout: 500,
  retryStrategy: (times: number) => Math.min(50 * times, 1000),
};

const DAY0 = Date.UTC(2026, 0, 15);

function limits(...list: RateLimit[]): CompiledLimit[] {
  const c = compileLimits(list);
  if (!c.ok) throw new Error(c.reason);
  return c.limits;
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const clients: Redis[] = [];
const prefixes: string[] = [];

async function connect(url = REDIS_URL): Promise<Redis> {
  const client = new Redis(url, CLIENT_OPTIONS);
  client.on("error", () => {});
  clients.push(client);
  if (url === REDIS_URL) await client.connect();
  return client;
}

/** A prefix of its own for each test, so parallel runs never share counters. */
function freshPrefix(): string {
  const prefix = `lktest:${randomBytes(6).toString("hex")}:`;
  prefixes.push(prefix);
  return prefix;
}

function redisLimiter(
  client: Redis,
  prefix: string,
  whenDown: "open" | "closed" = "closed",
  errors: unknown[] = [],
) {
  return new RedisRateLimiter(client, { prefix, whenDown, onError: (err) => errors.push(err) });
}

let admin: Redis;
beforeAll(async () => {
  admin = new Redis(REDIS_URL, { lazyConnect: true });
  await admin.connect();
});

afterEach(async () => {
  for (const prefix of prefixes.splice(0)) {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  }
});

afterAll(async () => {
  for (const client of clients) client.disconnect();
  await admin.quit();
});

const consume = async (limiter: RateLimiter, subjects: LimitSubject[], now: number) =>
  await limiter.consume(subjects, now);

describe("local and Redis counters", () => {
  it("give the same decision, headers included, for the same sequence of requests", async () => {
    const key: LimitSubject = {
      id: "key_A",
      limits: limits({ limit: 5, window: "1s" }, { limit: 40, window: "1m" }),
    };
    const other: LimitSubject = { id: "key_B", limits: limits({ limit: 3, window: "2s" }) };
    const credential: LimitSubject = {
      id: "cred_C",
      limits: limits({ limit: 7, window: "1s" }, { limit: 1000, window: "1d" }),
    };
    const local = new LocalRateLimiter();
    const redis = redisLimiter(await connect(), freshPrefix());
    const next = rng(1234);
    let now = DAY0 - 1500;
    const choices = [[key], [other], [credential], [key, credential], [other, credential]];
    let refused = 0;
    let allowed = 0;
    for (let i = 0; i < 400; i++) {
      // Mostly bursts within a window, sometimes a pause across one or several windows.
      const r = next();
      now +=
        r < 0.7
          ? Math.floor(next() * 60)
          : r < 0.95
            ? Math.floor(next() * 1500)
            : Math.floor(next() * 70_000);
      const subjects = choices[Math.floor(next() * choices.length)] as LimitSubject[];
      const a = await consume(local, subjects, now);
      const b = await consume(redis, subjects, now);
      expect(b, `request ${i} at +${now - DAY0} ms`).toEqual(a);
      if (a.allowed) allowed++;
      else refused++;
    }
    // The sequence really exercised both answers.
    expect(allowed).toBeGreaterThan(50);
    expect(refused).toBeGreaterThan(50);
  });

  it.each(["local", "redis"])(
    "%s: counts one window against the next exactly at the boundary",
    async (kind) => {
      const limiter =
        kind === "local" ? new LocalRateLimiter() : redisLimiter(await connect(), freshPrefix());
      const s: LimitSubject = { id: "key_edge", limits: limits({ limit: 10, window: "1m" }) };
      // Ten in the last second of a window.
      for (let i = 0; i < 10; i++) expect((await consume(limiter, [s], DAY0 - 1000 + i)).allowed).toBe(true);
      expect(await consume(limiter, [s], DAY0 - 1)).toMatchObject({
        allowed: false,
        remaining: 0,
        retryAfterSeconds: 7,
      });
      // The boundary: the previous window still weighs in fully.
      expect((await consume(limiter, [s], DAY0)).allowed).toBe(false);
      // One fits once a tenth of the window has passed, not a millisecond earlier.
      expect((await consume(limiter, [s], DAY0 + 5999)).allowed).toBe(false);
      expect(await consume(limiter, [s], DAY0 + 6000)).toMatchObject({ allowed: true, remaining: 0 });
      expect((await consume(limiter, [s], DAY0 + 6001)).allowed).toBe(false);
      // Half way, 5 of the old window remain; 1 is counted in this one: 4 more fit.
      let more = 0;
      for (let i = 0; i < 10; i++) if ((await consume(limiter, [s], DAY0 + 30_000)).allowed) more++;
      expect(more).toBe(4);
      // Two windows on, everything has slid out.
      let fresh = 0;
      for (let i = 0; i < 12; i++) if ((await consume(limiter, [s], DAY0 + 120_000)).allowed) fresh++;
      expect(fresh).toBe(10);
    },
  );
});

describe("local counters under a flood of callers", () => {
  it("dropping idle callers' counters never frees a caller still over its limit", async () => {
    const limiter = new LocalRateLimiter();
    const busy: LimitSubject = { id: "key_busy", limits: limits({ limit: 2, window: "1m" }) };
    const oneShot = limits({ limit: 5, window: "1s" });
    expect(limiter.consume([busy], DAY0).allowed).toBe(true);
    expect(limiter.consume([busy], DAY0).allowed).toBe(true);
    // Enough one-off callers to make the limiter sweep its counters several times over.
    for (let i = 0; i < 25_000; i++)
      limiter.consume([{ id: `key_flood_${i}`, limits: oneShot }], DAY0 + 5000 + i);
    expect(limiter.consume([busy], DAY0 + 40_000).allowed).toBe(false);
    // And a swept caller starts afresh only once its window has really passed.
    expect(limiter.consume([{ id: "key_flood_0", limits: oneShot }], DAY0 + 40_000).allowed).toBe(true);
  });
});

describe("two nodes sharing Redis", () => {
  it("together allow no more than the limit, however their requests interleave", async () => {
    const prefix = freshPrefix();
    const nodeA = redisLimiter(await connect(), prefix);
    const nodeB = redisLimiter(await connect(), prefix);
    const s: LimitSubject = { id: "key_shared", limits: limits({ limit: 50, window: "1m" }) };
    const now = DAY0 + 10_000;
    // What one node counts, the other sees.
    for (let i = 0; i < 10; i++) expect((await nodeA.consume([s], now)).allowed).toBe(true);
    expect(await nodeB.consume([s], now)).toMatchObject({ allowed: true, remaining: 39 });
    // Both at once: exactly the 39 left are allowed (counted per node, far more would be).
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? nodeA : nodeB).consume([s], now + (i % 7))),
    );
    expect(answers.filter((a) => a.allowed)).toHaveLength(39);
    // And neither sees room left afterwards.
    expect((await nodeA.consume([s], now + 10)).allowed).toBe(false);
    expect((await nodeB.consume([s], now + 10)).allowed).toBe(false);
  });

  it("a node with its own prefix (another deployment) does not share the count", async () => {
    const nodeA = redisLimiter(await connect(), freshPrefix());
    const nodeB = redisLimiter(await connect(), freshPrefix());
    const s: LimitSubject = { id: "key_same_id", limits: limits({ limit: 2, window: "1m" }) };
    for (const node of [nodeA, nodeB]) {
      expect((await node.consume([s], DAY0)).allowed).toBe(true);
      expect((await node.consume([s], DAY0)).allowed).toBe(true);
      expect((await node.consume([s], DAY0)).allowed).toBe(false);
    }
  });

  it("lets its counters expire: Redis holds nothing for a caller two windows after it went quiet", async () => {
    const prefix = freshPrefix();
    const client = await connect();
    const node = redisLimiter(client, prefix);
    await node.consume(
      [{ id: "key_ttl", limits: limits({ limit: 5, window: "1s" }, { limit: 5, window: "1h" }) }],
      Date.now(),
    );
    const keys = await admin.keys(`${prefix}*`);
    expect(keys).toHaveLength(2);
    for (const k of keys) {
      const ttl = await admin.pttl(k);
      const w = k.includes(":3600000:") ? 3_600_000 : 1000;
      expect(ttl, k).toBeGreaterThan(w);
      expect(ttl, k).toBeLessThanOrEqual(2 * w + 1000);
    }
  });
});

describe.each(["local", "redis"])("all or nothing across a key and its API user (%s)", (kind) => {
  const make = async (): Promise<RateLimiter> =>
    kind === "local" ? new LocalRateLimiter() : redisLimiter(await connect(), freshPrefix());

  it("a request refused by the API user's limit does not use the key's budget", async () => {
    const key: LimitSubject = { id: `key_${kind}_1`, limits: limits({ limit: 10, window: "1m" }) };
    const cred: LimitSubject = { id: `cred_${kind}_1`, limits: limits({ limit: 3, window: "1m" }) };
    const limiter = await make();
    const now = DAY0 + 1000;
    for (let i = 0; i < 3; i++) expect((await consume(limiter, [key, cred], now)).allowed).toBe(true);
    for (let i = 0; i < 5; i++) {
      expect(await consume(limiter, [key, cred], now)).toMatchObject({
        allowed: false,
        limit: 3,
        remaining: 0,
      });
    }
    // The key alone: 3 counted, so this one leaves 6 — the five refusals took nothing.
    expect(await consume(limiter, [key], now)).toMatchObject({ allowed: true, limit: 10, remaining: 6 });
  });

  it("a request refused by the key's limit does not use the API user's budget (shared by its other keys)", async () => {
    const key: LimitSubject = { id: `key_${kind}_2`, limits: limits({ limit: 2, window: "1m" }) };
    const sibling: LimitSubject = { id: `key_${kind}_3`, limits: [] };
    const cred: LimitSubject = { id: `cred_${kind}_2`, limits: limits({ limit: 5, window: "1m" }) };
    const limiter = await make();
    const now = DAY0 + 2000;
    expect((await consume(limiter, [key, cred], now)).allowed).toBe(true);
    expect((await consume(limiter, [key, cred], now)).allowed).toBe(true);
    for (let i = 0; i < 10; i++) {
      expect(await consume(limiter, [key, cred], now)).toMatchObject({ allowed: false, limit: 2 });
    }
    // The API user's other key still has the 3 the first key did not get to use.
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push((await consume(limiter, [sibling, cred], now)).allowed);
    expect(answers).toEqual([true, true, true, false]);
  });

  it("a refused caller does not dig itself deeper: refusals are not counted into the next window", async () => {
    const limiter = await make();
    const s: LimitSubject = { id: `key_${kind}_4`, limits: limits({ limit: 2, window: "1s" }) };
    expect((await consume(limiter, [s], DAY0 + 100)).allowed).toBe(true);
    expect((await consume(limiter, [s], DAY0 + 100)).allowed).toBe(true);
    for (let i = 0; i < 50; i++) expect((await consume(limiter, [s], DAY0 + 200 + i)).allowed).toBe(false);
    // Half way through the next window only half of the 2 allowed ones still count.
    expect((await consume(limiter, [s], DAY0 + 1500)).allowed).toBe(true);
  });
});

describe.each(["local", "redis"])("reset (%s)", (kind) => {
  const make = async (): Promise<RateLimiter> =>
    kind === "local" ? new LocalRateLimiter() : redisLimiter(await connect(), freshPrefix());

  it("forgets what a subject used, in this window and the one before, and nothing of anyone else's", async () => {
    const limiter = await make();
    const person: LimitSubject = { id: `step-up:${kind}_1`, limits: limits({ limit: 3, window: "1m" }) };
    const other: LimitSubject = { id: `step-up:${kind}_2`, limits: limits({ limit: 3, window: "1m" }) };
    // Two counted late in one window, one early in the next: the sliding estimate still holds about 2.9.
    for (const s of [person, other]) {
      expect((await consume(limiter, [s], DAY0 + 59_000)).allowed).toBe(true);
      expect((await consume(limiter, [s], DAY0 + 59_500)).allowed).toBe(true);
      expect((await consume(limiter, [s], DAY0 + 60_500)).allowed).toBe(true);
      expect((await consume(limiter, [s], DAY0 + 60_600)).allowed).toBe(false);
    }
    await limiter.reset([person], DAY0 + 60_700);
    const after = [];
    for (let i = 0; i < 4; i++) after.push((await consume(limiter, [person], DAY0 + 60_800)).allowed);
    expect(after).toEqual([true, true, true, false]);
    expect((await consume(limiter, [other], DAY0 + 60_800)).allowed).toBe(false);
  });
});

describe("when Redis cannot be reached", () => {
  const key: LimitSubject = { id: "key_down", limits: limits({ limit: 3, window: "1m" }) };

  it('"open" falls back to this node\'s own counters, which still enforce the limit', async () => {
    const errors: unknown[] = [];
    const limiter = redisLimiter(await connect(DEAD_REDIS_URL), freshPrefix(), "open", errors);
    const started = Date.now();
    const answers: LimitDecision[] = [];
    for (let i = 0; i < 5; i++) answers.push(await limiter.consume([key], DAY0 + 1000));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(answers.map((a) => a.allowed)).toEqual([true, true, true, false, false]);
    expect(answers[0]).toMatchObject({ limit: 3, remaining: 2 });
    expect(answers[3]).toMatchObject({ limit: 3, remaining: 0, retryAfterSeconds: 79 });
    expect(errors.length).toBe(5);
  });

  it('"closed" refuses every request, with a Retry-After, and says so', async () => {
    const errors: unknown[] = [];
    const limiter = redisLimiter(await connect(DEAD_REDIS_URL), freshPrefix(), "closed", errors);
    const started = Date.now();
    for (let i = 0; i < 3; i++) {
      const d = await limiter.consume([key], DAY0 + 1000);
      expect(d).toMatchObject({ allowed: false, limit: 3, remaining: 0 });
      expect(d.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    }
    expect(Date.now() - started).toBeLessThan(2000);
    expect(errors.length).toBe(3);
  });

  it("reset answers at once and clears this node's own counters, used while Redis was away", async () => {
    const errors: unknown[] = [];
    const limiter = redisLimiter(await connect(DEAD_REDIS_URL), freshPrefix(), "open", errors);
    const s: LimitSubject = { id: "step-up:down", limits: limits({ limit: 2, window: "1m" }) };
    for (let i = 0; i < 2; i++) expect((await limiter.consume([s], DAY0 + 1000)).allowed).toBe(true);
    expect((await limiter.consume([s], DAY0 + 1000)).allowed).toBe(false);
    const started = Date.now();
    await limiter.reset([s], DAY0 + 1000);
    expect(Date.now() - started).toBeLessThan(2000);
    expect((await limiter.consume([s], DAY0 + 1000)).allowed).toBe(true);
    expect(errors.length).toBe(5);
  });
});
