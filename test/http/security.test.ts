import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { POLICY, type Policy } from "../../src/core/access/policy.ts";
import { generateToken } from "../../src/core/key-format.ts";
import { buildApp } from "../../src/http/app.ts";
import type { App } from "../../src/http/types.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";

/** The catalog permission every target object holds, so any caller that may act on it can. */
const DATA = "customer:read";
const MORE = "payment_transaction:read";

type Method = "GET" | "POST" | "PATCH" | "DELETE";
type Headers = Record<string, string>;

interface Call {
  url: string;
  json?: unknown;
  /** The object the call acts on, read back to prove a refused call changed nothing. */
  target?: { kind: "credential" | "key" | "webhook" | "merchant_account"; id: string };
}

interface Route {
  method: Method;
  path: string;
  /** The caller needs any one of these. */
  needs: string[];
  ok: number;
  /** Builds the call against fresh objects of `owner`, so every request stands alone. */
  prepare(h: Harness, owner: Company): Promise<Call>;
}

async function freshCredential(h: Harness, owner: Company, permissions = [DATA]): Promise<string> {
  const res = await h.call("POST", "/v1/credentials", {
    key: owner.key,
    json: { name: "Target credential", permissions },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().data.id;
}

let merchantAccounts = 0;
/** A merchant account of `owner`'s, with a code of its own. */
async function freshMerchantAccount(h: Harness, owner: Company): Promise<string> {
  merchantAccounts += 1;
  const res = await h.call("POST", "/v1/merchant-accounts", {
    key: owner.key,
    json: { name: "Target merchant", code: `target-${merchantAccounts}-${Date.now()}` },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().data.id;
}

const freshKey = (h: Harness, owner: Company) =>
  h.createKey(owner, { name: "Target key", permissions: [DATA] });

async function rotatedKey(h: Harness, owner: Company): Promise<string> {
  const { id } = await freshKey(h, owner);
  const res = await h.call("POST", `/v1/keys/${id}/rotate`, {
    key: owner.key,
    json: { grace_seconds: 3600 },
  });
  expect(res.statusCode, res.body).toBe(200);
  return id;
}

/**
 * A webhook endpoint of `owner`'s. A public address as a literal: checked without a DNS lookup, and
 * never sent to (this harness starts no deliverer).
 */
async function freshWebhook(h: Harness, owner: Company): Promise<string> {
  const res = await h.call("POST", "/v1/webhooks", {
    key: owner.key,
    json: { url: "https://93.184.215.14/hooks", events: ["key.created"] },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().data.id;
}

/** A webhook endpoint with one delivery queued (a key.created event). */
async function queuedDelivery(h: Harness, owner: Company): Promise<{ id: string; deliveryId: string }> {
  const id = await freshWebhook(h, owner);
  await freshKey(h, owner);
  const res = await h.call("GET", `/v1/webhooks/${id}/deliveries`, { key: owner.key });
  expect(res.statusCode, res.body).toBe(200);
  return { id, deliveryId: res.json().data.deliveries[0].id };
}

/** What a key caller needs for a route, as the policy table says (any one of these). */
function needsOf(route: string): string[] {
  const policy = Object.values(POLICY).find((p) => p.route === route) as Policy | undefined;
  if (!policy?.perms) throw new Error(`${route} is not a key caller's route in POLICY`);
  const perms = "all" in policy.perms ? policy.perms.all : policy.perms.any;
  if ("all" in policy.perms && perms.length > 1)
    throw new Error(`${route}: the table below takes one permission`);
  return [...perms];
}

const ROUTES: Route[] = [
  {
    method: "POST",
    path: "/v1/credentials",
    needs: needsOf("POST /v1/credentials"),
    ok: 201,
    prepare: async () => ({ url: "/v1/credentials", json: { name: "New credential", permissions: [DATA] } }),
  },
  {
    method: "GET",
    path: "/v1/credentials",
    needs: needsOf("GET /v1/credentials"),
    ok: 200,
    prepare: async () => ({ url: "/v1/credentials" }),
  },
  {
    method: "GET",
    path: "/v1/credentials/:id",
    needs: needsOf("GET /v1/credentials/:id"),
    ok: 200,
    async prepare(h, owner) {
      const id = await freshCredential(h, owner);
      return { url: `/v1/credentials/${id}`, target: { kind: "credential", id } };
    },
  },
  {
    method: "PATCH",
    path: "/v1/credentials/:id",
    needs: needsOf("PATCH /v1/credentials/:id"),
    ok: 200,
    async prepare(h, owner) {
      const id = await freshCredential(h, owner);
      return {
        url: `/v1/credentials/${id}`,
        json: { name: "Renamed", status: "inactive", allowed_ips: ["10.0.0.1"] },
        target: { kind: "credential", id },
      };
    },
  },
  {
    method: "POST",
    path: "/v1/credentials/:id/password",
    needs: needsOf("POST /v1/credentials/:id/password"),
    ok: 200,
    async prepare(h, owner) {
      const id = await freshCredential(h, owner);
      return { url: `/v1/credentials/${id}/password`, target: { kind: "credential", id } };
    },
  },
  {
    method: "POST",
    path: "/v1/merchant-accounts",
    needs: needsOf("POST /v1/merchant-accounts"),
    ok: 201,
    prepare: async () => {
      merchantAccounts += 1;
      return {
        url: "/v1/merchant-accounts",
        json: { name: "New merchant", code: `new-${merchantAccounts}-${Date.now()}` },
      };
    },
  },
  {
    method: "GET",
    path: "/v1/merchant-accounts",
    needs: needsOf("GET /v1/merchant-accounts"),
    ok: 200,
    prepare: async () => ({ url: "/v1/merchant-accounts" }),
  },
  {
    method: "GET",
    path: "/v1/merchant-accounts/:id",
    needs: needsOf("GET /v1/merchant-accounts/:id"),
    ok: 200,
    async prepare(h, owner) {
      const id = await freshMerchantAccount(h, owner);
      return { url: `/v1/merchant-accounts/${id}`, target: { kind: "merchant_account", id } };
    },
  },
  {
    method: "PATCH",
    path: "/v1/merchant-accounts/:id",
    needs: needsOf("PATCH /v1/merchant-accounts/:id"),
    ok: 200,
    async prepare(h, owner) {
      const id = await freshMerchantAccount(h, owner);
      return {
        url: `/v1/merchant-accounts/${id}`,
        json: { name: "Renamed", status: "inactive" },
        target: { kind: "merchant_account", id },
      };
    },
  },
  {
    method: "POST",
    path: "/v1/keys",
    needs: needsOf("POST /v1/keys"),
    ok: 201,
    prepare: async () => ({
      url: "/v1/keys",
      json: { name: "New key", environment: "live", permissions: [DATA] },
    }),
  },
  {
    method: "GET",
    path: "/v1/keys",
    needs: needsOf("GET /v1/keys"),
    ok: 200,
    prepare: async () => ({ url: "/v1/keys" }),
  },
  {
    method: "GET",
    path: "/v1/keys/:id",
    needs: needsOf("GET /v1/keys/:id"),
    ok: 200,
    async prepare(h, owner) {
      const { id } = await freshKey(h, owner);
      return { url: `/v1/keys/${id}`, target: { kind: "key", id } };
    },
  },
  {
    method: "GET",
    path: "/v1/keys/:id/usage",
    needs: needsOf("GET /v1/keys/:id/usage"),
    ok: 200,
    async prepare(h, owner) {
      const { id } = await freshKey(h, owner);
      return { url: `/v1/keys/${id}/usage?days=7`, target: { kind: "key", id } };
    },
  },
  {
    method: "GET",
    path: "/v1/usage",
    needs: needsOf("GET /v1/usage"),
    ok: 200,
    prepare: async () => ({ url: "/v1/usage?days=7" }),
  },
  {
    method: "PATCH",
    path: "/v1/keys/:id",
    needs: needsOf("PATCH /v1/keys/:id"),
    ok: 200,
    async prepare(h, owner) {
      const { id } = await freshKey(h, owner);
      return {
        url: `/v1/keys/${id}`,
        json: { name: "Renamed", allowed_ips: ["10.0.0.1"] },
        target: { kind: "key", id },
      };
    },
  },
  {
    method: "DELETE",
    path: "/v1/keys/:id",
    needs: needsOf("DELETE /v1/keys/:id"),
    ok: 200,
    async prepare(h, owner) {
      const { id } = await freshKey(h, owner);
      return { url: `/v1/keys/${id}`, target: { kind: "key", id } };
    },
  },
  {
    method: "POST",
    path: "/v1/keys/:id/rotate",
    needs: needsOf("POST /v1/keys/:id/rotate"),
    ok: 200,
    async prepare(h, owner) {
      const { id } = await freshKey(h, owner);
      return { url: `/v1/keys/${id}/rotate`, json: { grace_seconds: 60 }, target: { kind: "key", id } };
    },
  },
  {
    method: "POST",
    path: "/v1/keys/:id/expiry",
    needs: needsOf("POST /v1/keys/:id/expiry"),
    ok: 200,
    async prepare(h, owner) {
      const id = await rotatedKey(h, owner);
      return { url: `/v1/keys/${id}/expiry`, json: { action: "now" }, target: { kind: "key", id } };
    },
  },
  {
    method: "GET",
    path: "/v1/policies/leaks",
    needs: needsOf("GET /v1/policies/leaks"),
    ok: 200,
    prepare: async () => ({ url: "/v1/policies/leaks" }),
  },
  {
    method: "GET",
    path: "/v1/audit",
    needs: needsOf("GET /v1/audit"),
    ok: 200,
    prepare: async () => ({ url: "/v1/audit" }),
  },
  {
    method: "GET",
    path: "/v1/audit/export",
    needs: needsOf("GET /v1/audit/export"),
    ok: 200,
    prepare: async () => ({ url: "/v1/audit/export" }),
  },
  {
    method: "GET",
    path: "/v1/audit/verify",
    needs: needsOf("GET /v1/audit/verify"),
    ok: 200,
    prepare: async () => ({ url: "/v1/audit/verify" }),
  },
  {
    method: "GET",
    path: "/v1/policies/expiry",
    needs: needsOf("GET /v1/policies/expiry"),
    ok: 200,
    prepare: async () => ({ url: "/v1/policies/expiry" }),
  },
  {
    method: "POST",
    path: "/v1/webhooks",
    needs: needsOf("POST /v1/webhooks"),
    ok: 201,
    prepare: async () => ({ url: "/v1/webhooks", json: { url: "https://93.184.215.14/new" } }),
  },
  {
    method: "GET",
    path: "/v1/webhooks",
    needs: needsOf("GET /v1/webhooks"),
    ok: 200,
    prepare: async () => ({ url: "/v1/webhooks" }),
  },
  {
    method: "GET",
    path: "/v1/webhooks/:id",
    needs: needsOf("GET /v1/webhooks/:id"),
    ok: 200,
    async prepare(h, owner) {
      const id = await freshWebhook(h, owner);
      return { url: `/v1/webhooks/${id}`, target: { kind: "webhook", id } };
    },
  },
  {
    method: "PATCH",
    path: "/v1/webhooks/:id",
    needs: needsOf("PATCH /v1/webhooks/:id"),
    ok: 200,
    async prepare(h, owner) {
      const id = await freshWebhook(h, owner);
      return {
        url: `/v1/webhooks/${id}`,
        json: { url: "https://93.184.215.14/moved", status: "disabled", events: null },
        target: { kind: "webhook", id },
      };
    },
  },
  {
    method: "DELETE",
    path: "/v1/webhooks/:id",
    needs: needsOf("DELETE /v1/webhooks/:id"),
    ok: 200,
    async prepare(h, owner) {
      const id = await freshWebhook(h, owner);
      return { url: `/v1/webhooks/${id}`, target: { kind: "webhook", id } };
    },
  },
  {
    method: "POST",
    path: "/v1/webhooks/:id/rotate-secret",
    needs: needsOf("POST /v1/webhooks/:id/rotate-secret"),
    ok: 200,
    async prepare(h, owner) {
      const id = await freshWebhook(h, owner);
      return { url: `/v1/webhooks/${id}/rotate-secret`, target: { kind: "webhook", id } };
    },
  },
  {
    method: "GET",
    path: "/v1/webhooks/:id/deliveries",
    needs: needsOf("GET /v1/webhooks/:id/deliveries"),
    ok: 200,
    async prepare(h, owner) {
      const { id } = await queuedDelivery(h, owner);
      return { url: `/v1/webhooks/${id}/deliveries`, target: { kind: "webhook", id } };
    },
  },
  {
    method: "POST",
    path: "/v1/webhooks/:id/deliveries/:delivery_id/retry",
    needs: needsOf("POST /v1/webhooks/:id/deliveries/:delivery_id/retry"),
    ok: 200,
    async prepare(h, owner) {
      const { id, deliveryId } = await queuedDelivery(h, owner);
      return { url: `/v1/webhooks/${id}/deliveries/${deliveryId}/retry`, target: { kind: "webhook", id } };
    },
  },
  {
    method: "POST",
    path: "/v1/webhooks/:id/test",
    needs: needsOf("POST /v1/webhooks/:id/test"),
    ok: 202,
    async prepare(h, owner) {
      const id = await freshWebhook(h, owner);
      return { url: `/v1/webhooks/${id}/test`, target: { kind: "webhook", id } };
    },
  },
  {
    method: "POST",
    path: "/v1/verify",
    needs: needsOf("POST /v1/verify"),
    ok: 200,
    async prepare(h, owner) {
      const { key } = await freshKey(h, owner);
      return { url: "/v1/verify", json: { key } };
    },
  },
];

const MANAGEMENT_ROUTES = ROUTES.filter((r) => r.path !== "/v1/verify");
const ID_ROUTES = ROUTES.filter((r) => r.path.includes(":id"));
const routeName = (r: Route) => `${r.method} ${r.path}`;

/** Every way a caller can be missing, made up or dead; each must get the same 401. */
const DEAD_CALLERS = [
  "no credentials",
  "a malformed key",
  "a key with a broken checksum",
  "an unknown well-formed key",
  "an unknown well-formed key as Bearer",
  "an empty Bearer token",
  "an unknown authorization scheme",
  "a revoked key",
  "an expired key",
  "a rotated key past its grace period",
  "a key of a deactivated credential",
  "a key + secret pair key without its secret",
  "a key + secret pair key with a wrong secret",
  "a wrong Basic auth password",
  "a deactivated credential's Basic auth password",
  "a Basic auth header without a colon",
] as const;

const SECRET_FIELDS = new Set(["key", "secret", "key_hash", "secret_hash", "password", "password_hash"]);

/** Paths of every field in `value` whose name is one that must never be shown after creation. */
function secretFields(value: unknown, path = "$"): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => secretFields(v, `${path}[${i}]`));
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([k, v]) => [
    ...(SECRET_FIELDS.has(k) ? [`${path}.${k}`] : []),
    ...secretFields(v, `${path}.${k}`),
  ]);
}

const basic = (username: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`,
});

function expectError(res: LightMyRequestResponse, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json();
  expect(body.success).toBe(false);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  expect(body.error.request_id).toBe(res.headers["x-request-id"]);
  return body.error;
}

describe.each(BACKENDS)("authorization on %s", (kind) => {
  let h: Harness;
  /** The company whose objects every test acts on. */
  let a: Company;
  /** Another tenant, only ever a stranger to `a`. */
  let b: Company;
  const dead: Record<string, Headers> = {};
  /** Keys of `a` holding every catalog permission except the route's. */
  const lacking: Record<string, string> = {};
  /** Keys of `a` holding one management permission and DATA. */
  const only: Record<string, string> = {};
  let platformVerifyKey: string;
  /** A full key of `a` allowed only from 10.0.0.0/8. */
  let ipLimitedKey: string;
  /** A full key of a credential of `a` allowed only from 192.168.0.0/16. */
  let credentialIpLimitedKey: string;

  const everything = () => [...h.catalog.permissions];
  const send = (route: Route, call: Call, headers: Headers, ip?: string) =>
    h.call(route.method, call.url, {
      headers,
      ...(call.json === undefined ? {} : { json: call.json }),
      ...(ip === undefined ? {} : { ip }),
    });
  const apiKey = (key: string): Headers => ({ "x-api-key": key });

  async function createCredential(permissions: string[], extra: Record<string, unknown> = {}) {
    const res = await h.call("POST", "/v1/credentials", {
      key: a.key,
      json: { name: "Fixture credential", permissions, ...extra },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data as { id: string; username: string };
  }

  async function generatePassword(credentialId: string, as = a.key) {
    const res = await h.call("POST", `/v1/credentials/${credentialId}/password`, { key: as });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data as { username: string; password: string };
  }

  async function deactivate(credentialId: string) {
    const res = await h.call("PATCH", `/v1/credentials/${credentialId}`, {
      key: a.key,
      json: { status: "inactive" },
    });
    expect(res.statusCode, res.body).toBe(200);
  }

  /** The owner's view of an object, to compare before and after a stranger's attempt. */
  async function read(owner: Company, target: NonNullable<Call["target"]>) {
    const path =
      target.kind === "key"
        ? "keys"
        : target.kind === "webhook"
          ? "webhooks"
          : target.kind === "merchant_account"
            ? "merchant-accounts"
            : "credentials";
    const res = await h.call("GET", `/v1/${path}/${target.id}`, { key: owner.key });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data;
  }

  /** Every object of a list, across all pages. */
  async function listAll(key: string, path: "keys" | "credentials" | "webhooks", query = "") {
    const items: { id: string }[] = [];
    let cursor: string | null = null;
    do {
      const res = await h.call("GET", `/v1/${path}?limit=100${query}${cursor ? `&cursor=${cursor}` : ""}`, {
        key,
      });
      expect(res.statusCode, res.body).toBe(200);
      const data = res.json().data;
      items.push(...data[path]);
      cursor = data.next_cursor;
    } while (cursor);
    return items;
  }

  beforeAll(async () => {
    h = await createHarness(kind);
    a = await h.createCompany("Tenant A");
    b = await h.createCompany("Tenant B");
    platformVerifyKey = await h.verifyKey();

    const real = a.key;
    const lastChar = real.at(-1) === "A" ? "B" : "A";
    const unknown = generateToken("lk", "live", "sk");
    dead["no credentials"] = {};
    dead["a malformed key"] = apiKey("not-a-key");
    dead["a key with a broken checksum"] = apiKey(real.slice(0, -1) + lastChar);
    dead["an unknown well-formed key"] = apiKey(unknown);
    dead["an unknown well-formed key as Bearer"] = { authorization: `Bearer ${unknown}` };
    dead["an empty Bearer token"] = { authorization: "Bearer " };
    dead["an unknown authorization scheme"] = { authorization: `Token ${real}` };

    const revoked = await h.createKey(a, { name: "Revoked" });
    const del = await h.call("DELETE", `/v1/keys/${revoked.id}`, { key: a.key });
    expect(del.statusCode, del.body).toBe(200);
    dead["a revoked key"] = apiKey(revoked.key);

    const expiresAt = new Date(h.clock.now.getTime() + 60_000).toISOString();
    const expiring = await h.createKey(a, { name: "Expiring", expires_at: expiresAt });
    dead["an expired key"] = apiKey(expiring.key);

    const rotatedOut = await h.createKey(a, { name: "Rotated" });
    const rot = await h.call("POST", `/v1/keys/${rotatedOut.id}/rotate`, {
      key: a.key,
      json: { grace_seconds: 30 },
    });
    expect(rot.statusCode, rot.body).toBe(200);
    dead["a rotated key past its grace period"] = apiKey(rotatedOut.key);
    h.clock.advance(120);

    const doomed = await createCredential(everything());
    const doomedKey = await h.createKey(a, { name: "Doomed", credential_id: doomed.id });
    const doomedPassword = await generatePassword(doomed.id);
    await deactivate(doomed.id);
    dead["a key of a deactivated credential"] = apiKey(doomedKey.key);
    dead["a deactivated credential's Basic auth password"] = basic(doomed.username, doomedPassword.password);

    const pair = await h.createKey(a, { name: "Pair", with_secret: true });
    dead["a key + secret pair key without its secret"] = apiKey(pair.key);
    dead["a key + secret pair key with a wrong secret"] = {
      ...apiKey(pair.key),
      "x-api-secret": generateToken("lk", "live", "ss"),
    };

    const withPassword = await createCredential(everything());
    await generatePassword(withPassword.id);
    dead["a wrong Basic auth password"] = basic(withPassword.username, "not-the-password");
    dead["a Basic auth header without a colon"] = {
      authorization: `Basic ${Buffer.from(withPassword.username).toString("base64")}`,
    };

    for (const route of ROUTES) {
      const id = route.needs.join(",");
      if (lacking[id]) continue;
      const permissions = everything().filter((p) => !route.needs.includes(p));
      lacking[id] = (await h.createKey(a, { name: `Lacks ${id}`, permissions })).key;
    }
    for (const p of ["credentials:manage", "keys:manage", "keys:verify", "audit:read", "webhooks:manage"]) {
      only[p] = (await h.createKey(a, { name: `Only ${p}`, permissions: [p, DATA] })).key;
    }

    ipLimitedKey = (await h.createKey(a, { name: "IP limited", allowed_ips: ["10.0.0.0/8"] })).key;
    const fenced = await createCredential(everything(), { allowed_ips: ["192.168.0.0/16"] });
    credentialIpLimitedKey = (await h.createKey(a, { name: "Fenced", credential_id: fenced.id })).key;
  });
  afterAll(() => h.close());

  it("covers every route of the policy table that keys may call", () => {
    const keyRoutes = Object.values(POLICY)
      .filter((p: Policy) => (p.caller === "caller" || p.caller === "verifier") && !p.stream)
      .map((p) => p.route)
      .sort();
    expect(ROUTES.map(routeName).sort()).toEqual(keyRoutes);
  });

  it("lets the company's management key call every route (the table's requests are valid)", async () => {
    for (const route of ROUTES) {
      const res = await send(route, await route.prepare(h, a), apiKey(a.key));
      expect(res.statusCode, `${routeName(route)}: ${res.body}`).toBe(route.ok);
    }
  });

  describe.each(ROUTES.map((r) => ({ ...r, name: routeName(r) })))("$name", (route) => {
    it.each(DEAD_CALLERS)("refuses %s with 401 UNAUTHORIZED", async (caller) => {
      const res = await send(route, await route.prepare(h, a), dead[caller] as Headers);
      expectError(res, 401, "UNAUTHORIZED");
    });

    it("gives every refused caller the same 401, with no hint which", async () => {
      const errors = new Set<string>();
      for (const caller of DEAD_CALLERS) {
        const res = await send(route, await route.prepare(h, a), dead[caller] as Headers);
        const { request_id: _, ...error } = expectError(res, 401, "UNAUTHORIZED");
        errors.add(JSON.stringify(error));
      }
      expect([...errors]).toHaveLength(1);
    });

    it("refuses a key lacking the permission with 403 INSUFFICIENT_PERMISSIONS", async () => {
      const res = await send(
        route,
        await route.prepare(h, a),
        apiKey(lacking[route.needs.join(",")] as string),
      );
      expectError(res, 403, "INSUFFICIENT_PERMISSIONS");
    });

    it.each(route.needs)("accepts a key holding only %s (and the data permission in play)", async (p) => {
      const res = await send(route, await route.prepare(h, a), apiKey(only[p] as string));
      expect(res.statusCode, res.body).toBe(route.ok);
    });

    it("refuses a caller key outside its allowed_ips with 403 IP_NOT_ALLOWED, and accepts it inside", async () => {
      const outside = await send(route, await route.prepare(h, a), apiKey(ipLimitedKey), "127.0.0.1");
      expectError(outside, 403, "IP_NOT_ALLOWED");
      const inside = await send(route, await route.prepare(h, a), apiKey(ipLimitedKey), "10.1.2.3");
      expect(inside.statusCode, inside.body).toBe(route.ok);
    });

    it("enforces the caller credential's allowed_ips too", async () => {
      const outside = await send(
        route,
        await route.prepare(h, a),
        apiKey(credentialIpLimitedKey),
        "10.1.2.3",
      );
      expectError(outside, 403, "IP_NOT_ALLOWED");
      const inside = await send(
        route,
        await route.prepare(h, a),
        apiKey(credentialIpLimitedKey),
        "192.168.7.7",
      );
      expect(inside.statusCode, inside.body).toBe(route.ok);
    });
  });

  it.each(MANAGEMENT_ROUTES.map(routeName))(
    "refuses the platform verify key on %s with 403 FORBIDDEN",
    async (name) => {
      const route = MANAGEMENT_ROUTES.find((r) => routeName(r) === name) as Route;
      const res = await send(route, await route.prepare(h, a), apiKey(platformVerifyKey));
      expectError(res, 403, "FORBIDDEN");
    },
  );

  it.each(ID_ROUTES.map(routeName))(
    "answers another company's management key on %s with 404 and changes nothing",
    async (name) => {
      const route = ID_ROUTES.find((r) => routeName(r) === name) as Route;
      const call = await route.prepare(h, a);
      const target = call.target as NonNullable<Call["target"]>;
      const before = await read(a, target);
      const res = await send(route, call, apiKey(b.key));
      expectError(res, 404, "NOT_FOUND");
      expect(await read(a, target)).toEqual(before);
    },
  );

  it("does not let another company mint a key on the first company's credential", async () => {
    const credentialId = await freshCredential(h, a);
    const res = await h.call("POST", "/v1/keys", {
      key: b.key,
      json: { name: "Stolen", environment: "live", credential_id: credentialId, permissions: [DATA] },
    });
    expectError(res, 404, "NOT_FOUND");
    expect(await listAll(a.key, "keys", `&credential_id=${credentialId}`)).toEqual([]);
  });

  it("never shows another company's objects in its lists", async () => {
    const { id: credentialId } = await createCredential([DATA]);
    const { id: keyId } = await h.createKey(a, {
      name: "Listed",
      credential_id: credentialId,
      permissions: [DATA],
    });
    const aIds = new Set([
      ...(await listAll(a.key, "keys")).map((k) => k.id),
      ...(await listAll(a.key, "credentials")).map((c) => c.id),
    ]);
    expect(aIds).toContain(keyId);
    expect(aIds).toContain(credentialId);

    const bKeys = await listAll(b.key, "keys");
    const bCredentials = await listAll(b.key, "credentials");
    expect(bKeys.map((k) => k.id)).toContain(b.keyId);
    expect(bCredentials.map((c) => c.id)).toContain(b.credentialId);
    for (const item of [...bKeys, ...bCredentials]) expect(aIds.has(item.id)).toBe(false);
    expect(await listAll(b.key, "keys", `&credential_id=${credentialId}`)).toEqual([]);
  });

  it("never shows a key, secret, password or hash field in lists or in GET of one object", async () => {
    const pair = await h.createKey(a, { name: "Listed pair", with_secret: true });
    const { id: credentialId } = await createCredential([DATA]);
    await generatePassword(credentialId);

    const keys = await listAll(a.key, "keys");
    expect(keys.find((k) => k.id === pair.id)).toMatchObject({ has_secret: true });
    const credentials = await listAll(a.key, "credentials");
    expect(credentials.find((c) => c.id === credentialId)).toMatchObject({ has_password: true });
    expect(secretFields(keys)).toEqual([]);
    expect(secretFields(credentials)).toEqual([]);

    const webhookId = await freshWebhook(h, a);
    const webhooks = await listAll(a.key, "webhooks");
    expect(webhooks.map((w) => w.id)).toContain(webhookId);
    expect(secretFields(webhooks)).toEqual([]);
    // Another company's list never holds it.
    expect((await listAll(b.key, "webhooks")).map((w) => w.id)).not.toContain(webhookId);

    for (const url of [
      `/v1/keys/${pair.id}`,
      `/v1/credentials/${credentialId}`,
      `/v1/webhooks/${webhookId}`,
    ]) {
      const res = await h.call("GET", url, { key: a.key });
      expect(res.statusCode, res.body).toBe(200);
      expect(secretFields(res.json())).toEqual([]);
    }
  });

  it("never shows a key, its secret or a password again after creation", async () => {
    const pair = await h.createKey(a, { name: "Shown once", with_secret: true });
    const { id: credentialId } = await createCredential([DATA, "keys:manage"]);
    const { username, password } = await generatePassword(credentialId);
    // The tail past the displayed prefix is what makes a key secret.
    const secrets = [
      pair.key,
      pair.secret as string,
      pair.key.slice(-30),
      (pair.secret as string).slice(-30),
      password,
    ];
    const bodies: string[] = [];
    const record = async (p: Promise<LightMyRequestResponse>) => {
      const res = await p;
      expect(res.statusCode, res.body).toBeLessThan(500);
      bodies.push(res.body);
      return res;
    };

    const asPair = { key: pair.key, secret: pair.secret as string };
    await record(h.call("GET", "/v1/keys?limit=100", { key: a.key }));
    await record(h.call("GET", `/v1/keys/${pair.id}`, { key: a.key }));
    await record(h.call("GET", "/v1/keys?limit=100", asPair));
    await record(h.call("PATCH", `/v1/keys/${pair.id}`, { key: a.key, json: { name: "Renamed pair" } }));
    await record(h.call("POST", "/v1/verify", { key: a.key, json: { key: pair.key, secret: pair.secret } }));
    await record(h.call("POST", "/v1/verify", { key: a.key, json: { key: pair.key } }));
    await record(h.call("POST", "/v1/verify", { key: a.key, json: { username, password } }));
    await record(h.call("GET", "/v1/credentials?limit=100", { key: a.key }));
    await record(h.call("GET", `/v1/credentials/${credentialId}`, { key: a.key }));
    await record(h.call("GET", "/v1/keys?limit=1", { headers: basic(username, password) }));
    const rotated = await record(h.call("POST", `/v1/keys/${pair.id}/rotate`, { key: a.key, json: {} }));
    expect(rotated.json().data.key).not.toBe(pair.key);
    await record(h.call("POST", `/v1/keys/${pair.id}/expiry`, { key: a.key, json: { action: "reset" } }));
    await record(h.call("DELETE", `/v1/keys/${pair.id}`, { key: a.key }));
    await record(h.call("GET", "/v1/keys", asPair));
    await record(h.call("POST", "/v1/verify", { key: a.key, json: { key: pair.key, secret: pair.secret } }));

    for (const body of bodies) for (const secret of secrets) expect(body).not.toContain(secret);
  });

  describe("verification scope", () => {
    let companyVerifyKey: string;
    let keyOfA: string;
    let keyOfB: string;
    let basicOfB: { username: string; password: string };
    beforeAll(async () => {
      companyVerifyKey = (await h.createKey(a, { name: "Gateway of A", permissions: ["keys:verify"] })).key;
      keyOfA = (await freshKey(h, a)).key;
      keyOfB = (await freshKey(h, b)).key;
      const credentialOfB = await freshCredential(h, b);
      const { username, password } = await generatePassword(credentialOfB, b.key);
      basicOfB = { username, password };
    });
    const verify = (as: string, json: unknown) => h.call("POST", "/v1/verify", { key: as, json });

    it("lets a company verify key verify its own company's keys", async () => {
      const res = await verify(companyVerifyKey, { key: keyOfA });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().data).toMatchObject({ valid: true, code: "VALID", company_id: a.id });
    });

    it("answers a company verify key asking about another company's key with NOT_FOUND, revealing nothing", async () => {
      const res = await verify(companyVerifyKey, { key: keyOfB });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().data).toMatchObject({
        valid: false,
        code: "NOT_FOUND",
        key_id: null,
        credential_id: null,
        company_id: null,
        permissions: [],
      });
    });

    it("answers a company verify key asking about another company's Basic auth pair with NOT_FOUND", async () => {
      const res = await verify(companyVerifyKey, basicOfB);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().data).toMatchObject({ valid: false, code: "NOT_FOUND", credential_id: null });
    });

    it("lets the platform verify key verify the keys of every company", async () => {
      for (const [key, company] of [
        [keyOfA, a],
        [keyOfB, b],
      ] as const) {
        const res = await verify(platformVerifyKey, { key });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().data).toMatchObject({ valid: true, code: "VALID", company_id: company.id });
      }
      const res = await verify(platformVerifyKey, basicOfB);
      expect(res.json().data).toMatchObject({ valid: true, code: "VALID", company_id: b.id });
    });
  });

  describe("Basic auth", () => {
    let credential: { id: string; username: string };
    let password: string;
    beforeAll(async () => {
      credential = await createCredential(["keys:manage", DATA]);
      password = (await generatePassword(credential.id)).password;
    });

    it("authenticates as the credential, with its permissions and no more", async () => {
      const headers = basic(credential.username, password);
      const list = await h.call("GET", "/v1/keys", { headers });
      expect(list.statusCode, list.body).toBe(200);

      const created = await h.call("POST", "/v1/keys", {
        headers,
        json: { name: "By password", environment: "live" },
      });
      expect(created.statusCode, created.body).toBe(201);
      expect(created.json().data).toMatchObject({
        credential_id: credential.id,
        permissions: ["keys:manage", DATA],
      });

      const refused = await h.call("POST", "/v1/credentials", {
        headers,
        json: { name: "Nope", permissions: [DATA] },
      });
      expectError(refused, 403, "INSUFFICIENT_PERMISSIONS");
    });

    it("refuses a wrong password, an unknown username and an empty password with 401", async () => {
      for (const headers of [
        basic(credential.username, `${password}x`),
        basic(credential.username, ""),
        basic("ws_000000@Company.Nobody", password),
        basic(b.username, password),
      ]) {
        expectError(await h.call("GET", "/v1/keys", { headers }), 401, "UNAUTHORIZED");
      }
    });

    it("stops accepting the previous password as soon as a new one is generated", async () => {
      const other = await createCredential(["keys:manage", DATA]);
      const first = await generatePassword(other.id);
      const second = await generatePassword(other.id);
      expectError(
        await h.call("GET", "/v1/keys", { headers: basic(other.username, first.password) }),
        401,
        "UNAUTHORIZED",
      );
      const res = await h.call("GET", "/v1/keys", { headers: basic(other.username, second.password) });
      expect(res.statusCode, res.body).toBe(200);
    });
  });

  describe("privilege escalation", () => {
    /** keys:manage with two catalog permissions only. */
    let keyManager: string;
    /** credentials:manage with two catalog permissions only. */
    let credentialManager: string;
    beforeAll(async () => {
      keyManager = (
        await h.createKey(a, { name: "Key manager", permissions: ["keys:manage", DATA, "customer:write"] })
      ).key;
      credentialManager = (
        await h.createKey(a, {
          name: "Credential manager",
          permissions: ["credentials:manage", DATA, "customer:write"],
        })
      ).key;
    });

    it("refuses to mint a key with a permission the caller lacks", async () => {
      for (const permissions of [[DATA, MORE], ["credentials:manage"], [DATA, "keys:verify"]]) {
        const res = await h.call("POST", "/v1/keys", {
          key: keyManager,
          json: { name: "Escalation", environment: "live", permissions },
        });
        expectError(res, 403, "PERMISSION_NOT_HELD");
      }
    });

    it("cuts defaults and presets to what the caller holds", async () => {
      const held = new Set(["keys:manage", DATA, "customer:write"]);
      for (const extra of [{}, { preset: "full_access" }, { preset: { merchant: "full_access" } }]) {
        const res = await h.call("POST", "/v1/keys", {
          key: keyManager,
          json: { name: "Defaults", environment: "live", ...extra },
        });
        expect(res.statusCode, res.body).toBe(201);
        const granted: string[] = res.json().data.permissions;
        expect(granted.length).toBeGreaterThan(0);
        for (const p of granted) expect(held).toContain(p);
      }
    });

    it("refuses to rotate a key holding more than the caller", async () => {
      const strong = await h.createKey(a, { name: "Strong", permissions: [DATA, MORE] });
      const res = await h.call("POST", `/v1/keys/${strong.id}/rotate`, { key: keyManager, json: {} });
      expectError(res, 403, "PERMISSION_NOT_HELD");
      const after = await read(a, { kind: "key", id: strong.id });
      expect(after).toMatchObject({ status: "active", replaced_by: null, expires_at: null });
    });

    it("refuses a key's permission change even to a key manager holding everything", async () => {
      const weak = await h.createKey(a, { name: "Weak", permissions: [DATA] });
      const res = await h.call("PATCH", `/v1/keys/${weak.id}`, {
        key: a.key,
        json: { permissions: [DATA, MORE] },
      });
      expectError(res, 409, "PERMISSIONS_IMMUTABLE");
      expect((await read(a, { kind: "key", id: weak.id })).permissions).toEqual([DATA]);
    });

    it("refuses to create a credential with a permission the caller lacks", async () => {
      for (const permissions of [[DATA, MORE], ["keys:manage"]]) {
        const res = await h.call("POST", "/v1/credentials", {
          key: credentialManager,
          json: { name: "Escalation", permissions },
        });
        expectError(res, 403, "PERMISSION_NOT_HELD");
      }
    });

    it("refuses to widen a credential's permissions beyond the caller's", async () => {
      const id = await freshCredential(h, a);
      const res = await h.call("PATCH", `/v1/credentials/${id}`, {
        key: credentialManager,
        json: { permissions: [DATA, MORE] },
      });
      expectError(res, 403, "PERMISSION_NOT_HELD");
      expect((await read(a, { kind: "credential", id })).permissions).toEqual([DATA]);
    });

    it("refuses to generate a password for a credential holding more than the caller", async () => {
      const id = await freshCredential(h, a, [DATA, MORE]);
      const res = await h.call("POST", `/v1/credentials/${id}/password`, { key: credentialManager });
      expectError(res, 403, "PERMISSION_NOT_HELD");
      expect(await read(a, { kind: "credential", id })).toMatchObject({ has_password: false });
    });

    it("refuses a key with a permission its credential lacks, whoever asks", async () => {
      const id = await freshCredential(h, a);
      for (const permissions of [[DATA, "customer:write"], ["keys:manage"]]) {
        const res = await h.call("POST", "/v1/keys", {
          key: a.key,
          json: { name: "Beyond", environment: "live", credential_id: id, permissions },
        });
        expectError(res, 403, "PERMISSION_NOT_HELD");
      }
      expect(await listAll(a.key, "keys", `&credential_id=${id}`)).toEqual([]);
    });
  });

  describe("IP allowlists", () => {
    it("requires both the credential's and the key's allowlist to allow the caller", async () => {
      const fenced = await createCredential(everything(), { allowed_ips: ["10.1.0.0/16"] });
      const { key } = await h.createKey(a, {
        name: "Both",
        credential_id: fenced.id,
        allowed_ips: ["10.0.0.0/8"],
      });
      expectError(await h.call("GET", "/v1/keys", { key, ip: "10.2.0.1" }), 403, "IP_NOT_ALLOWED");
      expect((await h.call("GET", "/v1/keys", { key, ip: "10.1.0.1" })).statusCode).toBe(200);
    });

    it("matches an IPv4-mapped IPv6 peer against its IPv4 rule, and IPv6 ranges", async () => {
      const { key } = await h.createKey(a, { name: "Dual", allowed_ips: ["10.0.0.0/8", "2001:db8::/32"] });
      expect((await h.call("GET", "/v1/keys", { key, ip: "::ffff:10.9.9.9" })).statusCode).toBe(200);
      expect((await h.call("GET", "/v1/keys", { key, ip: "2001:db8:1::5" })).statusCode).toBe(200);
      expectError(await h.call("GET", "/v1/keys", { key, ip: "::ffff:11.0.0.1" }), 403, "IP_NOT_ALLOWED");
      expectError(await h.call("GET", "/v1/keys", { key, ip: "2001:db9::1" }), 403, "IP_NOT_ALLOWED");
    });

    it("ignores X-Forwarded-For when no proxy is trusted", async () => {
      const spoofed = await h.call("GET", "/v1/keys", {
        key: ipLimitedKey,
        ip: "127.0.0.1",
        headers: { "x-forwarded-for": "10.1.2.3" },
      });
      expectError(spoofed, 403, "IP_NOT_ALLOWED");
      const real = await h.call("GET", "/v1/keys", {
        key: ipLimitedKey,
        ip: "10.1.2.3",
        headers: { "x-forwarded-for": "8.8.8.8" },
      });
      expect(real.statusCode, real.body).toBe(200);
    });
  });

  describe("platform operator routes", () => {
    const ADMIN_ROUTES = [
      {
        url: "/v1/admin/companies",
        body: () => ({
          name: "Intruder Inc",
          owner_email: `x${Math.random().toString(36).slice(2)}@example.test`,
        }),
      },
      { url: "/v1/admin/verify-keys", body: () => ({ name: "Intruder gateway" }) },
    ];
    const adminCall = (url: string, json: unknown, headers: Headers) =>
      h.call("POST", url, { headers, json });

    it.each(ADMIN_ROUTES)("$url accepts the admin token", async ({ url, body }) => {
      const res = await adminCall(url, body(), { authorization: `Bearer ${ADMIN_TOKEN}` });
      expect(res.statusCode, res.body).toBe(201);
    });

    it.each(ADMIN_ROUTES)("$url refuses every other caller with 401", async ({ url, body }) => {
      const callers: Headers[] = [
        {},
        { authorization: "Bearer wrong-token" },
        { authorization: `Bearer ${ADMIN_TOKEN}x` },
        { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` },
        { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString("base64")}` },
        { "x-api-key": ADMIN_TOKEN },
        { authorization: `Bearer ${a.key}` },
        { "x-api-key": a.key },
        { authorization: `Bearer ${platformVerifyKey}` },
      ];
      for (const headers of callers) {
        expectError(await adminCall(url, body(), headers), 401, "UNAUTHORIZED");
      }
    });

    describe("with no platform token configured", () => {
      let bare: App;
      beforeAll(async () => {
        bare = await buildApp({ services: h.services, platformTokens: [], logger: false });
      });
      afterAll(() => bare.close());
      const bareCall = (url: string, payload: unknown, headers: Headers = {}) =>
        bare.inject({
          method: "POST",
          url,
          headers: { ...headers, "content-type": "application/json" },
          payload: JSON.stringify(payload),
          remoteAddress: "127.0.0.1",
        });

      it.each(ADMIN_ROUTES)("$url answers 404 like an unknown path, token or not", async ({ url, body }) => {
        const unknown = expectError(await bareCall("/v1/admin/nothing-here", body()), 404, "ROUTE_NOT_FOUND");
        const callers: Headers[] = [
          {},
          { authorization: `Bearer ${ADMIN_TOKEN}` },
          { authorization: "Bearer " },
        ];
        for (const headers of callers) {
          const error = expectError(await bareCall(url, body(), headers), 404, "ROUTE_NOT_FOUND");
          expect(error.message).toBe(unknown.message);
        }
      });

      it.each(ADMIN_ROUTES)("$url answers 404 even to an empty or invalid body", async ({ url }) => {
        for (const payload of [{}, { name: 42 }]) {
          expectError(
            await bareCall(url, payload, { authorization: `Bearer ${ADMIN_TOKEN}` }),
            404,
            "ROUTE_NOT_FOUND",
          );
        }
      });
    });
  });
});

describe.each(BACKENDS)("X-Forwarded-For behind a trusted proxy on %s", (kind) => {
  let h: Harness;
  let key: string;
  beforeAll(async () => {
    h = await createHarness(kind, { trustedProxies: ["127.0.0.1"] });
    const company = await h.createCompany("Proxied");
    key = (await h.createKey(company, { name: "Office only", allowed_ips: ["10.0.0.0/8"] })).key;
  });
  afterAll(() => h.close());
  const fromProxy = (xff: string, ip = "127.0.0.1") =>
    h.call("GET", "/v1/keys", { key, ip, headers: { "x-forwarded-for": xff } });

  it("takes the client address from X-Forwarded-For sent by the trusted proxy", async () => {
    const res = await fromProxy("10.1.2.3");
    expect(res.statusCode, res.body).toBe(200);
  });

  it("takes the rightmost untrusted hop, so a client cannot prepend an allowed address", async () => {
    expectError(await fromProxy("10.1.2.3, 8.8.8.8"), 403, "IP_NOT_ALLOWED");
  });

  it("skips trusted hops from the right", async () => {
    const res = await fromProxy("8.8.8.8, 10.1.2.3, 127.0.0.1");
    expect(res.statusCode, res.body).toBe(200);
  });

  it("ignores X-Forwarded-For from a peer that is not a trusted proxy", async () => {
    expectError(await fromProxy("10.1.2.3", "8.8.4.4"), 403, "IP_NOT_ALLOWED");
  });

  it("does not let a garbage hop stand in for the client", async () => {
    expectError(await fromProxy("10.1.2.3, not-an-ip"), 403, "IP_NOT_ALLOWED");
  });
});
