import { gzipSync } from "node:zlib";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../src/http/app.ts";
import type { App } from "../../src/http/types.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";

const DATA = "customer:read";
const BODY_LIMIT = 4096;

type Method = "GET" | "POST" | "PATCH" | "DELETE";
type Headers = Record<string, string>;

interface BodyRoute {
  method: Method;
  /** `:cred`, `:key` and `:ma` stand for a real credential, key and merchant account of the test company. */
  path: string;
  admin?: boolean;
  valid(): Record<string, unknown>;
}

const uniqueEmail = () => `owner-${Math.random().toString(36).slice(2)}@example.test`;

const BODY_ROUTES: BodyRoute[] = [
  {
    method: "POST",
    path: "/v1/admin/companies",
    admin: true,
    valid: () => ({ name: "Bad Input Co", owner_email: uniqueEmail() }),
  },
  { method: "POST", path: "/v1/admin/verify-keys", admin: true, valid: () => ({ name: "Gateway" }) },
  { method: "POST", path: "/v1/credentials", valid: () => ({ name: "Credential", permissions: [DATA] }) },
  { method: "PATCH", path: "/v1/credentials/:cred", valid: () => ({ name: "Renamed" }) },
  {
    method: "POST",
    path: "/v1/keys",
    valid: () => ({ name: "Key", environment: "live", permissions: [DATA] }),
  },
  { method: "PATCH", path: "/v1/keys/:key", valid: () => ({ name: "Renamed" }) },
  { method: "POST", path: "/v1/keys/:key/rotate", valid: () => ({ grace_seconds: 60 }) },
  { method: "POST", path: "/v1/keys/:key/expiry", valid: () => ({ action: "reset" }) },
  { method: "POST", path: "/v1/verify", valid: () => ({ permissions: [DATA] }) },
  {
    method: "POST",
    path: "/v1/merchant-accounts",
    valid: () => ({ name: "Shop", code: `shop-${Math.random().toString(36).slice(2, 10)}` }),
  },
  { method: "PATCH", path: "/v1/merchant-accounts/:ma", valid: () => ({ name: "Renamed shop" }) },
];

/** Takes no body, but must still refuse one it cannot parse. */
const PASSWORD_ROUTE: BodyRoute = {
  method: "POST",
  path: "/v1/credentials/:cred/password",
  valid: () => ({}),
};
const PARSED_ROUTES = [...BODY_ROUTES, PASSWORD_ROUTE];

const ID_ROUTES: { method: Method; path: string; body?: Record<string, unknown> }[] = [
  { method: "GET", path: "/v1/credentials/:id" },
  { method: "PATCH", path: "/v1/credentials/:id", body: { name: "Renamed" } },
  { method: "POST", path: "/v1/credentials/:id/password" },
  { method: "GET", path: "/v1/keys/:id" },
  { method: "PATCH", path: "/v1/keys/:id", body: { name: "Renamed" } },
  { method: "DELETE", path: "/v1/keys/:id" },
  { method: "POST", path: "/v1/keys/:id/rotate", body: {} },
  { method: "POST", path: "/v1/keys/:id/expiry", body: { action: "now" } },
  { method: "GET", path: "/v1/merchant-accounts/:id" },
  { method: "PATCH", path: "/v1/merchant-accounts/:id", body: { name: "Renamed" } },
];

/** [route path, field value patch, the field the error must name] */
const WRONG_TYPES: [string, Record<string, unknown>, string][] = [
  ["/v1/admin/companies", { name: 123 }, "name"],
  ["/v1/admin/companies", { name: "" }, "name"],
  ["/v1/admin/companies", { owner_email: 5 }, "owner_email"],
  ["/v1/admin/companies", { owner_email: "not an email" }, "owner_email"],
  ["/v1/admin/verify-keys", { name: ["Gateway"] }, "name"],
  ["/v1/credentials", { name: 123 }, "name"],
  ["/v1/credentials", { description: false }, "description"],
  ["/v1/credentials", { permissions: {} }, "permissions"],
  ["/v1/credentials", { permissions: DATA }, "permissions"],
  ["/v1/credentials", { permissions: [1] }, "permissions.0"],
  ["/v1/credentials", { permissions: ["Customer:Read"] }, "permissions.0"],
  ["/v1/credentials", { roles: "checkout" }, "roles"],
  ["/v1/credentials", { roles: [7] }, "roles.0"],
  ["/v1/credentials", { roles: ["Checkout"] }, "roles.0"],
  ["/v1/credentials", { roles: ["x".repeat(49)] }, "roles.0"],
  ["/v1/credentials", { roles: Array(101).fill("checkout") }, "roles"],
  ["/v1/credentials", { username_format: "lem" }, "username_format"],
  ["/v1/credentials", { username_format: ["web_service"] }, "username_format"],
  ["/v1/credentials", { allowed_ips: "10.0.0.1" }, "allowed_ips"],
  ["/v1/credentials", { email: "not an email" }, "email"],
  ["/v1/credentials", { email: 42 }, "email"],
  ["/v1/credentials", { email: `${"a".repeat(250)}@x.example` }, "email"],
  ["/v1/credentials/:cred", { email: "ops@@merchant.example" }, "email"],
  ["/v1/credentials/:cred", { email: ["ops@merchant.example"] }, "email"],
  ["/v1/credentials/:cred", { status: "deleted" }, "status"],
  ["/v1/credentials/:cred", { name: null }, "name"],
  ["/v1/credentials/:cred", { permissions: { [DATA]: true } }, "permissions"],
  ["/v1/credentials/:cred", { roles: { checkout: true } }, "roles"],
  ["/v1/credentials/:cred", { username_format: "web_service" }, "username_format"],
  ["/v1/keys", { name: 123 }, "name"],
  ["/v1/keys", { with_secret: "yes" }, "with_secret"],
  ["/v1/keys", { with_secret: 1 }, "with_secret"],
  ["/v1/keys", { environment: "production" }, "environment"],
  ["/v1/keys", { permissions: {} }, "permissions"],
  ["/v1/keys", { expires_at: 1_800_000_000 }, "expires_at"],
  ["/v1/keys", { credential_id: 5 }, "credential_id"],
  ["/v1/keys", { credential_id: "cred_../../etc" }, "credential_id"],
  ["/v1/keys", { preset: "everything" }, "preset"],
  ["/v1/keys/:key", { name: 123 }, "name"],
  ["/v1/keys/:key", { allowed_ips: [10] }, "allowed_ips.0"],
  ["/v1/keys/:key/rotate", { grace_seconds: 1.5 }, "grace_seconds"],
  ["/v1/keys/:key/rotate", { grace_seconds: -1 }, "grace_seconds"],
  ["/v1/keys/:key/rotate", { grace_seconds: 7 * 24 * 3600 + 1 }, "grace_seconds"],
  ["/v1/keys/:key/rotate", { grace_seconds: "60" }, "grace_seconds"],
  ["/v1/keys/:key/expiry", { action: "later" }, "action"],
  ["/v1/keys/:key/expiry", { action: 1 }, "action"],
  ["/v1/merchant-accounts", { name: 5 }, "name"],
  ["/v1/merchant-accounts", { name: "" }, "name"],
  ["/v1/merchant-accounts", { code: ["shop"] }, "code"],
  ["/v1/merchant-accounts", { code: "Not a code!" }, "code"],
  ["/v1/merchant-accounts/:ma", { status: "deleted" }, "status"],
  ["/v1/merchant-accounts/:ma", { name: null }, "name"],
  ["/v1/credentials", { merchant_account_id: 5 }, "merchant_account_id"],
  ["/v1/credentials", { merchant_account_id: "ma_../../etc" }, "merchant_account_id"],
  ["/v1/verify", { key: 5 }, "key"],
  ["/v1/verify", { permissions: {} }, "permissions"],
  ["/v1/verify", { environment: "prod" }, "environment"],
  ["/v1/verify", { ip: 127001 }, "ip"],
];

/** [route path, the body without a required field, that field] */
const MISSING: [string, Record<string, unknown>, string][] = [
  ["/v1/admin/companies", { name: "No Email Co" }, "owner_email"],
  ["/v1/admin/verify-keys", {}, "name"],
  ["/v1/credentials", { roles: ["checkout"] }, "name"],
  ["/v1/keys", { name: "No environment" }, "environment"],
  ["/v1/keys/:key/expiry", {}, "action"],
];

const INVALID_IPS = [
  "300.1.1.1",
  "10.0.0.0/33",
  "fe80::1%eth0",
  " 10.0.0.1",
  "10.0.0.1 ",
  "10.0.0.01",
  "10.0.0.0/",
  "10.0.0.0/8/8",
  "::ffff:10.0.0.0/64",
  "*",
  "localhost",
  "",
];

/** Printable Unicode a user may well type: must be stored and shown back exactly. */
const PRINTABLE = {
  emoji: "🔑 Gateway 👩‍💻 🇧🇷",
  "combining marks": "Cafe\u0301 Zoe\u0308 a\u0308\u0301\u0323",
  "an RTL override": "invoice \u202egnp.exe",
  "non-Latin scripts": "日本語 العربية Ελληνικά",
  "a zero-width joiner": "a\u200db",
};

/** Characters that break logs, terminals or PostgreSQL: must be refused. */
const CONTROL = {
  NUL: "a\u0000b",
  "a bell": "ring\u0007",
  "a newline": "line\nbreak",
  "an ANSI escape": "\u001b[31mred",
  DEL: "del\u007f",
};

function expectError(res: LightMyRequestResponse, status: number, code?: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  const body = res.json();
  expect(body).toMatchObject({
    success: false,
    error: { code: expect.any(String), message: expect.any(String), request_id: expect.any(String) },
  });
  expect(body.error.request_id).toBe(res.headers["x-request-id"]);
  if (code !== undefined) expect(body.error.code).toBe(code);
  return body.error as { code: string; message: string; field?: string; details?: Record<string, unknown> };
}

describe.each(BACKENDS)("bad input on %s", (kind) => {
  let h: Harness;
  /** The same services behind the default body limit, for bodies that must reach validation. */
  let roomy: App;
  let company: Company;
  let credentialId: string;
  let keyId: string;
  let merchantAccountId: string;

  const auth = (route: { admin?: boolean }): Headers =>
    route.admin ? { authorization: `Bearer ${ADMIN_TOKEN}` } : { "x-api-key": company.key };
  const urlOf = (path: string) =>
    path.replace(":cred", credentialId).replace(":key", keyId).replace(":ma", merchantAccountId);
  const routeFor = (path: string) => BODY_ROUTES.find((r) => r.path === path) as BodyRoute;
  const name = (r: { method: string; path: string }) => `${r.method} ${r.path}`;

  /** Sends a raw payload with a content type of our choosing. */
  const raw = (route: BodyRoute, payload: string, contentType = "application/json") =>
    h.call(route.method, urlOf(route.path), {
      headers: { ...auth(route), "content-type": contentType },
      payload,
    });
  const send = (route: BodyRoute, json: unknown) =>
    h.call(route.method, urlOf(route.path), { headers: auth(route), json });

  const sendRoomy = (route: BodyRoute, json: unknown) => {
    const req: InjectOptions = {
      method: route.method,
      url: urlOf(route.path),
      headers: { ...auth(route), "content-type": "application/json" },
      payload: JSON.stringify(json),
      remoteAddress: "127.0.0.1",
    };
    return roomy.inject(req);
  };

  beforeAll(async () => {
    h = await createHarness(kind, { bodyLimit: BODY_LIMIT });
    roomy = await buildApp({ services: h.services, platformTokens: [ADMIN_TOKEN], logger: false });
    company = await h.createCompany("Bad Input Target");
    const res = await h.call("POST", "/v1/credentials", {
      key: company.key,
      json: { name: "Fixture", permissions: [DATA] },
    });
    expect(res.statusCode, res.body).toBe(201);
    credentialId = res.json().data.id;
    keyId = (await h.createKey(company, { name: "Fixture", permissions: [DATA] })).id;
    const account = await h.call("POST", "/v1/merchant-accounts", {
      key: company.key,
      json: { name: "Fixture shop", code: "fixture-shop" },
    });
    expect(account.statusCode, account.body).toBe(201);
    merchantAccountId = account.json().data.id;
  });
  afterAll(async () => {
    await roomy.close();
    await h.close();
  });

  it("accepts each route's valid body (the bad cases below differ from it in one way)", async () => {
    for (const route of BODY_ROUTES.filter((r) => !r.path.includes("/expiry"))) {
      const res = await send(route, route.valid());
      expect(res.statusCode, `${name(route)}: ${res.body}`).toBeLessThan(300);
    }
  });

  describe.each(PARSED_ROUTES.map((r) => ({ ...r, name: name(r) })))("$name", (route) => {
    it("refuses a body over the limit with 413 PAYLOAD_TOO_LARGE", async () => {
      const payload = JSON.stringify({ ...route.valid(), padding: "x".repeat(10 * 1024) });
      expectError(await raw(route, payload), 413, "PAYLOAD_TOO_LARGE");
    });

    it.each(["text/plain", "application/x-www-form-urlencoded", "application/xml"])(
      "refuses content-type %s with 415 UNSUPPORTED_MEDIA_TYPE",
      async (contentType) => {
        expectError(
          await raw(route, JSON.stringify(route.valid()), contentType),
          415,
          "UNSUPPORTED_MEDIA_TYPE",
        );
      },
    );

    /** The route's valid body, under a Content-Encoding of our choosing. */
    const encoded = (encoding: string, payload: Buffer) =>
      h.call(route.method, urlOf(route.path), {
        headers: { ...auth(route), "content-type": "application/json", "content-encoding": encoding },
        payload,
      });

    it.each(["foo", "compress", "gzip, br"])(
      "refuses content-encoding %s with 415 UNSUPPORTED_ENCODING, never reading it as plain",
      async (encoding) => {
        expectError(
          await encoded(encoding, Buffer.from(JSON.stringify(route.valid()))),
          415,
          "UNSUPPORTED_ENCODING",
        );
      },
    );

    it("refuses a corrupt gzip body with 400 INVALID_ENCODING", async () => {
      const gz = gzipSync(JSON.stringify(route.valid()));
      // The right magic bytes, then garbage; and a body cut short.
      const corrupt = Buffer.concat([gz.subarray(0, 10), Buffer.from("not deflate data at all")]);
      expectError(await encoded("gzip", corrupt), 400, "INVALID_ENCODING");
      expectError(await encoded("gzip", gz.subarray(0, gz.length - 8)), 400, "INVALID_ENCODING");
    });

    it("refuses a gzip body that decodes past the limit with 413 PAYLOAD_TOO_LARGE", async () => {
      const payload = JSON.stringify({ ...route.valid(), padding: "x".repeat(10 * 1024) });
      const gz = gzipSync(payload);
      expect(gz.length).toBeLessThan(BODY_LIMIT);
      expectError(await encoded("gzip", gz), 413, "PAYLOAD_TOO_LARGE");
    });

    it.each(['{"name": ', "{'name': 'x'}", '{"name": "x",}', "{name: 1}", "\u0000", '{"a":1}{"b":2}'])(
      "refuses malformed JSON %j with 400 INVALID_JSON",
      async (payload) => {
        expectError(await raw(route, payload), 400, "INVALID_JSON");
      },
    );
  });

  describe.each(BODY_ROUTES.map((r) => ({ ...r, name: name(r) })))("$name", (route) => {
    it.each(["[]", "[{}]", '"a string"', "null", "42", "true"])(
      "refuses the JSON body %s with 400",
      async (payload) => {
        const error = expectError(await raw(route, payload), 400);
        expect(["VALIDATION_ERROR", "INVALID_JSON"]).toContain(error.code);
      },
    );

    it("refuses an unknown field with 400 VALIDATION_ERROR naming it", async () => {
      const error = expectError(await send(route, { ...route.valid(), bogus: 1 }), 400, "VALIDATION_ERROR");
      expect(error.field).toBe("bogus");
    });

    it.each([
      '{"__proto__": {"is_admin": true}}',
      '{"constructor": {"prototype": {"is_admin": true}}}',
      '{"name": "x", "nested": {"__proto__": {"is_admin": true}}}',
    ])("refuses the prototype-poisoning payload %s with a 4xx", async (payload) => {
      const res = await raw(route, payload);
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, res.body).toBeLessThan(500);
      expectError(res, res.statusCode);
      expect(({} as Record<string, unknown>).is_admin).toBeUndefined();
    });
  });

  it.each(WRONG_TYPES)("%s with %j → 400 VALIDATION_ERROR naming %s", async (path, patch, field) => {
    const route = routeFor(path);
    const error = expectError(await send(route, { ...route.valid(), ...patch }), 400, "VALIDATION_ERROR");
    expect(error.field).toBe(field);
  });

  it.each(MISSING)("%s with %j → 400 VALIDATION_ERROR naming the missing %s", async (path, body, field) => {
    const error = expectError(await send(routeFor(path), body), 400, "VALIDATION_ERROR");
    expect(error.field).toBe(field);
  });

  it.each(["/v1/credentials/:cred", "/v1/keys/:key"])("%s refuses an empty update with 400", async (path) => {
    expectError(await send(routeFor(path), {}), 400, "VALIDATION_ERROR");
  });

  describe("odd Unicode in text fields", () => {
    /** Each writes one text field and reads it back the way a user would see it later. */
    const TEXT_FIELDS = [
      {
        field: "name",
        what: "a credential's name",
        max: 200,
        async write(value: string) {
          return send(routeFor("/v1/credentials"), { name: value, permissions: [DATA] });
        },
        async readBack(res: LightMyRequestResponse) {
          const got = await h.call("GET", `/v1/credentials/${res.json().data.id}`, { key: company.key });
          return got.json().data.name;
        },
      },
      {
        field: "description",
        what: "a credential's description",
        max: 1000,
        async write(value: string) {
          return send(routeFor("/v1/credentials/:cred"), { description: value });
        },
        async readBack() {
          const got = await h.call("GET", `/v1/credentials/${credentialId}`, { key: company.key });
          return got.json().data.description;
        },
      },
      {
        field: "name",
        what: "a key's name",
        max: 200,
        async write(value: string) {
          return send(routeFor("/v1/keys"), { name: value, environment: "live", permissions: [DATA] });
        },
        async readBack(res: LightMyRequestResponse) {
          const got = await h.call("GET", `/v1/keys/${res.json().data.id}`, { key: company.key });
          return got.json().data.name;
        },
      },
      {
        field: "description",
        what: "a key's description",
        max: 1000,
        async write(value: string) {
          return send(routeFor("/v1/keys/:key"), { description: value });
        },
        async readBack() {
          const got = await h.call("GET", `/v1/keys/${keyId}`, { key: company.key });
          return got.json().data.description;
        },
      },
      {
        field: "name",
        what: "a company's name",
        max: 200,
        async write(value: string) {
          return send(routeFor("/v1/admin/companies"), { name: value, owner_email: uniqueEmail() });
        },
        async readBack(res: LightMyRequestResponse) {
          return res.json().data.company.name;
        },
      },
    ];

    describe.each(TEXT_FIELDS)("$what", (target) => {
      it.each(Object.entries(PRINTABLE))("stores and shows back %s intact", async (_, value) => {
        const res = await target.write(value);
        expect(res.statusCode, res.body).toBeLessThan(300);
        expect(await target.readBack(res)).toBe(value);
      });

      it(`stores exactly ${target.max} characters`, async () => {
        const value = "é".repeat(target.max);
        const res = await target.write(value);
        expect(res.statusCode, res.body).toBeLessThan(300);
        expect(await target.readBack(res)).toBe(value);
      });

      it.each(Object.entries(CONTROL))("refuses %s with 400 naming the field", async (_, value) => {
        const error = expectError(await target.write(value), 400, "VALIDATION_ERROR");
        expect(error.field).toBe(target.field);
      });

      it(`refuses ${target.max + 1} characters with 400 naming the field`, async () => {
        const error = expectError(await target.write("a".repeat(target.max + 1)), 400, "VALIDATION_ERROR");
        expect(error.field).toBe(target.field);
      });

      it("refuses a lone surrogate or keeps it intact, never altering it silently", async () => {
        const value = "broken \ud800 half";
        const res = await target.write(value);
        expect(res.statusCode, res.body).not.toBeGreaterThanOrEqual(500);
        if (res.statusCode >= 400) {
          expect(expectError(res, 400, "VALIDATION_ERROR").field).toBe(target.field);
        } else {
          expect(await target.readBack(res)).toBe(value);
        }
      });
    });

    it.each(BODY_ROUTES.filter((r) => r.path !== "/v1/keys/:key/expiry").map(name))(
      "%s refuses 10,000-character strings with 400 naming the field",
      async (routeName) => {
        const route = BODY_ROUTES.find((r) => name(r) === routeName) as BodyRoute;
        const valid = route.valid();
        const textField = Object.keys(valid).find((k) => typeof valid[k] === "string") ?? "name";
        const long = "a".repeat(10_000);
        const body =
          route.path === "/v1/verify"
            ? { key: long }
            : route.path.endsWith("/rotate")
              ? { expires_at: long }
              : { ...valid, [textField]: long };
        const field = Object.keys(body).find((k) => body[k as keyof typeof body] === long);
        const error = expectError(await sendRoomy(route, body), 400, "VALIDATION_ERROR");
        expect(error.field).toBe(field);
      },
    );
  });

  describe("path parameters", () => {
    const BAD_IDS = [
      encodeURIComponent("../../etc/passwd"),
      "..%2F..%2F..%2Fetc%2Fpasswd",
      "a".repeat(5000),
      `key_${"a".repeat(300)}`,
      encodeURIComponent("key_'; drop table api_keys;--"),
      encodeURIComponent("cred_' OR '1'='1"),
      "%00",
      "%E0%A4%A",
      "%",
      encodeURIComponent("key_ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶ"),
    ];

    describe.each(ID_ROUTES.map((r) => ({ ...r, name: name(r) })))("$name", (route) => {
      const call = (id: string) =>
        h.call(route.method, route.path.replace(":id", id), {
          key: company.key,
          ...(route.body === undefined ? {} : { json: route.body }),
        });

      it.each(BAD_IDS.map((id) => [id.length > 60 ? `${id.slice(0, 40)}… (${id.length} chars)` : id, id]))(
        "answers the id %s with 400, 404 or 414, never 500",
        async (_, id) => {
          const res = await call(id);
          // 414 URI Too Long is as honest as 400 for an id past the router's length limit.
          expect([400, 404, 414], res.body).toContain(res.statusCode);
          expectError(res, res.statusCode);
        },
      );

      it("answers a well-formed id that does not exist with 404 NOT_FOUND", async () => {
        const prefix = route.path.startsWith("/v1/keys")
          ? "key"
          : route.path.startsWith("/v1/merchant-accounts")
            ? "ma"
            : "cred";
        expectError(await call(`${prefix}_${"A".repeat(22)}`), 404, "NOT_FOUND");
      });

      it("answers an id of the other kind with 400 or 404", async () => {
        const other = route.path.startsWith("/v1/keys") ? credentialId : keyId;
        const res = await call(other);
        expect([400, 404], res.body).toContain(res.statusCode);
        expectError(res, res.statusCode);
      });
    });

    it("leaves the tables in place after SQL-ish ids", async () => {
      const res = await h.call("GET", `/v1/keys/${keyId}`, { key: company.key });
      expect(res.statusCode, res.body).toBe(200);
    });
  });

  it.each([
    "/v1/keys?limit=0",
    "/v1/keys?limit=101",
    "/v1/keys?limit=ten",
    "/v1/keys?limit=-1",
    "/v1/keys?cursor=key_'%20OR%201=1--",
    "/v1/keys?status=deleted",
    "/v1/keys?environment=prod",
    "/v1/keys?credential_id=..%2F..",
    "/v1/keys?bogus=1",
    "/v1/credentials?limit=1.5",
    "/v1/credentials?bogus=1",
  ])("refuses the query %s with 400 VALIDATION_ERROR naming the parameter", async (url) => {
    const error = expectError(await h.call("GET", url, { key: company.key }), 400, "VALIDATION_ERROR");
    const parameter = url.split("?")[1]?.split("=")[0];
    expect(error.field).toBe(parameter);
  });

  it.each([
    ["GET", "/"],
    ["GET", "/v1"],
    ["GET", "/v1/nope"],
    ["GET", "/v2/keys"],
    ["POST", "/v1/keys/:key/unknown"],
    ["PUT", "/v1/keys/:key"],
    ["DELETE", "/v1/credentials/:cred"],
    ["DELETE", "/v1/keys"],
    ["GET", "/v1/admin/companies"],
  ] as const)("answers %s %s with 404 ROUTE_NOT_FOUND", async (method, path) => {
    expectError(await h.call(method, urlOf(path), { key: company.key }), 404, "ROUTE_NOT_FOUND");
  });

  it("still has the credential nobody can DELETE", async () => {
    await h.call("DELETE", `/v1/credentials/${credentialId}`, { key: company.key });
    const res = await h.call("GET", `/v1/credentials/${credentialId}`, { key: company.key });
    expect(res.statusCode, res.body).toBe(200);
  });

  describe("allowed IP entries", () => {
    const IP_ROUTES = ["/v1/credentials", "/v1/credentials/:cred", "/v1/keys", "/v1/keys/:key"];

    describe.each(IP_ROUTES)("%s", (path) => {
      it.each(INVALID_IPS)("refuses %j with 400 INVALID_IP_RULE naming the entry", async (entry) => {
        const route = routeFor(path);
        const res = await send(route, { ...route.valid(), allowed_ips: ["10.0.0.1", entry] });
        // An empty string is refused by the schema before the IP parser sees it.
        if (entry === "") {
          expect(expectError(res, 400).field).toMatch(/^allowed_ips/);
          return;
        }
        const error = expectError(res, 400, "INVALID_IP_RULE");
        expect(error.field).toBe("allowed_ips");
        expect(error.details?.entry).toBe(entry);
        expect(error.message).toContain(entry);
      });
    });

    it("leaves an object's allowlist unchanged after a refused update", async () => {
      const set = await h.call("PATCH", `/v1/keys/${keyId}`, {
        key: company.key,
        json: { allowed_ips: ["192.0.2.0/24"] },
      });
      expect(set.statusCode, set.body).toBe(200);
      const refused = await h.call("PATCH", `/v1/keys/${keyId}`, {
        key: company.key,
        json: { allowed_ips: ["300.1.1.1"] },
      });
      expectError(refused, 400, "INVALID_IP_RULE");
      const res = await h.call("GET", `/v1/keys/${keyId}`, { key: company.key });
      expect(res.json().data.allowed_ips).toEqual(["192.0.2.0/24"]);
      await h.call("PATCH", `/v1/keys/${keyId}`, { key: company.key, json: { allowed_ips: [] } });
    });
  });

  it.each([
    ["/v1/credentials", ["nope:read"]],
    ["/v1/credentials", [DATA, "customer:delete"]],
    ["/v1/credentials/:cred", [DATA, "nope:read"]],
    ["/v1/keys", ["nope:read"]],
    ["/v1/keys", [DATA, "keys:destroy"]],
  ])("%s refuses the permissions %j with 400 UNKNOWN_PERMISSION", async (path, permissions) => {
    const route = routeFor(path);
    const error = expectError(
      await send(route, { ...route.valid(), permissions }),
      400,
      "UNKNOWN_PERMISSION",
    );
    expect(error.field).toBe("permissions");
  });

  describe("expires_at", () => {
    const cases: [string, () => string][] = [
      ["an hour ago", () => new Date(h.clock.now.getTime() - 3600_000).toISOString()],
      ["exactly now", () => h.clock.now.toISOString()],
      ["not a date", () => "not a date"],
      ["a date without a time", () => "2030-01-01"],
      ["February 30th", () => "2030-02-30T00:00:00Z"],
      ["month 13", () => "2030-13-01T00:00:00Z"],
      ["a relative word", () => "tomorrow"],
    ];

    it.each(cases)("POST /v1/keys refuses %s with 400 naming expires_at", async (_, value) => {
      const route = routeFor("/v1/keys");
      const error = expectError(
        await send(route, { ...route.valid(), expires_at: value() }),
        400,
        "VALIDATION_ERROR",
      );
      expect(error.field).toBe("expires_at");
    });

    it.each(cases)("POST /v1/keys/:id/rotate refuses %s with 400 naming expires_at", async (_, value) => {
      const { id } = await h.createKey(company, { name: "To rotate", permissions: [DATA] });
      const res = await h.call("POST", `/v1/keys/${id}/rotate`, {
        key: company.key,
        json: { expires_at: value() },
      });
      const error = expectError(res, 400, "VALIDATION_ERROR");
      expect(error.field).toBe("expires_at");
      const after = await h.call("GET", `/v1/keys/${id}`, { key: company.key });
      expect(after.json().data.replaced_by).toBeNull();
    });
  });

  it("still works after all of that", async () => {
    const health = await h.call("GET", "/healthz");
    expect(health.statusCode).toBe(200);
    const created = await h.createKey(company, { name: "Afterwards", permissions: [DATA] });
    const res = await h.call("POST", "/v1/verify", {
      key: company.key,
      json: { key: created.key, permissions: [DATA] },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().data).toMatchObject({ valid: true, code: "VALID", key_id: created.id });
  });
});
