import { describe, expect, it } from "vitest";
import {
  checkCredits,
  checkMeta,
  currentBalance,
  MAX_META_BYTES,
  periodStart,
  spendCredits,
} from "../../src/core/credits.ts";

const at = (iso: string) => new Date(iso);

describe("credits: the rule", () => {
  it("starts periods at UTC midnight and on the first of the month, across a year's end", () => {
    expect(periodStart("day", at("2026-12-31T23:59:59.999Z")).toISOString()).toBe("2026-12-31T00:00:00.000Z");
    expect(periodStart("month", at("2026-12-31T23:59:59.999Z")).toISOString()).toBe(
      "2026-12-01T00:00:00.000Z",
    );
    expect(periodStart("month", at("2027-01-01T00:00:00.000Z")).toISOString()).toBe(
      "2027-01-01T00:00:00.000Z",
    );
    expect(periodStart("month", at("2028-02-29T12:00:00.000Z")).toISOString()).toBe(
      "2028-02-01T00:00:00.000Z",
    );
  });

  it("spends, refuses without spending, and tells the exhaustion once", () => {
    const now = at("2026-06-10T10:00:00Z");
    const state = { remaining: 3, refill: null, refilledAt: null };
    expect(spendCredits(state, 2, now)).toMatchObject({ allowed: true, remaining: 1, exhausted: false });
    expect(spendCredits(state, 3, now)).toMatchObject({ allowed: true, remaining: 0, exhausted: true });
    expect(spendCredits(state, 4, now)).toMatchObject({ allowed: false, remaining: 3, changed: false });
    expect(spendCredits({ ...state, remaining: 0 }, 0, now)).toMatchObject({
      allowed: false,
      exhausted: false,
    });
    expect(spendCredits({ ...state, remaining: 1 }, 0, now)).toMatchObject({ allowed: true, changed: false });
  });

  it("refills to the amount once per period, counted before spending", () => {
    const refill = { amount: 10, interval: "month" as const };
    const state = { remaining: 0, refill, refilledAt: at("2026-05-20T08:00:00Z") };
    expect(currentBalance(state, at("2026-05-31T23:59:59Z"))).toBe(0);
    const june = spendCredits(state, 4, at("2026-06-01T00:00:00Z"));
    expect(june).toMatchObject({ allowed: true, remaining: 6, changed: true });
    expect(june.refilledAt?.toISOString()).toBe("2026-06-01T00:00:00.000Z");
    // Later in June, from what was written: no second refill.
    const later = { ...state, remaining: june.remaining, refilledAt: june.refilledAt };
    expect(spendCredits(later, 1, at("2026-06-29T00:00:00Z"))).toMatchObject({ remaining: 5 });
    // Leftovers do not carry over: a new month sets the balance, it does not add.
    expect(currentBalance(later, at("2026-07-02T00:00:00Z"))).toBe(10);
  });

  it("refuses credits that cannot be stored or make no sense", () => {
    expect(checkCredits(null, { amount: 5, interval: "day" })).toMatchObject({ ok: false, field: "refill" });
    expect(checkCredits(-1, null)).toMatchObject({ ok: false, field: "remaining" });
    expect(checkCredits(5, { amount: 0, interval: "day" })).toMatchObject({
      ok: false,
      field: "refill.amount",
    });
    expect(checkCredits(0, null)).toEqual({ ok: true });
  });

  it("keeps meta small, shallow and storable", () => {
    expect(checkMeta({ a: { b: { c: 1 } } })).toEqual({ ok: true });
    expect(checkMeta({ a: { b: { c: {} } } }).ok).toBe(false);
    expect(checkMeta({ s: "x".repeat(MAX_META_BYTES - 8) })).toEqual({ ok: true });
    expect(checkMeta({ s: "x".repeat(MAX_META_BYTES - 7) }).ok).toBe(false);
    // Bytes, not characters: "é" is two.
    expect(checkMeta({ s: "é".repeat(510) }).ok).toBe(false);
    expect(checkMeta({ s: "\ud83d\ude00" })).toEqual({ ok: true });
    expect(checkMeta({ s: "\ud83d" }).ok).toBe(false);
    expect(checkMeta({ "\udc00": 1 }).ok).toBe(false);
    expect(checkMeta({ s: `a${String.fromCharCode(0)}` }).ok).toBe(false);
    expect(checkMeta([1]).ok).toBe(false);
    expect(checkMeta(null).ok).toBe(false);
  });
});
