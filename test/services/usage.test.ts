import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

async function storedUse(h: Harness, id: string) {
  const row = await h.store.db
    .selectFrom("api_keys")
    .select(["last_used_at", "last_used_ip"])
    .where("id", "=", id)
    .executeTakeFirstOrThrow();
  return { at: row.last_used_at ? new Date(row.last_used_at).toISOString() : null, ip: row.last_used_ip };
}

describe.each(BACKENDS)("last-used tracking on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Usage Company");
  });
  afterAll(() => h.close());

  const verify = async (key: string, ip?: string) => {
    const res = await h.call("POST", "/v1/verify", { key: co.key, json: { key, ...(ip ? { ip } : {}) } });
    expect(res.json().data.code).toBe("VALID");
  };
  const shown = async (id: string) => (await h.call("GET", `/v1/keys/${id}`, { key: co.key })).json().data;

  it("records uses in memory and writes them only on flush", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    await verify(key.key, "198.51.100.1");
    h.clock.advance(30);
    await verify(key.key, "198.51.100.2");
    h.clock.advance(30);
    await verify(key.key, "2001:db8::7");
    const lastUse = h.clock.now.toISOString();

    expect(await shown(key.id)).toMatchObject({ last_used_at: null, last_used_ip: null });
    expect(await storedUse(h, key.id)).toEqual({ at: null, ip: null });

    h.clock.advance(60);
    await h.services.usage.flush();
    expect(await shown(key.id)).toMatchObject({ last_used_at: lastUse, last_used_ip: "2001:db8::7" });
  });

  it("never moves last_used_at backwards when an older use is flushed after a newer one", async () => {
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    h.clock.advance(120);
    await verify(key.key, "198.51.100.10");
    const newer = h.clock.now.toISOString();
    await h.services.usage.flush();

    // Another instance's batch, or a clock stepped back, delivers an older use afterwards.
    h.clock.advance(-60);
    await verify(key.key, "198.51.100.20");
    await h.services.usage.flush();
    h.clock.advance(60);

    expect(await shown(key.id)).toMatchObject({ last_used_at: newer, last_used_ip: "198.51.100.10" });
  });
});

// Its own harness, since stopping the recorder is for good.
describe.each(BACKENDS)("stopping the usage recorder on %s", (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness(kind);
  });
  afterAll(() => h.close());

  it("flushes what is pending", async () => {
    const co = await h.createCompany("Stopping Company");
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    const res = await h.call("POST", "/v1/verify", {
      key: co.key,
      json: { key: key.key, ip: "203.0.113.5" },
    });
    expect(res.json().data.code).toBe("VALID");
    const usedAt = h.clock.now.toISOString();
    expect(await storedUse(h, key.id)).toEqual({ at: null, ip: null });

    await h.services.usage.stop();
    expect(await storedUse(h, key.id)).toEqual({ at: usedAt, ip: "203.0.113.5" });
  });
});
