import { join } from "node:path";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Change, Changes } from "../../src/cluster/changes.ts";
import { POLICY, type Policy } from "../../src/core/access/policy.ts";
import { ChangeStream, type StreamEvent } from "../../src/services/change-stream.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

const DATA = "customer:read";
const WEB3PAY = join(import.meta.dirname, "../../examples/catalogs/web3pay.json");

function expectError(res: LightMyRequestResponse, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.json().success).toBe(false);
  expect(res.json().error.code, res.body).toBe(code);
}

const basic = (username: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`,
});

let codes = 0;
const code = (name = "m") => `${name}-${++codes}`;

describe.each(BACKENDS)("merchant accounts on %s", (kind) => {
  let h: Harness;
  let a: Company;
  let b: Company;
  const everything = () => [...h.catalog.permissions];

  async function createAccount(co: Company, name = "Shop", as = co.key) {
    const res = await h.call("POST", "/v1/merchant-accounts", { key: as, json: { name, code: code() } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data as { id: string; code: string; status: string };
  }

  async function createUser(
    co: Company,
    account: string | null,
    opts: { environment?: "live" | "test"; permissions?: string[]; as?: string } = {},
  ) {
    const res = await h.call("POST", "/v1/credentials", {
      key: opts.as ?? co.key,
      json: {
        name: "Merchant API user",
        permissions: opts.permissions ?? everything(),
        merchant_account_id: account,
        ...(opts.environment ? { environment: opts.environment } : {}),
      },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data as { id: string; username: string; merchant_account_id: string | null };
  }

  async function password(co: Company, credentialId: string) {
    const res = await h.call("POST", `/v1/credentials/${credentialId}/password`, { key: co.key });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data as { username: string; password: string };
  }

  const verify = (as: string, json: Record<string, unknown>) =>
    h.call("POST", "/v1/verify", { key: as, json });

  beforeAll(async () => {
    h = await createHarness(kind);
    a = await h.createCompany("Merchant Platform A");
    b = await h.createCompany("Merchant Platform B");
  });
  afterAll(() => h.close());

  describe("the routes", () => {
    it("creates, lists, gets, renames, deactivates and reactivates, and audits each", async () => {
      const created = await h.call("POST", "/v1/merchant-accounts", {
        key: a.key,
        json: { name: "Acme Shop EU", code: "AcmeShopEU" },
      });
      expect(created.statusCode, created.body).toBe(201);
      const account = created.json().data;
      expect(account).toMatchObject({
        name: "Acme Shop EU",
        code: "AcmeShopEU",
        status: "active",
        api_user_count: 0,
        key_count: 0,
        created_by: a.keyId,
      });
      expect(account.id).toMatch(/^ma_[0-9A-Za-z]{22}$/);

      // The code is unique within the company, not across companies.
      const again = await h.call("POST", "/v1/merchant-accounts", {
        key: a.key,
        json: { name: "Other", code: "AcmeShopEU" },
      });
      expectError(again, 409, "CONFLICT");
      expect(again.json().error.field).toBe("code");
      const elsewhere = await h.call("POST", "/v1/merchant-accounts", {
        key: b.key,
        json: { name: "B's", code: "AcmeShopEU" },
      });
      expect(elsewhere.statusCode, elsewhere.body).toBe(201);

      const user = await createUser(a, account.id, { permissions: [DATA] });
      await h.createKey(a, { credential_id: user.id, permissions: [DATA] });
      const got = await h.call("GET", `/v1/merchant-accounts/${account.id}`, { key: a.key });
      expect(got.json().data).toMatchObject({ api_user_count: 1, key_count: 1 });

      const renamed = await h.call("PATCH", `/v1/merchant-accounts/${account.id}`, {
        key: a.key,
        json: { name: "Acme Shop Europe" },
      });
      expect(renamed.json().data).toMatchObject({ name: "Acme Shop Europe", code: "AcmeShopEU" });
      const off = await h.call("PATCH", `/v1/merchant-accounts/${account.id}`, {
        key: a.key,
        json: { status: "inactive" },
      });
      expect(off.json().data.status).toBe("inactive");
      const inactive = await h.call("GET", "/v1/merchant-accounts?status=inactive", { key: a.key });
      expect(inactive.json().data.merchant_accounts.map((m: { id: string }) => m.id)).toEqual([account.id]);
      const on = await h.call("PATCH", `/v1/merchant-accounts/${account.id}`, {
        key: a.key,
        json: { status: "active" },
      });
      expect(on.json().data.status).toBe("active");

      const audit = await h.call("GET", `/v1/audit?target=${account.id}`, { key: a.key });
      expect(audit.json().data.events.map((e: { action: string }) => e.action)).toEqual([
        "merchant_account.reactivated",
        "merchant_account.deactivated",
        "merchant_account.updated",
        "merchant_account.created",
      ]);
      for (const event of audit.json().data.events) expect(event.merchant_account_id).toBe(account.id);
      // Never deleted.
      const del = await h.call("DELETE", `/v1/merchant-accounts/${account.id}`, { key: a.key });
      expect(del.statusCode).toBeGreaterThanOrEqual(400);
      expect(del.statusCode).toBeLessThan(500);
    });

    it("pages the list with a cursor, newest first", async () => {
      const co = await h.createCompany("Paged merchants");
      const made = [];
      for (let i = 0; i < 3; i++) {
        made.push((await createAccount(co, `Shop ${i}`)).id);
        h.clock.advance(1);
      }
      const first = await h.call("GET", "/v1/merchant-accounts?limit=2", { key: co.key });
      const page = first.json().data;
      expect(page.merchant_accounts.map((m: { id: string }) => m.id)).toEqual([made[2], made[1]]);
      const second = await h.call("GET", `/v1/merchant-accounts?limit=2&cursor=${page.next_cursor}`, {
        key: co.key,
      });
      expect(second.json().data).toMatchObject({ next_cursor: null });
      expect(second.json().data.merchant_accounts.map((m: { id: string }) => m.id)).toEqual([made[0]]);
    });

    it.each([
      ["no body", undefined],
      ["a missing code", { name: "Shop" }],
      ["a code with a space", { name: "Shop", code: "my shop" }],
      ["a one-character code", { name: "Shop", code: "x" }],
      ["an oversized code", { name: "Shop", code: "c".repeat(65) }],
      ["a numeric name", { name: 5, code: "shop-1" }],
      ["an empty name", { name: "", code: "shop-1" }],
      ["an oversized name", { name: "n".repeat(201), code: "shop-1" }],
      ["a control character", { name: "Sh\u0000op", code: "shop-1" }],
      ["an unknown field", { name: "Shop", code: "shop-1", status: "inactive" }],
      ["an array", [{ name: "Shop", code: "shop-1" }]],
    ])("refuses %s on create with a 4xx and a code", async (_, json) => {
      const res = await h.call("POST", "/v1/merchant-accounts", {
        key: a.key,
        ...(json === undefined
          ? { payload: "{not json", headers: { "content-type": "application/json" } }
          : { json }),
      });
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, res.body).toBeLessThan(500);
      expect(typeof res.json().error.code).toBe("string");
    });

    it.each([
      ["an empty patch", {}],
      ["a status of deleted", { status: "deleted" }],
      ["a code change", { code: "other" }],
      ["a null name", { name: null }],
    ])("refuses %s on update with a 4xx and a code", async (_, json) => {
      const { id } = await createAccount(a);
      const res = await h.call("PATCH", `/v1/merchant-accounts/${id}`, { key: a.key, json });
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, res.body).toBeLessThan(500);
      expect(typeof res.json().error.code).toBe("string");
    });

    it.each(["ma_short", "cred_0123456789012345678901", "ma_../../etc/passwd%00aaaaaaa", "%F0%9F%92%A9"])(
      "answers a malformed id %s with a 4xx",
      async (id) => {
        for (const method of ["GET", "PATCH"] as const) {
          const res = await h.call(method, `/v1/merchant-accounts/${id}`, {
            key: a.key,
            ...(method === "PATCH" ? { json: { name: "x" } } : {}),
          });
          expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
          expect(res.statusCode, res.body).toBeLessThan(500);
        }
      },
    );

    it("answers another company's account as 404, and lists only the company's own", async () => {
      const mine = await createAccount(a, "A's shop");
      const res = await h.call("GET", `/v1/merchant-accounts/${mine.id}`, { key: b.key });
      expectError(res, 404, "NOT_FOUND");
      const patch = await h.call("PATCH", `/v1/merchant-accounts/${mine.id}`, {
        key: b.key,
        json: { status: "inactive" },
      });
      expectError(patch, 404, "NOT_FOUND");
      expect(
        (await h.call("GET", `/v1/merchant-accounts/${mine.id}`, { key: a.key })).json().data.status,
      ).toBe("active");
      const listed = await h.call("GET", "/v1/merchant-accounts?limit=100", { key: b.key });
      expect(listed.json().data.merchant_accounts.map((m: { id: string }) => m.id)).not.toContain(mine.id);
      // Nor can another company put an API user in it.
      const user = await h.call("POST", "/v1/credentials", {
        key: b.key,
        json: { name: "x", permissions: [DATA], merchant_account_id: mine.id },
      });
      expectError(user, 404, "NOT_FOUND");
    });

    it("is company-wide: a test caller reads accounts, but only a live caller sets them up", async () => {
      const account = await createAccount(a);
      const testKey = await h.createKey(a, { environment: "test" });
      const got = await h.call("GET", `/v1/merchant-accounts/${account.id}`, { key: testKey.key });
      expect(got.statusCode, got.body).toBe(200);
      expectError(
        await h.call("POST", "/v1/merchant-accounts", {
          key: testKey.key,
          json: { name: "t", code: code() },
        }),
        403,
        "ENVIRONMENT_NOT_ALLOWED",
      );
      expectError(
        await h.call("PATCH", `/v1/merchant-accounts/${account.id}`, {
          key: testKey.key,
          json: { status: "inactive" },
        }),
        403,
        "ENVIRONMENT_NOT_ALLOWED",
      );
      // One account, live and test API users under it.
      const live = await createUser(a, account.id, { permissions: [DATA] });
      const test = await createUser(a, account.id, { permissions: [DATA], environment: "test" });
      expect([live.merchant_account_id, test.merchant_account_id]).toEqual([account.id, account.id]);
      // A test caller still sees only the test one.
      const listed = await h.call("GET", `/v1/credentials?merchant_account_id=${account.id}`, {
        key: testKey.key,
      });
      expect(listed.json().data.credentials.map((c: { id: string }) => c.id)).toEqual([test.id]);
    });
  });

  describe("a merchant account's caller", () => {
    /** Account 1: the caller's. Account 2: a neighbour's. */
    let one: string;
    let two: string;
    let own: { id: string; username: string };
    let mk: { id: string; key: string };
    let sibling: { id: string };
    let siblingKey: { id: string; key: string };
    let neighbour: { id: string };
    let neighbourKey: { id: string; key: string };
    let companyUser: { id: string };
    let companyKey: { id: string; key: string };
    let webhook: string;

    beforeAll(async () => {
      one = (await createAccount(a, "Shop one")).id;
      two = (await createAccount(a, "Shop two")).id;
      own = await createUser(a, one);
      mk = await h.createKey(a, { credential_id: own.id });
      sibling = await createUser(a, one, { permissions: [DATA] });
      siblingKey = await h.createKey(a, { credential_id: sibling.id, permissions: [DATA] });
      neighbour = await createUser(a, two, { permissions: [DATA] });
      neighbourKey = await h.createKey(a, { credential_id: neighbour.id, permissions: [DATA] });
      companyUser = await createUser(a, null, { permissions: [DATA] });
      companyKey = await h.createKey(a, { credential_id: companyUser.id, permissions: [DATA] });
      const res = await h.call("POST", "/v1/webhooks", {
        key: a.key,
        json: { url: "https://93.184.215.14/hooks" },
      });
      expect(res.statusCode, res.body).toBe(201);
      webhook = res.json().data.id;
    });

    const call = (method: "GET" | "POST" | "PATCH" | "DELETE", url: string, json?: unknown) =>
      h.call(method, url, { key: mk.key, ...(json === undefined ? {} : { json }) });

    /** What no merchant account's caller may reach: another account's objects, and the company's. */
    const strangers = () => [
      { user: neighbour.id, key: neighbourKey.id },
      { user: companyUser.id, key: companyKey.id },
    ];

    async function expectHidden(method: "GET" | "POST" | "PATCH" | "DELETE", url: string, json?: unknown) {
      expectError(await call(method, url, json), 404, "NOT_FOUND");
    }

    /**
     * Every route a key can call, with what a merchant account's key gets there. The first test
     * checks the table covers POLICY, so a new route cannot be forgotten.
     */
    const SCOPING: Record<string, () => Promise<void>> = {
      "credentials.create": async () => {
        await expectHidden("POST", "/v1/credentials", {
          name: "x",
          permissions: [DATA],
          merchant_account_id: two,
        });
        await expectHidden("POST", "/v1/credentials", {
          name: "x",
          permissions: [DATA],
          merchant_account_id: null,
        });
        const res = await call("POST", "/v1/credentials", { name: "Made inside", permissions: [DATA] });
        expect(res.statusCode, res.body).toBe(201);
        expect(res.json().data.merchant_account_id).toBe(one);
      },
      "credentials.list": async () => {
        const res = await call("GET", "/v1/credentials?limit=100");
        const listed = res.json().data.credentials as { id: string; merchant_account_id: string }[];
        expect(listed.map((c) => c.id)).toContain(sibling.id);
        for (const c of listed) expect(c.merchant_account_id).toBe(one);
        await expectHidden("GET", `/v1/credentials?merchant_account_id=${two}`);
      },
      "credentials.get": async () => {
        expect((await call("GET", `/v1/credentials/${sibling.id}`)).statusCode).toBe(200);
        for (const s of strangers()) await expectHidden("GET", `/v1/credentials/${s.user}`);
      },
      "credentials.update": async () => {
        for (const s of strangers())
          await expectHidden("PATCH", `/v1/credentials/${s.user}`, { name: "Mine now" });
        const read = await h.call("GET", `/v1/credentials/${neighbour.id}`, { key: a.key });
        expect(read.json().data.name).toBe("Merchant API user");
      },
      "credentials.password": async () => {
        for (const s of strangers()) await expectHidden("POST", `/v1/credentials/${s.user}/password`);
      },
      "merchant_accounts.create": async () => {
        expectError(
          await call("POST", "/v1/merchant-accounts", { name: "x", code: code() }),
          403,
          "MERCHANT_ACCOUNT_NOT_ALLOWED",
        );
      },
      "merchant_accounts.list": async () => {
        const res = await call("GET", "/v1/merchant-accounts");
        expect(res.json().data.merchant_accounts.map((m: { id: string }) => m.id)).toEqual([one]);
      },
      "merchant_accounts.get": async () => {
        expect((await call("GET", `/v1/merchant-accounts/${one}`)).statusCode).toBe(200);
        await expectHidden("GET", `/v1/merchant-accounts/${two}`);
      },
      "merchant_accounts.update": async () => {
        await expectHidden("PATCH", `/v1/merchant-accounts/${two}`, { status: "inactive" });
        expectError(
          await call("PATCH", `/v1/merchant-accounts/${one}`, { name: "Renamed by itself" }),
          403,
          "MERCHANT_ACCOUNT_NOT_ALLOWED",
        );
      },
      "keys.create": async () => {
        for (const s of strangers()) {
          await expectHidden("POST", "/v1/keys", { name: "x", environment: "live", credential_id: s.user });
        }
        const res = await call("POST", "/v1/keys", {
          name: "Inside",
          environment: "live",
          credential_id: sibling.id,
        });
        expect(res.statusCode, res.body).toBe(201);
        expect(res.json().data.merchant_account_id).toBe(one);
        // Without a credential_id, its own API user's.
        const own = await call("POST", "/v1/keys", { name: "Own", environment: "live", permissions: [DATA] });
        expect(own.json().data.merchant_account_id).toBe(one);
      },
      "keys.list": async () => {
        const listed = (await call("GET", "/v1/keys?limit=100")).json().data.keys as {
          id: string;
          merchant_account_id: string;
        }[];
        expect(listed.map((k) => k.id)).toContain(siblingKey.id);
        for (const k of listed) expect(k.merchant_account_id).toBe(one);
        await expectHidden("GET", `/v1/keys?merchant_account_id=${two}`);
        const byUser = await call("GET", `/v1/keys?credential_id=${neighbour.id}`);
        expect(byUser.json().data.keys).toEqual([]);
      },
      "keys.get": async () => {
        expect((await call("GET", `/v1/keys/${siblingKey.id}`)).statusCode).toBe(200);
        for (const s of strangers()) await expectHidden("GET", `/v1/keys/${s.key}`);
      },
      "keys.usage": async () => {
        const res = await call("GET", `/v1/keys/${siblingKey.id}/usage?days=3`);
        expect(res.json().data.merchant_account_id).toBe(one);
        for (const s of strangers()) await expectHidden("GET", `/v1/keys/${s.key}/usage`);
      },
      "usage.company": async () => {
        // Uses of a neighbour's and the company's keys are not this account's usage.
        const gateway = await h.verifyKey();
        const used = async (key: string) => {
          const res = await h.call("POST", "/v1/verify", { key: gateway, json: { key } });
          expect(res.json().data.code).toBe("VALID");
        };
        await used(siblingKey.key);
        await used(neighbourKey.key);
        await used(companyKey.key);
        await h.services.usage.flush();
        const mine = (await call("GET", "/v1/usage?days=1")).json().data;
        const whole = (await h.call("GET", "/v1/usage?days=1", { key: a.key })).json().data;
        // The company's count holds the neighbour's and the company-level key; the account's does not.
        expect(mine.keys_used).toBeGreaterThanOrEqual(1);
        expect(mine.keys_used).toBeLessThanOrEqual(whole.keys_used - 2);
        expect(mine.total_requests).toBeLessThanOrEqual(whole.total_requests - 2);
      },
      "keys.update": async () => {
        for (const s of strangers()) await expectHidden("PATCH", `/v1/keys/${s.key}`, { name: "Mine" });
      },
      "keys.revoke": async () => {
        for (const s of strangers()) await expectHidden("DELETE", `/v1/keys/${s.key}`);
        const still = await verify(a.key, { key: neighbourKey.key });
        expect(still.json().data.code).toBe("VALID");
      },
      "keys.rotate": async () => {
        for (const s of strangers()) await expectHidden("POST", `/v1/keys/${s.key}/rotate`, {});
      },
      "keys.expiry": async () => {
        for (const s of strangers())
          await expectHidden("POST", `/v1/keys/${s.key}/expiry`, { action: "now" });
      },
      "keys.verify": async () => {
        const inside = (await call("POST", "/v1/verify", { key: siblingKey.key })).json().data;
        expect(inside).toMatchObject({ valid: true, merchant_account_id: one });
        for (const key of [neighbourKey.key, companyKey.key]) {
          const res = (await call("POST", "/v1/verify", { key })).json().data;
          expect(res).toMatchObject({ valid: false, code: "NOT_FOUND", merchant_account_id: null });
        }
      },
      "leak_policy.get": async () => {
        expectError(await call("GET", "/v1/policies/leaks"), 403, "MERCHANT_ACCOUNT_NOT_ALLOWED");
      },
      "policies.expiry_get": async () => {
        expectError(await call("GET", "/v1/policies/expiry"), 403, "MERCHANT_ACCOUNT_NOT_ALLOWED");
      },
      "audit.list": async () => {
        const events = (await call("GET", "/v1/audit?limit=500")).json().data.events as {
          target: { id: string } | null;
          merchant_account_id: string | null;
        }[];
        expect(events.map((e) => e.target?.id)).toContain(sibling.id);
        for (const e of events) expect(e.merchant_account_id).toBe(one);
        await expectHidden("GET", `/v1/audit?merchant_account_id=${two}`);
        const asked = await call("GET", `/v1/audit?target=${neighbour.id}`);
        expect(asked.json().data.events).toEqual([]);
      },
      "audit.export": async () => {
        const res = await call("GET", "/v1/audit/export");
        expect(res.statusCode, res.body).toBe(200);
        const lines = res.body.trim().split("\n").filter(Boolean);
        expect(lines.length).toBeGreaterThan(0);
        for (const line of lines) expect(JSON.parse(line).merchant_account_id).toBe(one);
      },
      "audit.verify": async () => {
        expectError(await call("GET", "/v1/audit/verify"), 403, "MERCHANT_ACCOUNT_NOT_ALLOWED");
      },
      "webhooks.create": async () => {
        expectError(
          await call("POST", "/v1/webhooks", { url: "https://93.184.215.14/mine" }),
          403,
          "MERCHANT_ACCOUNT_NOT_ALLOWED",
        );
      },
      "webhooks.list": async () => {
        expectError(await call("GET", "/v1/webhooks"), 403, "MERCHANT_ACCOUNT_NOT_ALLOWED");
      },
      "webhooks.get": async () => {
        expectError(await call("GET", `/v1/webhooks/${webhook}`), 403, "MERCHANT_ACCOUNT_NOT_ALLOWED");
      },
      "webhooks.update": async () => {
        expectError(
          await call("PATCH", `/v1/webhooks/${webhook}`, { status: "disabled" }),
          403,
          "MERCHANT_ACCOUNT_NOT_ALLOWED",
        );
      },
      "webhooks.delete": async () => {
        expectError(await call("DELETE", `/v1/webhooks/${webhook}`), 403, "MERCHANT_ACCOUNT_NOT_ALLOWED");
      },
      "webhooks.rotate_secret": async () => {
        expectError(
          await call("POST", `/v1/webhooks/${webhook}/rotate-secret`),
          403,
          "MERCHANT_ACCOUNT_NOT_ALLOWED",
        );
      },
      "webhooks.deliveries": async () => {
        expectError(
          await call("GET", `/v1/webhooks/${webhook}/deliveries`),
          403,
          "MERCHANT_ACCOUNT_NOT_ALLOWED",
        );
      },
      "webhooks.retry": async () => {
        expectError(
          await call("POST", `/v1/webhooks/${webhook}/deliveries/dlv_0123456789012345678901/retry`),
          403,
          "MERCHANT_ACCOUNT_NOT_ALLOWED",
        );
      },
      "webhooks.test": async () => {
        expectError(await call("POST", `/v1/webhooks/${webhook}/test`), 403, "MERCHANT_ACCOUNT_NOT_ALLOWED");
      },
    };

    it("has a scoping expectation for every route a key may call", () => {
      const keyRoutes = Object.entries(POLICY)
        .filter(([, p]: [string, Policy]) => (p.caller === "caller" || p.caller === "verifier") && !p.stream)
        .map(([action]) => action)
        .sort();
      expect(Object.keys(SCOPING).sort()).toEqual(keyRoutes);
    });

    it.each(Object.keys(SCOPING))("stays within its account on %s", async (action) => {
      await (SCOPING[action] as () => Promise<void>)();
    });

    it("is not told which company-level key made or changed its account's objects", async () => {
      // The sibling API user was made by the company's management key, inside account one.
      const read = (await call("GET", `/v1/credentials/${sibling.id}`)).json().data;
      expect(read.created_by).toBe("company");
      const listed = (await call("GET", "/v1/credentials?limit=100")).json().data.credentials;
      const there = listed.find((c: { id: string }) => c.id === sibling.id);
      expect(there.created_by).toBe("company");
      const byCompany = (await h.call("GET", `/v1/credentials/${sibling.id}`, { key: a.key })).json().data;
      expect(byCompany.created_by).toBe(a.keyId);
      const account = (await call("GET", `/v1/merchant-accounts/${one}`)).json().data;
      expect(account.created_by).toBe("company");

      const made = await call("POST", "/v1/credentials", {
        name: "Made by the account",
        permissions: [DATA],
      });
      expect(made.json().data.created_by).toBe(mk.id);
      const events = (await call("GET", "/v1/audit?limit=500")).json().data.events as {
        action: string;
        target: { id: string } | null;
        actor: { type: string; id: string | null; label: string | null };
      }[];
      const about = (id: string) => events.filter((e) => e.target?.id === id);
      expect(about(sibling.id).length).toBeGreaterThan(0);
      for (const e of about(sibling.id)) expect(e.actor).toEqual({ type: "key", id: null, label: null });
      const own = about(made.json().data.id);
      expect(own.map((e) => e.actor.id)).toEqual([mk.id]);
      expect(own[0]?.actor.label).toMatch(/^lk_live_/);
      // Nor may it find the company's key by asking for it as the actor.
      const asked = await call("GET", `/v1/audit?actor=${a.keyId}`);
      expect(asked.json().data.events).toEqual([]);
      const seen = await h.call("GET", `/v1/audit?actor=${a.keyId}&limit=5`, { key: a.key });
      expect(seen.json().data.events.length).toBeGreaterThan(0);
    });

    it("is as walled in with its API user's Basic password", async () => {
      const { username, password: pw } = await password(a, own.id);
      expect(own.username).toBe(username);
      const hidden = await h.call("GET", `/v1/credentials/${neighbour.id}`, { headers: basic(username, pw) });
      expectError(hidden, 404, "NOT_FOUND");
      const listed = await h.call("GET", "/v1/keys?limit=100", { headers: basic(username, pw) });
      for (const k of listed.json().data.keys) expect(k.merchant_account_id).toBe(one);
      const verified = await verify(a.key, { username, password: pw });
      expect(verified.json().data).toMatchObject({ valid: true, merchant_account_id: one });
    });
  });

  describe("verification", () => {
    it("answers merchant_account_id on /v1/verify and Latchkey-Merchant-Account-Id on /v1/authorize", async () => {
      // A catalog that maps a platform route: POST /v1/onramp takes onramp:create.
      const w = await createHarness(kind, { catalogPath: WEB3PAY });
      try {
        const co = await w.createCompany("Web3 merchants");
        const made = await w.call("POST", "/v1/merchant-accounts", {
          key: co.key,
          json: { name: "Onramp EU", code: "onramp-eu" },
        });
        const account = made.json().data as { id: string };
        const onramp = ["onramp:create"];
        const user = await w.call("POST", "/v1/credentials", {
          key: co.key,
          json: { name: "Onramp", permissions: onramp, merchant_account_id: account.id },
        });
        const key = await w.createKey(co, { credential_id: user.json().data.id, permissions: onramp });
        const plain = await w.createKey(co, { permissions: onramp });
        const ask = async (k: string) =>
          (await w.call("POST", "/v1/verify", { key: co.key, json: { key: k } })).json().data;
        expect(await ask(key.key)).toMatchObject({
          valid: true,
          credential_id: user.json().data.id,
          merchant_account_id: account.id,
        });
        expect(await ask(plain.key)).toMatchObject({ valid: true, merchant_account_id: null });
        const gateway = await w.verifyKey();
        const authorize = (clientKey: string) =>
          w.call("GET", "/v1/authorize", {
            headers: {
              "latchkey-verify-key": gateway,
              "x-original-method": "POST",
              "x-original-uri": "/v1/onramp",
              "x-api-key": clientKey,
              "latchkey-merchant-account-id": "forged",
            },
          });
        const inside = await authorize(key.key);
        expect(inside.statusCode, inside.body).toBe(200);
        expect(inside.headers["latchkey-merchant-account-id"]).toBe(account.id);
        // A company-level key gets the header empty, so a client's own cannot pass upstream.
        const outside = await authorize(plain.key);
        expect(outside.statusCode, outside.body).toBe(200);
        expect(outside.headers["latchkey-merchant-account-id"]).toBe("");
      } finally {
        await w.close();
      }
    });

    it("stops an inactive account's keys and passwords at once, cached or not, and brings them back", async () => {
      const account = await createAccount(a);
      const user = await createUser(a, account.id, { permissions: [...everything()] });
      const key = await h.createKey(a, { credential_id: user.id });
      const { username, password: pw } = await password(a, user.id);
      // Cached now.
      expect((await verify(a.key, { key: key.key })).json().data.code).toBe("VALID");
      expect((await h.call("GET", "/v1/keys", { key: key.key })).statusCode).toBe(200);

      const told: Change[] = [];
      h.services.changes.onLocal((change) => told.push(change));
      const off = await h.call("PATCH", `/v1/merchant-accounts/${account.id}`, {
        key: a.key,
        json: { status: "inactive" },
      });
      expect(off.statusCode, off.body).toBe(200);
      // What the cluster bus sends the other nodes, and the change stream its listeners: its API users.
      expect(told).toContainEqual(
        expect.objectContaining({ kind: "credential", credentialId: user.id, merchantAccountId: account.id }),
      );

      expect((await verify(a.key, { key: key.key })).json().data.code).toBe("DISABLED");
      expect((await verify(a.key, { username, password: pw })).json().data.code).toBe("DISABLED");
      expectError(await h.call("GET", "/v1/keys", { key: key.key }), 401, "UNAUTHORIZED");
      expectError(await h.call("GET", "/v1/keys", { headers: basic(username, pw) }), 401, "UNAUTHORIZED");
      // Nothing new is made in it.
      expectError(
        await h.call("POST", "/v1/credentials", {
          key: a.key,
          json: { name: "x", permissions: [DATA], merchant_account_id: account.id },
        }),
        409,
        "MERCHANT_ACCOUNT_INACTIVE",
      );
      expectError(
        await h.call("POST", "/v1/keys", {
          key: a.key,
          json: { name: "x", environment: "live", credential_id: user.id },
        }),
        409,
        "MERCHANT_ACCOUNT_INACTIVE",
      );

      await h.call("PATCH", `/v1/merchant-accounts/${account.id}`, {
        key: a.key,
        json: { status: "active" },
      });
      expect((await verify(a.key, { key: key.key })).json().data.code).toBe("VALID");
      expect((await verify(a.key, { username, password: pw })).json().data.code).toBe("VALID");
    });
  });

  describe("webhook events", () => {
    it("name the account in their payloads (the endpoints stay company-level)", async () => {
      const co = await h.createCompany("Evented merchants");
      const account = await createAccount(co);
      const user = await createUser(co, account.id, { permissions: [DATA] });
      const key = await h.createKey(co, { credential_id: user.id, permissions: [DATA] });
      const revoked = await h.call("DELETE", `/v1/keys/${key.id}`, { key: co.key });
      expect(revoked.statusCode, revoked.body).toBe(200);
      const rows = await h.store.db
        .selectFrom("events")
        .select(["type", "data"])
        .where("company_id", "=", co.id)
        .where("type", "in", ["credential.created", "key.created", "key.revoked"])
        .execute();
      // The company's set-up made events too (its management key's key.created): only ours here.
      const ours = rows.filter((r) => [user.id, key.id].includes((r.data as { id?: string }).id ?? ""));
      const named = Object.fromEntries(
        ours.map((r) => [r.type, (r.data as { merchant_account_id?: unknown }).merchant_account_id]),
      );
      expect(named).toEqual({
        "credential.created": account.id,
        "key.created": account.id,
        "key.revoked": account.id,
      });
      // A company-level object's say so too.
      const plain = await h.createKey(co, { permissions: [DATA] });
      const row = await h.store.db
        .selectFrom("events")
        .select("data")
        .where("company_id", "=", co.id)
        .where("type", "=", "key.created")
        .orderBy("seq", "desc")
        .executeTakeFirstOrThrow();
      expect(row.data).toMatchObject({ id: plain.id, merchant_account_id: null });
    });

    it("tell live endpoints of an account set up, renamed, deactivated and reactivated", async () => {
      const co = await h.createCompany("Account events");
      const account = await createAccount(co, "Before");
      for (const json of [
        { name: "After" },
        { status: "inactive" },
        { status: "active" },
        { name: "After" },
      ]) {
        const res = await h.call("PATCH", `/v1/merchant-accounts/${account.id}`, { key: co.key, json });
        expect(res.statusCode, res.body).toBe(200);
      }
      const rows = await h.store.db
        .selectFrom("events")
        .select(["type", "environment", "data"])
        .where("company_id", "=", co.id)
        .where("type", "like", "merchant_account.%")
        .orderBy("seq", "asc")
        .execute();
      // The last PATCH changed nothing, so it told nobody.
      expect(rows.map((r) => [r.type, r.environment])).toEqual([
        ["merchant_account.created", "live"],
        ["merchant_account.updated", "live"],
        ["merchant_account.updated", "live"],
        ["merchant_account.updated", "live"],
      ]);
      expect(rows.map((r) => (r.data as { id: string }).id)).toEqual(Array(4).fill(account.id));
      expect(rows[0]?.data).toMatchObject({ name: "Before", code: account.code, status: "active" });
      expect(rows[1]?.data).toMatchObject({ name: "After", previous: { name: "Before", status: "active" } });
      expect(rows[2]?.data).toMatchObject({ status: "inactive", previous: { status: "active" } });
      expect(rows[3]?.data).toMatchObject({ status: "active", previous: { status: "inactive" } });
      // A webhook may subscribe to them by name.
      const hook = await h.call("POST", "/v1/webhooks", {
        key: co.key,
        json: {
          url: "https://93.184.215.14/accounts",
          events: ["merchant_account.created", "merchant_account.updated"],
        },
      });
      expect(hook.statusCode, hook.body).toBe(201);
    });
  });

  describe("the audit trail", () => {
    it("stays verifiable with merchant account events, and breaks when their account is cleared", async () => {
      const co = await h.createCompany("Audited merchants");
      const account = await createAccount(co);
      await createUser(co, account.id, { permissions: [DATA] });
      const check = async () => (await h.call("GET", "/v1/audit/verify", { key: co.key })).json().data;
      expect(await check()).toMatchObject({ valid: true, first_broken_event_id: null });
      const filtered = await h.call("GET", `/v1/audit?merchant_account_id=${account.id}`, { key: co.key });
      const events = filtered.json().data.events as { id: string; action: string }[];
      expect(events.map((e) => e.action).sort()).toEqual(["credential.created", "merchant_account.created"]);
      const tampered = events.find((e) => e.action === "credential.created") as { id: string };
      await h.store.db
        .updateTable("audit_events")
        .set({ merchant_account_id: null } as never)
        .where("id", "=", tampered.id)
        .execute();
      expect(await check()).toMatchObject({ valid: false, first_broken_event_id: tampered.id });
    });
  });
});

describe("the change stream of a merchant account's verifier", () => {
  it("tells it of its account's objects only, and to start afresh for a change that does not say whose", () => {
    const changes = new Changes();
    const stream = new ChangeStream(changes);
    const merchant: StreamEvent[] = [];
    const company: StreamEvent[] = [];
    stream.subscribe({ companyId: "co_1", environment: "live", merchantAccountId: "ma_1" }, undefined, (e) =>
      merchant.push(e),
    );
    stream.subscribe({ companyId: "co_1", environment: "live" }, undefined, (e) => company.push(e));
    const scope = { companyId: "co_1", environment: "live" as const };
    changes.emit({ kind: "key", keyId: "key_mine", ...scope, merchantAccountId: "ma_1" });
    changes.emit({ kind: "key", keyId: "key_neighbour", ...scope, merchantAccountId: "ma_2" });
    changes.emit({ kind: "credential", credentialId: "cred_company", ...scope, merchantAccountId: null });
    changes.receive({ kind: "key", keyId: "key_older_node", ...scope });
    expect(merchant).toMatchObject([
      { type: "change", change: { kind: "key", key_id: "key_mine" } },
      { type: "reset" },
    ]);
    // The company as a whole hears all of it.
    expect(company.map((e) => (e.type === "change" ? e.change : e.type))).toEqual([
      { kind: "key", key_id: "key_mine" },
      { kind: "key", key_id: "key_neighbour" },
      { kind: "credential", credential_id: "cred_company" },
      { kind: "key", key_id: "key_older_node" },
    ]);
  });
});
