import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { totpCode } from "../../src/core/totp.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { createHarness, type Harness } from "../helpers/harness.ts";
import { answerOf, burst, tally } from "./limit-helpers.ts";
import {
  asPerson,
  invite,
  type NewCompany,
  newCompany,
  onboardOwner,
  type Person,
  relogin,
  wrongCode,
} from "./people-helpers.ts";

describe.each(BACKENDS)("people: step-up codes are limited atomically on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let owner: Person;
  let moderator: Person;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h, "Guessing Co");
    owner = await onboardOwner(h, co);
    moderator = await invite(h, owner, "moderator");
  });
  afterAll(() => h.close());

  const createKey = (p: Person, code: string) =>
    asPerson(h, p.session, "POST", "/v1/keys", {
      code,
      json: { name: "guarded", environment: "test", credential_id: co.testCredentialId },
    });
  const keyCount = async () => (await h.call("GET", "/v1/keys", { key: co.key })).json().data.keys.length;
  /** Counts the codes actually checked (each wrong one costs the person one of their ten). */
  const checks = () => {
    const spy = vi.spyOn(h.services.people.secondFactor, "use");
    return {
      get count() {
        return spy.mock.calls.length;
      },
      stop: () => spy.mockRestore(),
    };
  };
  /** The code of the clock's current step: unused as long as the clock moved past the last one used. */
  const codeNow = (p: Person) => totpCode(p.secret as string, h.clock.now);

  it("a burst of 100 wrong codes gets ten checks; every other attempt, a right code sent inside the burst too, is 429 with the exact wait", async () => {
    await relogin(h, owner);
    await relogin(h, moderator);
    // A step no code has been used in yet, so the right code below is fresh.
    h.clock.advance(30);
    const before = await keyCount();
    const wrong = wrongCode(owner.secret as string, h.clock.now);
    const checked = checks();
    const { results, inside } = await burst(
      100,
      () => createKey(owner, wrong),
      () => createKey(owner, codeNow(owner)),
      (r) => r.statusCode,
    );

    expect(checked.count).toBe(10);
    checked.stop();
    expect(tally(results.map(answerOf))).toEqual({ "403 TOTP_INVALID": 10, "429 RATE_LIMITED": 90 });
    expect(inside.statusCode, inside.body).toBe(429);
    expect(inside.json().error.code).toBe("RATE_LIMITED");
    expect(await keyCount()).toBe(before);
    for (const r of [...results.filter((x) => x.statusCode === 429), inside]) {
      const retryAfter = r.json().error.details.retry_after;
      expect(retryAfter).toBeGreaterThan(0);
      expect(Number(r.headers["retry-after"])).toBe(retryAfter);
    }

    // The count is the person's: someone else in the company steps up as usual.
    const other = await createKey(moderator, codeNow(moderator));
    expect(other.statusCode, other.body).toBe(201);

    // The wait is exact: a second early the right code is still refused, on time it works.
    const wait: number = inside.json().error.details.retry_after;
    h.clock.advance(wait - 1); // at most 16.5 minutes: the session is not idle for long enough to end
    const early = await createKey(owner, codeNow(owner));
    expect(early.statusCode, early.body).toBe(429);
    expect(early.json().error.details.retry_after).toBe(1);
    h.clock.advance(1);
    const onTime = await createKey(owner, codeNow(owner));
    expect(onTime.statusCode, onTime.body).toBe(201);
    expect(await keyCount()).toBe(before + 2);
  });

  it("a right code clears the count: nine wrong, one right, then ten more wrong are all checked before the eleventh waits", async () => {
    h.clock.advance(30);
    const wrong = () => wrongCode(owner.secret as string, h.clock.now);
    for (let i = 0; i < 9; i++) {
      const res = await createKey(owner, wrong());
      expect(res.statusCode, `wrong code ${i + 1}`).toBe(403);
      expect(res.json().error.code).toBe("TOTP_INVALID");
    }
    const right = await createKey(owner, codeNow(owner));
    expect(right.statusCode, right.body).toBe(201);
    const checked = checks();
    const after = await Promise.all(Array.from({ length: 11 }, () => createKey(owner, wrong())));
    expect(checked.count).toBe(10);
    checked.stop();
    expect(tally(after.map(answerOf))).toEqual({ "403 TOTP_INVALID": 10, "429 RATE_LIMITED": 1 });
  });

  it("a burst straight at the service, with no HTTP in front, gets ten checks too", async () => {
    h.clock.advance(15 * 60 * 2); // two windows: nothing left of the counts above
    await relogin(h, owner);
    const found = await h.services.people.authenticate(owner.session.cookie.slice("lk_session=".length));
    const actor = found?.actor;
    if (!actor) throw new Error("no session");
    const ctx = { actor, ip: null, userAgent: null, totpUsed: false };
    const wrong = wrongCode(owner.secret as string, h.clock.now);
    const checked = checks();
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, () =>
        h.services.people.stepUp(actor, wrong, ctx).then(
          () => "ok",
          (err: { code: string }) => err.code,
        ),
      ),
    );
    expect(outcomes.filter((o) => o === "TOTP_INVALID")).toHaveLength(10);
    expect(outcomes.filter((o) => o === "RATE_LIMITED")).toHaveLength(20);
    expect(checked.count).toBe(10);
    checked.stop();
  });
});
