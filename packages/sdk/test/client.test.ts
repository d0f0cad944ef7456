import type { AddressInfo } from "node:net";
import { Compile } from "typebox/compile";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, createHarness, type Harness } from "../../../test/helpers/harness.ts";
import type * as Api from "../src/api-types.ts";
import { LatchkeyApiError, LatchkeyClient, OPERATIONS, type Operation } from "../src/index.ts";

/**
 * The typed client against a real Latchkey: its operation table matches the server's /openapi.json
 * both ways (every documented operation has a client method, and the client calls nothing the server
 * does not document, with the same query and body fields and the same kind of caller), and real calls
 * round-trip over HTTP.
 */

interface OpenApiOperation {
  security?: Record<string, unknown>[];
  parameters?: { in: string; name: string }[];
  requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> };
}
type OpenApi = { paths: Record<string, Record<string, OpenApiOperation>> };

/** The keys of T a value must carry, and those it may. */
type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];
type OptionalKeys<T> = Exclude<keyof T, RequiredKeys<T>>;
type Exhaustive<All, Listed> = [Exclude<All, Listed>] extends [never]
  ? unknown
  : { missing: Exclude<All, Listed> };

/**
 * A type's fields written out, checked by the compiler to be exactly the type's (none left out, none
 * made up, required and optional apart), so the test can hold them to the document's schema.
 */
const shape =
  <T>() =>
  <const R extends readonly RequiredKeys<T>[], const O extends readonly OptionalKeys<T>[]>(
    fields: { required: R; optional: O } & Exhaustive<RequiredKeys<T>, R[number]> &
      Exhaustive<OptionalKeys<T>, O[number]>,
  ) => ({ required: [...fields.required] as string[], optional: [...fields.optional] as string[] });

const KEY = [
  "id",
  "name",
  "description",
  "environment",
  "prefix",
  "permissions",
  "permission_summary",
  "allowed_ips",
  "rate_limits",
  "status",
  "has_secret",
  "credential_id",
  "merchant_account_id",
  "expires_at",
  "revoked_at",
  "replaced_by",
  "last_used_at",
  "last_used_ip",
  "created_at",
  "created_by",
  "leak",
  "remaining",
  "refill",
  "meta",
  "external_id",
] as const;
const CREDENTIAL = [
  "id",
  "username",
  "name",
  "environment",
  "merchant_account_id",
  "description",
  "status",
  "is_default",
  "username_format",
  "roles",
  "unknown_roles",
  "permissions",
  "granted_permissions",
  "permission_summary",
  "allowed_ips",
  "rate_limits",
  "email",
  "has_password",
  "password_created_at",
  "created_at",
  "created_by",
  "updated_at",
] as const;

const MERCHANT_ACCOUNT = [
  "id",
  "name",
  "code",
  "status",
  "api_user_count",
  "key_count",
  "created_at",
  "created_by",
  "updated_at",
] as const;

/** The client's types, by the operation (and `response` or `body`) the document describes them for. */
type Fields = ReturnType<ReturnType<typeof shape>>;
const SHAPES: [operation: string, part: "response" | "body", fields: ReturnType<ReturnType<typeof shape>>][] =
  [
    ["GET /v1/keys/{id}", "response", shape<Api.Key>()({ required: KEY, optional: ["policy_issues"] })],
    [
      "POST /v1/keys",
      "response",
      shape<Api.CreatedKey>()({ required: [...KEY, "key"], optional: ["secret", "policy_issues"] }),
    ],
    [
      "POST /v1/keys/{id}/rotate",
      "response",
      shape<Api.RotatedKey>()({
        required: [...KEY, "key", "previous_key"],
        optional: ["secret", "policy_issues"],
      }),
    ],
    [
      "DELETE /v1/keys/{id}",
      "response",
      shape<Api.RevokedKey>()({ required: ["message", "id", "revoked_at"], optional: [] }),
    ],
    [
      "GET /v1/keys/{id}/usage",
      "response",
      shape<Api.KeyUsage>()({
        required: ["key_id", "merchant_account_id", "days", "total_requests", "last_used_at", "last_used_ip"],
        optional: [],
      }),
    ],
    [
      "GET /v1/usage",
      "response",
      shape<Api.CompanyUsage>()({
        required: ["environment", "days", "total_requests", "total_denied", "keys_used"],
        optional: [],
      }),
    ],
    [
      "POST /v1/keys",
      "body",
      shape<Api.CreateKeyBody>()({
        required: ["name", "environment"],
        optional: [
          "description",
          "credential_id",
          "permissions",
          "preset",
          "allowed_ips",
          "rate_limits",
          "expires_at",
          "with_secret",
          "remaining",
          "refill",
          "meta",
          "external_id",
          "totp_code",
        ],
      }),
    ],
    [
      "PATCH /v1/keys/{id}",
      "body",
      shape<Api.UpdateKeyBody>()({
        required: [],
        optional: [
          "name",
          "description",
          "allowed_ips",
          "rate_limits",
          "permissions",
          "remaining",
          "refill",
          "meta",
          "external_id",
          "totp_code",
        ],
      }),
    ],
    ["GET /v1/credentials/{id}", "response", shape<Api.Credential>()({ required: CREDENTIAL, optional: [] })],
    [
      "POST /v1/credentials",
      "body",
      shape<Api.CreateCredentialBody>()({
        required: ["name"],
        optional: [
          "environment",
          "merchant_account_id",
          "description",
          "email",
          "username_format",
          "roles",
          "permissions",
          "allowed_ips",
          "rate_limits",
          "totp_code",
        ],
      }),
    ],
    [
      "PATCH /v1/credentials/{id}",
      "body",
      shape<Api.UpdateCredentialBody>()({
        required: [],
        optional: [
          "name",
          "description",
          "email",
          "roles",
          "permissions",
          "allowed_ips",
          "rate_limits",
          "status",
          "totp_code",
        ],
      }),
    ],
    [
      "POST /v1/credentials/{id}/password",
      "response",
      shape<Api.CredentialPassword>()({ required: ["username", "password", "created_at"], optional: [] }),
    ],
    [
      "POST /v1/verify",
      "body",
      shape<Api.VerifyBody>()({
        required: [],
        optional: ["key", "secret", "username", "password", "permissions", "ip", "environment", "cost"],
      }),
    ],
    [
      "POST /v1/verify",
      "response",
      shape<Api.VerifyResult>()({
        required: [
          "valid",
          "code",
          "key_id",
          "credential_id",
          "company_id",
          "environment",
          "merchant_account_id",
          "permissions",
          "expires_at",
          "rate_limit",
          "remaining",
          "meta",
          "external_id",
          "ip_restricted",
        ],
        optional: [],
      }),
    ],
    [
      "GET /v1/merchant-accounts/{id}",
      "response",
      shape<Api.MerchantAccount>()({ required: MERCHANT_ACCOUNT, optional: [] }),
    ],
    [
      "POST /v1/merchant-accounts",
      "body",
      shape<{ name: string; code: string }>()({ required: ["name", "code"], optional: [] }),
    ],
    [
      "GET /v1/catalog",
      "response",
      shape<Api.Catalog>()({
        required: ["groups", "roles", "permissions", "presets", "management_routes", "unmapped_routes"],
        optional: [],
      }),
    ],
    [
      "POST /v1/admin/companies",
      "response",
      shape<Api.CreatedCompany>()({
        required: ["company", "owner", "default_credential", "default_test_credential", "management_key"],
        optional: [],
      }),
    ],
    [
      "POST /v1/admin/verify-keys",
      "response",
      shape<Api.CreatedVerifyKey>()({ required: ["id", "key", "prefix"], optional: [] }),
    ],
    [
      "GET /v1/admin/audit/verify",
      "response",
      shape<Api.PlatformAuditVerification>()({ required: ["valid", "chains"], optional: [] }),
    ],
    [
      "GET /v1/audit/verify",
      "response",
      shape<Api.AuditVerification>()({
        required: ["valid", "events_checked", "first_broken_event_id"],
        optional: [],
      }),
    ],
    [
      "POST /v1/auth/login",
      "response",
      shape<Api.Session>()({
        required: [
          "user",
          "company",
          "role",
          "csrf_token",
          "expires_at",
          "password_change_required",
          "totp_enrolled",
        ],
        optional: [],
      }),
    ],
    [
      "GET /v1/me",
      "response",
      shape<Api.Me>()({
        required: [
          "user",
          "company_id",
          "role",
          "merchant_account_id",
          "csrf_token",
          "password_change_required",
          "totp_enrolled",
          "companies",
        ],
        optional: [],
      }),
    ],
    [
      "POST /v1/auth/switch-company",
      "response",
      shape<Api.SwitchedCompany>()({
        required: ["user", "company", "role", "csrf_token", "expires_at"],
        optional: [],
      }),
    ],
    [
      "POST /v1/auth/accept-membership",
      "response",
      shape<Api.AcceptedMembership>()({ required: ["company", "role"], optional: [] }),
    ],
    [
      "PATCH /v1/users/{id}",
      "response",
      shape<Api.User>()({
        required: [
          "id",
          "email",
          "role",
          "status",
          "merchant_account_id",
          "totp_enrolled",
          "password_change_required",
          "created_at",
        ],
        optional: [],
      }),
    ],
    [
      "POST /v1/users",
      "response",
      shape<Api.InvitedUser>()({
        required: ["id", "email", "role", "merchant_account_id", "invitation_sent"],
        optional: ["temporary_password", "accept_link"],
      }),
    ],
  ];

/** What a client method's promise resolves to. */
type Returned<F> = F extends (...args: never[]) => Promise<infer R> ? R : never;
type Client = LatchkeyClient;

/** The client's list answers: the page's own fields, and the fields of each item, by operation. */
const LISTS: [operation: string, field: string, page: Fields, item: Fields][] = [
  [
    "GET /v1/keys",
    "keys",
    shape<Returned<Client["keys"]["list"]>>()({ required: ["keys", "next_cursor"], optional: [] }),
    shape<Api.Key>()({ required: KEY, optional: ["policy_issues"] }),
  ],
  [
    "GET /v1/credentials",
    "credentials",
    shape<Returned<Client["credentials"]["list"]>>()({
      required: ["credentials", "next_cursor"],
      optional: [],
    }),
    shape<Api.Credential>()({ required: CREDENTIAL, optional: [] }),
  ],
  [
    "GET /v1/audit",
    "events",
    shape<Returned<Client["audit"]["list"]>>()({ required: ["events", "next_cursor"], optional: [] }),
    shape<Api.AuditEvent>()({
      required: [
        "id",
        "seq",
        "at",
        "action",
        "actor",
        "target",
        "changes",
        "ip",
        "user_agent",
        "totp_used",
        "environment",
        "merchant_account_id",
      ],
      optional: [],
    }),
  ],
  [
    "GET /v1/users",
    "users",
    shape<Returned<Client["users"]["list"]>>()({ required: ["users"], optional: [] }),
    shape<Api.User>()({
      required: [
        "id",
        "email",
        "role",
        "status",
        "merchant_account_id",
        "totp_enrolled",
        "password_change_required",
        "created_at",
      ],
      optional: [],
    }),
  ],
];

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  additionalProperties?: boolean | JsonSchema;
}

/**
 * The schema with every object closed that does not say otherwise: Fastify's serializer drops fields a
 * schema does not name, but the fast path writes its answers itself, so a field the document leaves
 * out could still reach a client.
 */
function closed(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = { ...schema };
  if (schema.properties !== undefined) {
    out.properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, closed(v)]));
    out.additionalProperties ??= false;
  }
  if (typeof schema.additionalProperties === "object")
    out.additionalProperties = closed(schema.additionalProperties);
  if (schema.items !== undefined) out.items = closed(schema.items);
  for (const key of ["anyOf", "oneOf", "allOf"] as const) {
    const branches = schema[key];
    if (branches !== undefined) out[key] = branches.map(closed);
  }
  return out;
}

const ALL = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const TABLE = Object.entries(OPERATIONS) as [string, Operation][];

describe("LatchkeyClient", () => {
  let h: Harness;
  let url = "";
  let doc: OpenApi;
  let admin: LatchkeyClient;

  beforeAll(async () => {
    h = await createHarness("pglite", { catalogPath: "examples/catalogs/web3pay.json" });
    await h.app.listen({ port: 0, host: "127.0.0.1" });
    url = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
    const res = await fetch(`${url}/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as OpenApi;
    admin = new LatchkeyClient({ url, adminToken: ADMIN_TOKEN });
  });
  afterAll(() => h.close());

  describe("against /openapi.json", () => {
    const documented = (): Map<string, OpenApiOperation> => {
      const out = new Map<string, OpenApiOperation>();
      for (const [path, ops] of Object.entries(doc.paths))
        for (const [method, op] of Object.entries(ops)) out.set(`${method.toUpperCase()} ${path}`, op);
      return out;
    };
    const inTable = (): Map<string, [string, Operation]> => {
      const out = new Map<string, [string, Operation]>();
      for (const [name, op] of TABLE)
        for (const method of op.method === "ALL" ? ALL : [op.method]) {
          expect(out.has(`${method} ${op.path}`), `${method} ${op.path} twice`).toBe(false);
          out.set(`${method} ${op.path}`, [name, op]);
        }
      return out;
    };

    it("has an operation in its table for every documented operation, and no other", () => {
      expect([...inTable().keys()].sort()).toEqual([...documented().keys()].sort());
      expect(documented().size).toBeGreaterThan(35);
    });

    it("has a method on the client for every operation of its table", () => {
      const client = new LatchkeyClient({ url }) as unknown as Record<string, unknown>;
      for (const [name] of TABLE) {
        const method = name
          .split(".")
          .reduce<unknown>((at, part) => (at as Record<string, unknown>)?.[part], client);
        expect(typeof method, name).toBe("function");
      }
    });

    it.each(TABLE)("sends %s the query and body fields the server documents", (_name, op) => {
      const found = documented().get(`${op.method === "ALL" ? "GET" : op.method} ${op.path}`);
      expect(found).toBeDefined();
      const query = (found?.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name);
      expect([...(op.query ?? [])].sort()).toEqual(query.sort());
      const body = Object.keys(found?.requestBody?.content["application/json"]?.schema.properties ?? {});
      expect([...(op.body ?? [])].sort()).toEqual(body.sort());
      // Who calls it, as the document's security says: none, the admin bearer token, a gateway's verify key.
      const security = found?.security?.flatMap((s) => Object.keys(s));
      const caller =
        security === undefined
          ? ["key", "session"]
          : security.length === 0
            ? ["public"]
            : security.includes("verifyKey")
              ? ["gateway"]
              : ["admin"];
      expect(caller).toContain(op.caller);
    });
  });

  describe("its types, against the schemas of /openapi.json", () => {
    interface Schema {
      properties?: Record<string, Schema>;
      required?: string[];
    }
    const schemaOf = (operation: string, part: "response" | "body"): Schema | undefined => {
      const [method, path] = operation.split(" ") as [string, string];
      const op = doc.paths[path]?.[method.toLowerCase()] as
        | (OpenApiOperation & {
            responses?: Record<string, { content?: Record<string, { schema: Schema }> }>;
          })
        | undefined;
      if (part === "body") return op?.requestBody?.content["application/json"]?.schema as Schema | undefined;
      const ok = op?.responses?.["200"] ?? op?.responses?.["201"];
      return ok?.content?.["application/json"]?.schema.properties?.data;
    };

    it.each(SHAPES)("%s (%s) has the fields the client's type declares", (operation, part, fields) => {
      const schema = schemaOf(operation, part);
      expect(schema?.properties, operation).toBeDefined();
      const required = schema?.required ?? [];
      const optional = Object.keys(schema?.properties ?? {}).filter((k) => !required.includes(k));
      expect([...fields.required].sort()).toEqual([...required].sort());
      expect([...fields.optional].sort()).toEqual(optional.sort());
    });

    const fieldsOf = (schema: Schema | undefined) => {
      const required = schema?.required ?? [];
      return {
        required: [...required].sort(),
        optional: Object.keys(schema?.properties ?? {})
          .filter((k) => !required.includes(k))
          .sort(),
      };
    };
    it.each(LISTS)(
      "%s (response) is a page of %s with the fields the client's types declare",
      (operation, field, page, item) => {
        const schema = schemaOf(operation, "response");
        expect(fieldsOf(schema)).toEqual({
          required: [...page.required].sort(),
          optional: [...page.optional].sort(),
        });
        const items = (schema?.properties?.[field] as (Schema & { items?: Schema }) | undefined)?.items;
        expect(fieldsOf(items)).toEqual({
          required: [...item.required].sort(),
          optional: [...item.optional].sort(),
        });
      },
    );
  });

  describe("over HTTP", () => {
    it("creates a key, reads it, verifies it, revokes it, and sees it refused", async () => {
      const created = await admin.admin.createCompany({
        name: "Client Co",
        owner_email: "owner@client.test",
      });
      const manager = new LatchkeyClient({ url, key: created.management_key.key });
      const key = await manager.keys.create({
        name: "payments",
        environment: "live",
        permissions: ["onramp:read"],
      });
      expect(key).toMatchObject({ name: "payments", status: "active", permissions: ["onramp:read"] });
      expect(key.key).toMatch(/^lk_live_sk_/);

      expect(await manager.keys.get(key.id)).toMatchObject({
        id: key.id,
        prefix: key.prefix,
        status: "active",
      });
      const listed = await manager.keys.list({ environment: "live", limit: 100 });
      expect(listed.keys.map((k) => k.id)).toContain(key.id);
      expect(await manager.keys.update(key.id, { description: "the payments box" })).toMatchObject({
        description: "the payments box",
      });

      const gateway = new LatchkeyClient({
        url,
        key: (await admin.admin.createVerifyKey({ name: "gw" })).key,
      });
      expect(await gateway.verify({ key: key.key, permissions: ["onramp:read"] })).toMatchObject({
        valid: true,
        code: "VALID",
        key_id: key.id,
        company_id: created.company.id,
      });
      // Forward auth, as nginx asks it, maps the route through the catalog.
      expect(
        await gateway.authorize({
          method: "GET",
          uri: "/v1/onramp/ses_1",
          headers: { "x-api-key": key.key },
        }),
      ).toMatchObject({ allowed: true, status: 200, keyId: key.id, companyId: created.company.id });
      expect(
        await gateway.authorize({ method: "POST", uri: "/v1/onramp", headers: { "x-api-key": key.key } }),
      ).toMatchObject({ allowed: false, status: 403, error: { code: "INSUFFICIENT_PERMISSIONS" } });

      expect(await manager.keys.revoke(key.id)).toMatchObject({ id: key.id });
      expect(await gateway.verify({ key: key.key })).toMatchObject({ valid: false, code: "REVOKED" });
      expect((await manager.keys.get(key.id)).status).toBe("revoked");
      expect((await manager.keys.usage(key.id, { days: 7 })).key_id).toBe(key.id);
    });

    it("throws LatchkeyApiError with the code, status, request id and details of a refusal", async () => {
      const created = await admin.admin.createCompany({
        name: "Errors Co",
        owner_email: "owner@errors.test",
      });
      const manager = new LatchkeyClient({ url, key: created.management_key.key });
      // Another company's key is no key of this one's.
      const other = await admin.admin.createCompany({ name: "Other Co", owner_email: "owner@other.test" });
      const missing = await manager.keys.get(other.management_key.id).catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(LatchkeyApiError);
      expect(missing).toMatchObject({ status: 404, code: "NOT_FOUND" });
      expect((missing as LatchkeyApiError).requestId).toMatch(/.+/);
      const unknown = await manager.keys
        .create({ name: "x", environment: "live", permissions: ["nothing:here"] })
        .catch((e: unknown) => e);
      expect(unknown).toMatchObject({ status: 400, code: "UNKNOWN_PERMISSION" });
      const malformed = await manager.keys.get("nope").catch((e: unknown) => e);
      expect(malformed).toMatchObject({ status: 400, code: "VALIDATION_ERROR", field: expect.any(String) });
      const nobody = await new LatchkeyClient({ url }).keys.list().catch((e: unknown) => e);
      expect(nobody).toMatchObject({ status: 401, code: "UNAUTHORIZED" });
    });

    it("reads the catalog, the audit trail, the API users, and a session's own answers", async () => {
      const catalog = await new LatchkeyClient({ url }).catalog();
      expect(catalog.unmapped_routes).toBe("deny");
      expect(catalog.management_routes["keys:manage"]).toEqual(["ALL /v1/keys", "ALL /v1/keys/*"]);
      const created = await admin.admin.createCompany({ name: "Audit Co", owner_email: "owner@audit.test" });
      const manager = new LatchkeyClient({ url, key: created.management_key.key });
      const credentials = await manager.credentials.list();
      expect(credentials.credentials.map((c) => c.id)).toContain(created.default_credential.id);
      expect((await manager.credentials.get(created.default_credential.id)).username).toBe(
        created.default_credential.username,
      );
      const events = await manager.audit.list({ limit: 50 });
      expect(events.events.length).toBeGreaterThan(0);
      expect((await manager.audit.export()).length).toBe(events.events.length);
      expect(await manager.audit.verify()).toMatchObject({ valid: true });
      expect((await admin.admin.verifyAudit()).valid).toBe(true);

      const person = new LatchkeyClient({ url });
      const session = await person.auth.login({
        email: "owner@audit.test",
        password: created.owner.temporary_password ?? "",
      });
      expect(session.company.id).toBe(created.company.id);
      expect(await person.me()).toMatchObject({ company_id: created.company.id, role: "owner" });
      await person.auth.logout();
      await expect(person.me()).rejects.toMatchObject({ status: 401 });
    });

    it("gets from its list, get and verify calls what /openapi.json documents for them, and nothing else", async () => {
      /** The answer's `data` schema of an operation, closed (see closed()). */
      const documented = (operation: string) => {
        const [method, path] = operation.split(" ") as [string, string];
        const responses = (
          doc.paths[path]?.[method.toLowerCase()] as
            | { responses?: Record<string, { content?: Record<string, { schema: JsonSchema }> }> }
            | undefined
        )?.responses;
        const schema = (responses?.["200"] ?? responses?.["201"])?.content?.["application/json"]?.schema;
        expect(schema, operation).toBeDefined();
        return closed(schema?.properties?.data ?? (schema as JsonSchema));
      };
      const checked: string[] = [];
      const hold = (operation: string, value: unknown) => {
        const check = Compile(documented(operation) as Parameters<typeof Compile>[0]);
        const errors = check.Check(value) ? [] : [...check.Errors(value)].slice(0, 5);
        expect({ operation, errors }).toEqual({ operation, errors: [] });
        checked.push(operation);
      };

      const created = await admin.admin.createCompany({
        name: "Schema Co",
        owner_email: "owner@schema.test",
      });
      const manager = new LatchkeyClient({ url, key: created.management_key.key });
      const credential = await manager.credentials.create({
        name: "Schema user",
        permissions: ["onramp:read", "transactions:read"],
        allowed_ips: ["203.0.113.0/24"],
        rate_limits: [{ limit: 100, window: "1m" }],
      });
      await manager.credentials.password(credential.id);
      const plain = await manager.keys.create({
        name: "plain",
        environment: "live",
        permissions: ["onramp:read"],
      });
      const limited = await manager.keys.create({
        name: "limited",
        environment: "live",
        permissions: ["onramp:read"],
        credential_id: credential.id,
        with_secret: true,
        allowed_ips: ["203.0.113.7"],
        rate_limits: [{ limit: 10, window: "1h" }],
        expires_at: new Date(Date.now() + 86_400_000).toISOString(),
      });
      const rotated = await manager.keys.rotate(plain.id, { grace_seconds: 3600 });
      const revoked = await manager.keys.create({
        name: "gone",
        environment: "test",
        permissions: ["onramp:read"],
        credential_id: created.default_test_credential.id,
      });
      await manager.keys.revoke(revoked.id);

      // Verified by the fast path (a body of known length with a verify key), which writes its own JSON.
      const gateway = new LatchkeyClient({
        url,
        key: (await admin.admin.createVerifyKey({ name: "schema" })).key,
      });
      for (const body of [
        { key: rotated.key, permissions: ["onramp:read"] },
        { key: plain.key, permissions: ["onramp:read"] },
        { key: limited.key, secret: limited.secret, ip: "203.0.113.7" },
        { key: limited.key, secret: limited.secret, ip: "198.51.100.1" },
        { key: revoked.key },
        { key: `${plain.key.slice(0, -1)}${plain.key.endsWith("A") ? "B" : "A"}` },
      ])
        hold("POST /v1/verify", await gateway.verify(body));

      hold("GET /healthz", await manager.health());
      hold("GET /readyz", await manager.ready());
      hold("GET /v1/catalog", await manager.catalog());
      const firstPage = await manager.keys.list({ limit: 1 });
      expect(firstPage.next_cursor).toEqual(expect.any(String));
      hold("GET /v1/keys", firstPage);
      hold("GET /v1/keys", await manager.keys.list({ limit: 100 }));
      hold("GET /v1/keys", await manager.keys.list({ status: "revoked", environment: "test" }));
      for (const id of [plain.id, rotated.id, limited.id, revoked.id])
        hold("GET /v1/keys/{id}", await manager.keys.get(id));
      hold("GET /v1/keys/{id}/usage", await manager.keys.usage(limited.id, { days: 3 }));
      hold("GET /v1/usage", await manager.usage.company({ days: 3, environment: "live" }));
      hold("GET /v1/credentials", await manager.credentials.list({ limit: 1 }));
      hold("GET /v1/credentials", await manager.credentials.list());
      hold("GET /v1/credentials/{id}", await manager.credentials.get(credential.id));
      hold("GET /v1/credentials/{id}", await manager.credentials.get(created.default_credential.id));
      hold("GET /v1/audit", await manager.audit.list({ limit: 2 }));
      hold("GET /v1/audit", await manager.audit.list());
      hold("GET /v1/audit/verify", await manager.audit.verify());
      hold("GET /v1/admin/audit/verify", await admin.admin.verifyAudit());

      const person = new LatchkeyClient({ url });
      await person.auth.login({
        email: "owner@schema.test",
        password: created.owner.temporary_password ?? "",
      });
      hold("GET /v1/me", await person.me());
      await person.auth.changePassword({
        current_password: created.owner.temporary_password ?? "",
        new_password: "a long new password for the schema test",
      });
      hold("GET /v1/me", await person.me());
      hold("GET /v1/users", await person.users.list());
      // Switching (here into the one company the person has) replaces the session; the client carries
      // the new cookie and CSRF token on, so the next write goes through.
      const switched = await person.auth.switchCompany(created.company.id);
      hold("POST /v1/auth/switch-company", switched);
      expect(switched.company.id).toBe(created.company.id);
      // A second company for the same login is an offer the person accepts with its link's token.
      const second = await admin.admin.createCompany({
        name: "Schema Two",
        owner_email: "owner@schema.test",
      });
      const token = String(second.owner.accept_link).split("#token=")[1] ?? "";
      const accepted = await person.auth.acceptMembership(token);
      hold("POST /v1/auth/accept-membership", accepted);
      expect(accepted.company.id).toBe(second.company.id);
      expect((await person.users.invite({ email: "second@schema.test", role: "viewer" })).email).toBe(
        "second@schema.test",
      );
      expect(new Set(checked).size).toBe(17);
    });
  });
});
