import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { createHarness, type Harness } from "../helpers/harness.ts";
import {
  asPerson,
  freshCode,
  loginOk,
  type NewCompany,
  newCompany,
  onboard,
  onboardOwner,
  type Person,
  uniqueEmail,
} from "./people-helpers.ts";

const DATA = "customer:read";

function expectError(res: LightMyRequestResponse, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.json().error.code, res.body).toBe(code);
}

let codes = 0;

/**
 * A person whose membership is limited to one merchant account is walled in exactly as that
 * account's keys are: its objects only, 404 for the others, company-only things refused.
 */
describe.each(BACKENDS)("a person limited to a merchant account on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let other: NewCompany;
  let owner: Person;
  let scoped: Person;
  let one: string;
  let two: string;
  let inactive: string;
  let otherAccount: string;
  let mine: { id: string };
  let mineKey: { id: string };
  let neighbour: { id: string };
  let neighbourKey: { id: string };
  let companyUser: { id: string };

  async function account(c: NewCompany, name: string) {
    const res = await h.call("POST", "/v1/merchant-accounts", {
      key: c.key,
      json: { name, code: `scoped-${++codes}` },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data.id as string;
  }

  async function apiUser(c: NewCompany, merchantAccount: string | null) {
    const res = await h.call("POST", "/v1/credentials", {
      key: c.key,
      json: { name: "API user", permissions: [DATA], merchant_account_id: merchantAccount },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data as { id: string };
  }

  async function key(c: NewCompany, credentialId: string) {
    const res = await h.call("POST", "/v1/keys", {
      key: c.key,
      json: { name: "k", environment: "live", credential_id: credentialId, permissions: [DATA] },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data as { id: string };
  }

  const as = (method: "GET" | "POST" | "PATCH" | "DELETE", url: string, json?: unknown, stepUp = false) =>
    asPerson(h, scoped.session, method, url, {
      ...(json === undefined ? {} : { json }),
      ...(stepUp ? { code: freshCode(h, scoped) } : {}),
    });

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h);
    other = await newCompany(h);
    owner = await onboardOwner(h, co);
    one = await account(co, "Shop one");
    two = await account(co, "Shop two");
    inactive = await account(co, "Closed shop");
    const closed = await h.call("PATCH", `/v1/merchant-accounts/${inactive}`, {
      key: co.key,
      json: { status: "inactive" },
    });
    expect(closed.statusCode, closed.body).toBe(200);
    otherAccount = await account(other, "Someone else's shop");
    mine = await apiUser(co, one);
    mineKey = await key(co, mine.id);
    neighbour = await apiUser(co, two);
    neighbourKey = await key(co, neighbour.id);
    companyUser = await apiUser(co, null);

    const email = uniqueEmail("scoped");
    const invited = await asPerson(h, owner.session, "POST", "/v1/users", {
      json: { email, role: "owner", merchant_account_id: one },
    });
    expect(invited.statusCode, invited.body).toBe(201);
    expect(invited.json().data.merchant_account_id).toBe(one);
    const d = invited.json().data;
    scoped = await onboard(h, d.id, email, d.temporary_password);
  });
  afterAll(() => h.close());

  describe("invitation and role change", () => {
    it("shows the account in the people list and in /v1/me", async () => {
      const list = await asPerson(h, owner.session, "GET", "/v1/users");
      const row = list.json().data.users.find((u: { id: string }) => u.id === scoped.id);
      expect(row.merchant_account_id).toBe(one);
      const ownerRow = list.json().data.users.find((u: { id: string }) => u.id === owner.id);
      expect(ownerRow.merchant_account_id).toBeNull();
      const me = (await as("GET", "/v1/me")).json().data;
      expect(me.merchant_account_id).toBe(one);
      expect(me.companies).toEqual([expect.objectContaining({ id: co.id, merchant_account_id: one })]);
    });

    it("refuses another company's account (404), an unknown one (404) and an inactive one (409)", async () => {
      for (const id of [otherAccount, "ma_0123456789012345678901"]) {
        const res = await asPerson(h, owner.session, "POST", "/v1/users", {
          json: { email: uniqueEmail("nope"), role: "viewer", merchant_account_id: id },
        });
        expectError(res, 404, "NOT_FOUND");
      }
      const closed = await asPerson(h, owner.session, "POST", "/v1/users", {
        json: { email: uniqueEmail("closed"), role: "viewer", merchant_account_id: inactive },
      });
      expectError(closed, 409, "MERCHANT_ACCOUNT_INACTIVE");
      const malformed = await asPerson(h, owner.session, "POST", "/v1/users", {
        json: { email: uniqueEmail("bad"), role: "viewer", merchant_account_id: 42 },
      });
      expect(malformed.statusCode).toBe(400);
    });

    it("moves a person between accounts, ends their sessions here, and audits it", async () => {
      const email = uniqueEmail("mover");
      const made = await asPerson(h, owner.session, "POST", "/v1/users", { json: { email, role: "viewer" } });
      expect(made.json().data.merchant_account_id).toBeNull();
      const d = made.json().data;
      const mover = await onboard(h, d.id, email, d.temporary_password, { enrol: false });
      expect((await asPerson(h, mover.session, "GET", "/v1/me")).statusCode).toBe(200);
      const moved = await asPerson(h, owner.session, "PATCH", `/v1/users/${d.id}`, {
        json: { merchant_account_id: two },
      });
      expect(moved.statusCode, moved.body).toBe(200);
      expect(moved.json().data.merchant_account_id).toBe(two);
      expectError(await asPerson(h, mover.session, "GET", "/v1/me"), 401, "SESSION_EXPIRED");
      const again = await loginOk(h, email, mover.password);
      const me = (await asPerson(h, again, "GET", "/v1/me")).json().data;
      expect(me.merchant_account_id).toBe(two);
      const listed = (await asPerson(h, again, "GET", "/v1/credentials?limit=100")).json().data.credentials;
      expect(listed.map((c: { id: string }) => c.id)).toEqual([neighbour.id]);

      const audit = await h.call("GET", `/v1/audit?target=${d.id}&limit=50`, { key: co.key });
      const changed = audit
        .json()
        .data.events.find((e: { action: string }) => e.action === "user.merchant_account_changed");
      expect(changed.changes).toEqual({
        before: { merchant_account_id: null },
        after: { merchant_account_id: two },
      });
      const back = await asPerson(h, owner.session, "PATCH", `/v1/users/${d.id}`, {
        json: { merchant_account_id: null },
      });
      expect(back.json().data.merchant_account_id).toBeNull();
      const wrong = await asPerson(h, owner.session, "PATCH", `/v1/users/${d.id}`, {
        json: { merchant_account_id: inactive },
      });
      expectError(wrong, 409, "MERCHANT_ACCOUNT_INACTIVE");
    });
  });

  describe("what the scoped person sees", () => {
    it("lists only its account's API users and keys, and every other one is not there", async () => {
      const creds = (await as("GET", "/v1/credentials?limit=100")).json().data.credentials;
      expect(creds.map((c: { id: string }) => c.id)).toEqual([mine.id]);
      const keys = (await as("GET", "/v1/keys?limit=100")).json().data.keys;
      expect(keys.map((k: { id: string }) => k.id)).toEqual([mineKey.id]);
      expect((await as("GET", `/v1/credentials/${mine.id}`)).statusCode).toBe(200);
      expect((await as("GET", `/v1/keys/${mineKey.id}`)).statusCode).toBe(200);
      for (const id of [neighbour.id, companyUser.id, co.credentialId]) {
        expectError(await as("GET", `/v1/credentials/${id}`), 404, "NOT_FOUND");
        expectError(await as("PATCH", `/v1/credentials/${id}`, { name: "mine" }), 404, "NOT_FOUND");
      }
      for (const id of [neighbourKey.id, co.keyId]) {
        expectError(await as("GET", `/v1/keys/${id}`), 404, "NOT_FOUND");
        expectError(await as("DELETE", `/v1/keys/${id}`, undefined, true), 404, "NOT_FOUND");
      }
      expectError(await as("GET", `/v1/credentials?merchant_account_id=${two}`), 404, "NOT_FOUND");
      const accounts = (await as("GET", "/v1/merchant-accounts")).json().data.merchant_accounts;
      expect(accounts.map((m: { id: string }) => m.id)).toEqual([one]);
      expectError(await as("GET", `/v1/merchant-accounts/${two}`), 404, "NOT_FOUND");
    });

    it("creates inside its account only", async () => {
      const made = await as("POST", "/v1/credentials", { name: "Inside", permissions: [DATA] });
      expect(made.statusCode, made.body).toBe(201);
      expect(made.json().data.merchant_account_id).toBe(one);
      for (const elsewhere of [two, null]) {
        const res = await as("POST", "/v1/credentials", {
          name: "Outside",
          permissions: [DATA],
          merchant_account_id: elsewhere,
        });
        expectError(res, 404, "NOT_FOUND");
      }
      const k = await as(
        "POST",
        "/v1/keys",
        { name: "k", environment: "live", credential_id: mine.id, permissions: [DATA] },
        true,
      );
      expect(k.statusCode, k.body).toBe(201);
      expect(k.json().data.merchant_account_id).toBe(one);
    });

    it("reads its account's audit events only", async () => {
      const events = (await as("GET", "/v1/audit?limit=500")).json().data.events;
      expect(events.length).toBeGreaterThan(0);
      for (const e of events) expect(e.merchant_account_id).toBe(one);
    });

    it("is refused what only the company as a whole has", async () => {
      const refused: [string, "GET" | "POST" | "PATCH", string, unknown?, boolean?][] = [
        ["webhooks.list", "GET", "/v1/webhooks"],
        ["webhooks.create", "POST", "/v1/webhooks", { url: "https://93.184.215.14/hooks" }, true],
        ["leak_policy.get", "GET", "/v1/policies/leaks"],
        ["leak_policy.update", "PATCH", "/v1/policies/leaks", { action: "notify" }, true],
        ["policies.expiry_update", "PATCH", "/v1/policies/expiry", { live: { must_expire: true } }, true],
        ["policies.expiry_get", "GET", "/v1/policies/expiry"],
        ["audit.verify", "GET", "/v1/audit/verify"],
        ["merchant_accounts.create", "POST", "/v1/merchant-accounts", { name: "x", code: "scoped-x" }],
        ["merchant_accounts.update", "PATCH", `/v1/merchant-accounts/${one}`, { name: "Mine" }],
        ["users.list", "GET", "/v1/users"],
        ["users.invite", "POST", "/v1/users", { email: uniqueEmail("by-scoped"), role: "viewer" }],
        ["users.update", "PATCH", `/v1/users/${owner.id}`, { role: "viewer" }],
        ["users.reinvite", "POST", `/v1/users/${owner.id}/reinvite`, undefined, true],
        ["users.reset_totp", "POST", `/v1/users/${owner.id}/reset-totp`, undefined, true],
      ];
      for (const [name, method, url, json, stepUp] of refused) {
        const res = await as(method, url, json, stepUp ?? false);
        expect(res.statusCode, `${name}: ${res.body}`).toBe(403);
        expect(res.json().error.code, name).toBe("MERCHANT_ACCOUNT_NOT_ALLOWED");
      }
    });

    it("keeps its own session routes", async () => {
      expect((await as("GET", "/v1/me")).statusCode).toBe(200);
      const res = await as("POST", "/v1/auth/logout");
      expect(res.statusCode, res.body).toBeLessThan(300);
      scoped.session = await loginOk(h, scoped.email, scoped.password, { code: freshCode(h, scoped) });
    });
  });
});
