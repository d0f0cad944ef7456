import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

/** Public addresses as literals: no DNS lookup, and nothing is ever sent (no deliverer runs here). */
const PUBLIC = "https://93.184.215.14/hooks";

const REFUSED = [
  "http://127.0.0.1/hook",
  "http://127.1.2.3:8080/hook",
  "http://localhost/hook",
  "http://[::1]/hook",
  "http://[::ffff:127.0.0.1]/hook",
  "http://0.0.0.0/hook",
  "http://10.1.2.3/hook",
  "http://172.16.0.1/hook",
  "http://192.168.1.1/hook",
  "http://100.64.0.1/hook",
  "http://169.254.169.254/latest/meta-data",
  "http://[fe80::1]/hook",
  "http://[fc00::1]/hook",
  "http://[fd12:3456::1]/hook",
  "http://224.0.0.1/hook",
];

describe.each(BACKENDS)("webhook routes on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let testKey: string;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany();
    testKey = (await h.createKey(co, { name: "test manager", environment: "test" })).key;
  });
  afterAll(() => h.close());

  const create = (json: unknown, key = co.key) => h.call("POST", "/v1/webhooks", { key, json });

  function expectCode(
    res: { statusCode: number; body: string; json(): { error: { code: string } } },
    status: number,
    code: string,
  ) {
    expect(res.statusCode, res.body).toBe(status);
    expect(res.json().error.code).toBe(code);
  }

  it.each(REFUSED)("refuses %s: loopback, private, link-local and special addresses (SSRF)", async (url) => {
    expectCode(await create({ url }), 400, "WEBHOOK_URL_REFUSED");
  });

  it("takes a special address the operator allows, and no other", async () => {
    const allowing = await createHarness(kind, { webhooks: { allowedNetworks: ["127.0.0.1/32"] } });
    try {
      const c = await allowing.createCompany();
      const ok = await allowing.call("POST", "/v1/webhooks", {
        key: c.key,
        json: { url: "http://127.0.0.1:9/h" },
      });
      expect(ok.statusCode, ok.body).toBe(201);
      const no = await allowing.call("POST", "/v1/webhooks", {
        key: c.key,
        json: { url: "http://10.0.0.1/h" },
      });
      expectCode(no, 400, "WEBHOOK_URL_REFUSED");
    } finally {
      await allowing.close();
    }
  });

  it.each([
    [{ url: "ftp://93.184.215.14/x" }, "VALIDATION_ERROR"],
    [{ url: "https://user:pw@93.184.215.14/x" }, "VALIDATION_ERROR"],
    [{ url: "https://93.184.215.14/x#frag" }, "VALIDATION_ERROR"],
    [{ url: `https://93.184.215.14/${"a".repeat(2100)}` }, "VALIDATION_ERROR"],
    [{ url: "https://93.184.215.14/a b" }, "VALIDATION_ERROR"],
    [{ url: "https://93.184.215.14/\u0000" }, "VALIDATION_ERROR"],
    [{ url: "not a url" }, "VALIDATION_ERROR"],
    [{ url: 42 }, "VALIDATION_ERROR"],
    [{}, "VALIDATION_ERROR"],
    [{ url: PUBLIC, events: ["key.deleted"] }, "UNKNOWN_EVENT_TYPE"],
    [{ url: PUBLIC, events: ["__proto__"] }, "UNKNOWN_EVENT_TYPE"],
    [{ url: PUBLIC, events: [] }, "VALIDATION_ERROR"],
    [{ url: PUBLIC, events: "key.created" }, "VALIDATION_ERROR"],
    [{ url: PUBLIC, events: [7] }, "VALIDATION_ERROR"],
    [{ url: PUBLIC, events: Array(100).fill("key.created") }, "VALIDATION_ERROR"],
    [{ url: PUBLIC, secret: "whsec_mine" }, "VALIDATION_ERROR"],
    [{ url: PUBLIC, description: "x".repeat(1001) }, "VALIDATION_ERROR"],
  ])("answers %j with 400 %s", async (body, code) => {
    expectCode(await create(body), 400, code);
  });

  it("answers hostile ids and bodies with 4xx, never 500", async () => {
    const { id } = (await create({ url: PUBLIC })).json().data;
    for (const [method, url, json] of [
      ["GET", "/v1/webhooks/wh_%00", undefined],
      ["GET", "/v1/webhooks/key_0000000000000000000000", undefined],
      ["PATCH", `/v1/webhooks/${id}`, {}],
      ["PATCH", `/v1/webhooks/${id}`, { status: "paused" }],
      ["PATCH", `/v1/webhooks/${id}`, { events: ["nope"] }],
      ["GET", `/v1/webhooks/${id}/deliveries?limit=0`, undefined],
      ["GET", `/v1/webhooks/${id}/deliveries?status=lost`, undefined],
      ["GET", `/v1/webhooks/${id}/deliveries?cursor=${"x".repeat(50)}`, undefined],
      ["POST", `/v1/webhooks/${id}/deliveries/dlv_x/retry`, undefined],
      ["POST", `/v1/webhooks/${id}/deliveries/dlv_0000000000000000000000/retry`, undefined],
      ["GET", "/v1/webhooks?environment=prod", undefined],
    ] as const) {
      const res = await h.call(method, url, { key: co.key, ...(json === undefined ? {} : { json }) });
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(500);
    }
    const notJson = await h.call("POST", "/v1/webhooks", {
      key: co.key,
      headers: { "content-type": "application/json" },
      payload: "{not json",
    });
    expectCode(notJson, 400, "INVALID_JSON");
  });

  it("shows the signing secret once, at creation and at rotation, and keeps it sealed", async () => {
    const created = await create({ url: PUBLIC, description: "Once" });
    expect(created.statusCode, created.body).toBe(201);
    const { id, secret } = created.json().data;
    const rotated = await h.call("POST", `/v1/webhooks/${id}/rotate-secret`, { key: co.key });
    expect(rotated.statusCode, rotated.body).toBe(200);
    const fresh = rotated.json().data.secret;
    expect(rotated.json().data.previous_secret_expires_at).toBe(
      new Date(h.clock.now.getTime() + 24 * 3600 * 1000).toISOString(),
    );
    const bodies = [
      (await h.call("GET", "/v1/webhooks", { key: co.key })).body,
      (await h.call("GET", `/v1/webhooks/${id}`, { key: co.key })).body,
      (await h.call("PATCH", `/v1/webhooks/${id}`, { key: co.key, json: { description: "Twice" } })).body,
      (await h.call("GET", `/v1/webhooks/${id}/deliveries`, { key: co.key })).body,
      (await h.call("GET", "/v1/audit?action=webhook.*", { key: co.key })).body,
    ];
    for (const body of bodies) {
      expect(body).not.toContain(secret.slice(6));
      expect(body).not.toContain(fresh.slice(6));
    }
    const stored = await h.store.db
      .selectFrom("webhook_endpoints")
      .selectAll()
      .where("id", "=", id)
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(stored)).not.toContain(secret.slice(6));
    expect(JSON.stringify(stored)).not.toContain(fresh.slice(6));
    const events = await h.store.db
      .selectFrom("events")
      .select("data")
      .where("company_id", "=", co.id)
      .execute();
    expect(JSON.stringify(events)).not.toContain(fresh.slice(6));
  });

  it("audits every write", async () => {
    const { id } = (await create({ url: PUBLIC })).json().data;
    await h.call("PATCH", `/v1/webhooks/${id}`, { key: co.key, json: { events: ["key.revoked"] } });
    await h.call("PATCH", `/v1/webhooks/${id}`, { key: co.key, json: { status: "disabled" } });
    await h.call("POST", `/v1/webhooks/${id}/rotate-secret`, { key: co.key });
    await h.call("DELETE", `/v1/webhooks/${id}`, { key: co.key });
    const res = await h.call("GET", "/v1/audit?action=webhook.*&limit=100", { key: co.key });
    const actions = res
      .json()
      .data.events.filter((e: { target: { id: string } | null }) => e.target?.id === id)
      .map((e: { action: string }) => e.action)
      .reverse();
    expect(actions).toEqual([
      "webhook.created",
      "webhook.updated",
      "webhook.disabled",
      "webhook.secret_rotated",
      "webhook.deleted",
    ]);
    expect((await h.call("GET", `/v1/webhooks/${id}`, { key: co.key })).statusCode).toBe(404);
  });

  it("refuses a test event to a disabled endpoint with 409 WEBHOOK_DISABLED", async () => {
    const { id } = (await create({ url: PUBLIC })).json().data;
    await h.call("PATCH", `/v1/webhooks/${id}`, { key: co.key, json: { status: "disabled" } });
    const res = await h.call("POST", `/v1/webhooks/${id}/test`, { key: co.key });
    expectCode(res, 409, "WEBHOOK_DISABLED");
    const shown = (await h.call("GET", `/v1/webhooks/${id}`, { key: co.key })).json().data;
    expect(shown).toMatchObject({ status: "disabled", disabled_reason: "Disabled by a person." });
  });

  it("pages deliveries newest first", async () => {
    const { id } = (await create({ url: PUBLIC, events: ["key.created"] })).json().data;
    for (let i = 0; i < 3; i++) await h.createKey(co, { name: `paged ${i}` });
    const first = (await h.call("GET", `/v1/webhooks/${id}/deliveries?limit=2`, { key: co.key })).json().data;
    expect(first.deliveries).toHaveLength(2);
    const rest = (
      await h.call("GET", `/v1/webhooks/${id}/deliveries?limit=2&cursor=${first.next_cursor}`, {
        key: co.key,
      })
    ).json().data;
    expect(rest).toMatchObject({ next_cursor: null });
    expect(rest.deliveries).toHaveLength(1);
    const all = [...first.deliveries, ...rest.deliveries].map((d: { id: string }) => d.id);
    expect(new Set(all).size).toBe(3);
    expect(first.deliveries[0].status).toBe("pending");
  });

  describe("live and test", () => {
    it("makes a test caller's endpoint a test endpoint, and lists only test ones to it", async () => {
      const live = (await create({ url: PUBLIC })).json().data;
      const made = await create({ url: PUBLIC }, testKey);
      expect(made.statusCode, made.body).toBe(201);
      expect(made.json().data.environment).toBe("test");
      expect(live.environment).toBe("live");
      for (const url of ["/v1/webhooks", "/v1/webhooks?environment=live"]) {
        const listed = (await h.call("GET", url, { key: testKey })).json().data.webhooks;
        expect(listed.map((w: { environment: string }) => w.environment)).not.toContain("live");
        expect(listed.map((w: { id: string }) => w.id)).toContain(made.json().data.id);
      }
      // A live caller sees both, and can narrow.
      const liveList = (await h.call("GET", "/v1/webhooks?environment=test", { key: co.key })).json().data
        .webhooks;
      expect(liveList.map((w: { id: string }) => w.id)).toContain(made.json().data.id);
      expect(liveList.map((w: { environment: string }) => w.environment)).not.toContain("live");
    });

    it("answers a test caller 404 on every route of a live endpoint, and changes nothing", async () => {
      const live = (await create({ url: PUBLIC })).json().data;
      await h.createKey(co, { name: "queued for live" });
      const delivery = (await h.call("GET", `/v1/webhooks/${live.id}/deliveries`, { key: co.key })).json()
        .data.deliveries[0];
      const before = (await h.call("GET", `/v1/webhooks/${live.id}`, { key: co.key })).json().data;
      for (const [method, url, json] of [
        ["GET", `/v1/webhooks/${live.id}`, undefined],
        ["PATCH", `/v1/webhooks/${live.id}`, { status: "disabled" }],
        ["DELETE", `/v1/webhooks/${live.id}`, undefined],
        ["POST", `/v1/webhooks/${live.id}/rotate-secret`, undefined],
        ["GET", `/v1/webhooks/${live.id}/deliveries`, undefined],
        ["POST", `/v1/webhooks/${live.id}/deliveries/${delivery.id}/retry`, undefined],
        ["POST", `/v1/webhooks/${live.id}/test`, undefined],
      ] as const) {
        const res = await h.call(method, url, { key: testKey, ...(json === undefined ? {} : { json }) });
        expectCode(res, 404, "NOT_FOUND");
      }
      expect((await h.call("GET", `/v1/webhooks/${live.id}`, { key: co.key })).json().data).toEqual(before);
    });
  });
});
