import { describe, expect, it } from "vitest";
import {
  type CompiledLimit,
  compileLimits,
  compileStored,
  decideLimits,
  estimate,
  fits,
  MAX_LIMIT,
  MAX_LIMITS,
  parseLimitList,
  type WindowCounts,
  waitMs,
  windowMs,
} from "../../src/core/rate-limit.ts";

const compile = (limit: number, window: string): CompiledLimit => {
  const c = compileLimits([{ limit, window }]);
  if (!c.ok) throw new Error(c.reason);
  return c.limits[0] as CompiledLimit;
};

/** A moment well away from the epoch, aligned to every window up to a day. */
const DAY0 = Date.UTC(2026, 0, 15);

/** The counts a window shows at `later` when nothing was counted since `now` (the counters roll over). */
function rolled(counts: WindowCounts, now: number, later: number, w: number): WindowCounts {
  const shift = Math.floor(later / w) - Math.floor(now / w);
  if (shift === 0) return counts;
  if (shift === 1) return { prev: counts.curr, curr: 0 };
  return { prev: 0, curr: 0 };
}

/** A small deterministic generator, so a failing case can be reproduced. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("window durations", () => {
  it("reads seconds, minutes, hours and days up to one day", () => {
    expect(windowMs("1s")).toBe(1000);
    expect(windowMs("30s")).toBe(30_000);
    expect(windowMs("1m")).toBe(60_000);
    expect(windowMs("15m")).toBe(900_000);
    expect(windowMs("1h")).toBe(3_600_000);
    expect(windowMs("24h")).toBe(86_400_000);
    expect(windowMs("1440m")).toBe(86_400_000);
    expect(windowMs("86400s")).toBe(86_400_000);
    expect(windowMs("1d")).toBe(86_400_000);
  });

  it.each([
    "",
    "s",
    "1",
    "0s",
    "00s",
    "01s",
    "-1s",
    "1.5s",
    "1 s",
    " 1s",
    "1s ",
    "1S",
    "1ms",
    "1w",
    "1y",
    "2d",
    "25h",
    "1441m",
    "86401s",
    "99999s",
    "100000s",
    "1e3s",
  ])("refuses %j", (w) => {
    expect(windowMs(w)).toBeNull();
  });
});

describe("compiling limits", () => {
  it("accepts up to the maximum number of limits and the largest limit", () => {
    const limits = [
      { limit: 1, window: "1s" },
      { limit: 100, window: "1m" },
      { limit: 1000, window: "1h" },
      { limit: 10_000, window: "12h" },
      { limit: MAX_LIMIT, window: "1d" },
    ];
    expect(limits).toHaveLength(MAX_LIMITS);
    const c = compileLimits(limits);
    expect(c).toEqual({
      ok: true,
      limits: limits.map((l) => ({ ...l, windowMs: windowMs(l.window) })),
    });
    expect(compileLimits([])).toEqual({ ok: true, limits: [] });
  });

  it("refuses too many limits", () => {
    const six = ["1s", "2s", "3s", "4s", "5s", "6s"].map((window) => ({ limit: 10, window }));
    const c = compileLimits(six);
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.reason).toContain(`${MAX_LIMITS}`);
  });

  it.each([0, -1, -100, 1.5, 0.5, MAX_LIMIT + 1, 1e20, Number.NaN, Number.POSITIVE_INFINITY])(
    "refuses the limit %s",
    (limit) => {
      const c = compileLimits([{ limit, window: "1m" }]);
      expect(c.ok).toBe(false);
      if (!c.ok) expect(c.reason).toMatch(/limit/);
    },
  );

  it("refuses a window longer than a day or not written as a duration", () => {
    for (const window of ["2d", "25h", "1w", "0s", "1 m", ""]) {
      const c = compileLimits([{ limit: 5, window }]);
      expect(c.ok, window).toBe(false);
      if (!c.ok) expect(c.reason).toContain("window");
    }
  });

  it("refuses two limits on the same window however it is written", () => {
    expect(
      compileLimits([
        { limit: 5, window: "1m" },
        { limit: 10, window: "60s" },
      ]).ok,
    ).toBe(false);
    expect(
      compileLimits([
        { limit: 5, window: "1d" },
        { limit: 10, window: "24h" },
      ]).ok,
    ).toBe(false);
    expect(
      compileLimits([
        { limit: 5, window: "1m" },
        { limit: 10, window: "61s" },
      ]).ok,
    ).toBe(true);
  });

  it("reads back stored limits, and nothing from an absent or (somehow) invalid list", () => {
    expect(compileStored(null)).toEqual([]);
    expect(compileStored(undefined)).toEqual([]);
    expect(compileStored([])).toEqual([]);
    expect(compileStored([{ limit: 0, window: "1s" }])).toEqual([]);
    expect(compileStored([{ limit: 3, window: "1h" }])).toEqual([
      { limit: 3, window: "1h", windowMs: 3_600_000 },
    ]);
  });
});

describe("the sliding window", () => {
  const perMinute = compile(10, "1m");
  const W = 60_000;

  it("is aligned to the epoch: a window starts at every whole minute (UTC)", () => {
    // Mid-window the previous window weighs by what is left of the current one.
    expect(estimate({ prev: 10, curr: 0 }, DAY0 + W / 2, W)).toBe(5);
    expect(estimate({ prev: 10, curr: 0 }, DAY0 + W / 4, W)).toBe(7.5);
    expect(estimate({ prev: 8, curr: 3 }, DAY0 + (3 * W) / 4, W)).toBe(5);
  });

  it("exactly at the boundary the whole previous window counts; its share shrinks from there", () => {
    const full = { prev: 10, curr: 0 };
    expect(estimate(full, DAY0, W)).toBe(10);
    expect(fits(full, DAY0, perMinute)).toBe(false);
    expect(fits(full, DAY0 + 1, perMinute)).toBe(false);
    // One request fits once a tenth of the window has passed: 10 × 0.9 + 1 = 10.
    expect(fits(full, DAY0 + W / 10 - 1, perMinute)).toBe(false);
    expect(fits(full, DAY0 + W / 10, perMinute)).toBe(true);
  });

  it("just before the boundary the current window is still full", () => {
    // The last millisecond of a window in which 10 were counted.
    expect(fits({ prev: 0, curr: 10 }, DAY0 - 1, perMinute)).toBe(false);
    expect(fits({ prev: 0, curr: 9 }, DAY0 - 1, perMinute)).toBe(true);
  });

  it("allows no burst of twice the limit across a boundary (unlike a fixed window)", () => {
    // 10 at the end of one window: in the first half of the next, at most 5 more.
    let counts: WindowCounts = { prev: 10, curr: 0 };
    let allowed = 0;
    for (let t = DAY0; t <= DAY0 + W / 2; t += 100) {
      if (fits(counts, t, perMinute)) {
        counts = { ...counts, curr: counts.curr + 1 };
        allowed++;
      }
    }
    expect(allowed).toBe(5);
  });
});

describe("how long to wait", () => {
  const W = 60_000;

  it("gives the moment the previous window's share has shrunk enough", () => {
    const l = compile(10, "1m");
    // prev 10, curr 0 at the boundary: a tenth of the window (6 s) must pass.
    expect(waitMs({ prev: 10, curr: 0 }, DAY0, l)).toBe(6000);
    expect(waitMs({ prev: 10, curr: 0 }, DAY0 + 1000, l)).toBe(5000);
    // prev 10, curr 5 at the boundary: 10 × (1 − x) + 5 ≤ 9 needs x ≥ 0.6.
    expect(waitMs({ prev: 10, curr: 5 }, DAY0, l)).toBe(36_000);
    expect(waitMs({ prev: 10, curr: 5 }, DAY0 + 36_000, l)).toBe(0);
  });

  it("waits into the next window when this one is full", () => {
    const l = compile(10, "1m");
    // curr 10 at the start of a window: next window, then prev = 10 must shrink by a tenth.
    expect(waitMs({ prev: 0, curr: 10 }, DAY0, l)).toBe(W + 6000);
    expect(waitMs({ prev: 0, curr: 10 }, DAY0 + 30_000, l)).toBe(30_000 + 6000);
    // A limit of one: the one request must slide all the way out, two windows from its start.
    const one = compile(1, "1s");
    expect(waitMs({ prev: 0, curr: 1 }, DAY0 + 250, one)).toBe(1750);
  });

  it("is exact for any counts: refused one millisecond before, allowed at the moment it gives", () => {
    const next = rng(42);
    const windows = ["1s", "7s", "1m", "90s", "1h", "1d"];
    let checked = 0;
    for (let i = 0; i < 5000; i++) {
      const l = compile(1 + Math.floor(next() * 50), windows[i % windows.length] as string);
      const counts = {
        prev: Math.floor(next() * l.limit * 1.5),
        curr: Math.floor(next() * l.limit * 1.2),
      };
      const now = DAY0 + Math.floor(next() * l.windowMs * 3);
      if (fits(counts, now, l)) {
        expect(waitMs(counts, now, l)).toBe(0);
        continue;
      }
      const wait = waitMs(counts, now, l);
      expect(wait).toBeGreaterThan(0);
      const at = now + wait;
      const ctx = `${JSON.stringify(counts)} at +${now - DAY0} limit ${l.limit}/${l.window}: wait ${wait}`;
      expect(fits(rolled(counts, now, at, l.windowMs), at, l), ctx).toBe(true);
      expect(fits(rolled(counts, now, at - 1, l.windowMs), at - 1, l), ctx).toBe(false);
      checked++;
    }
    expect(checked).toBeGreaterThan(1000);
  });
});

describe("the decision and its headers", () => {
  it("when allowed: what is left after this request and when the window resets", () => {
    const l = compile(10, "1m");
    const d = decideLimits([l], [{ prev: 0, curr: 3 }], DAY0 + 15_000, true);
    expect(d).toEqual({
      allowed: true,
      limit: 10,
      window: "1m",
      remaining: 6,
      resetSeconds: 45,
      retryAfterSeconds: 0,
    });
    // The previous window's share counts too, rounded so that `remaining` more are really allowed.
    expect(decideLimits([l], [{ prev: 5, curr: 0 }], DAY0 + 30_000, true).remaining).toBe(6);
    expect(decideLimits([l], [{ prev: 5, curr: 0 }], DAY0 + 30_001, true).remaining).toBe(6);
    expect(decideLimits([l], [{ prev: 5, curr: 0 }], DAY0 + 29_999, true).remaining).toBe(6);
    expect(decideLimits([l], [{ prev: 6, curr: 0 }], DAY0 + 29_999, true).remaining).toBe(5);
    expect(decideLimits([l], [{ prev: 9, curr: 0 }], DAY0, true).remaining).toBe(0);
  });

  it("reset is at least one second and rounds up partial seconds", () => {
    const l = compile(10, "1m");
    expect(decideLimits([l], [{ prev: 0, curr: 0 }], DAY0, true).resetSeconds).toBe(60);
    expect(decideLimits([l], [{ prev: 0, curr: 0 }], DAY0 + 59_999, true).resetSeconds).toBe(1);
    expect(decideLimits([l], [{ prev: 0, curr: 0 }], DAY0 + 58_500, true).resetSeconds).toBe(2);
    const daily = compile(1000, "1d");
    expect(decideLimits([daily], [{ prev: 0, curr: 0 }], DAY0 + 3_600_000, true).resetSeconds).toBe(
      23 * 3600,
    );
  });

  it("describes the tightest limit: the fewest left when allowed", () => {
    const perSecond = compile(5, "1s");
    const perDay = compile(100, "1d");
    const d = decideLimits(
      [perSecond, perDay],
      [
        { prev: 0, curr: 0 },
        { prev: 0, curr: 97 },
      ],
      DAY0 + 500,
      true,
    );
    expect(d).toMatchObject({ allowed: true, limit: 100, window: "1d", remaining: 2 });
    const e = decideLimits(
      [perSecond, perDay],
      [
        { prev: 0, curr: 3 },
        { prev: 0, curr: 10 },
      ],
      DAY0 + 500,
      true,
    );
    expect(e).toMatchObject({ limit: 5, window: "1s", remaining: 1 });
  });

  it("when refused: the longest wait among the limits, as Retry-After in whole seconds rounded up", () => {
    const perSecond = compile(5, "1s");
    const perMinute = compile(20, "1m");
    // Both full; the per-minute one frees first at 60 s + 3 s, the per-second one at 1.2 s.
    const d = decideLimits(
      [perSecond, perMinute],
      [
        { prev: 0, curr: 5 },
        { prev: 0, curr: 20 },
      ],
      DAY0,
      false,
    );
    expect(d).toMatchObject({ allowed: false, limit: 20, window: "1m", remaining: 0, retryAfterSeconds: 63 });
    // Only the per-second one is full: it decides, even though the other has less room left in total.
    const e = decideLimits(
      [perSecond, perMinute],
      [
        { prev: 0, curr: 5 },
        { prev: 0, curr: 6 },
      ],
      DAY0 + 100,
      false,
    );
    expect(e).toMatchObject({ limit: 5, window: "1s", remaining: 0, retryAfterSeconds: 2 });
  });

  it("Retry-After is never early: waiting that many seconds always lets one more through", () => {
    const next = rng(7);
    for (let i = 0; i < 2000; i++) {
      const l = compile(1 + Math.floor(next() * 20), i % 2 ? "1s" : "10s");
      const counts = { prev: Math.floor(next() * 30), curr: Math.floor(next() * 25) };
      const now = DAY0 + Math.floor(next() * 30_000);
      if (fits(counts, now, l)) continue;
      const d = decideLimits([l], [counts], now, false);
      const at = now + d.retryAfterSeconds * 1000;
      expect(fits(rolled(counts, now, at, l.windowMs), at, l)).toBe(true);
      // And not a whole second too late.
      const before = at - 1000;
      expect(fits(rolled(counts, now, before, l.windowMs), before, l)).toBe(false);
    }
  });
});

describe("the configuration form", () => {
  it("reads comma-separated limit/window pairs", () => {
    expect(parseLimitList("100/1s,100000/1d")).toEqual([
      { limit: 100, window: "1s" },
      { limit: 100_000, window: "1d" },
    ]);
    expect(parseLimitList(" 10/1m , 100/1h ,")).toEqual([
      { limit: 10, window: "1m" },
      { limit: 100, window: "1h" },
    ]);
    expect(parseLimitList("")).toEqual([]);
  });

  it.each([
    "10",
    "10/",
    "/1m",
    "10 / 1m",
    "10/1 m",
    "ten/1m",
    "1e3/1m",
    "-1/1m",
    "0/1m",
    "10/0s",
    "10/2d",
    "10/1w",
    "10/1m;20/1h",
    "10/1m,20/60s",
    "99999999999999999999/1s",
    "1/1s,1/2s,1/3s,1/4s,1/5s,1/6s",
    "off",
  ])("refuses %j", (text) => {
    expect(parseLimitList(text)).toBeNull();
  });
});
