import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Changes } from "../../src/cluster/changes.ts";
import { fingerprint } from "../../src/core/hashing.ts";
import { generateToken } from "../../src/core/key-format.ts";
import { PING_MS } from "../../src/http/routes/stream-verify-changes.ts";
import { ChangeStream, type StreamEvent } from "../../src/services/change-stream.ts";
import { PLATFORM_SCOPE } from "../../src/services/verification.ts";
import { BACKENDS, createTestSchema } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";
import { startNode } from "../helpers/nodes.ts";

/** One server-sent event as a client reads it. */
interface Sse {
  event: string;
  id: string | null;
  data: Record<string, unknown>;
}

/** A stream read by a real HTTP client: events are queued as they arrive, `next` waits for one. */
async function open(url: string, headers: Record<string, string>) {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  const queue: Sse[] = [];
  const waiting: ((e: Sse) => void)[] = [];
  if (res.ok && res.body) {
    void (async () => {
      const decoder = new TextDecoder();
      let buffer = "";
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end = buffer.indexOf("\n\n");
          while (end >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf("\n\n");
            const fields = Object.fromEntries(
              block
                .split("\n")
                .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 2)]),
            );
            if (!fields.event) continue;
            const e = { event: fields.event, id: fields.id ?? null, data: JSON.parse(fields.data ?? "{}") };
            if (e.event === "ping") continue;
            const w = waiting.shift();
            if (w) w(e);
            else queue.push(e);
          }
        }
      } catch {
        // aborted
      }
    })();
  }
  return {
    res,
    next(withinMs = 2000): Promise<Sse> {
      const queued = queue.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no event within ${withinMs} ms`)), withinMs);
        waiting.push((e) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
    },
    /** Nothing more arrives within the time (pings aside). */
    async quiet(ms = 300) {
      await new Promise((r) => setTimeout(r, ms));
      return queue.length === 0;
    },
    close: () => controller.abort(),
  };
}

describe.each(BACKENDS)("GET /v1/verify/changes on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let other: Company;
  let base = "";
  let platform: string;

  beforeAll(async () => {
    h = await createHarness(kind);
    await h.app.listen({ port: 0, host: "127.0.0.1" });
    const address = h.app.server.address();
    base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
    co = await h.createCompany("Stream Co");
    other = await h.createCompany("Other Stream Co");
    platform = await h.verifyKey("sdk");
  });
  afterAll(() => h.close());

  const stream = (key: string, extra: Record<string, string> = {}) =>
    open(`${base}/v1/verify/changes`, { "x-api-key": key, ...extra });
  const revoke = async (id: string) =>
    expect((await h.call("DELETE", `/v1/keys/${id}`, { key: co.key })).statusCode).toBe(200);

  it("tells a platform verify key of every revocation, new key and API user change, as it happens", async () => {
    const s = await stream(platform);
    expect(s.res.status).toBe(200);
    expect(s.res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect((await s.next()).event).toBe("ready");
    const k = await h.createKey(co, { permissions: ["payin:read"] });
    expect(await s.next()).toMatchObject({
      event: "change",
      data: { kind: "key_created", fingerprint: fingerprint(k.key) },
    });
    await revoke(k.id);
    const revoked = await s.next();
    expect(revoked).toMatchObject({ event: "change", data: { kind: "key", key_id: k.id } });
    expect(revoked.id).toMatch(/^[0-9a-f]{12}-\d+$/);
    const renamed = await h.call("PATCH", `/v1/credentials/${other.credentialId}`, {
      key: other.key,
      json: { name: "Renamed" },
    });
    expect(renamed.statusCode).toBe(200);
    expect(await s.next()).toMatchObject({
      event: "change",
      data: { kind: "credential", credential_id: other.credentialId },
    });
    // The stream says which key changed, never the key.
    expect(JSON.stringify(revoked)).not.toContain(k.key);
    s.close();
  });

  it("tells a company's verify key only of its own company's changes, and a test one only of test keys", async () => {
    const companyVerifier = await h.createKey(co, { permissions: ["keys:verify"] });
    const testVerifier = await h.createKey(co, { environment: "test", permissions: ["keys:verify"] });
    const mine = await stream(companyVerifier.key);
    const tests = await stream(testVerifier.key);
    expect((await mine.next()).event).toBe("ready");
    expect((await tests.next()).event).toBe("ready");

    const theirs = await h.createKey(other, { permissions: ["payin:read"] });
    await h.call("DELETE", `/v1/keys/${theirs.id}`, { key: other.key });
    const live = await h.createKey(co, { permissions: ["payin:read"] });
    await revoke(live.id);
    const test = await h.createKey(co, { environment: "test", permissions: ["payin:read"] });
    await revoke(test.id);

    const seen: string[] = [];
    for (let i = 0; i < 4; i++) seen.push(String((await mine.next()).data.key_id ?? "created"));
    expect(seen).toEqual(["created", live.id, "created", test.id]);
    expect(await mine.quiet()).toBe(true);
    expect(await tests.next()).toMatchObject({
      data: { kind: "key_created", fingerprint: fingerprint(test.key) },
    });
    expect(await tests.next()).toMatchObject({ data: { kind: "key", key_id: test.id } });
    expect(await tests.quiet()).toBe(true);
    mine.close();
    tests.close();
  });

  it("catches a client up from its Last-Event-ID, and tells one it cannot catch up to start afresh", async () => {
    const first = await stream(platform);
    const ready = await first.next();
    first.close();
    const a = await h.createKey(co, { permissions: ["payin:read"] });
    await revoke(a.id);
    const resumed = await stream(platform, { "last-event-id": ready.id as string });
    expect((await resumed.next()).event).toBe("ready");
    expect((await resumed.next()).data).toMatchObject({ kind: "key_created" });
    expect((await resumed.next()).data).toMatchObject({ kind: "key", key_id: a.id });
    resumed.close();
    for (const id of ["elsewhere-12", "nonsense", `${(ready.id as string).split("-")[0]}-999999999`]) {
      const lost = await stream(platform, { "last-event-id": id });
      expect((await lost.next()).event).toBe("ready");
      expect((await lost.next()).event, id).toBe("reset");
      lost.close();
    }
  });

  it("says when this node is deaf to the others, and to start afresh when it hears them again", async () => {
    const s = await stream(platform);
    const ready = await s.next();
    h.services.changeStream.setHearing(false);
    expect(await s.next()).toMatchObject({ event: "degraded", data: { ttl_ms: 1000 } });
    // A client that connects meanwhile is told at once.
    const late = await stream(platform);
    expect((await late.next()).event).toBe("ready");
    expect((await late.next()).event).toBe("degraded");
    h.services.changeStream.setHearing(true);
    expect((await s.next()).event).toBe("reset");
    expect((await late.next()).event).toBe("reset");
    s.close();
    late.close();
    // One that missed those while away cannot be caught up past them.
    const back = await stream(platform, { "last-event-id": ready.id as string });
    expect((await back.next()).event).toBe("ready");
    expect((await back.next()).event).toBe("reset");
    back.close();
  });

  // The security suite's one-shot calls cannot wait on an open stream: its refusals are checked here.
  it("is for live, allowed verify keys only: dead callers 401, others 403", async () => {
    const get = (headers: Record<string, string>, ip?: string) =>
      h.call("GET", "/v1/verify/changes", { headers, ...(ip ? { ip } : {}) });
    const verifier = await h.createKey(co, { permissions: ["keys:verify"] });
    const revoked = await h.createKey(co, { permissions: ["keys:verify"] });
    await revoke(revoked.id);
    const dead: Record<string, string>[] = [
      {},
      { "x-api-key": generateToken("lk", "live", "sk") },
      { "x-api-key": "lk_live_sk_short" },
      { "x-api-key": revoked.key },
      { authorization: `Bearer ${revoked.key}` },
      { authorization: "Basic bm9jb2xvbg==" },
    ];
    for (const headers of dead) {
      const res = await get(headers);
      expect(res.statusCode, JSON.stringify(headers)).toBe(401);
      expect(res.json().error.code).toBe("UNAUTHORIZED");
    }
    const manager = await h.createKey(co, { permissions: ["payin:read", "keys:manage"] });
    const lacking = await get({ "x-api-key": manager.key });
    expect(lacking.statusCode).toBe(403);
    expect(lacking.json().error.code).toBe("INSUFFICIENT_PERMISSIONS");
    const fenced = await h.createKey(co, { permissions: ["keys:verify"], allowed_ips: ["10.0.0.0/8"] });
    expect((await get({ "x-api-key": fenced.key }, "192.0.2.1")).json().error.code).toBe("IP_NOT_ALLOWED");
    // And the allowed ones are let in, over a real connection.
    for (const key of [verifier.key, platform]) {
      const s = await stream(key);
      expect(s.res.status).toBe(200);
      expect((await s.next()).event).toBe("ready");
      s.close();
    }
  });
});

describe.runIf(BACKENDS.includes("postgres"))("a node that stops (SIGTERM's drain)", () => {
  it("ends its streams within a ping of stopping to listen, so its drain is not held up", async () => {
    const db = await createTestSchema();
    const node = await startNode({ databaseUrl: db.url, prefix: `lk-stream-${Date.now()}:` });
    try {
      const verify = await fetch(`${node.url}/v1/admin/verify-keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "sdk" }),
      });
      const key = ((await verify.json()) as { data: { key: string } }).data.key;
      const s = await open(`${node.url}/v1/verify/changes`, { "x-api-key": key });
      expect((await s.next()).event).toBe("ready");
      const started = performance.now();
      await node.stop();
      // The drain's second, then at most one ping interval, not the request timeout (10 s).
      expect(performance.now() - started).toBeLessThan(1000 + PING_MS + 1500);
    } finally {
      await node.stop();
      await db.drop();
    }
  });
});

describe("a stopping server", () => {
  it("ends the streams still open, rather than waiting on them", async () => {
    const h = await createHarness("pglite");
    await h.app.listen({ port: 0, host: "127.0.0.1" });
    const address = h.app.server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const s = await open(`http://127.0.0.1:${port}/v1/verify/changes`, { "x-api-key": await h.verifyKey() });
    expect((await s.next()).event).toBe("ready");
    const closing = h.close().then(() => "closed");
    const waited = await Promise.race([closing, new Promise((r) => setTimeout(() => r("still open"), 5000))]);
    expect(waited).toBe("closed");
  });
});

describe("ChangeStream", () => {
  it("tells company subscribers to start afresh for a change whose owner it does not know (an older node's)", () => {
    const changes = new Changes();
    const stream = new ChangeStream(changes);
    const platform: StreamEvent[] = [];
    const company: StreamEvent[] = [];
    stream.subscribe(PLATFORM_SCOPE, undefined, (e) => platform.push(e));
    stream.subscribe({ companyId: "co_1", environment: "live" }, undefined, (e) => company.push(e));
    changes.receive({ kind: "key", keyId: "key_1" });
    expect(platform).toMatchObject([{ type: "change", change: { kind: "key", key_id: "key_1" } }]);
    expect(company).toMatchObject([{ type: "reset" }]);
  });

  it("keeps a bounded number of events to resume from", () => {
    const changes = new Changes();
    const stream = new ChangeStream(changes, { keep: 3 });
    const start = stream.latestId;
    for (let i = 0; i < 5; i++)
      changes.emit({ kind: "key", keyId: `key_${i}`, companyId: "co_1", environment: "live" });
    const tooOld: StreamEvent[] = [];
    stream.subscribe(PLATFORM_SCOPE, start, (e) => tooOld.push(e));
    expect(tooOld.map((e) => e.type)).toEqual(["reset"]);
    const recent: StreamEvent[] = [];
    stream.subscribe(PLATFORM_SCOPE, stream.latestId.replace(/\d+$/, "2"), (e) => recent.push(e));
    expect(
      recent.map((e) => (e.type === "change" && e.change.kind === "key" ? e.change.key_id : e.type)),
    ).toEqual(["key_2", "key_3", "key_4"]);
  });
});
