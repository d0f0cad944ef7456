import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { readCatalog } from "../../src/config.ts";
import type { Catalog } from "../../src/core/catalog.ts";
import { buildApp } from "../../src/http/app.ts";
import type { App } from "../../src/http/types.ts";
import { createRuntime } from "../../src/runtime.ts";
import type { Services } from "../../src/services/services.ts";
import type { Store, StoreKind } from "../../src/store/store.ts";
import { openTestStore } from "./backends.ts";

export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef";
export const SECRET = "test-secret-0123456789abcdef0123456789";

/** A clock tests move by hand. */
export class TestClock {
  constructor(public now = new Date("2026-01-15T12:00:00.000Z")) {}
  read = () => this.now;
  advance(seconds: number) {
    this.now = new Date(this.now.getTime() + seconds * 1000);
  }
}

export interface Company {
  id: string;
  slug: string;
  ownerEmail: string;
  credentialId: string;
  username: string;
  /** The default test API user: test keys belong to test credentials. */
  testCredentialId: string;
  /** The management key: every catalog permission plus the management group. */
  key: string;
  keyId: string;
}

export interface Harness {
  kind: StoreKind;
  app: App;
  services: Services;
  store: Store;
  clock: TestClock;
  catalog: Catalog;
  /** Inject a request; `key` is sent as X-API-Key, `json` as the body. */
  call(
    method: InjectOptions["method"],
    url: string,
    opts?: {
      key?: string;
      secret?: string;
      headers?: Record<string, string>;
      json?: unknown;
      ip?: string;
      payload?: string | Buffer;
    },
  ): Promise<LightMyRequestResponse>;
  createCompany(name?: string): Promise<Company>;
  /**
   * Creates a key with the given body using `as` (defaults to the company's management key); a test key
   * goes to the company's default test API user unless the body names one.
   */
  createKey(
    company: Company,
    body: Record<string, unknown>,
    as?: string,
  ): Promise<{ id: string; key: string; secret?: string }>;
  verifyKey(name?: string): Promise<string>;
  close(): Promise<void>;
}

let counter = 0;

export async function createHarness(
  kind: StoreKind,
  opts: {
    trustedProxies?: string[];
    keyPrefix?: string;
    catalogPath?: string;
    bodyLimit?: number;
    /** More service options (a leak report limit, GitHub's keys file). */
    services?: Omit<NonNullable<Parameters<typeof createRuntime>[0]["services"]>, "clock">;
    /** Webhook delivery settings (the receivers of tests listen on 127.0.0.1, which must be allowed). */
    webhooks?: { timeoutMs?: number; allowedNetworks?: string[] };
  } = {},
): Promise<Harness> {
  const store = await openTestStore(kind);
  const clock = new TestClock();
  const catalog = readCatalog(opts.catalogPath);
  const runtime = await createRuntime({
    store,
    secret: SECRET,
    catalog,
    keyPrefix: opts.keyPrefix ?? "lk",
    services: { ...opts.services, clock: clock.read, ...(opts.webhooks ? { webhooks: opts.webhooks } : {}) },
  });
  const services = runtime.services;
  const app = await buildApp({
    services,
    trustedProxies: opts.trustedProxies ?? [],
    platformTokens: [ADMIN_TOKEN],
    ...(opts.bodyLimit ? { bodyLimit: opts.bodyLimit } : {}),
    ready: (ms) => store.ping(ms),
    logger: false,
  });
  const h: Harness = {
    kind,
    app,
    services,
    store,
    clock,
    catalog,
    call(method, url, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.key !== undefined) headers["x-api-key"] = o.key;
      if (o.secret !== undefined) headers["x-api-secret"] = o.secret;
      const req: InjectOptions = { method, url, headers, remoteAddress: o.ip ?? "127.0.0.1" };
      if (o.json !== undefined) {
        req.payload = JSON.stringify(o.json);
        headers["content-type"] = "application/json";
      } else if (o.payload !== undefined) {
        req.payload = o.payload;
      }
      return app.inject(req);
    },
    async createCompany(name) {
      counter += 1;
      const companyName = name ?? `Test Company ${counter}`;
      const email = `owner${counter}-${Math.random().toString(36).slice(2)}@example.test`;
      const res = await h.call("POST", "/v1/admin/companies", {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        json: { name: companyName, owner_email: email },
      });
      if (res.statusCode !== 201) throw new Error(`createCompany: ${res.statusCode} ${res.body}`);
      const d = res.json().data;
      return {
        id: d.company.id,
        slug: d.company.slug,
        ownerEmail: email,
        credentialId: d.default_credential.id,
        username: d.default_credential.username,
        testCredentialId: d.default_test_credential.id,
        key: d.management_key.key,
        keyId: d.management_key.id,
      };
    },
    async createKey(company, body, as) {
      const res = await h.call("POST", "/v1/keys", {
        key: as ?? company.key,
        json: {
          name: "k",
          environment: "live",
          ...(body.environment === "test" ? { credential_id: company.testCredentialId } : {}),
          ...body,
        },
      });
      if (res.statusCode !== 201) throw new Error(`createKey: ${res.statusCode} ${res.body}`);
      return res.json().data;
    },
    async verifyKey(name = "gateway") {
      const res = await h.call("POST", "/v1/admin/verify-keys", {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        json: { name },
      });
      if (res.statusCode !== 201) throw new Error(`verifyKey: ${res.statusCode} ${res.body}`);
      return res.json().data.key;
    },
    async close() {
      await app.close();
      await runtime.close();
      await store.close();
    },
  };
  return h;
}
