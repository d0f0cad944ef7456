import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { createHarness, type Harness } from "../helpers/harness.ts";
import {
  asPerson,
  freshCode,
  mgmtKey,
  type NewCompany,
  newCompany,
  onboardOwner,
  type Person,
} from "../people/people-helpers.ts";

const basic = (username: string, password: string) =>
  `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;

/**
 * Live and test are two worlds: every caller acting in test (a test key, a test API user's Basic
 * password, a console switched to Test) sees and changes test objects only, and every live object
 * answers it 404, as another company's would. The same calls on test objects work.
 */
describe.each(BACKENDS)("live and test kept apart on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let owner: Person;
  /** Live objects a test caller must never reach. */
  const live = { credential: "", key: "", keyValue: "", username: "", password: "" };
  /** Test objects it may manage. */
  const test = { credential: "", username: "", password: "" };

  type Caller = {
    name: string;
    /** Headers for one request; `write` asks for what a write needs (a fresh code for a person). */
    headers(write: boolean): Record<string, string>;
  };
  const callers: Caller[] = [];

  const call = (c: Caller, method: "GET" | "POST" | "PATCH" | "DELETE", url: string, json?: unknown) =>
    h.call(method, url, {
      headers: c.headers(method !== "GET"),
      ...(json !== undefined ? { json } : {}),
    });

  /** A fresh test key of the company's, for the caller to act on. */
  const testKey = () =>
    mgmtKey(h, co, { environment: "test", credential_id: test.credential, permissions: ["payin:read"] });
  /** A fresh live key, to show the caller cannot reach it. */
  const liveKey = () =>
    mgmtKey(h, co, { environment: "live", credential_id: live.credential, permissions: ["payin:read"] });

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h, "Two Worlds");
    owner = await onboardOwner(h, co);
    live.credential = co.credentialId;
    test.credential = co.testCredentialId;
    const lk = await liveKey();
    live.key = lk.id;
    live.keyValue = lk.key;
    const livePassword = await h.call("POST", `/v1/credentials/${live.credential}/password`, { key: co.key });
    live.username = livePassword.json().data.username;
    live.password = livePassword.json().data.password;
    const testPassword = await h.call("POST", `/v1/credentials/${test.credential}/password`, { key: co.key });
    test.username = testPassword.json().data.username;
    test.password = testPassword.json().data.password;

    const everything = [
      "keys:manage",
      "keys:verify",
      "credentials:manage",
      "audit:read",
      "payin:read",
      "payin:create",
    ];
    const tk = await mgmtKey(h, co, { environment: "test", permissions: everything });
    callers.push(
      { name: "a test key", headers: () => ({ "x-api-key": tk.key }) },
      {
        name: "a test API user's Basic password",
        headers: () => ({ authorization: basic(test.username, test.password) }),
      },
      {
        name: "a session switched to Test",
        headers: (write) => ({
          cookie: owner.session.cookie,
          "latchkey-environment": "test",
          ...(write ? { "x-csrf-token": owner.session.csrf, "x-totp-code": freshCode(h, owner) } : {}),
        }),
      },
    );
  });
  afterAll(() => h.close());

  describe.each([0, 1, 2])("caller %s", (i) => {
    const c = () => callers[i] as Caller;

    it("gets 404 for a live key, and its usage, and reads a test key", async () => {
      const tk = await testKey();
      for (const url of [`/v1/keys/${live.key}`, `/v1/keys/${live.key}/usage`]) {
        const res = await call(c(), "GET", url);
        expect(res.statusCode, `${c().name} GET ${url}`).toBe(404);
        expect(res.json().error.code).toBe("NOT_FOUND");
      }
      expect((await call(c(), "GET", `/v1/keys/${tk.id}`)).statusCode).toBe(200);
      expect((await call(c(), "GET", `/v1/keys/${tk.id}/usage`)).statusCode).toBe(200);
    });

    it("lists test keys only, whatever it asks for", async () => {
      for (const url of [
        "/v1/keys",
        "/v1/keys?environment=live",
        `/v1/keys?credential_id=${live.credential}`,
      ]) {
        const res = await call(c(), "GET", url);
        expect(res.statusCode).toBe(200);
        const envs = new Set(res.json().data.keys.map((k: { environment: string }) => k.environment));
        expect(
          [...envs].filter((e) => e !== "test"),
          url,
        ).toEqual([]);
      }
      const all = await call(c(), "GET", "/v1/keys");
      expect(all.json().data.keys.length).toBeGreaterThan(0);
    });

    it("cannot change, rotate, end or revoke a live key, and can a test key", async () => {
      const lk = await liveKey();
      const attempts: [method: "PATCH" | "POST" | "DELETE", url: string, body?: unknown][] = [
        ["PATCH", `/v1/keys/${lk.id}`, { allowed_ips: ["0.0.0.0/0"] }],
        ["PATCH", `/v1/keys/${lk.id}`, { name: "renamed" }],
        ["POST", `/v1/keys/${lk.id}/rotate`, {}],
        ["POST", `/v1/keys/${lk.id}/expiry`, { action: "reset" }],
        ["DELETE", `/v1/keys/${lk.id}`],
      ];
      for (const [method, url, body] of attempts) {
        const res = await call(c(), method, url, body);
        expect(res.statusCode, `${c().name} ${method} ${url}`).toBe(404);
      }
      const still = await h.call("GET", `/v1/keys/${lk.id}`, { key: co.key });
      expect(still.json().data).toMatchObject({
        status: "active",
        allowed_ips: [],
        name: "k",
        replaced_by: null,
      });

      const tk = await testKey();
      expect(
        (await call(c(), "PATCH", `/v1/keys/${tk.id}`, { allowed_ips: ["10.0.0.0/8"] })).statusCode,
      ).toBe(200);
      const rotated = await call(c(), "POST", `/v1/keys/${tk.id}/rotate`, {});
      expect(rotated.statusCode, rotated.body).toBe(200);
      expect(rotated.json().data.key).toMatch(/^lk_test_sk_/);
      expect((await call(c(), "POST", `/v1/keys/${tk.id}/expiry`, { action: "now" })).statusCode).toBe(200);
      expect((await call(c(), "DELETE", `/v1/keys/${rotated.json().data.id}`)).statusCode).toBe(200);
    });

    it("creates test keys and test API users only", async () => {
      const liveKeyAsked = await call(c(), "POST", "/v1/keys", {
        name: "x",
        environment: "live",
        credential_id: live.credential,
        permissions: ["payin:read"],
      });
      expect(liveKeyAsked.statusCode).toBe(403);
      expect(liveKeyAsked.json().error.code).toBe("ENVIRONMENT_NOT_ALLOWED");
      const onLiveUser = await call(c(), "POST", "/v1/keys", {
        name: "x",
        environment: "test",
        credential_id: live.credential,
        permissions: ["payin:read"],
      });
      expect(onLiveUser.statusCode).toBe(404);
      const liveUser = await call(c(), "POST", "/v1/credentials", {
        name: "x",
        environment: "live",
        permissions: ["payin:read"],
      });
      expect(liveUser.statusCode).toBe(403);
      expect(liveUser.json().error.code).toBe("ENVIRONMENT_NOT_ALLOWED");

      const created = await call(c(), "POST", "/v1/credentials", { name: "x", permissions: ["payin:read"] });
      expect(created.statusCode, created.body).toBe(201);
      expect(created.json().data.environment).toBe("test");
      const key = await call(c(), "POST", "/v1/keys", {
        name: "x",
        environment: "test",
        credential_id: created.json().data.id,
        permissions: ["payin:read"],
      });
      expect(key.statusCode, key.body).toBe(201);
      expect(key.json().data.key).toMatch(/^lk_test_sk_/);
    });

    it("gets 404 for a live API user and its password, and manages a test one", async () => {
      const attempts: [method: "GET" | "PATCH" | "POST", url: string, body?: unknown][] = [
        ["GET", `/v1/credentials/${live.credential}`],
        ["PATCH", `/v1/credentials/${live.credential}`, { status: "inactive" }],
        ["PATCH", `/v1/credentials/${live.credential}`, { allowed_ips: ["0.0.0.0/0"] }],
        ["POST", `/v1/credentials/${live.credential}/password`],
      ];
      for (const [method, url, body] of attempts) {
        const res = await call(c(), method, url, body);
        expect(res.statusCode, `${c().name} ${method} ${url}`).toBe(404);
      }
      // The live API user, its keys and its password are untouched.
      const verified = await h.call("POST", "/v1/verify", {
        key: co.key,
        json: { username: live.username, password: live.password, environment: "live" },
      });
      expect(verified.json().data.code).toBe("VALID");
      expect(
        (await h.call("POST", "/v1/verify", { key: co.key, json: { key: live.keyValue } })).json().data.code,
      ).toBe("VALID");

      const listed = await call(c(), "GET", "/v1/credentials?environment=live");
      expect(listed.statusCode).toBe(200);
      const envs = listed.json().data.credentials.map((x: { environment: string }) => x.environment);
      expect(envs.length).toBeGreaterThan(0);
      expect(envs.filter((e: string) => e !== "test")).toEqual([]);

      const made = await call(c(), "POST", "/v1/credentials", { name: "mine", permissions: ["payin:read"] });
      const id = made.json().data.id;
      expect((await call(c(), "GET", `/v1/credentials/${id}`)).statusCode).toBe(200);
      expect((await call(c(), "PATCH", `/v1/credentials/${id}`, { name: "renamed" })).statusCode).toBe(200);
      const password = await call(c(), "POST", `/v1/credentials/${id}/password`);
      expect(password.statusCode, password.body).toBe(200);
    });

    it("is not told which live key or API user made or changed a test object", async () => {
      const tk = await testKey();
      const shown = await call(c(), "GET", `/v1/keys/${tk.id}`);
      expect(shown.json().data.created_by).toBe("live");
      const listed = await call(c(), "GET", "/v1/keys?limit=100");
      expect(JSON.stringify(listed.json().data)).not.toContain(co.keyId);
      const renamed = await call(c(), "PATCH", `/v1/keys/${tk.id}`, { name: "renamed" });
      expect(renamed.json().data.created_by).toBe("live");
      const credentials = await call(c(), "GET", `/v1/credentials/${test.credential}`);
      expect(credentials.json().data.created_by).not.toBe(co.keyId);

      for (const url of ["/v1/audit?limit=200", `/v1/audit?actor=${co.keyId}`, "/v1/audit/export"]) {
        const res = await call(c(), "GET", url);
        expect(res.statusCode).toBe(200);
        expect(res.body, url).not.toContain(co.keyId);
        expect(res.body, url).not.toContain(co.keyPrefix);
      }
      const byLiveKey = await call(c(), "GET", `/v1/audit?actor=${co.keyId}`);
      expect(byLiveKey.json().data.events).toEqual([]);
      // The event is there, about the test key, with its actor unnamed.
      const about = await call(c(), "GET", `/v1/audit?target=${tk.id}`);
      const created = about.json().data.events.find((e: { action: string }) => e.action === "key.created");
      expect(created).toMatchObject({
        action: "key.created",
        actor: { type: "key", id: null, label: null },
      });
    });

    it("reads test audit events only, and may not check the whole chain", async () => {
      for (const url of ["/v1/audit?limit=200", "/v1/audit/export"]) {
        const res = await call(c(), "GET", url);
        expect(res.statusCode, url).toBe(200);
        const events =
          url === "/v1/audit/export"
            ? res.body
                .trim()
                .split("\n")
                .filter(Boolean)
                .map((l) => JSON.parse(l))
            : res.json().data.events;
        expect(events.length, url).toBeGreaterThan(0);
        expect(
          events.filter((e: { environment: string | null }) => e.environment !== "test"),
          url,
        ).toEqual([]);
        expect(JSON.stringify(events)).not.toContain(live.key);
      }
      const chain = await call(c(), "GET", "/v1/audit/verify");
      expect(chain.statusCode).toBe(403);
      expect(chain.json().error.code).toBe("ENVIRONMENT_NOT_ALLOWED");
    });
  });

  it("a test key holding keys:verify verifies test keys and answers a live key as unknown", async () => {
    const verifier = await mgmtKey(h, co, { environment: "test", permissions: ["keys:verify"] });
    const tk = await testKey();
    const ask = async (json: unknown) =>
      (await h.call("POST", "/v1/verify", { key: verifier.key, json })).json().data;
    expect((await ask({ key: tk.key })).code).toBe("VALID");
    expect((await ask({ key: live.keyValue })).code).toBe("NOT_FOUND");
    expect((await ask({ key: co.key })).code).toBe("NOT_FOUND");
    expect((await ask({ username: live.username, password: live.password })).code).toBe("NOT_FOUND");
    expect((await ask({ username: test.username, password: test.password })).code).toBe("VALID");
  });

  it("a Basic password acts in its API user's environment", async () => {
    const ask = async (json: unknown) =>
      (await h.call("POST", "/v1/verify", { key: co.key, json })).json().data;
    const testAnswer = await ask({ username: test.username, password: test.password, environment: "live" });
    expect(testAnswer.code).toBe("ENVIRONMENT_MISMATCH");
    const liveAnswer = await ask({ username: live.username, password: live.password });
    expect(liveAnswer).toMatchObject({ code: "VALID", environment: "live" });
  });

  it("a live caller still manages both worlds", async () => {
    const tk = await testKey();
    expect((await h.call("GET", `/v1/keys/${tk.id}`, { key: co.key })).statusCode).toBe(200);
    expect((await h.call("GET", `/v1/credentials/${test.credential}`, { key: co.key })).statusCode).toBe(200);
    const listed = await h.call("GET", "/v1/credentials", { key: co.key });
    const envs = new Set(listed.json().data.credentials.map((x: { environment: string }) => x.environment));
    expect(envs).toEqual(new Set(["live", "test"]));
    const session = await asPerson(h, owner.session, "GET", `/v1/keys/${live.key}`);
    expect(session.statusCode).toBe(200);
    expect((await asPerson(h, owner.session, "GET", "/v1/audit/verify")).json().data.valid).toBe(true);
  });

  it("a key's environment is its API user's", async () => {
    const res = await h.call("POST", "/v1/keys", {
      key: co.key,
      json: { name: "x", environment: "test", credential_id: live.credential, permissions: ["payin:read"] },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: "VALIDATION_ERROR", field: "environment" });
  });

  it("refuses an environment header that is neither live nor test", async () => {
    const res = await asPerson(h, owner.session, "GET", "/v1/keys", {
      headers: { "latchkey-environment": "prod" },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe("VALIDATION_ERROR");
  });
});
