import { once } from "node:events";
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../src/core/key-format.ts";
import { buildApp } from "../../src/http/app.ts";
import type { App } from "../../src/http/types.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";

/**
 * POST /v1/verify has a fast path in front of Fastify (src/http/verify-fast-path.ts). It only runs for
 * requests on a real socket (inject bypasses it), so these tests listen on ports and speak node:http.
 * Every answer of the fast path is held to the answer of an app with `verifyFastPath: false` over the
 * same services; an onRequest hook on the fast-path app counts what reached Fastify, to prove which
 * path answered.
 */

/** The headers a gateway acts on; the fast path must set them exactly as the route does. */
const COMPARED_HEADERS = [
  "content-type",
  "cache-control",
  "ratelimit-limit",
  "ratelimit-remaining",
  "ratelimit-reset",
  "ratelimit-policy",
  "retry-after",
] as const;

const REQUEST_ID = /^req_[0-9A-Za-z]{10}[0-9a-z]+$/;
/** buildApp's default body limit (the apps here do not set one). */
const BODY_LIMIT = 64 * 1024;

/** A request as sent on the wire. The body goes with a Content-Length unless `chunked`. */
interface Sent {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  chunked?: boolean;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The client side's port: the same for requests that shared a connection. */
  localPort: number | undefined;
}

/** Sends one request; a fresh connection unless an agent is given. */
function send(port: number, sent: Sent, agent: http.Agent | false = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = sent.body === undefined ? undefined : Buffer.from(sent.body);
    const headers: Record<string, string | number> = { ...sent.headers };
    if (sent.chunked) headers["transfer-encoding"] = "chunked";
    else if (body !== undefined) headers["content-length"] = body.length;
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: sent.method ?? "POST",
        path: sent.path ?? "/v1/verify",
        headers,
        agent,
      },
      (res) => {
        const localPort = res.socket.localPort;
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
            localPort,
          }),
        );
      },
    );
    req.on("error", reject);
    // A request neither path answers (say, a body lost on its way to Fastify) fails here, not at the
    // test's timeout.
    req.setTimeout(5_000, () => req.destroy(new Error(`no answer to ${sent.method ?? "POST"} in 5 s`)));
    if (body !== undefined && sent.chunked) {
      // Two chunks, so the body really arrives in pieces with no length announced.
      const half = Math.floor(body.length / 2);
      req.write(body.subarray(0, half));
      req.end(body.subarray(half));
    } else {
      req.end(body);
    }
  });
}

/** The `code` of an answer: the verdict of a 200, the error code of anything else. */
function codeOf(answer: Answer): string {
  const parsed = JSON.parse(answer.body);
  return answer.status === 200 ? parsed.data.code : parsed.error.code;
}

const asKey = (key: string) => ({ "x-api-key": key });

/** A JSON verification request from `caller` (headers) with `body`. */
function verifying(caller: Record<string, string>, body: unknown): Sent {
  return { headers: { "content-type": "application/json", ...caller }, body: JSON.stringify(body) };
}

/** Two apps on one set of services: the fast path on, and off. */
interface Pair {
  fastPort: number;
  slowPort: number;
  /** The fast-path app's http.Server. */
  server: http.Server;
  /** How many requests the fast-path app's Fastify has seen so far. */
  reachedFastify(): number;
  apps: App[];
}

const portOf = (app: App) => (app.server.address() as AddressInfo).port;

async function pairOf(h: Harness, trustedProxies: string[]): Promise<Pair> {
  const options = { services: h.services, platformTokens: [ADMIN_TOKEN], logger: false, trustedProxies };
  const fast = await buildApp(options);
  let reached = 0;
  fast.addHook("onRequest", (_request, _reply, done) => {
    reached += 1;
    done();
  });
  const slow = await buildApp({ ...options, verifyFastPath: false });
  const apps = [fast, slow];
  try {
    await fast.listen({ port: 0, host: "127.0.0.1" });
    await slow.listen({ port: 0, host: "127.0.0.1" });
  } catch (err) {
    await Promise.all(apps.map((app) => app.close()));
    throw err;
  }
  return {
    fastPort: portOf(fast),
    slowPort: portOf(slow),
    server: fast.server,
    reachedFastify: () => reached,
    apps,
  };
}

describe.each(BACKENDS)("POST /v1/verify fast path on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let other: Company;
  /** Default apps (no trusted proxy), and a pair that trusts 127.0.0.1 as a proxy. */
  let plain: Pair;
  let proxied: Pair;
  /** An ordinary key to verify. */
  let subject: { id: string; key: string };
  const pairs: Pair[] = [];
  const requestIds = new Set<string>();

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Fast Path Company");
    other = await h.createCompany("Fast Path Other");
    subject = await h.createKey(co, { permissions: ["payin:read", "payin:create"] });
    plain = await pairOf(h, []);
    pairs.push(plain);
    proxied = await pairOf(h, ["127.0.0.1"]);
    pairs.push(proxied);
  });
  afterAll(async () => {
    // The apps share h's services: they close first.
    await Promise.all(pairs.flatMap((pair) => pair.apps.map((app) => app.close())));
    await h?.close();
  });

  /** A key that may call /v1/verify, with whatever else `body` gives it. */
  const caller = (body: Record<string, unknown> = {}) =>
    h.createKey(co, { permissions: ["keys:verify"], ...body });

  /** Moves the clock to the start of the next window of `seconds` (windows are aligned to the epoch). */
  const toWindowStart = (seconds: number) => {
    const ms = seconds * 1000;
    h.clock.advance((ms - (h.clock.now.getTime() % ms)) / 1000);
  };

  /**
   * What must be the same on both paths: status, the compared headers and the body's bytes, with the
   * request id (which must be in x-request-id, well-formed and never seen before) and any `replace`d
   * strings taken out.
   */
  function view(answer: Answer, replace: [string, string][] = []) {
    const id = answer.headers["x-request-id"];
    expect(id).toMatch(REQUEST_ID);
    expect(requestIds.has(id as string), `request id ${id} seen twice`).toBe(false);
    requestIds.add(id as string);
    let body = answer.body.replaceAll(id as string, "<request-id>");
    for (const [from, to] of replace) body = body.replaceAll(from, to);
    const headers: Record<string, unknown> = {};
    for (const name of COMPARED_HEADERS) headers[name] = answer.headers[name];
    return { status: answer.status, headers, body };
  }

  /**
   * Sends `sent` to both apps of `pair` and requires the same answer. `path` says who must answer on
   * the fast-path app: the fast path itself (Fastify never sees it) or Fastify (it sees it once).
   */
  async function compare(pair: Pair, sent: Sent, path: "fast path" | "fastify"): Promise<Answer> {
    const before = pair.reachedFastify();
    const fast = await send(pair.fastPort, sent);
    expect(pair.reachedFastify() - before, `requests that reached Fastify`).toBe(path === "fastify" ? 1 : 0);
    const slow = await send(pair.slowPort, sent);
    expect(view(fast)).toEqual(view(slow));
    return fast;
  }

  interface Scenario {
    name: string;
    status: number;
    code: string;
    /** The trusted-proxy pair instead of the default one. */
    proxied?: boolean;
    request(): Promise<Sent>;
  }

  const SAME_ANSWER: Scenario[] = [
    {
      name: "VALID, with the permissions asked for and an expiry",
      status: 200,
      code: "VALID",
      async request() {
        const expiresAt = new Date(h.clock.now.getTime() + 7 * 86_400_000).toISOString();
        const key = await h.createKey(co, {
          permissions: ["payin:read", "payin:create"],
          expires_at: expiresAt,
        });
        return verifying(asKey(co.key), { key: key.key, permissions: ["payin:read", "payin:create"] });
      },
    },
    {
      name: "VALID with the key's meta and external id (nested, quotes, newlines, any Unicode)",
      status: 200,
      code: "VALID",
      async request() {
        const meta = { plan: 'pro "gold"', note: "two\nlines", who: { name: "Zoë ✓", tags: ["a", 1, null] } };
        const key = await h.createKey(co, { permissions: ["payin:read"], meta, external_id: "acct:42" });
        return verifying(asKey(co.key), { key: key.key });
      },
    },
    {
      name: "VALID for a key with credits asked with cost 0 (a check that spends nothing)",
      status: 200,
      code: "VALID",
      async request() {
        const key = await h.createKey(co, { permissions: ["payin:read"], remaining: 5 });
        return verifying(asKey(co.key), { key: key.key, cost: 0 });
      },
    },
    {
      name: "USAGE_EXCEEDED for a key whose credits are spent",
      status: 200,
      code: "USAGE_EXCEEDED",
      async request() {
        const key = await h.createKey(co, { permissions: ["payin:read"], remaining: 0 });
        return verifying(asKey(co.key), { key: key.key });
      },
    },
    {
      name: "INSUFFICIENT_PERMISSIONS for a permission the key lacks",
      status: 200,
      code: "INSUFFICIENT_PERMISSIONS",
      request: async () => verifying(asKey(co.key), { key: subject.key, permissions: ["payout:create"] }),
    },
    {
      name: "NOT_FOUND for an unknown well-formed key",
      status: 200,
      code: "NOT_FOUND",
      request: async () => verifying(asKey(co.key), { key: generateToken("lk", "live", "sk") }),
    },
    {
      name: "MALFORMED for garbage",
      status: 200,
      code: "MALFORMED",
      request: async () => verifying(asKey(co.key), { key: "hello" }),
    },
    {
      name: "MALFORMED for an empty question",
      status: 200,
      code: "MALFORMED",
      request: async () => verifying(asKey(co.key), {}),
    },
    {
      name: "REVOKED for a revoked key",
      status: 200,
      code: "REVOKED",
      async request() {
        const key = await h.createKey(co, { permissions: ["payin:read"] });
        expect((await h.call("DELETE", `/v1/keys/${key.id}`, { key: co.key })).statusCode).toBe(200);
        return verifying(asKey(co.key), { key: key.key });
      },
    },
    {
      name: "EXPIRED once expires_at has passed",
      status: 200,
      code: "EXPIRED",
      async request() {
        const expiresAt = new Date(h.clock.now.getTime() + 60_000).toISOString();
        const key = await h.createKey(co, { permissions: ["payin:read"], expires_at: expiresAt });
        h.clock.advance(61);
        return verifying(asKey(co.key), { key: key.key });
      },
    },
    {
      name: "IP_NOT_ALLOWED for a subject outside its allowlist",
      status: 200,
      code: "IP_NOT_ALLOWED",
      async request() {
        const key = await h.createKey(co, { permissions: ["payin:read"], allowed_ips: ["10.0.0.0/8"] });
        return verifying(asKey(co.key), { key: key.key, ip: "11.0.0.1" });
      },
    },
    {
      name: "ENVIRONMENT_MISMATCH for a test key asked about live",
      status: 200,
      code: "ENVIRONMENT_MISMATCH",
      async request() {
        const key = await h.createKey(co, { permissions: ["payin:read"], environment: "test" });
        return verifying(asKey(co.key), { key: key.key, environment: "live" });
      },
    },
    {
      name: "VALID for a key + secret pair in the body",
      status: 200,
      code: "VALID",
      async request() {
        const pair = await h.createKey(co, { permissions: ["payin:read"], with_secret: true });
        return verifying(asKey(co.key), { key: pair.key, secret: pair.secret });
      },
    },
    {
      name: "VALID for a username + password in the body",
      status: 200,
      code: "VALID",
      async request() {
        const pw = await h.call("POST", `/v1/credentials/${co.credentialId}/password`, { key: co.key });
        expect(pw.statusCode).toBe(200);
        const { username, password } = pw.json().data;
        return verifying(asKey(co.key), { username, password });
      },
    },
    {
      name: "NOT_FOUND for another company's key asked by a company key",
      status: 200,
      code: "NOT_FOUND",
      async request() {
        const theirs = await h.createKey(other, { permissions: ["payin:read"] });
        return verifying(asKey(co.key), { key: theirs.key });
      },
    },
    {
      name: "VALID for another company's key asked by a platform verify key",
      status: 200,
      code: "VALID",
      async request() {
        const theirs = await h.createKey(other, { permissions: ["payin:read"] });
        return verifying(asKey(await h.verifyKey()), { key: theirs.key });
      },
    },
    {
      name: "401 UNAUTHORIZED for a revoked caller",
      status: 401,
      code: "UNAUTHORIZED",
      async request() {
        const gone = await caller();
        expect((await h.call("DELETE", `/v1/keys/${gone.id}`, { key: co.key })).statusCode).toBe(200);
        return verifying(asKey(gone.key), { key: subject.key });
      },
    },
    {
      name: "401 UNAUTHORIZED for an unknown caller",
      status: 401,
      code: "UNAUTHORIZED",
      request: async () => verifying(asKey(generateToken("lk", "live", "sk")), { key: subject.key }),
    },
    {
      name: "403 INSUFFICIENT_PERMISSIONS for a caller without keys:verify",
      status: 403,
      code: "INSUFFICIENT_PERMISSIONS",
      async request() {
        const weak = await h.createKey(co, { permissions: ["payin:read"] });
        return verifying(asKey(weak.key), { key: subject.key });
      },
    },
    {
      name: "403 IP_NOT_ALLOWED for a caller outside its allowlist",
      status: 403,
      code: "IP_NOT_ALLOWED",
      async request() {
        const fenced = await caller({ allowed_ips: ["10.0.0.0/8"] });
        return verifying(asKey(fenced.key), { key: subject.key });
      },
    },
    {
      name: "VALID for a caller in an Authorization: Bearer header",
      status: 200,
      code: "VALID",
      request: async () => verifying({ authorization: `Bearer ${co.key}` }, { key: subject.key }),
    },
    {
      name: "VALID for a pair key caller with X-API-Secret",
      status: 200,
      code: "VALID",
      async request() {
        const pair = await caller({ with_secret: true });
        return verifying({ ...asKey(pair.key), "x-api-secret": pair.secret as string }, { key: subject.key });
      },
    },
    {
      name: "401 UNAUTHORIZED for a pair key caller without its secret",
      status: 401,
      code: "UNAUTHORIZED",
      async request() {
        const pair = await caller({ with_secret: true });
        return verifying(asKey(pair.key), { key: subject.key });
      },
    },
    {
      name: "403 IP_NOT_ALLOWED for X-Forwarded-For from a peer that is not a trusted proxy",
      status: 403,
      code: "IP_NOT_ALLOWED",
      async request() {
        const fenced = await caller({ allowed_ips: ["203.0.113.0/24"] });
        const sent = verifying(asKey(fenced.key), { key: subject.key });
        return { ...sent, headers: { ...sent.headers, "x-forwarded-for": "203.0.113.7" } };
      },
    },
    {
      name: "VALID for X-Forwarded-For from a trusted proxy",
      status: 200,
      code: "VALID",
      proxied: true,
      async request() {
        const fenced = await caller({ allowed_ips: ["203.0.113.0/24"] });
        const sent = verifying(asKey(fenced.key), { key: subject.key });
        return { ...sent, headers: { ...sent.headers, "x-forwarded-for": "198.51.100.1, 203.0.113.7" } };
      },
    },
  ];

  it.each(SAME_ANSWER)("the fast path answers as Fastify does: $name", async (scenario) => {
    const answer = await compare(scenario.proxied ? proxied : plain, await scenario.request(), "fast path");
    expect({ status: answer.status, code: codeOf(answer) }).toEqual({
      status: scenario.status,
      code: scenario.code,
    });
  });

  it("a key with credits: each path spends one per answer, with the same bytes", async () => {
    // A key for each app with the same balance: one key would be spent by both.
    const [forFast, forSlow] = [
      await h.createKey(co, { permissions: ["payin:read"], remaining: 2 }),
      await h.createKey(co, { permissions: ["payin:read"], remaining: 2 }),
    ];
    const before = plain.reachedFastify();
    for (let i = 0; i < 3; i++) {
      const fast = await send(plain.fastPort, verifying(asKey(co.key), { key: forFast.key }));
      const slow = await send(plain.slowPort, verifying(asKey(co.key), { key: forSlow.key }));
      expect(view(fast, [[forFast.id, "<key>"]])).toEqual(view(slow, [[forSlow.id, "<key>"]]));
      expect(JSON.parse(fast.body).data).toMatchObject(
        i < 2 ? { code: "VALID", remaining: 1 - i } : { code: "USAGE_EXCEEDED", remaining: 0 },
      );
    }
    expect(plain.reachedFastify()).toBe(before);
  });

  it("a rate-limited caller: the same RateLimit-* headers, then the same 429 with Retry-After", async () => {
    // Each app gets a caller of its own with the same limit: one caller would count requests to both.
    const limits = { rate_limits: [{ limit: 2, window: "1m" }] };
    const [forFast, forSlow] = [await caller(limits), await caller(limits)];
    toWindowStart(60);
    h.clock.advance(10);
    const before = plain.reachedFastify();
    const fast: Answer[] = [];
    const slow: Answer[] = [];
    for (let i = 0; i < 3; i++) {
      fast.push(await send(plain.fastPort, verifying(asKey(forFast.key), { key: subject.key })));
      slow.push(await send(plain.slowPort, verifying(asKey(forSlow.key), { key: subject.key })));
    }
    expect(plain.reachedFastify()).toBe(before);
    expect(fast.map((a) => view(a))).toEqual(slow.map((a) => view(a)));
    expect(fast.map((a) => [a.status, codeOf(a), a.headers["ratelimit-remaining"]])).toEqual([
      [200, "VALID", "1"],
      [200, "VALID", "0"],
      [429, "RATE_LIMITED", "0"],
    ]);
    expect(fast[2]?.headers).toMatchObject({
      "ratelimit-limit": "2",
      "ratelimit-reset": "50",
      "ratelimit-policy": "2;w=60",
    });
    expect(Number(fast[2]?.headers["retry-after"])).toBeGreaterThan(0);
    expect(JSON.parse(fast[2]?.body ?? "").error.details.retry_after).toBe(
      Number(fast[2]?.headers["retry-after"]),
    );
  });

  it("a rate-limited subject: the same 200s, ending in RATE_LIMITED with its rate_limit", async () => {
    const limits = { permissions: ["payin:read"], rate_limits: [{ limit: 2, window: "1m" }] };
    const [forFast, forSlow] = [await h.createKey(co, limits), await h.createKey(co, limits)];
    toWindowStart(60);
    h.clock.advance(20);
    const before = plain.reachedFastify();
    const fast: Answer[] = [];
    const slow: Answer[] = [];
    for (let i = 0; i < 3; i++) {
      fast.push(await send(plain.fastPort, verifying(asKey(co.key), { key: forFast.key })));
      slow.push(await send(plain.slowPort, verifying(asKey(co.key), { key: forSlow.key })));
    }
    expect(plain.reachedFastify()).toBe(before);
    // The keys differ; their answers otherwise must not.
    expect(fast.map((a) => view(a, [[forFast.id, "<subject>"]]))).toEqual(
      slow.map((a) => view(a, [[forSlow.id, "<subject>"]])),
    );
    const data = fast.map((a) => JSON.parse(a.body).data);
    expect(data.map((d) => [d.code, d.rate_limit.remaining])).toEqual([
      ["VALID", 1],
      ["VALID", 0],
      ["RATE_LIMITED", 0],
    ]);
    expect(data[2]).toMatchObject({
      valid: false,
      key_id: forFast.id,
      rate_limit: { limit: 2, window: "1m", reset: 40, retry_after: expect.any(Number) },
    });
    // The caller has no limit of its own: the verified key's limit is in the body only.
    expect(fast.every((a) => a.headers["ratelimit-limit"] === undefined)).toBe(true);
  });

  it("ordinary verifications never reach Fastify, and usage counts them for the subject and the caller", async () => {
    const gateway = await caller();
    const key = await h.createKey(co, { permissions: ["payin:read"] });
    const before = plain.reachedFastify();
    const ask = (permissions: string[]) =>
      send(plain.fastPort, verifying(asKey(gateway.key), { key: key.key, ip: "192.0.2.9", permissions }));
    const answers: Answer[] = [];
    for (let i = 0; i < 4; i++) answers.push(await ask(["payin:read"]));
    answers.push(await ask(["payout:create"]));
    expect(plain.reachedFastify()).toBe(before);

    const expected = {
      valid: true,
      code: "VALID",
      key_id: key.id,
      credential_id: co.credentialId,
      company_id: co.id,
      environment: "live",
      merchant_account_id: null,
      permissions: ["payin:read"],
      expires_at: null,
      rate_limit: null,
      remaining: null,
      meta: null,
      external_id: null,
      ip_restricted: false,
    };
    for (const [i, answer] of answers.entries()) {
      expect(answer.status).toBe(200);
      expect(answer.headers["content-type"]).toBe("application/json; charset=utf-8");
      expect(answer.headers["cache-control"]).toBe("no-store");
      view(answer);
      const data = JSON.parse(answer.body).data;
      expect(data).toEqual(
        i < 4 ? expected : { ...expected, valid: false, code: "INSUFFICIENT_PERMISSIONS" },
      );
    }

    await h.services.usage.flush();
    const usage = async (id: string) => {
      const res = await h.call("GET", `/v1/keys/${id}/usage?days=1`, { key: co.key });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().data;
    };
    const today = h.clock.now.toISOString().slice(0, 10);
    expect(await usage(key.id)).toMatchObject({
      days: [{ day: today, requests: 4, denied: 1 }],
      total_requests: 4,
      last_used_ip: "192.0.2.9",
    });
    // The caller's own use is counted too, from the address it called from.
    expect(await usage(gateway.id)).toMatchObject({
      days: [{ day: today, requests: 5, denied: 0 }],
      total_requests: 5,
      last_used_ip: "127.0.0.1",
    });
  });

  interface HandedOver {
    name: string;
    status: number;
    code: string;
    request(): Promise<Sent>;
  }

  const json = (body: string, headers: Record<string, string> = {}): Sent => ({
    headers: { "content-type": "application/json", ...asKey(co.key), ...headers },
    body,
  });

  const HANDED_OVER: HandedOver[] = [
    {
      name: "a body that is not JSON",
      status: 400,
      code: "INVALID_JSON",
      request: async () => json(`{"key":`),
    },
    {
      name: "a negative cost",
      status: 400,
      code: "VALIDATION_ERROR",
      request: async () => json(JSON.stringify({ key: subject.key, cost: -1 })),
    },
    {
      name: "a fractional cost",
      status: 400,
      code: "VALIDATION_ERROR",
      request: async () => json(JSON.stringify({ key: subject.key, cost: 0.5 })),
    },
    {
      name: "an unknown field",
      status: 400,
      code: "VALIDATION_ERROR",
      request: async () => json(JSON.stringify({ key: subject.key, nope: 1 })),
    },
    {
      name: "a key of the wrong type",
      status: 400,
      code: "VALIDATION_ERROR",
      request: async () => json(JSON.stringify({ key: 5 })),
    },
    {
      name: "a key longer than 256 characters",
      status: 400,
      code: "VALIDATION_ERROR",
      request: async () => json(JSON.stringify({ key: "a".repeat(257) })),
    },
    {
      name: "a __proto__ key",
      status: 400,
      // Fastify's parser refuses prototype poisoning as a parse error.
      code: "INVALID_JSON",
      request: async () => json(`{"key":"${subject.key}","__proto__":{"isAdmin":true}}`),
    },
    {
      name: "a constructor.prototype key",
      status: 400,
      code: "INVALID_JSON",
      request: async () => json(`{"constructor":{"prototype":{"isAdmin":true}}}`),
    },
    {
      name: "JSON that starts with a byte order mark",
      status: 200,
      code: "VALID",
      request: async () => json(`\ufeff${JSON.stringify({ key: subject.key })}`),
    },
    {
      name: "a text/plain body",
      status: 415,
      code: "UNSUPPORTED_MEDIA_TYPE",
      request: async () => json(JSON.stringify({ key: subject.key }), { "content-type": "text/plain" }),
    },
    {
      name: "a JSON content type spelled in capitals",
      status: 200,
      code: "VALID",
      request: async () =>
        json(JSON.stringify({ key: subject.key }), { "content-type": "Application/JSON; charset=UTF-8" }),
    },
    {
      name: "a gzip body",
      status: 200,
      code: "VALID",
      request: async () => ({
        ...json(""),
        headers: { ...json("").headers, "content-encoding": "gzip" },
        body: gzipSync(JSON.stringify({ key: subject.key })),
      }),
    },
    {
      name: "a Content-Encoding: identity body",
      status: 200,
      code: "VALID",
      request: async () => json(JSON.stringify({ key: subject.key }), { "content-encoding": "identity" }),
    },
    {
      // Plain JSON under a coding nobody decodes: never read as plain.
      name: "a body in an unknown Content-Encoding",
      status: 415,
      code: "UNSUPPORTED_ENCODING",
      request: async () => json(JSON.stringify({ key: subject.key }), { "content-encoding": "foo" }),
    },
    {
      name: "a chunked body without Content-Length",
      status: 200,
      code: "VALID",
      request: async () => ({ ...json(JSON.stringify({ key: subject.key })), chunked: true }),
    },
    {
      name: "a body over the body limit",
      status: 413,
      code: "PAYLOAD_TOO_LARGE",
      request: async () => json(JSON.stringify({ key: "a".repeat(BODY_LIMIT) })),
    },
    {
      name: "an empty body",
      status: 200,
      code: "MALFORMED",
      request: async () => json(""),
    },
    {
      name: "a Basic auth caller",
      status: 200,
      code: "VALID",
      async request() {
        const cred = await h.call("POST", "/v1/credentials", {
          key: co.key,
          json: { name: "Basic gateway", permissions: ["keys:verify"] },
        });
        expect(cred.statusCode, cred.body).toBe(201);
        const pw = await h.call("POST", `/v1/credentials/${cred.json().data.id}/password`, { key: co.key });
        const { username, password } = pw.json().data;
        const basic = Buffer.from(`${username}:${password}`).toString("base64");
        return verifying({ authorization: `Basic ${basic}` }, { key: subject.key });
      },
    },
    {
      name: "no credentials",
      status: 401,
      code: "UNAUTHORIZED",
      request: async () => verifying({}, { key: subject.key }),
    },
    {
      name: "a session cookie only",
      status: 401,
      code: "SESSION_EXPIRED",
      request: async () => verifying({ cookie: "lk_session=not-a-session" }, { key: subject.key }),
    },
    {
      name: "a query string",
      status: 200,
      code: "VALID",
      request: async () => ({ ...json(JSON.stringify({ key: subject.key })), path: "/v1/verify?x=1" }),
    },
    {
      // With everything else a verification has, so only the method keeps it from the fast path.
      name: "a GET with a JSON body",
      status: 404,
      code: "ROUTE_NOT_FOUND",
      request: async () => ({ ...json(JSON.stringify({ key: subject.key })), method: "GET" }),
    },
  ];

  it.each(HANDED_OVER)("Fastify answers $name, as it does without the fast path", async (scenario) => {
    const answer = await compare(plain, await scenario.request(), "fastify");
    expect({ status: answer.status, code: codeOf(answer) }).toEqual({
      status: scenario.status,
      code: scenario.code,
    });
  });

  /**
   * Runs `watch` on the next request the fast-path app's server receives, at once: a listener added
   * any later could miss the request's body and end, which follow its headers without waiting.
   */
  const onNextRequest = <T>(server: http.Server, watch: (req: IncomingMessage, res: ServerResponse) => T) =>
    new Promise<T>((resolve) =>
      server.once("request", (req: IncomingMessage, res: ServerResponse) => resolve(watch(req, res))),
    );

  /** Both paths still answer on the fast-path app: an ordinary request, and one handed over. */
  async function stillAnswering() {
    const before = plain.reachedFastify();
    const ok = await send(plain.fastPort, verifying(asKey(co.key), { key: subject.key }));
    expect([ok.status, codeOf(ok)]).toEqual([200, "VALID"]);
    expect(plain.reachedFastify()).toBe(before);
    const bad = await send(plain.fastPort, json(`{"key":`));
    expect([bad.status, codeOf(bad)]).toEqual([400, "INVALID_JSON"]);
    expect(plain.reachedFastify()).toBe(before + 1);
  }

  it("a client that sends half its body and goes away leaves the server answering", async () => {
    const before = plain.reachedFastify();
    const body = JSON.stringify({ key: subject.key });
    const arrived = onNextRequest(plain.server, (req) => ({
      req,
      halfBody: once(req, "data"),
      // Not events.once: its error listener would make Node emit the abort as an error.
      closed: new Promise((resolve) => req.once("close", resolve)),
    }));
    const client = net.connect(plain.fastPort, "127.0.0.1");
    await once(client, "connect");
    client.write(
      "POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
        `X-API-Key: ${co.key}\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 20)}`,
    );
    const { req, halfBody, closed } = await arrived;
    // The server has the half body; then the client is gone.
    await halfBody;
    client.destroy();
    await closed;
    expect(req.complete).toBe(false);
    // Taken by the fast path, which never handed it to Fastify.
    expect(plain.reachedFastify()).toBe(before);
    await stillAnswering();
  });

  it("a connection lost while the fast path works out its answer leaves the server answering", async () => {
    const before = plain.reachedFastify();
    const arrived = onNextRequest(plain.server, (req, res) => {
      // The body is in and the fast path's verification is under way (it awaits at least once, and
      // its listener runs before this one): now the connection drops.
      req.once("end", () => req.socket.destroy());
      // Resolves once the fast path has written its answer, to a connection that is gone.
      return new Promise<void>((resolve) => {
        const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
        res.end = ((...args: unknown[]) => {
          const out = end(...args);
          resolve();
          return out;
        }) as typeof res.end;
      });
    });
    const pending = send(plain.fastPort, verifying(asKey(co.key), { key: subject.key }));
    await expect(pending).rejects.toThrow();
    await await arrived;
    expect(plain.reachedFastify()).toBe(before);
    await stillAnswering();
  });

  it("replayed, untaken and fast requests interleaved on one keep-alive connection are answered in order", async () => {
    const ordinary = verifying(asKey(co.key), { key: subject.key });
    const steps: { sent: Sent; status: number; code: string; fastify: boolean }[] = [
      { sent: ordinary, status: 200, code: "VALID", fastify: false },
      {
        sent: json(JSON.stringify({ key: subject.key, nope: true })),
        status: 400,
        code: "VALIDATION_ERROR",
        fastify: true,
      },
      {
        sent: verifying(asKey(co.key), { key: generateToken("lk", "live", "sk") }),
        status: 200,
        code: "NOT_FOUND",
        fastify: false,
      },
      {
        sent: json(`\ufeff${JSON.stringify({ key: subject.key })}`),
        status: 200,
        code: "VALID",
        fastify: true,
      },
      { sent: { ...ordinary, chunked: true }, status: 200, code: "VALID", fastify: true },
      {
        sent: verifying(asKey(co.key), { key: subject.key, permissions: ["payout:create"] }),
        status: 200,
        code: "INSUFFICIENT_PERMISSIONS",
        fastify: false,
      },
      {
        sent: json(JSON.stringify({ key: subject.key }), { "content-type": "text/plain" }),
        status: 415,
        code: "UNSUPPORTED_MEDIA_TYPE",
        fastify: true,
      },
      { sent: verifying(asKey(co.key), { key: "hello" }), status: 200, code: "MALFORMED", fastify: false },
      { sent: ordinary, status: 200, code: "VALID", fastify: false },
      // Last: on a body it cannot parse Fastify closes the connection (the client may send more).
      { sent: json(`{"key":`), status: 400, code: "INVALID_JSON", fastify: true },
    ];
    /** All the steps at once: the agent queues them on its one connection. */
    const run = async (port: number) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        return await Promise.all(steps.map((step) => send(port, step.sent, agent)));
      } finally {
        agent.destroy();
      }
    };
    const before = plain.reachedFastify();
    const fast = await run(plain.fastPort);
    expect(plain.reachedFastify() - before).toBe(steps.filter((s) => s.fastify).length);
    const slow = await run(plain.slowPort);

    const outline = (answers: Answer[]) =>
      answers.map((a) => ({ status: a.status, code: codeOf(a), connection: a.headers.connection }));
    expect(outline(fast)).toEqual(
      steps.map((s, i) => ({
        status: s.status,
        code: s.code,
        connection: i < steps.length - 1 ? "keep-alive" : "close",
      })),
    );
    expect(new Set(fast.map((a) => a.localPort)).size).toBe(1);
    expect(outline(fast)).toEqual(outline(slow));
    expect(fast.map((a) => view(a))).toEqual(slow.map((a) => view(a)));
  });
});
