import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENT_TYPES, isEventType } from "../../src/core/events.ts";
import { eventPayload } from "../../src/services/events.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

describe.each(BACKENDS)("the event outbox on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Outbox Company");
  });
  afterAll(() => h.close());

  const stored = () =>
    h.store.db.selectFrom("events").selectAll().where("company_id", "=", co.id).orderBy("seq").execute();

  it("keeps an event emitted in a transaction that commits, in the order events committed", async () => {
    const before = (await stored()).length;
    const first = await h.store.db.transaction().execute((tx) =>
      h.services.events.emit(tx, {
        companyId: co.id,
        environment: "live",
        type: "key.created",
        data: { id: "a" },
      }),
    );
    const second = await h.store.db.transaction().execute((tx) =>
      h.services.events.emit(tx, {
        companyId: co.id,
        environment: "test",
        type: "key.revoked",
        data: { id: "b" },
      }),
    );
    const rows = (await stored()).slice(before);
    expect(rows.map((r) => r.id)).toEqual([first, second]);
    expect(first).toMatch(/^msg_[0-9A-Za-z]{22}$/);
    expect(rows.map((r) => r.environment)).toEqual(["live", "test"]);
    expect(eventPayload(rows[0] as (typeof rows)[0])).toEqual({
      type: "key.created",
      timestamp: h.clock.now.toISOString(),
      data: { id: "a" },
    });
  });

  it("keeps nothing of a transaction that rolls back: no event without its change", async () => {
    const before = (await stored()).length;
    await expect(
      h.store.db.transaction().execute(async (tx) => {
        await h.services.events.emit(tx, {
          companyId: co.id,
          environment: "live",
          type: "key.leaked",
          data: {},
        });
        throw new Error("the change failed");
      }),
    ).rejects.toThrow("the change failed");
    expect(await stored()).toHaveLength(before);
  });

  it("knows exactly the event types webhooks can subscribe to", () => {
    expect(EVENT_TYPES).toContain("key.usage_exhausted");
    expect(isEventType("key.created")).toBe(true);
    expect(isEventType("key.deleted")).toBe(false);
    expect(isEventType("__proto__")).toBe(false);
  });
});
