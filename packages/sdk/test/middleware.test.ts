import { once } from "node:events";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { getConnInfo } from "@hono/node-server/conninfo";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Company, createHarness, type Harness } from "../../../test/helpers/harness.ts";
import { within } from "../../../test/helpers/wait.ts";
import { latchkey as expressLatchkey } from "../src/express.ts";
import { latchkey as fastifyLatchkey } from "../src/fastify.ts";
import { latchkey as honoLatchkey, type LatchkeyVariables } from "../src/hono.ts";
import { LatchkeyClient, LatchkeyVerifier, type VerifierOptions } from "../src/index.ts";

/**
 * The middleware in real apps of each framework, on real HTTP servers, against a real Latchkey serving
 * the Web3pay catalog (its routes read from `GET /v1/catalog`): each app serves the doc's routes and
 * answers with the identity the middleware attached, and counts the requests that reached it.
 */

const ROUTES: [method: "get" | "post", path: string][] = [
  ["get", "/v1/onramp"],
  ["get", "/v1/onramp/:session_id"],
  ["post", "/v1/onramp"],
  ["get", "/v1/transactions"],
  ["get", "/v1/unmapped"],
];

interface Served {
  url: string;
  /** Requests that reached a handler. */
  handled: () => number;
  close: () => Promise<void>;
}

/** Each framework's app: trusting a proxy on loopback by its own setting, so X-Forwarded-For is honoured. */
const APPS: Record<string, (opts: { verifier: LatchkeyVerifier }) => Promise<Served>> = {
  async fastify({ verifier }) {
    let handled = 0;
    const app = Fastify({ trustProxy: "127.0.0.1" });
    await app.register(fastifyLatchkey, { verifier });
    for (const [method, path] of ROUTES)
      app[method](path, async (request) => {
        handled++;
        return { ok: true, latchkey: request.latchkey };
      });
    await app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = app.server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}`, handled: () => handled, close: () => app.close() };
  },
  async express({ verifier }) {
    let handled = 0;
    const app = express();
    app.set("trust proxy", "loopback");
    app.use(await expressLatchkey({ verifier }));
    for (const [method, path] of ROUTES)
      app[method](path, (req, res) => {
        handled++;
        res.json({ ok: true, latchkey: req.latchkey });
      });
    const server = app.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      handled: () => handled,
      close: () => new Promise((r) => server.close(() => r())),
    };
  },
  async hono({ verifier }) {
    let handled = 0;
    const app = new Hono<{ Variables: LatchkeyVariables }>();
    // Hono has no trust-proxy setting: the app says whom it trusts, here a proxy on loopback.
    const clientIp = (c: Parameters<typeof getConnInfo>[0]) => {
      const peer = getConnInfo(c).remote.address;
      const forwarded = c.req.header("x-forwarded-for")?.split(",").at(-1)?.trim();
      return peer === "127.0.0.1" && forwarded ? forwarded : peer;
    };
    app.use(await honoLatchkey({ verifier, clientIp }));
    for (const [method, path] of ROUTES)
      app[method](path, (c) => {
        handled++;
        return c.json({ ok: true, latchkey: c.get("latchkey") });
      });
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      handled: () => handled,
      close: () => new Promise((r) => server.close(() => r())),
    };
  },
};

/**
 * A GET with the path exactly as given: fetch resolves `%2e%2e` and `..` itself, as a browser would, so
 * a hostile client is played with node's own client, which sends the request line untouched.
 */
const rawGet = (base: string, path: string, headers: Record<string, string>) =>
  new Promise<{ status: number; body: { error?: { code: string } } }>((resolve, reject) => {
    const req = httpRequest(`${base}/`, { path, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
    });
    req.on("error", reject);
    req.end();
  });

describe("the SDK's middleware", () => {
  let h: Harness;
  let co: Company;
  let latchkeyUrl = "";
  let verifyKey = "";
  const verifiers: LatchkeyVerifier[] = [];
  const verifier = async (opts: Partial<VerifierOptions> = {}) => {
    const v = new LatchkeyVerifier({ url: latchkeyUrl, verifyKey, ...opts });
    verifiers.push(v);
    await v.start();
    return v;
  };

  beforeAll(async () => {
    h = await createHarness("pglite", { catalogPath: "examples/catalogs/web3pay.json" });
    await h.app.listen({ port: 0, host: "127.0.0.1" });
    latchkeyUrl = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
    co = await h.createCompany("Middleware Co");
    verifyKey = await h.verifyKey("middleware");
  });
  afterAll(async () => {
    for (const v of verifiers) v.close();
    await h.close();
  });

  describe.each(Object.keys(APPS))("for %s", (framework) => {
    let app: Served;
    beforeAll(async () => {
      const start = APPS[framework as keyof typeof APPS];
      if (start === undefined) throw new Error(framework);
      app = await start({ verifier: await verifier() });
    });
    afterAll(() => app.close());

    const call = (method: string, path: string, headers: Record<string, string> = {}) =>
      fetch(`${app.url}${path}`, { method, headers });

    it("lets a key through a route its permission maps, with the identity attached", async () => {
      const k = await h.createKey(co, { permissions: ["onramp:read"] });
      const res = await call("GET", "/v1/onramp/ses_123?expand=quote", { "x-api-key": k.key });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        ok: true,
        latchkey: {
          keyId: k.id,
          credentialId: co.credentialId,
          companyId: co.id,
          environment: "live",
          permissions: ["onramp:read"],
          permission: "onramp:read",
          source: "latchkey",
        },
      });
      // As a bearer token too, and answered from the cache the second time.
      const bearer = await call("GET", "/v1/onramp", { authorization: `Bearer ${k.key}` });
      expect(bearer.status).toBe(200);
      expect((await bearer.json()).latchkey).toMatchObject({ keyId: k.id, source: "cache" });
    });

    it("refuses a route the key's permissions do not cover with 403, before the handler", async () => {
      const k = await h.createKey(co, { permissions: ["onramp:read"] });
      const before = app.handled();
      const res = await call("POST", "/v1/onramp", { "x-api-key": k.key });
      expect(res.status).toBe(403);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      expect(await res.json()).toEqual({
        success: false,
        error: {
          code: "INSUFFICIENT_PERMISSIONS",
          message: "This needs onramp:create.",
          details: { required: ["onramp:create"] },
        },
      });
      expect(app.handled()).toBe(before);
    });

    it("refuses a route the catalog does not map, and a path not in normal form, with ROUTE_NOT_MAPPED", async () => {
      const k = await h.createKey(co, { permissions: ["onramp:read", "onramp:create", "transactions:read"] });
      const before = app.handled();
      for (const path of [
        "/v1/unmapped",
        "/v1/onramp/..%2Fkeys",
        "/v1/onramp/%2e%2e/transactions",
        "/v1/keys/../onramp",
        "/v1/onramp//ses_1",
      ]) {
        const res = await rawGet(app.url, path, { "x-api-key": k.key });
        expect(res.status, path).toBe(403);
        expect(res.body.error?.code, path).toBe("ROUTE_NOT_MAPPED");
      }
      expect(app.handled()).toBe(before);
      // A dead key on an unmapped route is still told its key is no good.
      const res = await call("GET", "/v1/unmapped", {
        "x-api-key": `${k.key.slice(0, -1)}${k.key.endsWith("0") ? "1" : "0"}`,
      });
      expect(res.status).toBe(401);
    });

    it("answers 401 with WWW-Authenticate for no key, a bad key, or Basic auth", async () => {
      const good = await h.createKey(co, { permissions: ["onramp:read"] });
      for (const headers of [
        // An empty X-API-Key is the key presented, as Latchkey reads it: no falling back to the bearer.
        { "x-api-key": "", authorization: `Bearer ${good.key}` },
        {} as Record<string, string>,
        { "x-api-key": "lk_live_sk_nonsense" },
        { authorization: `Basic ${Buffer.from("ws_1@Co:pw").toString("base64")}` },
      ]) {
        const res = await call("GET", "/v1/onramp", headers);
        expect(res.status, JSON.stringify(headers)).toBe(401);
        expect(res.headers.get("www-authenticate")).toBe('Bearer realm="api"');
        expect((await res.json()).error.code).toBe("UNAUTHORIZED");
      }
    });

    it("refuses a key once it is revoked, though its answer was cached (the change stream)", async () => {
      const k = await h.createKey(co, { permissions: ["transactions:read"] });
      expect((await call("GET", "/v1/transactions", { "x-api-key": k.key })).status).toBe(200);
      expect((await call("GET", "/v1/transactions", { "x-api-key": k.key })).status).toBe(200);
      expect((await h.call("DELETE", `/v1/keys/${k.id}`, { key: co.key })).statusCode).toBe(200);
      await within(
        2000,
        async () => (await call("GET", "/v1/transactions", { "x-api-key": k.key })).status === 401,
      );
    });

    it("holds a key to its IP allowlist, reading the address through the app's trusted proxy", async () => {
      const k = await h.createKey(co, { permissions: ["onramp:read"], allowed_ips: ["203.0.113.0/24"] });
      const direct = await call("GET", "/v1/onramp", { "x-api-key": k.key });
      expect(direct.status).toBe(403);
      expect((await direct.json()).error).toMatchObject({
        code: "IP_NOT_ALLOWED",
        details: { ip: "127.0.0.1" },
      });
      const proxied = await call("GET", "/v1/onramp", {
        "x-api-key": k.key,
        "x-forwarded-for": "203.0.113.7",
      });
      expect(proxied.status).toBe(200);
      const elsewhere = await call("GET", "/v1/onramp", {
        "x-api-key": k.key,
        "x-forwarded-for": "198.51.100.7",
      });
      expect(elsewhere.status).toBe(403);
    });

    it("answers 429 with Retry-After once a key's rate limit is spent", async () => {
      const k = await h.createKey(co, {
        permissions: ["onramp:read"],
        rate_limits: [{ limit: 2, window: "1m" }],
      });
      const first = await call("GET", "/v1/onramp", { "x-api-key": k.key });
      expect(first.status).toBe(200);
      expect(first.headers.get("ratelimit-remaining")).toBe("1");
      expect((await call("GET", "/v1/onramp", { "x-api-key": k.key })).status).toBe(200);
      const limited = await call("GET", "/v1/onramp", { "x-api-key": k.key });
      expect(limited.status).toBe(429);
      const retryAfter = Number(limited.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThan(0);
      // Latchkey's sliding window says when; the middleware passes it on, in the header and the body.
      expect(retryAfter).toBeLessThanOrEqual(120);
      expect((await limited.json()).error).toMatchObject({
        code: "RATE_LIMITED",
        details: { retry_after: retryAfter },
      });
    });
  });

  it("refuses what /v1/authorize refuses, with the same status and code", async () => {
    const app = await APPS.fastify?.({ verifier: await verifier() });
    if (app === undefined) throw new Error("no fastify app");
    const gateway = new LatchkeyClient({ url: latchkeyUrl, key: verifyKey });
    const reader = await h.createKey(co, { permissions: ["onramp:read"] });
    const revoked = await h.createKey(co, { permissions: ["onramp:read"] });
    await h.call("DELETE", `/v1/keys/${revoked.id}`, { key: co.key });
    const limited = await h.createKey(co, {
      permissions: ["onramp:read"],
      rate_limits: [{ limit: 2, window: "1h" }],
    });
    // Each case is asked of both: the limited key's first case spends its budget of two, its second finds it spent.
    const cases: [method: string, path: string, headers: Record<string, string>][] = [
      ["GET", "/v1/onramp/ses_1", { "x-api-key": reader.key }],
      ["GET", "/v1/onramp/ses_1", { authorization: `Bearer ${reader.key}` }],
      ["POST", "/v1/onramp", { "x-api-key": reader.key }],
      ["GET", "/v1/unmapped", { "x-api-key": reader.key }],
      ["GET", "/v1/onramp/%2e%2e/keys", { "x-api-key": reader.key }],
      ["GET", "/v1/onramp//ses_1", { "x-api-key": reader.key }],
      ["GET", "/v1/onramp", {}],
      ["GET", "/v1/onramp", { "x-api-key": "lk_live_sk_nonsense" }],
      ["GET", "/v1/onramp", { "x-api-key": revoked.key }],
      ["GET", "/v1/onramp", { "x-api-key": limited.key }],
      ["GET", "/v1/onramp", { "x-api-key": limited.key }],
    ];
    try {
      for (const [method, path, headers] of cases) {
        const theirs = await gateway.authorize({ method, uri: path, headers });
        const ours =
          method === "GET"
            ? await rawGet(app.url, path, headers)
            : await fetch(`${app.url}${path}`, { method, headers }).then(async (r) => ({
                status: r.status,
                body: (await r.json()) as { error?: { code: string } },
              }));
        const what = `${method} ${path} ${JSON.stringify(Object.keys(headers))}`;
        expect(ours.status, what).toBe(theirs.status);
        expect(ours.body.error?.code, what).toBe(theirs.error?.code);
      }
    } finally {
      await app.close();
    }
  });

  it("takes a catalog document given directly, and lets unmapped routes by when it says allow", async () => {
    const served = (await (await fetch(`${latchkeyUrl}/v1/catalog`)).json()).data;
    const app = Fastify();
    await app.register(fastifyLatchkey, {
      verifier: await verifier(),
      catalog: { ...served, unmapped_routes: "allow" },
    });
    app.get("/v1/unmapped", async (request) => ({ latchkey: request.latchkey }));
    app.get("/v1/onramp/*", async (request) => ({ latchkey: request.latchkey }));
    const k = await h.createKey(co, { permissions: ["transactions:read"] });
    await app.listen({ port: 0, host: "127.0.0.1" });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const ask = (path: string, key?: string) => rawGet(base, path, key ? { "x-api-key": key } : {});
    const open = await ask("/v1/unmapped", k.key);
    expect(open.status).toBe(200);
    expect((open.body as { latchkey?: unknown }).latchkey).toMatchObject({ keyId: k.id, permission: null });
    // Allowing unmapped routes lets no one by without a good key, nor a path not in normal form.
    expect((await ask("/v1/unmapped")).status).toBe(401);
    const hostile = await ask("/v1/onramp/%2e%2e/unmapped", k.key);
    expect(hostile.status).toBe(403);
    expect(hostile.body.error?.code).toBe("ROUTE_NOT_MAPPED");
    // A mapped route still needs its permission.
    expect((await ask("/v1/onramp/ses_1", k.key)).body.error?.code).toBe("INSUFFICIENT_PERMISSIONS");
    await app.close();
  });

  describe("reading the catalog again", () => {
    /**
     * Latchkey behind a pass-through proxy that can serve another catalog in its place, as a Latchkey
     * restarted with a new catalog would: everything else (verify, the change stream) is Latchkey's own.
     */
    let proxy: Server;
    let proxyUrl = "";
    let served: unknown = null;
    let catalogReads = 0;
    beforeAll(async () => {
      const target = new URL(latchkeyUrl);
      proxy = createServer((req, res) => {
        if (req.method === "GET" && req.url === "/v1/catalog") catalogReads++;
        if (req.method === "GET" && req.url === "/v1/catalog" && served !== null) {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(typeof served === "string" ? served : JSON.stringify({ success: true, data: served }));
          return;
        }
        const upstream = httpRequest(
          {
            host: target.hostname,
            port: target.port,
            method: req.method,
            path: req.url,
            headers: req.headers,
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on("error", () => res.destroy());
        req.pipe(upstream);
      });
      proxy.listen(0, "127.0.0.1");
      await once(proxy, "listening");
      proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    });
    afterAll(() => {
      proxy.closeAllConnections();
      return new Promise<void>((r) => proxy.close(() => r()));
    });

    /** Latchkey's catalog with one more route for `transactions:read`. */
    const withStatements = (doc: {
      groups: { entities: { id: string; actions: { id: string; routes?: string[] }[] }[] }[];
    }) => {
      const copy = structuredClone(doc);
      const read = copy.groups
        .flatMap((g) => g.entities)
        .find((e) => e.id === "transactions")
        ?.actions.find((a) => a.id === "read");
      if (read === undefined) throw new Error("no transactions:read in the catalog");
      read.routes = [...(read.routes ?? []), "GET /v1/statements"];
      return copy;
    };

    async function guarded(opts: { catalogRefreshMs: number }) {
      served = null;
      const v = await verifier({ url: proxyUrl });
      const app = Fastify();
      await app.register(fastifyLatchkey, { verifier: v, ...opts });
      app.get("/v1/statements", async (request) => ({ latchkey: request.latchkey }));
      await app.listen({ port: 0, host: "127.0.0.1" });
      const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      return { v, app, ask: (key: string) => rawGet(base, "/v1/statements", { "x-api-key": key }) };
    }

    it("maps a route the catalog gained once the change stream resets, without restarting the app", async () => {
      const real = (await (await fetch(`${latchkeyUrl}/v1/catalog`)).json()).data;
      const { v, app, ask } = await guarded({ catalogRefreshMs: 0 });
      try {
        const k = await h.createKey(co, { permissions: ["transactions:read"] });
        expect((await ask(k.key)).body.error?.code).toBe("ROUTE_NOT_MAPPED");
        served = withStatements(real);
        const reads = catalogReads;
        // No interval here: without a reset the routes stay as they were read.
        await new Promise((r) => setTimeout(r, 300));
        expect((await ask(k.key)).body.error?.code).toBe("ROUTE_NOT_MAPPED");
        expect(catalogReads).toBe(reads);
        // The node stops hearing the others and hears them again: its stream says reset.
        h.services.changeStream.setHearing(false);
        await within(1000, () => v.streamState === "degraded");
        h.services.changeStream.setHearing(true);
        await within(2000, async () => (await ask(k.key)).status === 200);
        expect((await ask(k.key)).body).toMatchObject({ latchkey: { permission: "transactions:read" } });
        // And a key without the permission is still refused on the new route.
        const other = await h.createKey(co, { permissions: ["onramp:read"] });
        expect((await ask(other.key)).body.error?.code).toBe("INSUFFICIENT_PERMISSIONS");
      } finally {
        await app.close();
      }
    });

    it("reads it again every catalogRefreshMs, and keeps the routes it has while a read fails", async () => {
      const real = (await (await fetch(`${latchkeyUrl}/v1/catalog`)).json()).data;
      const { app, ask } = await guarded({ catalogRefreshMs: 100 });
      try {
        const k = await h.createKey(co, { permissions: ["transactions:read"] });
        expect((await ask(k.key)).status).toBe(403);
        served = withStatements(real);
        await within(2000, async () => (await ask(k.key)).status === 200);
        // A catalog that cannot be used (not JSON, then one that does not compile) changes nothing.
        for (const broken of ["not json", { ...real, unmapped_routes: "sometimes" }]) {
          served = broken;
          const reads = catalogReads;
          await within(2000, () => catalogReads >= reads + 2);
          expect((await ask(k.key)).status).toBe(200);
        }
        // Back to Latchkey's own catalog: the route is gone again.
        served = null;
        await within(2000, async () => (await ask(k.key)).status === 403);
      } finally {
        await app.close();
      }
    });

    it("stops reading it when the Fastify app closes", async () => {
      const { app } = await guarded({ catalogRefreshMs: 50 });
      await app.close();
      const reads = catalogReads;
      await new Promise((r) => setTimeout(r, 300));
      expect(catalogReads).toBe(reads);
    });
  });

  describe("when Latchkey cannot be asked", () => {
    const catalog = async () => (await (await fetch(`${latchkeyUrl}/v1/catalog`)).json()).data;

    it("answers 503 with Retry-After by default, and lets the request by only with failOpen", async () => {
      const key = (await h.createKey(co, { permissions: ["onramp:read"] })).key;
      for (const failOpen of [false, true]) {
        let handled = 0;
        const app = express();
        const away = new LatchkeyVerifier({
          url: "http://127.0.0.1:1",
          verifyKey,
          stream: false,
          failOpen,
          timeoutMs: 300,
        });
        app.use(await expressLatchkey({ verifier: away, catalog: await catalog() }));
        app.get("/v1/onramp", (req, res) => {
          handled++;
          res.json({ latchkey: req.latchkey });
        });
        const server = app.listen(0, "127.0.0.1");
        await once(server, "listening");
        const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/onramp`, {
          headers: { "x-api-key": key },
        });
        server.close();
        if (failOpen) {
          expect(res.status).toBe(200);
          expect((await res.json()).latchkey).toMatchObject({ keyId: null, source: "fail-open" });
          expect(handled).toBe(1);
        } else {
          expect(res.status).toBe(503);
          expect(res.headers.get("retry-after")).toBe("1");
          expect((await res.json()).error.code).toBe("SERVICE_UNAVAILABLE");
          expect(handled).toBe(0);
        }
      }
    });
  });
});
