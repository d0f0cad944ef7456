import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

interface CompanyUsage {
  environment: "live" | "test" | null;
  days: { day: string; requests: number; denied: number }[];
  total_requests: number;
  total_denied: number;
  keys_used: number;
}

/**
 * GET /v1/usage: the per-key daily counts added up over a company's keys, cut to what the caller may
 * see (a test caller: test keys only; another company: nothing of this one's).
 */
describe.each(BACKENDS)("GET /v1/usage on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let other: Company;
  /** A management key of co's test world. */
  let testManager = "";
  /** A platform verify key: its own calls are no company's usage. */
  let gateway = "";

  const usage = (query = "", key = co.key) => h.call("GET", `/v1/usage${query}`, { key });
  const usageOk = async (query = "", key = co.key) => {
    const res = await usage(query, key);
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data as CompanyUsage;
  };
  const verify = async (key: string, json: Record<string, unknown> = {}) =>
    (await h.call("POST", "/v1/verify", { key: gateway, json: { key, ...json } })).json().data.code as string;

  beforeAll(async () => {
    h = await createHarness(kind);
    // The calls made to set up (with the management keys, counted as their uses) fall long before the
    // days looked at.
    h.clock.now = new Date("2026-01-01T10:00:00.000Z");
    gateway = await h.verifyKey();
    co = await h.createCompany("Company Usage Co");
    other = await h.createCompany("Company Usage Other");
    testManager = (await h.createKey(co, { environment: "test", permissions: ["keys:manage"] })).key;

    const liveA = await h.createKey(co, { permissions: ["payin:read"], allowed_ips: ["192.0.2.0/24"] });
    const liveB = await h.createKey(co, { permissions: ["payin:read"] });
    const testA = await h.createKey(co, { environment: "test", permissions: ["payin:read"] });
    const foreign = await h.createKey(other, { permissions: ["payin:read"] });
    h.clock.now = new Date("2026-04-09T10:00:00.000Z");
    expect(await verify(liveA.key, { ip: "192.0.2.1" })).toBe("VALID");
    expect(await verify(liveA.key, { ip: "198.51.100.1" })).toBe("IP_NOT_ALLOWED");
    h.clock.now = new Date("2026-04-10T10:00:00.000Z");
    for (let i = 0; i < 3; i++) expect(await verify(liveB.key)).toBe("VALID");
    for (let i = 0; i < 2; i++) expect(await verify(testA.key)).toBe("VALID");
    // Another company's traffic on the same day, never part of co's sums.
    expect(await verify(foreign.key)).toBe("VALID");
    await h.services.usage.flush();
  });
  afterAll(() => h.close());

  it("sums every key of the company per day, both environments for a live caller", async () => {
    const u = await usageOk("?days=3");
    expect(u).toEqual({
      environment: null,
      days: [
        { day: "2026-04-08", requests: 0, denied: 0 },
        { day: "2026-04-09", requests: 1, denied: 1 },
        { day: "2026-04-10", requests: 5, denied: 0 },
      ],
      total_requests: 6,
      total_denied: 1,
      keys_used: 3,
    });
    // The default is 30 days, ending today.
    const month = await usageOk();
    expect(month.days).toHaveLength(30);
    expect(month.days.at(-1)?.day).toBe("2026-04-10");
    expect(month.total_requests).toBe(6);
  });

  it("filters by environment", async () => {
    expect(await usageOk("?days=2&environment=live")).toMatchObject({
      environment: "live",
      days: [
        { day: "2026-04-09", requests: 1, denied: 1 },
        { day: "2026-04-10", requests: 3, denied: 0 },
      ],
      total_requests: 4,
      keys_used: 2,
    });
    expect(await usageOk("?days=2&environment=test")).toMatchObject({
      environment: "test",
      total_requests: 2,
      total_denied: 0,
      keys_used: 1,
    });
  });

  it("counts test keys only for a test caller, whatever it asks for", async () => {
    for (const q of ["?days=2", "?days=2&environment=live", "?days=2&environment=test"]) {
      expect(await usageOk(q, testManager)).toEqual({
        environment: "test",
        days: [
          { day: "2026-04-09", requests: 0, denied: 0 },
          { day: "2026-04-10", requests: 2, denied: 0 },
        ],
        total_requests: 2,
        total_denied: 0,
        keys_used: 1,
      });
    }
  });

  it("gives another company its own counts, never this one's", async () => {
    expect(await usageOk("?days=1", other.key)).toMatchObject({
      days: [{ day: "2026-04-10", requests: 1, denied: 0 }],
      total_requests: 1,
      keys_used: 1,
    });
  });

  it.each([
    "?days=0",
    "?days=91",
    "?days=1.5",
    "?days=abc",
    "?days=",
    "?days=%00",
    "?environment=prod",
    "?environment=",
    "?environment=live&environment=test",
    "?company_id=x",
    `?days=${"9".repeat(5000)}`,
  ])("refuses %s with 400 VALIDATION_ERROR", async (q) => {
    const res = await usage(q);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error.code).toBe("VALIDATION_ERROR");
  });

  it("needs keys:manage, and a caller at all", async () => {
    const plain = await h.createKey(co, { permissions: ["payin:read"] });
    const res = await usage("", plain.key);
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe("INSUFFICIENT_PERMISSIONS");
    const anonymous = await h.call("GET", "/v1/usage");
    expect(anonymous.statusCode).toBe(401);
  });
});
