import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

interface Usage {
  key_id: string;
  days: { day: string; requests: number; denied: number }[];
  total_requests: number;
  last_used_at: string | null;
  last_used_ip: string | null;
}

describe.each(BACKENDS)("GET /v1/keys/:id/usage on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let other: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Usage Route Company");
    other = await h.createCompany("Usage Route Other");
  });
  afterAll(() => h.close());

  const usage = (id: string, query = "", key = co.key) =>
    h.call("GET", `/v1/keys/${id}/usage${query}`, { key });
  const usageOk = async (id: string, query = "") => {
    const res = await usage(id, query);
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data as Usage;
  };
  const verify = async (key: string, json: Record<string, unknown> = {}) =>
    (await h.call("POST", "/v1/verify", { key: co.key, json: { key, ...json } })).json().data.code as string;

  it("gives a key's requests and refusals per day, oldest first, with zeros and totals", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"], allowed_ips: ["192.0.2.0/24"] });
    h.clock.now = new Date("2026-02-10T09:00:00.000Z");
    // Outside the 7-day window asked for below.
    expect(await verify(k.key, { ip: "192.0.2.1" })).toBe("VALID");
    h.clock.now = new Date("2026-02-20T23:59:59.000Z");
    expect(await verify(k.key, { ip: "192.0.2.1" })).toBe("VALID");
    expect(await verify(k.key, { ip: "198.51.100.1" })).toBe("IP_NOT_ALLOWED");
    h.clock.now = new Date("2026-02-23T10:00:00.000Z");
    for (let i = 0; i < 3; i++) expect(await verify(k.key, { ip: "192.0.2.7" })).toBe("VALID");
    expect(await verify(k.key, { ip: "192.0.2.7", permissions: ["payin:create"] })).toBe(
      "INSUFFICIENT_PERMISSIONS",
    );
    h.clock.now = new Date("2026-02-24T00:00:00.000Z");
    expect(await verify(k.key, { ip: "192.0.2.8" })).toBe("VALID");

    // Nothing shows before the counts are flushed (they live in memory until then).
    expect((await usageOk(k.id)).total_requests).toBe(0);
    await h.services.usage.flush();

    const week = await usageOk(k.id, "?days=7");
    expect(week).toEqual({
      key_id: k.id,
      merchant_account_id: null,
      days: [
        { day: "2026-02-18", requests: 0, denied: 0 },
        { day: "2026-02-19", requests: 0, denied: 0 },
        { day: "2026-02-20", requests: 1, denied: 1 },
        { day: "2026-02-21", requests: 0, denied: 0 },
        { day: "2026-02-22", requests: 0, denied: 0 },
        { day: "2026-02-23", requests: 3, denied: 1 },
        { day: "2026-02-24", requests: 1, denied: 0 },
      ],
      total_requests: 5,
      last_used_at: "2026-02-24T00:00:00.000Z",
      last_used_ip: "192.0.2.8",
    });
    // The default is 30 days, which reaches the first use.
    const month = await usageOk(k.id);
    expect(month.days).toHaveLength(30);
    expect(month.days[0]?.day).toBe("2026-01-26");
    expect(month.days.at(-1)?.day).toBe("2026-02-24");
    expect(month.total_requests).toBe(6);
    expect(month.days.find((d) => d.day === "2026-02-10")).toEqual({
      day: "2026-02-10",
      requests: 1,
      denied: 0,
    });
  });

  it("accepts 1 to 90 days", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    h.clock.now = new Date("2026-02-24T12:00:00.000Z");
    expect((await usageOk(k.id, "?days=1")).days).toEqual([{ day: "2026-02-24", requests: 0, denied: 0 }]);
    const quarter = await usageOk(k.id, "?days=90");
    expect(quarter.days).toHaveLength(90);
    expect(quarter.days[0]?.day).toBe("2025-11-27");
    expect((await usageOk(k.id, "?days=45")).days).toHaveLength(45);
  });

  it.each(["0", "91", "100", "-1", "1.5", "01", "abc", "", "1e1", "30&days=5", "%00"])(
    "refuses days=%s with 400",
    async (days) => {
      const k = await h.createKey(co, { permissions: ["payin:read"] });
      const res = await usage(k.id, `?days=${days}`);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().error.code).toBe("VALIDATION_ERROR");
    },
  );

  it("refuses unknown query parameters", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    const res = await usage(k.id, "?day=5");
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe("VALIDATION_ERROR");
  });

  it("is 404 for another company's key, and for a key that does not exist", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    expect(await verify(k.key, { ip: "192.0.2.55" })).toBe("VALID");
    await h.services.usage.flush();
    const foreign = await usage(k.id, "", other.key);
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json().error.code).toBe("NOT_FOUND");
    expect(foreign.body).not.toContain("192.0.2.55");
    const missing = await usage("key_0000000000000000000000");
    expect(missing.statusCode).toBe(404);
    const bad = await usage("not-a-key-id");
    expect([400, 404]).toContain(bad.statusCode);
  });

  it("needs keys:manage", async () => {
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    const res = await usage(k.id, "", k.key);
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe("INSUFFICIENT_PERMISSIONS");
  });

  it("counts management calls a key makes, and keeps a revoked key's history", async () => {
    const mk = await h.createKey(co, { permissions: ["keys:manage"] });
    h.clock.now = new Date("2026-03-01T08:00:00.000Z");
    for (let i = 0; i < 4; i++) {
      expect((await h.call("GET", "/v1/keys", { key: mk.key, ip: "203.0.113.4" })).statusCode).toBe(200);
    }
    expect((await h.call("DELETE", `/v1/keys/${mk.id}`, { key: co.key })).statusCode).toBe(200);
    // Refused after revocation: counted as denied, and not as a use.
    expect((await h.call("GET", "/v1/keys", { key: mk.key, ip: "203.0.113.5" })).statusCode).toBe(401);
    await h.services.usage.flush();
    const u = await usageOk(mk.id, "?days=1");
    expect(u).toMatchObject({
      days: [{ day: "2026-03-01", requests: 4, denied: 1 }],
      total_requests: 4,
      last_used_at: "2026-03-01T08:00:00.000Z",
      last_used_ip: "203.0.113.4",
    });
  });
});
