import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../src/core/key-format.ts";
import { buildApp } from "../../src/http/app.ts";
import type { App } from "../../src/http/types.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";

/**
 * Forward auth (`/v1/authorize`, `/v1/authorize/*`) takes the verify fast path in front of Fastify
 * (src/http/verify-fast-path.ts). As in verify-fast-path.test.ts, two apps run over one set of services,
 * the fast path on and off (`verifyFastPath: false`), on real sockets (inject bypasses the fast path);
 * every answer of the one is held to the other's, status, every header in its order and the body's
 * bytes, and an onRequest hook on the fast-path app counts what reached Fastify.
 */

const WEB3PAY = join(import.meta.dirname, "../../examples/catalogs/web3pay.json");
const REQUEST_ID = /^req_[0-9A-Za-z]{10}[0-9a-z]+$/;

interface Sent {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  chunked?: boolean;
}

interface Answer {
  status: number;
  /** As they came on the wire: name, value, name, value, … */
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  body: string;
}

function send(port: number, sent: Sent, agent: http.Agent | false = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...sent.headers };
    if (sent.chunked) headers["transfer-encoding"] = "chunked";
    else if (sent.body !== undefined) headers["content-length"] = Buffer.byteLength(sent.body);
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: sent.method ?? "GET",
        path: sent.path ?? "/v1/authorize",
        headers,
        agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            rawHeaders: res.rawHeaders,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      },
    );
    req.on("error", reject);
    req.setTimeout(5_000, () => req.destroy(new Error(`no answer to ${sent.path} in 5 s`)));
    if (sent.chunked && sent.body !== undefined) {
      req.write(sent.body.slice(0, 1));
      req.end(sent.body.slice(1));
    } else {
      req.end(sent.body);
    }
  });
}

interface Pair {
  fastPort: number;
  slowPort: number;
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
  await fast.listen({ port: 0, host: "127.0.0.1" });
  await slow.listen({ port: 0, host: "127.0.0.1" });
  return {
    fastPort: portOf(fast),
    slowPort: portOf(slow),
    reachedFastify: () => reached,
    apps: [fast, slow],
  };
}

/** A metric's value in an exposition, 0 when absent. */
function sample(exposition: string, series: string): number {
  const line = exposition.split("\n").find((l) => l.startsWith(`${series} `));
  return Number(line?.split(" ")[1] ?? 0);
}

describe.each(BACKENDS)("/v1/authorize fast path on %s", (kind) => {
  let h: Harness;
  let co: Company;
  let other: Company;
  let gw: string;
  /** Trusts 127.0.0.1 as a proxy, as a gateway on the same host is; and one that trusts nothing. */
  let proxied: Pair;
  let plain: Pair;
  let onramp: { id: string; key: string };
  const pairs: Pair[] = [];
  const requestIds = new Set<string>();

  beforeAll(async () => {
    h = await createHarness(kind, { catalogPath: WEB3PAY });
    co = await h.createCompany("Authorize Fast Co");
    other = await h.createCompany("Authorize Fast Other");
    gw = await h.verifyKey("nginx");
    onramp = await h.createKey(co, { permissions: ["onramp:create", "onramp:read"] });
    proxied = await pairOf(h, ["127.0.0.1"]);
    pairs.push(proxied);
    plain = await pairOf(h, []);
    pairs.push(plain);
  });
  afterAll(async () => {
    await Promise.all(pairs.flatMap((pair) => pair.apps.map((app) => app.close())));
    await h?.close();
  });

  const key = (k: string) => ({ "x-api-key": k });
  /** nginx's form: a GET, the route in X-Original-*, the client's headers and the gateway's key. */
  const nginx = (method: string, uri: string, client: Record<string, string>, extra = {}): Sent => ({
    headers: {
      "latchkey-verify-key": gw,
      "x-original-method": method,
      "x-original-uri": uri,
      ...client,
      ...extra,
    },
  });
  /** Envoy's form: the client's method, and its path after the prefix. */
  const envoy = (method: string, path: string, client: Record<string, string>, extra = {}): Sent => ({
    method,
    path: `/v1/authorize${path}`,
    headers: { "latchkey-verify-key": gw, ...client, ...extra },
  });

  /**
   * What must be the same on both paths: the status, every header in its order (the date aside, and
   * the request id, which must be well-formed and new), the body. The id is taken out of values and
   * body (Latchkey-Error carries the envelope); `masks` takes out what differs by design (a key made
   * for each side).
   */
  function view(answer: Answer, masks: string[] = []) {
    const id = answer.headers["x-request-id"] as string;
    expect(id).toMatch(REQUEST_ID);
    expect(requestIds.has(id), `request id ${id} seen twice`).toBe(false);
    requestIds.add(id);
    const clean = (s: string) => {
      let out = s.replaceAll(id, "<request-id>");
      for (const [i, mask] of masks.entries()) out = out.replaceAll(mask, `<mask-${i}>`);
      return out;
    };
    const headers: string[] = [];
    for (let i = 0; i < answer.rawHeaders.length; i += 2) {
      const name = (answer.rawHeaders[i] as string).toLowerCase();
      const value = answer.rawHeaders[i + 1] as string;
      if (name === "date") continue;
      // Each app counts its own ids, so one may be a digit longer: the length is compared without it.
      if (name === "content-length") {
        const ids = answer.body.split(id).length - 1;
        headers.push(`${name}: ${Number(value) - ids * id.length}`);
        continue;
      }
      headers.push(`${name}: ${clean(value)}`);
    }
    return { status: answer.status, headers, body: clean(answer.body) };
  }

  /** Sends to both apps and requires one answer; `path` says who must answer on the fast-path app. */
  async function compare(
    pair: Pair,
    sent: Sent | [Sent, Sent],
    path: "fast path" | "fastify" | "router",
    masks: [string[], string[]] = [[], []],
  ): Promise<Answer> {
    const [toFast, toSlow] = Array.isArray(sent) ? sent : [sent, sent];
    const before = pair.reachedFastify();
    const fast = await send(pair.fastPort, toFast);
    expect(pair.reachedFastify() - before, "requests that reached Fastify").toBe(path === "fastify" ? 1 : 0);
    const slow = await send(pair.slowPort, toSlow);
    expect(view(fast, masks[0])).toEqual(view(slow, masks[1]));
    return fast;
  }

  interface Scenario {
    name: string;
    status: number;
    /** The error code, or "" for a 200. */
    code: string;
    /** The pair that trusts no proxy. */
    plain?: boolean;
    request(): Promise<Sent>;
  }

  const codeOf = (a: Answer) => (a.status === 200 ? "" : JSON.parse(a.body).error.code);

  const SAME_ANSWER: Scenario[] = [
    {
      name: "200 with the identity (nginx's form)",
      status: 200,
      code: "",
      request: async () => nginx("POST", "/v1/onramp", key(onramp.key)),
    },
    {
      name: "200 for Traefik's and Caddy's form, a query in the URI",
      status: 200,
      code: "",
      request: async () => ({
        headers: {
          "latchkey-verify-key": gw,
          "x-forwarded-method": "GET",
          "x-forwarded-uri": "/v1/onramp/ses_42?expand=quote",
          ...key(onramp.key),
        },
      }),
    },
    {
      name: "200 for Envoy's form, with a query and Content-Length: 0",
      status: 200,
      code: "",
      request: async () => ({ ...envoy("POST", "/v1/onramp?ref=1", key(onramp.key)), body: "" }),
    },
    {
      name: "200 for Envoy's form on HEAD",
      status: 200,
      code: "",
      request: async () => envoy("HEAD", "/v1/onramp/ses_1", key(onramp.key)),
    },
    {
      name: "403 INSUFFICIENT_PERMISSIONS in Envoy's form",
      status: 403,
      code: "INSUFFICIENT_PERMISSIONS",
      request: async () => envoy("DELETE", "/v1/keys/key_1", key(onramp.key)),
    },
    {
      name: "403 ROUTE_NOT_MAPPED in Envoy's form on OPTIONS",
      status: 403,
      code: "ROUTE_NOT_MAPPED",
      request: async () => envoy("OPTIONS", "/v1/onramp", key(onramp.key)),
    },
    {
      name: "403 ROUTE_NOT_MAPPED for a route the catalog does not map",
      status: 403,
      code: "ROUTE_NOT_MAPPED",
      request: async () => nginx("GET", "/v1/other", key(onramp.key)),
    },
    {
      name: "403 ROUTE_UNKNOWN when no route is said",
      status: 403,
      code: "ROUTE_UNKNOWN",
      request: async () => ({ headers: { "latchkey-verify-key": gw, ...key(onramp.key) } }),
    },
    {
      name: "403 ROUTE_UNKNOWN when the two pairs disagree",
      status: 403,
      code: "ROUTE_UNKNOWN",
      request: async () =>
        nginx("POST", "/v1/onramp", key(onramp.key), {
          "x-forwarded-method": "DELETE",
          "x-forwarded-uri": "/v1/keys/k",
        }),
    },
    {
      name: "401 with WWW-Authenticate for no client key",
      status: 401,
      code: "UNAUTHORIZED",
      request: async () => nginx("POST", "/v1/onramp", {}),
    },
    {
      name: "401 with WWW-Authenticate for an unknown client key",
      status: 401,
      code: "UNAUTHORIZED",
      request: async () => nginx("POST", "/v1/onramp", key(generateToken("lk", "live", "sk"))),
    },
    {
      name: "401 with WWW-Authenticate for a revoked client key, in a Bearer header",
      status: 401,
      code: "UNAUTHORIZED",
      async request() {
        const gone = await h.createKey(co, { permissions: ["onramp:create"] });
        expect((await h.call("DELETE", `/v1/keys/${gone.id}`, { key: co.key })).statusCode).toBe(200);
        return nginx("POST", "/v1/onramp", { authorization: `Bearer ${gone.key}` });
      },
    },
    {
      name: "401 for no Latchkey-Verify-Key",
      status: 401,
      code: "UNAUTHORIZED",
      request: async () => ({
        headers: { "x-original-method": "POST", "x-original-uri": "/v1/onramp", ...key(onramp.key) },
      }),
    },
    {
      name: "401 for a Latchkey-Verify-Key that is no key",
      status: 401,
      code: "UNAUTHORIZED",
      request: async () =>
        nginx("POST", "/v1/onramp", key(onramp.key), {
          "latchkey-verify-key": generateToken("lk", "live", "sk"),
        }),
    },
    {
      name: "403 for a gateway key without keys:verify",
      status: 403,
      code: "INSUFFICIENT_PERMISSIONS",
      request: async () =>
        nginx("POST", "/v1/onramp", key(onramp.key), { "latchkey-verify-key": onramp.key }),
    },
    {
      name: "403 IP_NOT_ALLOWED for a gateway outside its key's allowlist",
      status: 403,
      code: "IP_NOT_ALLOWED",
      async request() {
        const fenced = await h.createKey(co, { permissions: ["keys:verify"], allowed_ips: ["10.0.0.0/8"] });
        return nginx("POST", "/v1/onramp", key(onramp.key), { "latchkey-verify-key": fenced.key });
      },
    },
    {
      name: "401 for another company's key asked by a company's gateway key",
      status: 401,
      code: "UNAUTHORIZED",
      async request() {
        const gateway = await h.createKey(co, { permissions: ["keys:verify"] });
        const theirs = await h.createKey(other, { permissions: ["onramp:create"] });
        return nginx("POST", "/v1/onramp", key(theirs.key), { "latchkey-verify-key": gateway.key });
      },
    },
    {
      name: "200 with the key's external id and meta for the upstream",
      status: 200,
      code: "",
      async request() {
        const k = await h.createKey(co, {
          permissions: ["onramp:create"],
          meta: { plan: "pro\nplus", who: "Zoë" },
          external_id: "acct:42",
        });
        return nginx("POST", "/v1/onramp", key(k.key));
      },
    },
    {
      name: "429 USAGE_EXCEEDED for a key whose credits are spent",
      status: 429,
      code: "USAGE_EXCEEDED",
      async request() {
        const k = await h.createKey(co, { permissions: ["onramp:create"], remaining: 0 });
        return nginx("POST", "/v1/onramp", key(k.key));
      },
    },
    {
      name: "200 for X-API-Key + X-API-Secret",
      status: 200,
      code: "",
      async request() {
        const pair = await h.createKey(co, { permissions: ["onramp:create"], with_secret: true });
        return nginx("POST", "/v1/onramp", { ...key(pair.key), "x-api-secret": pair.secret as string });
      },
    },
    {
      name: "200 for Basic, with an empty Latchkey-Key-Id",
      status: 200,
      code: "",
      async request() {
        const pw = await h.call("POST", `/v1/credentials/${co.credentialId}/password`, { key: co.key });
        const { username, password } = pw.json().data;
        const basic = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
        return nginx("GET", "/v1/transactions", { authorization: basic });
      },
    },
    {
      name: "403 ENVIRONMENT_MISMATCH for a gateway serving test",
      status: 403,
      code: "ENVIRONMENT_MISMATCH",
      request: async () => nginx("POST", "/v1/onramp", key(onramp.key), { "latchkey-environment": "test" }),
    },
    {
      name: "400 for a Latchkey-Environment that is neither",
      status: 400,
      code: "VALIDATION_ERROR",
      request: async () =>
        nginx("POST", "/v1/onramp", key(onramp.key), { "latchkey-environment": "staging" }),
    },
    {
      name: "403 as nginx (Latchkey-Status: 400, Latchkey-Error) for a bad Latchkey-Environment",
      status: 403,
      code: "VALIDATION_ERROR",
      request: async () =>
        nginx("POST", "/v1/onramp", key(onramp.key), {
          "latchkey-environment": "x",
          "latchkey-gateway": "nginx",
        }),
    },
    {
      name: "401 as nginx (Latchkey-Status: 401) for an unknown key",
      status: 401,
      code: "UNAUTHORIZED",
      request: async () =>
        nginx("POST", "/v1/onramp", key(generateToken("lk", "live", "sk")), { "latchkey-gateway": "nginx" }),
    },
    {
      name: "200 for a client address from X-Forwarded-For of a trusted proxy",
      status: 200,
      code: "",
      async request() {
        const pinned = await h.createKey(co, {
          permissions: ["onramp:create"],
          allowed_ips: ["203.0.113.7"],
        });
        return nginx("POST", "/v1/onramp", key(pinned.key), { "x-forwarded-for": "203.0.113.7" });
      },
    },
    {
      name: "403 IP_NOT_ALLOWED for X-Real-IP outside the key's allowlist",
      status: 403,
      code: "IP_NOT_ALLOWED",
      async request() {
        const pinned = await h.createKey(co, {
          permissions: ["onramp:create"],
          allowed_ips: ["203.0.113.7"],
        });
        return nginx("POST", "/v1/onramp", key(pinned.key), { "x-real-ip": "198.51.100.1" });
      },
    },
    {
      name: "403 IP_NOT_ALLOWED for X-Forwarded-For from a peer that is not a trusted proxy",
      status: 403,
      code: "IP_NOT_ALLOWED",
      plain: true,
      async request() {
        const pinned = await h.createKey(co, {
          permissions: ["onramp:create"],
          allowed_ips: ["203.0.113.7"],
        });
        return nginx("POST", "/v1/onramp", key(pinned.key), { "x-forwarded-for": "203.0.113.7" });
      },
    },
  ];

  it.each(SAME_ANSWER)("answers $name on the fast path, as the route does", async (scenario) => {
    const answer = await compare(scenario.plain ? plain : proxied, await scenario.request(), "fast path");
    expect(answer.status).toBe(scenario.status);
    if (answer.status !== 200 && answer.headers["latchkey-error"] !== undefined)
      expect(JSON.parse(answer.headers["latchkey-error"] as string).error.code).toBe(scenario.code);
    else if (scenario.code !== "") expect(codeOf(answer)).toBe(scenario.code);
    else expect(answer.body).toBe("");
  });

  /** A key with `limit` a minute, one for each side (they share one store and so one count). */
  async function limitedPair(limit: number) {
    const keys = [
      await h.createKey(co, { permissions: ["onramp:create"], rate_limits: [{ limit, window: "1m" }] }),
      await h.createKey(co, { permissions: ["onramp:create"], rate_limits: [{ limit, window: "1m" }] }),
    ] as const;
    const masks: [string[], string[]] = [[keys[0].id], [keys[1].id]];
    return { keys, masks };
  }

  it("answers with the rate-limit headers, then 429 with Retry-After, and as nginx 403 with Latchkey-Status: 429", async () => {
    const { keys, masks } = await limitedPair(2);
    const ask = (extra = {}) =>
      [
        nginx("POST", "/v1/onramp", key(keys[0].key), extra),
        nginx("POST", "/v1/onramp", key(keys[1].key), extra),
      ] as [Sent, Sent];
    const first = await compare(proxied, ask(), "fast path", masks);
    expect(first.headers).toMatchObject({ "ratelimit-limit": "2", "ratelimit-remaining": "1" });
    expect((await compare(proxied, ask(), "fast path", masks)).status).toBe(200);
    const over = await compare(proxied, ask(), "fast path", masks);
    expect([over.status, codeOf(over)]).toEqual([429, "RATE_LIMITED"]);
    expect(Number(over.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    const asNginx = await compare(proxied, ask({ "latchkey-gateway": "nginx" }), "fast path", masks);
    expect([asNginx.status, asNginx.headers["latchkey-status"]]).toEqual([403, "429"]);
    expect(asNginx.headers["retry-after"]).toBe(over.headers["retry-after"]);
  });

  it("answers requests one after another on one keep-alive connection", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = proxied.reachedFastify();
      const answers = [];
      for (let i = 0; i < 5; i++)
        answers.push(await send(proxied.fastPort, nginx("POST", "/v1/onramp", key(onramp.key)), agent));
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
      expect(proxied.reachedFastify()).toBe(before);
    } finally {
      agent.destroy();
    }
  });

  /** Requests the fast path must leave to Fastify: the same answer, and Fastify saw it. */
  const HANDED_OVER: [string, () => Sent][] = [
    [
      "a query on /v1/authorize itself",
      () => ({ ...nginx("POST", "/v1/onramp", key(onramp.key)), path: "/v1/authorize?x=1" }),
    ],
    [
      "a body (Envoy passing its client's)",
      () => ({ ...envoy("POST", "/v1/onramp", key(onramp.key)), body: "{}" }),
    ],
    [
      "a chunked body",
      () => ({ ...envoy("POST", "/v1/onramp", key(onramp.key)), body: "{}", chunked: true }),
    ],
    [
      "a Content-Encoding, even with no body",
      () => ({ ...envoy("POST", "/v1/onramp", key(onramp.key), { "content-encoding": "gzip" }), body: "" }),
    ],
    ["a percent-escape in Envoy's path", () => envoy("POST", "/v1/onramp%2F..%2Fkeys", key(onramp.key))],
    ["a trailing slash on Envoy's path", () => envoy("POST", "/v1/onramp/", key(onramp.key))],
    ["the prefix with a slash only", () => envoy("GET", "/", key(onramp.key))],
    ["a semicolon in Envoy's path", () => envoy("GET", "/v1/onramp;x=1", key(onramp.key))],
    [
      "an Envoy path past the router's parameter length",
      () => envoy("GET", `/v1/onramp/${"a".repeat(140)}`, key(onramp.key)),
    ],
    [
      "a method no route has",
      () => ({ ...nginx("POST", "/v1/onramp", key(onramp.key)), method: "PROPFIND" }),
    ],
    [
      "a path that only starts like it",
      () => ({ ...nginx("POST", "/v1/onramp", key(onramp.key)), path: "/v1/authorizefoo" }),
    ],
  ];

  it.each(HANDED_OVER)("hands %s to Fastify, which answers as the route does", async (_name, request) => {
    await compare(proxied, request(), "fastify");
  });

  it("hands a bad percent-escape in Envoy's path to Fastify's router, which refuses it before any hook", async () => {
    // No onRequest hook runs for a URL the router refuses: the answer itself says who gave it.
    const answer = await compare(proxied, envoy("GET", "/v1/onramp/%zz", key(onramp.key)), "router");
    expect([answer.status, JSON.parse(answer.body).error.message]).toEqual([400, "The URL is not valid."]);
  });

  it("counts verifications by outcome and times answers under the route pattern, as Fastify does", async () => {
    const scrape = async (port: number) => {
      const res = await send(port, { path: "/metrics", headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(res.status).toBe(200);
      return res.body;
    };
    const SERIES = [
      'latchkey_verifications_total{code="VALID"}',
      'latchkey_verifications_total{code="INSUFFICIENT_PERMISSIONS"}',
      'latchkey_http_request_duration_seconds_count{route="/v1/authorize",method="GET",status_class="2xx"}',
      'latchkey_http_request_duration_seconds_count{route="/v1/authorize",method="GET",status_class="4xx"}',
      'latchkey_http_request_duration_seconds_count{route="/v1/authorize/*",method="POST",status_class="2xx"}',
      'latchkey_http_request_duration_seconds_count{route="/v1/authorize/*",method="DELETE",status_class="4xx"}',
    ];
    const counts = async (port: number) => {
      const text = await scrape(port);
      return SERIES.map((s) => sample(text, s));
    };
    const before = [await counts(proxied.fastPort), await counts(proxied.slowPort)];
    for (const sent of [
      nginx("POST", "/v1/onramp", key(onramp.key)),
      nginx("GET", "/v1/transactions", key(onramp.key)),
      nginx("POST", "/v1/onramp", {}),
      envoy("POST", "/v1/onramp", key(onramp.key)),
      envoy("DELETE", "/v1/keys/key_1", key(onramp.key)),
    ])
      await compare(proxied, sent, "fast path");
    const after = [await counts(proxied.fastPort), await counts(proxied.slowPort)];
    const grown = after.map((side, i) => side.map((n, j) => n - (before[i]?.[j] ?? 0)));
    // VALID twice, INSUFFICIENT_PERMISSIONS twice (the missing key is no verification), the 401 timed.
    expect(grown[0]).toEqual([2, 2, 1, 2, 1, 1]);
    expect(grown[1]).toEqual(grown[0]);
  });

  it("counts fast-path answers in the key's usage, refusals as denied", async () => {
    const counted = await h.createKey(co, { permissions: ["onramp:create"] });
    const before = plain.reachedFastify();
    expect((await send(plain.fastPort, nginx("POST", "/v1/onramp", key(counted.key)))).status).toBe(200);
    expect((await send(plain.fastPort, nginx("GET", "/v1/transactions", key(counted.key)))).status).toBe(403);
    expect((await send(plain.fastPort, nginx("GET", "/v1/unmapped", key(counted.key)))).status).toBe(403);
    expect(plain.reachedFastify()).toBe(before);
    await h.services.usage.flush();
    const usage = await h.call("GET", `/v1/keys/${counted.id}/usage?days=1`, { key: co.key });
    expect(usage.json().data.days).toEqual([expect.objectContaining({ requests: 1, denied: 2 })]);
  });
});
