import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_COST } from "../../src/core/credits.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

/**
 * Usage credits, meta and external ids on keys: set on create and update, shown in views, spent by
 * verifications (one each, or `cost`), refilled per UTC day or month by the test clock, shared by a
 * rotated key's family, and passed to a gateway by /v1/authorize.
 */

const WEB3PAY = join(import.meta.dirname, "../../examples/catalogs/web3pay.json");
const GATEWAY = "10.9.0.1";
const PERMS = ["onramp:create", "onramp:read"];

describe.each(BACKENDS)("credits and metadata on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let gw: string;

  beforeAll(async () => {
    h = await createHarness(kind, { catalogPath: WEB3PAY, trustedProxies: ["10.9.0.0/24"] });
    co = await h.createCompany("Credits Co");
    gw = await h.verifyKey("credits gateway");
  });
  afterAll(() => h.close());

  const verify = async (body: Record<string, unknown>) => {
    const res = await h.call("POST", "/v1/verify", { key: gw, json: body });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data;
  };
  const getKey = async (id: string) => (await h.call("GET", `/v1/keys/${id}`, { key: co.key })).json().data;
  const patch = (id: string, json: Record<string, unknown>) =>
    h.call("PATCH", `/v1/keys/${id}`, { key: co.key, json });
  const exhaustedEvents = async (keyIds: string[]) =>
    (
      await h.store.db
        .selectFrom("events")
        .select("data")
        .where("type", "=", "key.usage_exhausted")
        .where("company_id", "=", co.id)
        .orderBy("seq")
        .execute()
    ).filter((e) => keyIds.includes((e.data as { key_id: string }).key_id));
  /** Moves the test clock to `iso` (forward only). */
  const moveTo = (iso: string) => {
    const ms = Date.parse(iso) - h.clock.now.getTime();
    expect(ms).toBeGreaterThanOrEqual(0);
    h.clock.advance(ms / 1000);
  };

  it("spends one credit per allowed verification and refuses with USAGE_EXCEEDED when none are left", async () => {
    const key = await h.createKey(co, { permissions: PERMS, remaining: 3 });
    expect(await getKey(key.id)).toMatchObject({ remaining: 3, refill: null, meta: null, external_id: null });
    const seen: [string, number | null][] = [];
    for (let i = 0; i < 4; i++) {
      const a = await verify({ key: key.key });
      seen.push([a.code, a.remaining]);
    }
    expect(seen).toEqual([
      ["VALID", 2],
      ["VALID", 1],
      ["VALID", 0],
      ["USAGE_EXCEEDED", 0],
    ]);
    const refused = await verify({ key: key.key });
    expect(refused).toMatchObject({ valid: false, code: "USAGE_EXCEEDED", key_id: key.id, remaining: 0 });
    expect((await getKey(key.id)).remaining).toBe(0);
    // Usage counts the refusals as denied.
    await h.services.usage.flush();
    const usage = (await h.call("GET", `/v1/keys/${key.id}/usage?days=1`, { key: co.key })).json().data;
    expect(usage.days[0]).toMatchObject({ requests: 3, denied: 2 });
  });

  it("a key without credits is unlimited and says remaining: null", async () => {
    const key = await h.createKey(co, { permissions: PERMS });
    for (let i = 0; i < 3; i++)
      expect(await verify({ key: key.key })).toMatchObject({ code: "VALID", remaining: null });
    expect((await getKey(key.id)).remaining).toBeNull();
  });

  it("spends `cost`; too few left refuses without spending; cost 0 checks without spending", async () => {
    const key = await h.createKey(co, { permissions: PERMS, remaining: 10 });
    expect(await verify({ key: key.key, cost: 4 })).toMatchObject({ code: "VALID", remaining: 6 });
    expect(await verify({ key: key.key, cost: 7 })).toMatchObject({ code: "USAGE_EXCEEDED", remaining: 6 });
    expect(await verify({ key: key.key, cost: 0 })).toMatchObject({ code: "VALID", remaining: 6 });
    expect(await verify({ key: key.key, cost: 6 })).toMatchObject({ code: "VALID", remaining: 0 });
    // An empty balance refuses a check too: cost 0 asks whether the key may still be used.
    expect(await verify({ key: key.key, cost: 0 })).toMatchObject({ code: "USAGE_EXCEEDED", remaining: 0 });
    expect((await getKey(key.id)).remaining).toBe(0);
  });

  it("refuses a bad cost with a 400, never a 500", async () => {
    const key = await h.createKey(co, { permissions: PERMS, remaining: 10 });
    for (const cost of [-1, 1.5, "1", null, MAX_COST + 1, 1e300]) {
      const res = await h.call("POST", "/v1/verify", { key: gw, json: { key: key.key, cost } });
      expect(res.statusCode, `cost ${cost}`).toBe(400);
      expect(res.json().error.code).toBe("VALIDATION_ERROR");
    }
    expect((await getKey(key.id)).remaining).toBe(10);
  });

  it("spends nothing on a request refused for another reason", async () => {
    const key = await h.createKey(co, {
      permissions: ["onramp:read"],
      remaining: 2,
      allowed_ips: ["203.0.113.0/24"],
    });
    expect((await verify({ key: key.key, ip: "198.51.100.1" })).code).toBe("IP_NOT_ALLOWED");
    expect((await verify({ key: key.key, ip: "203.0.113.1", permissions: ["onramp:create"] })).code).toBe(
      "INSUFFICIENT_PERMISSIONS",
    );
    expect((await verify({ key: key.key, ip: "203.0.113.1", environment: "test" })).code).toBe(
      "ENVIRONMENT_MISMATCH",
    );
    expect((await getKey(key.id)).remaining).toBe(2);
  });

  it("a management call made with a key spends none of its credits", async () => {
    const manager = await h.createKey(co, { permissions: ["keys:manage"], remaining: 1 });
    for (let i = 0; i < 3; i++)
      expect((await h.call("GET", "/v1/keys?limit=1", { key: manager.key })).statusCode).toBe(200);
    expect((await getKey(manager.id)).remaining).toBe(1);
  });

  it("emits key.usage_exhausted once per exhaustion, again after the balance is raised", async () => {
    const key = await h.createKey(co, { permissions: PERMS, remaining: 2 });
    await verify({ key: key.key });
    expect(await exhaustedEvents([key.id])).toHaveLength(0);
    await verify({ key: key.key });
    for (let i = 0; i < 3; i++) await verify({ key: key.key });
    const events = await exhaustedEvents([key.id]);
    expect(events).toHaveLength(1);
    expect(events[0]?.data).toMatchObject({ key_id: key.id, family_id: key.id, remaining: 0, refill: null });
    expect((await patch(key.id, { remaining: 1 })).statusCode).toBe(200);
    expect(await verify({ key: key.key })).toMatchObject({ code: "VALID", remaining: 0 });
    await verify({ key: key.key });
    expect(await exhaustedEvents([key.id])).toHaveLength(2);
  });

  it("refills to the amount (not adding) at the start of each UTC day, once", async () => {
    moveTo("2026-03-10T22:00:00.000Z");
    const key = await h.createKey(co, {
      permissions: PERMS,
      remaining: 2,
      refill: { amount: 3, interval: "day" },
    });
    expect(await getKey(key.id)).toMatchObject({ remaining: 2, refill: { amount: 3, interval: "day" } });
    expect((await verify({ key: key.key })).remaining).toBe(1);
    expect((await verify({ key: key.key })).remaining).toBe(0);
    expect((await verify({ key: key.key })).code).toBe("USAGE_EXCEEDED");
    moveTo("2026-03-10T23:59:59.000Z");
    expect((await verify({ key: key.key })).code).toBe("USAGE_EXCEEDED");
    moveTo("2026-03-11T00:00:00.000Z");
    // The view counts the refill that is due before any verification made it.
    expect((await getKey(key.id)).remaining).toBe(3);
    expect(await verify({ key: key.key })).toMatchObject({ code: "VALID", remaining: 2 });
    expect(await verify({ key: key.key })).toMatchObject({ code: "VALID", remaining: 1 });
    moveTo("2026-03-11T18:00:00.000Z");
    expect((await verify({ key: key.key })).remaining).toBe(0);
    // Two days later: set to the amount, whatever was left, and only once.
    moveTo("2026-03-13T09:00:00.000Z");
    expect((await verify({ key: key.key, cost: 0 })).remaining).toBe(3);
    expect((await verify({ key: key.key })).remaining).toBe(2);
    expect((await verify({ key: key.key })).remaining).toBe(1);
    // The exhaustion of the first day's balance emitted once; the refill does not emit.
    expect(await exhaustedEvents([key.id])).toHaveLength(2);
  });

  it("refills monthly at the start of each UTC month", async () => {
    moveTo("2026-04-15T12:00:00.000Z");
    // A refill alone starts the balance at its amount.
    const key = await h.createKey(co, { permissions: PERMS, refill: { amount: 2, interval: "month" } });
    expect((await getKey(key.id)).remaining).toBe(2);
    await verify({ key: key.key });
    await verify({ key: key.key });
    expect((await verify({ key: key.key })).code).toBe("USAGE_EXCEEDED");
    moveTo("2026-04-30T23:59:00.000Z");
    expect((await verify({ key: key.key })).code).toBe("USAGE_EXCEEDED");
    moveTo("2026-05-01T00:00:01.000Z");
    expect(await verify({ key: key.key })).toMatchObject({ code: "VALID", remaining: 1 });
  });

  it("a rotated key and its replacement spend one balance", async () => {
    const old = await h.createKey(co, {
      permissions: PERMS,
      remaining: 4,
      meta: { plan: "pro" },
      external_id: "acct_9",
    });
    expect((await verify({ key: old.key })).remaining).toBe(3);
    const rotated = await h.call("POST", `/v1/keys/${old.id}/rotate`, {
      key: co.key,
      json: { grace_seconds: 3600 },
    });
    expect(rotated.statusCode, rotated.body).toBe(200);
    const fresh = rotated.json().data;
    // The replacement inherits meta, the external id and the balance.
    expect(fresh).toMatchObject({ remaining: 3, meta: { plan: "pro" }, external_id: "acct_9" });
    expect((await verify({ key: fresh.key })).remaining).toBe(2);
    expect((await verify({ key: old.key })).remaining).toBe(1);
    expect((await verify({ key: fresh.key })).remaining).toBe(0);
    expect((await verify({ key: old.key })).code).toBe("USAGE_EXCEEDED");
    expect((await getKey(old.id)).remaining).toBe(0);
    expect((await getKey(fresh.id)).remaining).toBe(0);
    // Raising the balance on the replacement raises the family's: the old key's cached entry hears it.
    expect((await patch(fresh.id, { remaining: 2 })).statusCode).toBe(200);
    expect((await verify({ key: old.key })).remaining).toBe(1);
  });

  it("credits set on a replacement reach the old key of its family, cached as unlimited", async () => {
    const old = await h.createKey(co, { permissions: PERMS });
    const rotated = await h.call("POST", `/v1/keys/${old.id}/rotate`, {
      key: co.key,
      json: { grace_seconds: 3600 },
    });
    const fresh = rotated.json().data;
    expect((await verify({ key: old.key })).remaining).toBeNull();
    expect((await patch(fresh.id, { remaining: 1 })).statusCode).toBe(200);
    expect(await verify({ key: old.key })).toMatchObject({ code: "VALID", remaining: 0 });
    expect((await verify({ key: fresh.key })).code).toBe("USAGE_EXCEEDED");
  });

  it("credits set later on a cached key are spent from the next verification on, and null lifts them", async () => {
    const key = await h.createKey(co, { permissions: PERMS });
    expect((await verify({ key: key.key })).remaining).toBeNull();
    const set = await patch(key.id, { remaining: 1, refill: { amount: 5, interval: "month" } });
    expect(set.statusCode, set.body).toBe(200);
    expect(set.json().data).toMatchObject({ remaining: 1, refill: { amount: 5, interval: "month" } });
    expect((await verify({ key: key.key })).remaining).toBe(0);
    expect((await verify({ key: key.key })).code).toBe("USAGE_EXCEEDED");
    // Changing only the refill keeps the balance.
    expect((await patch(key.id, { refill: { amount: 7, interval: "day" } })).json().data.remaining).toBe(0);
    const lifted = await patch(key.id, { remaining: null });
    expect(lifted.statusCode, lifted.body).toBe(200);
    expect(lifted.json().data).toMatchObject({ remaining: null, refill: null });
    expect(await verify({ key: key.key })).toMatchObject({ code: "VALID", remaining: null });
    const audit = (
      await h.call("GET", `/v1/audit?action=credits.changed&target=${key.id}`, { key: co.key })
    ).json().data.events;
    expect(audit.map((e: { changes: unknown }) => e.changes)).toEqual([
      {
        before: { remaining: 0, refill: { amount: 7, interval: "day" } },
        after: { remaining: null, refill: null },
      },
      {
        before: { remaining: 0, refill: { amount: 5, interval: "month" } },
        after: { remaining: 0, refill: { amount: 7, interval: "day" } },
      },
      {
        before: { remaining: null, refill: null },
        after: { remaining: 1, refill: { amount: 5, interval: "month" } },
      },
    ]);
  });

  it("refuses bad credits with 400 codes", async () => {
    const key = await h.createKey(co, { permissions: PERMS });
    const bad: [Record<string, unknown>, string, string][] = [
      [{ remaining: -1 }, "VALIDATION_ERROR", "remaining"],
      [{ remaining: 1.5 }, "VALIDATION_ERROR", "remaining"],
      [{ remaining: "5" }, "VALIDATION_ERROR", "remaining"],
      [{ remaining: 1e13 }, "VALIDATION_ERROR", "remaining"],
      [{ refill: { amount: 0, interval: "day" } }, "VALIDATION_ERROR", "refill"],
      [{ refill: { amount: 5, interval: "week" } }, "VALIDATION_ERROR", "refill"],
      [{ refill: { amount: 5 } }, "VALIDATION_ERROR", "refill"],
      [{ refill: 5 }, "VALIDATION_ERROR", "refill"],
      [{ remaining: null, refill: { amount: 5, interval: "day" } }, "VALIDATION_ERROR", "refill"],
    ];
    for (const [json, code, field] of bad) {
      const res = await patch(key.id, json);
      expect(res.statusCode, JSON.stringify(json)).toBe(400);
      expect(res.json().error.code).toBe(code);
      expect(res.json().error.field ?? "").toContain(field);
    }
    const created = await h.call("POST", "/v1/keys", {
      key: co.key,
      json: { name: "k", environment: "live", permissions: PERMS, remaining: -5 },
    });
    expect(created.statusCode).toBe(400);
  });

  it("keeps meta small: at most 16 keys, 3 levels and 1 KiB, a JSON object", async () => {
    const meta = { plan: "pro", owner: { name: "Zoë", tags: ["a", "b"] }, n: 3, ok: true, none: null };
    const key = await h.createKey(co, { permissions: PERMS, meta });
    expect((await getKey(key.id)).meta).toEqual(meta);
    expect((await verify({ key: key.key })).meta).toEqual(meta);
    const seventeen = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i]));
    const cases: [unknown, string][] = [
      [seventeen, "VALIDATION_ERROR"],
      [{ big: "x".repeat(1100) }, "INVALID_META"],
      [{ a: { b: { c: { d: 1 } } } }, "INVALID_META"],
      [{ a: [[[1]]] }, "INVALID_META"],
      ["a string", "VALIDATION_ERROR"],
      [[1, 2], "VALIDATION_ERROR"],
      [42, "VALIDATION_ERROR"],
      [{ "": 1 }, "INVALID_META"],
      [{ ["k".repeat(65)]: 1 }, "INVALID_META"],
      [{ nul: "a\u0000b" }, "INVALID_META"],
    ];
    for (const [bad, code] of cases) {
      const res = await patch(key.id, { meta: bad });
      expect(res.statusCode, JSON.stringify(bad)).toBe(400);
      expect(res.json().error.code, JSON.stringify(bad)).toBe(code);
    }
    // An unpaired surrogate, as raw JSON text: jsonb would refuse it, so it is refused first.
    const raw = await h.call("PATCH", `/v1/keys/${key.id}`, {
      key: co.key,
      headers: { "content-type": "application/json" },
      payload: '{"meta":{"s":"\\ud800"}}',
    });
    expect(raw.statusCode).toBe(400);
    expect(raw.json().error.code).toBe("INVALID_META");
    // Three levels and exactly 16 keys are fine; null clears.
    const ok = await patch(key.id, {
      meta: { ...Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, i])), a: { b: { c: 1 } } },
    });
    expect(ok.statusCode, ok.body).toBe(200);
    const cleared = await patch(key.id, { meta: null });
    expect(cleared.json().data.meta).toBeNull();
    expect((await verify({ key: key.key })).meta).toBeNull();
  });

  it("filters lists by external_id, and refuses an external id that could not travel as a header", async () => {
    const a = await h.createKey(co, { permissions: PERMS, external_id: "user_1" });
    const b = await h.createKey(co, { permissions: PERMS, external_id: "user_1" });
    const c = await h.createKey(co, { permissions: PERMS, external_id: "user_2" });
    const listed = await h.call("GET", "/v1/keys?external_id=user_1", { key: co.key });
    expect(listed.statusCode).toBe(200);
    expect(
      listed
        .json()
        .data.keys.map((k: { id: string }) => k.id)
        .sort(),
    ).toEqual([a.id, b.id].sort());
    expect((await verify({ key: c.key })).external_id).toBe("user_2");
    // Another company's key with the same external id is not listed.
    const other = await h.createCompany("Credits Other");
    await h.createKey(other, { permissions: PERMS, external_id: "user_1" });
    expect(
      (await h.call("GET", "/v1/keys?external_id=user_1", { key: co.key })).json().data.keys,
    ).toHaveLength(2);
    for (const bad of ["has space", "line\nbreak", "", "x".repeat(129), "ünï"]) {
      const res = await patch(a.id, { external_id: bad });
      expect(res.statusCode, bad).toBe(400);
      expect(res.json().error.code).toBe("VALIDATION_ERROR");
      const q = await h.call("GET", `/v1/keys?external_id=${encodeURIComponent(bad)}`, { key: co.key });
      expect(q.statusCode, bad).toBe(400);
    }
    const moved = await patch(a.id, { external_id: null });
    expect(moved.json().data.external_id).toBeNull();
    expect((await verify({ key: a.key })).external_id).toBeNull();
    expect(
      (await h.call("GET", "/v1/keys?external_id=user_1", { key: co.key })).json().data.keys,
    ).toHaveLength(1);
  });

  it("/v1/authorize spends one credit and passes the external id, meta and balance upstream", async () => {
    const meta = { plan: "pro\nwith a newline", who: "Zoë" };
    const key = await h.createKey(co, { permissions: PERMS, remaining: 2, meta, external_id: "acct:42" });
    const ask = () =>
      h.call("GET", "/v1/authorize", {
        ip: GATEWAY,
        headers: {
          "latchkey-verify-key": gw,
          "x-original-method": "POST",
          "x-original-uri": "/v1/onramp",
          "x-api-key": key.key,
        },
      });
    const first = await ask();
    expect(first.statusCode, first.body).toBe(200);
    expect(first.headers["latchkey-external-id"]).toBe("acct:42");
    expect(first.headers["latchkey-credits-remaining"]).toBe("1");
    const header = first.headers["latchkey-meta"] as string;
    expect(header).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(JSON.parse(Buffer.from(header, "base64url").toString("utf8"))).toEqual(meta);
    expect((await ask()).headers["latchkey-credits-remaining"]).toBe("0");
    const refused = await ask();
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error.code).toBe("USAGE_EXCEEDED");
    expect(refused.headers["latchkey-key-id"]).toBeUndefined();
    // A key without any of it still gets the headers, empty, so a client's own cannot pass.
    const plain = await h.createKey(co, { permissions: PERMS });
    const res = await h.call("GET", "/v1/authorize", {
      ip: GATEWAY,
      headers: {
        "latchkey-verify-key": gw,
        "x-original-method": "POST",
        "x-original-uri": "/v1/onramp",
        "x-api-key": plain.key,
      },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers).toMatchObject({
      "latchkey-external-id": "",
      "latchkey-credits-remaining": "",
      "latchkey-meta": "",
    });
    // nginx's form: the 429 reaches the client through a 403 with the real status beside it.
    const nginx = await h.call("GET", "/v1/authorize", {
      ip: GATEWAY,
      headers: {
        "latchkey-verify-key": gw,
        "latchkey-gateway": "nginx",
        "x-original-method": "POST",
        "x-original-uri": "/v1/onramp",
        "x-api-key": key.key,
      },
    });
    expect(nginx.statusCode).toBe(403);
    expect(nginx.headers["latchkey-status"]).toBe("429");
  });

  it("keeps the balance through a store round trip: a fresh service reads what was spent", async () => {
    const key = await h.createKey(co, { permissions: PERMS, remaining: 5 });
    await verify({ key: key.key });
    await verify({ key: key.key, cost: 2 });
    // Straight from the store: spending is written through, nothing waits in memory.
    const row = await h.store.db
      .selectFrom("key_credits")
      .select("remaining")
      .where("family_id", "=", key.id)
      .executeTakeFirstOrThrow();
    expect(Number(row.remaining)).toBe(2);
  });
});
