import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CreditState, periodStart, type Refill, spendCredits } from "../../src/core/credits.ts";
import { newId } from "../../src/core/ids.ts";
import { creditState } from "../../src/services/views.ts";
import { keyCredits } from "../../src/store/repositories.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { createHarness, type Harness } from "../helpers/harness.ts";

/**
 * The store spends credits in one SQL statement (keyCredits.spend), the twin of `spendCredits` in
 * core: the same sequence of spends, refills and clock moves must give the same answers and balances.
 */

/** A small deterministic generator, so a failure can be replayed. */
function generator(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe.each(BACKENDS)("credits in the store match the rule in core on %s", (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness(kind);
  });
  afterAll(() => h.close());

  const cases: [string, number, Refill | null][] = [
    ["no refill", 7, null],
    ["daily refill", 3, { amount: 4, interval: "day" }],
    ["monthly refill", 0, { amount: 5, interval: "month" }],
  ];

  it.each(cases)("%s", async (_name, start, refill) => {
    const co = await h.createCompany();
    const key = await h.createKey(co, {});
    const random = generator(start * 31 + (refill?.amount ?? 0));
    let now = new Date("2026-01-30T20:00:00.000Z");
    let model: CreditState = { remaining: start, refill, refilledAt: now };
    await keyCredits.put(h.store.db, {
      family_id: key.id,
      remaining: start,
      refill_amount: refill?.amount ?? null,
      refill_interval: refill?.interval ?? null,
      refilled_at: now,
      updated_at: now,
    });
    let exhaustions = 0;
    for (let step = 0; step < 120; step++) {
      // Mostly small moves, sometimes across a day or a month boundary.
      const r = random();
      now = new Date(now.getTime() + (r < 0.8 ? r * 4 * 3600_000 : r * 12 * 86_400_000));
      const cost = Math.floor(random() * 4);
      const expected = spendCredits(model, cost, now);
      const got = await keyCredits.spend(h.store.db, {
        familyId: key.id,
        cost,
        now,
        dayStart: periodStart("day", now),
        monthStart: periodStart("month", now),
        exhausted: {
          id: newId("msg", now),
          companyId: co.id,
          environment: "live",
          data: {},
        },
      });
      expect(got !== null, `step ${step}: allowed`).toBe(expected.allowed);
      if (expected.allowed) {
        model = { ...model, remaining: expected.remaining, refilledAt: expected.refilledAt };
        expect(got?.remaining, `step ${step}: remaining`).toBe(expected.remaining);
        expect(got?.exhausted, `step ${step}: exhausted`).toBe(expected.exhausted);
        if (expected.exhausted) exhaustions++;
      }
      // A refused spend writes nothing; the rule's refill is then made by the next allowed one, so
      // compare the balance a reader would see.
      const row = await keyCredits.get(h.store.db, key.id);
      const stored = spendCredits(creditState(row as NonNullable<typeof row>), 0, now).remaining;
      expect(stored, `step ${step}: balance`).toBe(spendCredits(model, 0, now).remaining);
    }
    const events = await h.store.db
      .selectFrom("events")
      .select("data")
      .where("company_id", "=", co.id)
      .where("type", "=", "key.usage_exhausted")
      .execute();
    expect(events).toHaveLength(exhaustions);
    for (const e of events) expect(e.data).toMatchObject({ refill });
    if (refill !== null) expect(exhaustions).toBeGreaterThan(0);
  });
});
