import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { RETRY_SCHEDULE_SECONDS } from "../../src/core/webhooks.ts";
import { createRuntime, type Runtime } from "../../src/runtime.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness, SECRET } from "../helpers/harness.ts";
import { Receiver } from "../helpers/webhook-receiver.ts";

const TIMEOUT_MS = 1000;
const LOCAL = ["127.0.0.1/32"];

interface Endpoint {
  id: string;
  secret: string;
  url: string;
}

describe.each(BACKENDS)("webhook delivery on %s", (kind) => {
  let h: Harness;
  let co: Company;
  const receivers: Receiver[] = [];
  const runtimes: Runtime[] = [];

  beforeAll(async () => {
    h = await createHarness(kind, { webhooks: { timeoutMs: TIMEOUT_MS, allowedNetworks: LOCAL } });
  });
  afterAll(() => h.close());
  beforeEach(async () => {
    // The receivers verify with the library's own check, which compares webhook-timestamp with the
    // wall clock: each test starts from now and moves the injected clock forward from there.
    h.clock.now = new Date();
    co = await h.createCompany();
  });
  afterEach(async () => {
    for (const r of receivers.splice(0)) await r.close();
    for (const r of runtimes.splice(0)) await r.close();
    // Each test's endpoints go, so no later test's tick sends to a receiver that is closed.
    await h.store.db.deleteFrom("webhook_endpoints").execute();
  });

  async function receiver(): Promise<Receiver> {
    const r = await Receiver.start();
    receivers.push(r);
    return r;
  }

  /** Another node on the same database: its own runtime and deliverer, the same clock. */
  async function otherNode(allowedNetworks = LOCAL): Promise<Runtime> {
    const runtime = await createRuntime({
      store: h.store,
      secret: SECRET,
      catalog: h.catalog,
      keyPrefix: "lk",
      services: { clock: h.clock.read, webhooks: { timeoutMs: TIMEOUT_MS, allowedNetworks } },
    });
    runtimes.push(runtime);
    return runtime;
  }

  async function endpoint(url: string, body: Record<string, unknown> = {}, as = co.key): Promise<Endpoint> {
    const res = await h.call("POST", "/v1/webhooks", { key: as, json: { url, ...body } });
    expect(res.statusCode, res.body).toBe(201);
    const data = res.json().data;
    return { id: data.id, secret: data.secret, url };
  }

  const tick = () => h.services.webhookDeliverer.tick();

  async function deliveries(id: string) {
    const res = await h.call("GET", `/v1/webhooks/${id}/deliveries`, { key: co.key });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data.deliveries as {
      id: string;
      event_id: string;
      event_type: string;
      status: string;
      attempts: number;
      last_error: string | null;
      attempt_log: { status_code: number | null; error: string | null }[];
    }[];
  }

  async function getEndpoint(id: string) {
    const res = await h.call("GET", `/v1/webhooks/${id}`, { key: co.key });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data;
  }

  const newKey = (body: Record<string, unknown> = {}) => h.createKey(co, { name: "Hooked", ...body });

  it("signs each delivery so that standardwebhooks' own verifier accepts it, and sends no secret", async () => {
    const r = await receiver();
    const ep = await endpoint(r.url, { events: ["key.created"] });
    expect(ep.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const key = await newKey({ with_secret: true });
    expect(await tick()).toBe(1);
    expect(r.received).toHaveLength(1);
    const got = r.received[0] as (typeof r.received)[0];
    const payload = new Webhook(ep.secret).verify(got.body, got.headers) as {
      type: string;
      timestamp: string;
      data: Record<string, unknown>;
    };
    expect(payload.type).toBe("key.created");
    expect(payload.data.id).toBe(key.id);
    expect(payload.timestamp).toBe(h.clock.now.toISOString());
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.headers["webhook-id"]).toMatch(/^msg_[0-9A-Za-z]{22}$/);
    // Neither the key, its secret, a hash, nor the endpoint's signing secret travels in an event.
    expect(got.body).not.toContain(key.key);
    expect(got.body).not.toContain(key.secret as string);
    expect(got.body).not.toMatch(/"(key|secret|key_hash|secret_hash|password|password_hash)"/);
    expect(got.body).not.toContain(ep.secret);
    // A wrong secret is refused by the same verifier: the signature is over this endpoint's secret.
    const other = await endpoint(r.url);
    expect(() => new Webhook(other.secret).verify(got.body, got.headers)).toThrow();
    const [delivery] = await deliveries(ep.id);
    expect(delivery).toMatchObject({ status: "delivered", attempts: 1, event_id: got.headers["webhook-id"] });
  });

  it("retries a failing receiver on the schedule with the same webhook-id, until it answers 2xx", async () => {
    const r = await receiver();
    r.answers = [{ status: 500 }, { status: 502 }];
    const ep = await endpoint(r.url);
    await newKey();
    expect(await tick()).toBe(1);
    // Not due again until the schedule's first wait (5 s, plus up to 10 % jitter) has passed.
    h.clock.advance(4);
    expect(await tick()).toBe(0);
    h.clock.advance(RETRY_SCHEDULE_SECONDS[0] * 1.1);
    expect(await tick()).toBe(1);
    h.clock.advance(RETRY_SCHEDULE_SECONDS[1] * 0.8);
    expect(await tick()).toBe(0);
    h.clock.advance(RETRY_SCHEDULE_SECONDS[1] * 0.35);
    expect(await tick()).toBe(1);
    expect(r.received).toHaveLength(3);
    expect(new Set(r.ids()).size).toBe(1);
    const [delivery] = await deliveries(ep.id);
    expect(delivery?.status).toBe("delivered");
    expect(delivery?.attempt_log.map((a) => a.status_code)).toEqual([500, 502, 204]);
  });

  it("counts a receiver that does not answer within the timeout as a failed attempt", async () => {
    const r = await receiver();
    r.answers = ["hang"];
    const ep = await endpoint(r.url);
    await newKey();
    const started = Date.now();
    await tick();
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 2000);
    const [delivery] = await deliveries(ep.id);
    expect(delivery).toMatchObject({ status: "pending", attempts: 1 });
    expect(delivery?.last_error).toBe(`no answer within ${TIMEOUT_MS} ms`);
    h.clock.advance(10);
    await tick();
    expect((await deliveries(ep.id))[0]?.status).toBe("delivered");
  });

  it("disables the endpoint when it answers 410 Gone, queues nothing more, and PATCH re-enables it", async () => {
    const r = await receiver();
    r.answers = [{ status: 410 }];
    const ep = await endpoint(r.url);
    await newKey();
    await tick();
    const disabled = await getEndpoint(ep.id);
    expect(disabled.status).toBe("disabled");
    expect(disabled.disabled_reason).toMatch(/410/);
    expect((await deliveries(ep.id))[0]?.status).toBe("failed");
    await newKey();
    h.clock.advance(3600);
    expect(await tick()).toBe(0);
    expect(await deliveries(ep.id)).toHaveLength(1);
    const res = await h.call("PATCH", `/v1/webhooks/${ep.id}`, { key: co.key, json: { status: "enabled" } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().data).toMatchObject({ status: "enabled", disabled_reason: null });
    await newKey();
    await tick();
    expect(r.received).toHaveLength(2);
    const audit = await h.call("GET", "/v1/audit?action=webhook.*", { key: co.key });
    expect(audit.json().data.events.map((e: { action: string }) => e.action)).toEqual(
      expect.arrayContaining(["webhook.created", "webhook.disabled", "webhook.enabled"]),
    );
  });

  it("does not follow a redirect: the target gets nothing and the attempt failed", async () => {
    const target = await receiver();
    const r = await receiver();
    r.fallback = { status: 302, headers: { location: `${target.url}/elsewhere` } };
    const ep = await endpoint(r.url);
    await newKey();
    await tick();
    h.clock.advance(10);
    await tick();
    expect(r.received).toHaveLength(2);
    expect(target.received).toHaveLength(0);
    const [delivery] = await deliveries(ep.id);
    expect(delivery).toMatchObject({
      status: "pending",
      attempts: 2,
      last_error: "redirect (302) not followed",
    });
  });

  it("honours Retry-After instead of the schedule", async () => {
    const r = await receiver();
    r.answers = [{ status: 503, headers: { "retry-after": "120" } }];
    await endpoint(r.url);
    await newKey();
    await tick();
    h.clock.advance(RETRY_SCHEDULE_SECONDS[0] * 2);
    expect(await tick()).toBe(0);
    h.clock.advance(120);
    expect(await tick()).toBe(1);
    expect(r.received).toHaveLength(2);
  });

  it("delivers one at a time per endpoint, in order: a failing event holds back the later ones", async () => {
    const r = await receiver();
    r.answers = [{ status: 500 }];
    const ep = await endpoint(r.url);
    const keys = [
      await newKey({ name: "first" }),
      await newKey({ name: "second" }),
      await newKey({ name: "third" }),
    ];
    expect(await tick()).toBe(1);
    expect(await tick()).toBe(0);
    h.clock.advance(10);
    for (let i = 0; i < 5; i++) await tick();
    const names = r.received.map((x) => JSON.parse(x.body).data.name);
    expect(names).toEqual(["first", "first", "second", "third"]);
    expect((await deliveries(ep.id)).map((d) => d.status)).toEqual(["delivered", "delivered", "delivered"]);
    expect(keys).toHaveLength(3);
  });

  it("sends nothing else to an endpoint while an attempt is in flight, even an older delivery retried", async () => {
    const r = await receiver();
    const ep = await endpoint(r.url, { events: ["key.created"] });
    await newKey({ name: "first" });
    expect(await tick()).toBe(1);
    const [first] = await deliveries(ep.id);
    await newKey({ name: "second" });
    // The second is claimed (in flight, its outcome not yet known); the first is asked for again.
    const inFlight = await h.services.webhookDeliverer.claim();
    expect(inFlight.map((c) => c.endpoint_id)).toEqual([ep.id]);
    const retried = await h.call("POST", `/v1/webhooks/${ep.id}/deliveries/${first?.id}/retry`, {
      key: co.key,
    });
    expect(retried.statusCode, retried.body).toBe(200);
    expect(await h.services.webhookDeliverer.claim()).toEqual([]);
    // The abandoned attempt's lease lapses: then the endpoint's queue goes on, oldest first.
    h.clock.advance(60);
    expect(await tick()).toBe(1);
    expect(await tick()).toBe(1);
    expect(r.received.map((m) => JSON.parse(m.body).data.name)).toEqual(["first", "first", "second"]);
  });

  it("gives up after the last retry, disables the endpoint with a reason, and moves on when re-enabled", async () => {
    const r = await receiver();
    r.fallback = { status: 500 };
    const ep = await endpoint(r.url);
    await newKey({ name: "doomed" });
    await newKey({ name: "next" });
    await tick();
    for (const wait of RETRY_SCHEDULE_SECONDS) {
      h.clock.advance(wait * 1.1);
      expect(await tick()).toBe(1);
    }
    expect(r.received).toHaveLength(RETRY_SCHEDULE_SECONDS.length + 1);
    const disabled = await getEndpoint(ep.id);
    expect(disabled.status).toBe("disabled");
    expect(disabled.disabled_reason).toMatch(/kept failing/);
    const [next, doomed] = await deliveries(ep.id);
    expect(doomed).toMatchObject({ status: "failed", attempts: RETRY_SCHEDULE_SECONDS.length + 1 });
    expect(next?.status).toBe("pending");
    r.fallback = { status: 200 };
    await h.call("PATCH", `/v1/webhooks/${ep.id}`, { key: co.key, json: { status: "enabled" } });
    await tick();
    expect(JSON.parse(r.received.at(-1)?.body as string).data.name).toBe("next");
    // A person re-queues the given-up delivery: sent again now, with its webhook-id.
    const retried = await h.call("POST", `/v1/webhooks/${ep.id}/deliveries/${doomed?.id}/retry`, {
      key: co.key,
    });
    expect(retried.statusCode, retried.body).toBe(200);
    await tick();
    expect(r.ids().at(-1)).toBe(doomed?.event_id);
    expect((await deliveries(ep.id)).map((d) => d.status)).toEqual(["delivered", "delivered"]);
    // The retry started the schedule over (one attempt since), and the log still holds the earlier ones.
    const again = (await deliveries(ep.id)).find((d) => d.id === doomed?.id);
    expect(again?.attempts).toBe(1);
    expect(again?.attempt_log.length).toBe(RETRY_SCHEDULE_SECONDS.length + 2);
  });

  it("loses nothing when a node stops mid-delivery: its lease expires and another node sends it", async () => {
    const r = await receiver();
    const ep = await endpoint(r.url);
    await newKey();
    // This node claims the attempt, then dies before sending (nothing is recorded).
    expect(await h.services.webhookDeliverer.claim()).toHaveLength(1);
    const other = await otherNode();
    expect(await other.services.webhookDeliverer.tick()).toBe(0);
    h.clock.advance((TIMEOUT_MS + 30_000) / 1000 + 1);
    expect(await other.services.webhookDeliverer.tick()).toBe(1);
    expect(r.received).toHaveLength(1);
    const [delivery] = await deliveries(ep.id);
    expect(delivery).toMatchObject({ status: "delivered", attempts: 1, event_id: r.ids()[0] });
  });

  it("makes each attempt on exactly one of two nodes sharing the database", async () => {
    const receiversUsed = [await receiver(), await receiver(), await receiver()];
    for (const r of receiversUsed) await endpoint(r.url);
    for (let i = 0; i < 4; i++) await newKey({ name: `k${i}` });
    const other = await otherNode();
    for (let round = 0; round < 8; round++) {
      await Promise.all([h.services.webhookDeliverer.tick(), other.services.webhookDeliverer.tick()]);
    }
    for (const r of receiversUsed) {
      expect(r.received.map((x) => JSON.parse(x.body).data.name)).toEqual(["k0", "k1", "k2", "k3"]);
      expect(new Set(r.ids()).size).toBe(4);
    }
  });

  it("sends test objects' events to test endpoints only, and live ones to live endpoints only", async () => {
    const live = await receiver();
    const test = await receiver();
    const testKey = await h.createKey(co, { name: "test manager", environment: "test" });
    await endpoint(live.url);
    const testEndpoint = await endpoint(test.url, {}, testKey.key);
    const listed = await h.call("GET", "/v1/webhooks", { key: testKey.key });
    expect(listed.json().data.webhooks.map((w: { id: string }) => w.id)).toEqual([testEndpoint.id]);
    await newKey({ name: "a live key" });
    await newKey({ name: "a test key", environment: "test" });
    await tick();
    await tick();
    expect(live.received.map((x) => JSON.parse(x.body).data.name)).toEqual(["a live key"]);
    expect(test.received.map((x) => JSON.parse(x.body).data.name)).toEqual(["a test key"]);
    // Made by the live management key, which a test endpoint's reader may not learn, as the API hides it.
    expect(JSON.parse(test.received[0]?.body as string).data.created_by).toBe("live");
    expect(JSON.parse(live.received[0]?.body as string).data.created_by).toBe(co.keyId);
    // The test route's event goes to its one endpoint.
    const sent = await h.call("POST", `/v1/webhooks/${testEndpoint.id}/test`, { key: testKey.key });
    expect(sent.statusCode, sent.body).toBe(202);
    await tick();
    expect(test.received.map((x) => JSON.parse(x.body).type)).toEqual(["key.created", "webhook.test"]);
    expect(live.received).toHaveLength(1);
    expect(
      new Webhook(testEndpoint.secret).verify(
        test.received[1]?.body as string,
        test.received[1]?.headers as Record<string, string>,
      ),
    ).toMatchObject({ type: "webhook.test" });
  });

  it("signs with the old and the new secret for 24 h after rotate-secret, then with the new one only", async () => {
    const r = await receiver();
    const ep = await endpoint(r.url);
    const rotated = await h.call("POST", `/v1/webhooks/${ep.id}/rotate-secret`, { key: co.key });
    expect(rotated.statusCode, rotated.body).toBe(200);
    const fresh = rotated.json().data.secret as string;
    expect(fresh).not.toBe(ep.secret);
    await newKey();
    await tick();
    const first = r.received[0] as (typeof r.received)[0];
    expect(first.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(new Webhook(ep.secret).verify(first.body, first.headers)).toBeTruthy();
    expect(new Webhook(fresh).verify(first.body, first.headers)).toBeTruthy();
    h.clock.advance(24 * 3600 + 1);
    await newKey();
    await tick();
    const later = r.received[1] as (typeof r.received)[0];
    const signatures = later.headers["webhook-signature"]?.split(" ") ?? [];
    // The wall-clock tolerance of verify() rules it out a day ahead; the signature is compared instead.
    const at = new Date(Number(later.headers["webhook-timestamp"]) * 1000);
    expect(signatures).toEqual([
      new Webhook(fresh).sign(later.headers["webhook-id"] as string, at, later.body),
    ]);
  });

  it("emits the credential and people events, with views and no secrets", async () => {
    const r = await receiver();
    await endpoint(r.url);
    const created = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "Hooked user", permissions: ["customer:read"] },
    });
    const id = created.json().data.id;
    await h.call("PATCH", `/v1/credentials/${id}`, { key: co.key, json: { name: "Renamed" } });
    await h.call("PATCH", `/v1/credentials/${id}`, { key: co.key, json: { status: "inactive" } });
    const owner = await h.store.db
      .selectFrom("users")
      .innerJoin("memberships", "memberships.user_id", "users.id")
      .selectAll("users")
      .where("memberships.company_id", "=", co.id)
      .executeTakeFirstOrThrow();
    const ctx = {
      actor: {
        kind: "user" as const,
        userId: owner.id,
        email: owner.email,
        companyId: co.id,
        role: "owner" as const,
        sessionId: "ses_test",
        totpEnrolled: true,
        environment: "live" as const,
        permissions: [],
      },
      ip: null,
      userAgent: null,
      totpUsed: false,
    };
    const invited = await h.services.people.invite(ctx, {
      email: `hooked-${co.id}@example.test`,
      role: "developer",
    });
    await h.services.people.update(ctx, invited.id, { role: "moderator" });
    for (let i = 0; i < 6; i++) await tick();
    const types = r.received.map((x) => JSON.parse(x.body).type);
    expect(types).toEqual([
      "credential.created",
      "credential.updated",
      "credential.deactivated",
      "user.invited",
      "user.role_changed",
    ]);
    for (const x of r.received) {
      expect(x.body).not.toMatch(/"(key|secret|password|password_hash|temporary_password|totp_secret)"/);
    }
    expect(r.received.map((x) => x.body).join()).not.toContain(invited.temporary_password);
    expect(JSON.parse(r.received[4]?.body as string).data).toMatchObject({
      role: "moderator",
      previous_role: "developer",
    });
  });

  it("sends key.rotated with both views and key.revoked, never the new key", async () => {
    const r = await receiver();
    await endpoint(r.url, { events: ["key.rotated", "key.revoked"] });
    const key = await newKey();
    const rotated = await h.call("POST", `/v1/keys/${key.id}/rotate`, {
      key: co.key,
      json: { grace_seconds: 60 },
    });
    const fresh = rotated.json().data;
    await h.call("DELETE", `/v1/keys/${fresh.id}`, { key: co.key });
    await tick();
    await tick();
    const [rot, rev] = r.received.map((x) => JSON.parse(x.body));
    expect(rot.type).toBe("key.rotated");
    expect(rot.data.old_key).toMatchObject({ id: key.id, replaced_by: fresh.id });
    expect(rot.data.new_key).toMatchObject({ id: fresh.id });
    expect(JSON.stringify(rot)).not.toContain(fresh.key);
    expect(rev).toMatchObject({ type: "key.revoked", data: { id: fresh.id, status: "revoked" } });
  });

  it("delivers key.usage_exhausted, which the spending statement writes itself, to the endpoints that hear it", async () => {
    const r = await receiver();
    const hears = await endpoint(r.url, { events: ["key.usage_exhausted"] });
    const deaf = await endpoint(r.url, { events: ["key.created"] });
    const key = await newKey({ permissions: ["payin:read"], remaining: 2 });
    expect(await tick()).toBe(1); // key.created, to the endpoint that hears it
    const verifier = await h.verifyKey();
    for (let i = 0; i < 3; i++) await h.call("POST", "/v1/verify", { key: verifier, json: { key: key.key } });
    expect(await tick()).toBe(1);
    const got = r.received.at(-1) as (typeof r.received)[0];
    const payload = new Webhook(hears.secret).verify(got.body, got.headers) as {
      type: string;
      data: Record<string, unknown>;
    };
    expect(payload.type).toBe("key.usage_exhausted");
    expect(payload.data).toMatchObject({ key_id: key.id, remaining: 0 });
    expect((await deliveries(hears.id)).map((d) => d.event_type)).toEqual(["key.usage_exhausted"]);
    expect((await deliveries(deaf.id)).map((d) => d.event_type)).toEqual(["key.created"]);
  });

  it("refuses at delivery time an address the node does not allow (SSRF), recording why", async () => {
    const r = await receiver();
    const ep = await endpoint(r.url);
    await newKey();
    const strict = await otherNode([]);
    expect(await strict.services.webhookDeliverer.tick()).toBe(1);
    expect(r.received).toHaveLength(0);
    const [delivery] = await deliveries(ep.id);
    expect(delivery?.last_error).toMatch(/^refused: 127\.0\.0\.1 is a loopback/);
  });
});
