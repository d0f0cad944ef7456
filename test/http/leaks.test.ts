import { createHash, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { generateToken } from "../../src/core/key-format.ts";
import { buildApp } from "../../src/http/app.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, type Company, createHarness, type Harness } from "../helpers/harness.ts";
import { asPerson, freshCode, newCompany, onboardOwner } from "../people/people-helpers.ts";

/** A key pair standing in for GitHub's: the public half goes in the operator's file. */
function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return { privateKey, pem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

function writeKeys(path: string, keys: { id: string; pem: string }[]) {
  const doc = {
    public_keys: keys.map((k, i) => ({ key_identifier: k.id, key: k.pem, is_current: i === 0 })),
  };
  writeFileSync(path, JSON.stringify(doc));
}

const signOf = (body: string, key: KeyObject) =>
  sign("sha256", Buffer.from(body), { key, dsaEncoding: "der" }).toString("base64");

const sha256 = (token: string) => createHash("sha256").update(token).digest("hex");

describe.each(BACKENDS)("leaked keys on %s", (kind) => {
  let h: Harness;
  let a: Company;
  let b: Company;
  let dir: string;
  let keysFile: string;
  let gh: ReturnType<typeof keyPair>;
  let verifier: string;
  const GH_ID = "gh-key-1";

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "latchkey-leaks-"));
    keysFile = join(dir, "secret_scanning.json");
    gh = keyPair();
    writeKeys(keysFile, [{ id: GH_ID, pem: gh.pem }]);
    h = await createHarness(kind, {
      services: { githubScanningKeys: keysFile, leakReportLimits: [{ limit: 5, window: "1m" }] },
    });
    a = await h.createCompany("Leaky A");
    b = await h.createCompany("Leaky B");
    verifier = await h.verifyKey();
  });
  afterAll(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const github = (body: string, headers: Record<string, string> = {}) =>
    h.call("POST", "/v1/leaks/github", {
      payload: body,
      headers: { "content-type": "application/json", ...headers },
    });
  const signed = (items: unknown[], id = GH_ID, key = gh.privateKey) => {
    const body = JSON.stringify(items);
    return github(body, {
      "github-public-key-identifier": id,
      "github-public-key-signature": signOf(body, key),
    });
  };
  const found = (token: string, url = "https://github.com/acme/app/blob/abc/config.js") => ({
    token,
    type: "latchkey_api_key",
    url,
    source: "content",
  });
  const verify = async (key: string) =>
    (await h.call("POST", "/v1/verify", { key: verifier, json: { key } })).json().data.code;
  const getKey = async (company: Company, id: string) =>
    (await h.call("GET", `/v1/keys/${id}`, { key: company.key })).json().data;
  const eventsOf = (keyId: string) =>
    h.store.db
      .selectFrom("events")
      .selectAll()
      .where("type", "=", "key.leaked")
      .execute()
      .then((rows) => rows.filter((r) => (r.data as { id: string }).id === keyId));
  const auditOf = async (company: Company, keyId: string) =>
    (await h.call("GET", `/v1/audit?target=${keyId}`, { key: company.key })).json().data.events as {
      action: string;
      changes: Record<string, unknown>;
      actor: { type: string };
    }[];

  describe("POST /v1/leaks/github", () => {
    it("labels each token and revokes a live key at once, refused by /v1/verify right after", async () => {
      const live = await h.createKey(a, { name: "Committed" });
      expect(await verify(live.key)).toBe("VALID"); // now cached on this node
      const unknown = generateToken("lk", "live", "sk");
      const res = await signed([found(live.key), found(unknown), found("lk_live_sk_nope"), found("ghp_x")]);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual([
        { token_hash: sha256(live.key), token_type: "latchkey_api_key", label: "true_positive" },
        { token_hash: sha256(unknown), token_type: "latchkey_api_key", label: "false_positive" },
        { token_hash: sha256("lk_live_sk_nope"), token_type: "latchkey_api_key", label: "false_positive" },
        { token_hash: sha256("ghp_x"), token_type: "latchkey_api_key", label: "false_positive" },
      ]);
      expect(res.body).not.toContain(live.key);
      expect(await verify(live.key)).toBe("REVOKED");

      const view = await getKey(a, live.id);
      expect(view.status).toBe("revoked");
      expect(view.leak).toMatchObject({
        reporter: "github",
        url: "https://github.com/acme/app/blob/abc/config.js",
        source: "content",
        action: "revoked",
        reports: 1,
      });
    });

    it("keeps a report whose url and source carry NUL or a lone surrogate, which the store would refuse", async () => {
      const live = await h.createKey(a, { name: "Odd bytes" });
      const res = await signed([
        { ...found(live.key), url: "https://example.test/a\u0000b\ud800c", source: "con\udc00tent\u0000" },
      ]);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()[0].label).toBe("true_positive");
      expect(await verify(live.key)).toBe("REVOKED");
      expect((await getKey(a, live.id)).leak).toMatchObject({
        url: "https://example.test/abc",
        source: "content",
      });
    });

    it("emits key.leaked in the events table with the key's view, never the token", async () => {
      const live = await h.createKey(a, { name: "Evented" });
      expect((await signed([found(live.key)])).statusCode).toBe(200);
      const events = await eventsOf(live.id);
      expect(events).toHaveLength(1);
      const event = events[0] as NonNullable<(typeof events)[0]>;
      expect(event).toMatchObject({ company_id: a.id, environment: "live", type: "key.leaked" });
      expect(event.data).toMatchObject({
        id: live.id,
        name: "Evented",
        status: "revoked",
        prefix: expect.any(String),
        environment: "live",
        leak: { reporter: "github", action: "revoked", reports: 1 },
        found: {
          reporter: "github",
          url: "https://github.com/acme/app/blob/abc/config.js",
          source: "content",
        },
        action: "revoked",
      });
      expect(JSON.stringify(event.data)).not.toContain(live.key);
    });

    it("writes the audit events with where the key was found", async () => {
      const live = await h.createKey(a, { name: "Audited" });
      await signed([found(live.key, "https://gist.github.com/x/1")]);
      const events = await auditOf(a, live.id);
      const leaked = events.find((e) => e.action === "key.leaked");
      expect(leaked?.changes).toMatchObject({
        reporter: "github",
        url: "https://gist.github.com/x/1",
        source: "content",
        action: "revoked",
      });
      const revoked = events.find((e) => e.action === "key.revoked");
      expect(revoked?.changes).toMatchObject({ reason: "leaked", after: { status: "revoked" } });
      expect(JSON.stringify(events)).not.toContain(live.key);
    });

    it("only notifies for a test key by default, and a secret of a pair counts as its key", async () => {
      const test = await h.createKey(a, { name: "Test pair", environment: "test", with_secret: true });
      const res = await signed([found(test.secret as string)]);
      expect(res.json()[0].label).toBe("true_positive");
      expect(await verify(test.key)).not.toBe("REVOKED");
      const view = await getKey(a, test.id);
      expect(view.status).toBe("active");
      expect(view.leak).toMatchObject({ action: "notified" });
      expect(await eventsOf(test.id)).toHaveLength(1);
    });

    it("records a repeat, emits again only for a new place, and labels an already revoked key true", async () => {
      const live = await h.createKey(a, { name: "Repeated" });
      await signed([found(live.key, "https://github.com/o/r/1")]);
      h.clock.advance(1);
      await signed([found(live.key, "https://github.com/o/r/1")]);
      h.clock.advance(1);
      const third = await signed([found(live.key, "https://github.com/o/r/2")]);
      expect(third.json()[0].label).toBe("true_positive");
      expect(await eventsOf(live.id)).toHaveLength(2);
      const view = await getKey(a, live.id);
      expect(view.leak).toMatchObject({
        reports: 3,
        url: "https://github.com/o/r/2",
        action: "already_revoked",
      });
      const leaks = await h.store.db
        .selectFrom("key_leaks")
        .selectAll()
        .where("key_id", "=", live.id)
        .execute();
      expect(leaks.map((l) => l.action).sort()).toEqual(["already_revoked", "already_revoked", "revoked"]);
    });

    it("revokes a leaked platform verify key, recorded in the platform's chain, with no company event", async () => {
      const gateway = await h.verifyKey("Leaked gateway");
      const before = await h.store.db.selectFrom("events").select("id").execute();
      const res = await signed([found(gateway)]);
      expect(res.json()[0].label).toBe("true_positive");
      const asGateway = await h.call("POST", "/v1/verify", { key: gateway, json: { key: a.key } });
      expect(asGateway.statusCode).toBe(401);
      const platform = await h.store.db
        .selectFrom("audit_events")
        .select(["action", "changes"])
        .where("chain", "=", "platform")
        .where("action", "in", ["key.leaked", "key.revoked"])
        .execute();
      expect(platform.map((e) => e.action).sort()).toEqual(["key.leaked", "key.revoked"]);
      expect(await h.store.db.selectFrom("events").select("id").execute()).toHaveLength(before.length);
    });

    it("refuses a wrong signature, a wrong key id, a tampered body and missing headers, doing nothing", async () => {
      const live = await h.createKey(a, { name: "Untouched" });
      const body = JSON.stringify([found(live.key)]);
      const other = keyPair();
      const attempts: Record<string, string>[] = [
        {
          "github-public-key-identifier": GH_ID,
          "github-public-key-signature": signOf(body, other.privateKey),
        },
        {
          "github-public-key-identifier": "gh-unknown",
          "github-public-key-signature": signOf(body, gh.privateKey),
        },
        { "github-public-key-identifier": GH_ID, "github-public-key-signature": "not base64!" },
        { "github-public-key-identifier": GH_ID },
        { "github-public-key-signature": signOf(body, gh.privateKey) },
        {},
      ];
      for (const headers of attempts) {
        const res = await github(body, headers);
        expect(res.statusCode, res.body).toBe(401);
        expect(res.json().error.code).toBe("SIGNATURE_INVALID");
      }
      const tampered = JSON.stringify([found(live.key, "https://github.com/elsewhere")]);
      const res = await github(tampered, {
        "github-public-key-identifier": GH_ID,
        "github-public-key-signature": signOf(body, gh.privateKey),
      });
      expect(res.json().error.code).toBe("SIGNATURE_INVALID");
      // A signed body that is not the contract's shape is refused with a 400, never a 500.
      for (const bad of ["{}", "[1]", '[{"token": 5, "type": "x"}]', "[{", '"x"']) {
        const r = await github(bad, {
          "github-public-key-identifier": GH_ID,
          "github-public-key-signature": signOf(bad, gh.privateKey),
        });
        expect(r.statusCode, `${bad}: ${r.body}`).toBe(400);
      }
      expect(await verify(live.key)).toBe("VALID");
      expect(await eventsOf(live.id)).toHaveLength(0);
      expect((await getKey(a, live.id)).leak).toBeNull();
    });

    it("reads the keys file again when it changes (GitHub rotated its key)", async () => {
      const next = keyPair();
      const live = await h.createKey(a, { name: "After rotation" });
      writeKeys(keysFile, [{ id: "gh-key-2", pem: next.pem }]);
      try {
        expect((await signed([found(live.key)])).statusCode).toBe(401);
        const res = await signed([found(live.key)], "gh-key-2", next.privateKey);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()[0].label).toBe("true_positive");
      } finally {
        writeKeys(keysFile, [{ id: GH_ID, pem: gh.pem }]);
      }
    });

    it("commits the revocation, the record, the audit events and key.leaked together or not at all", async () => {
      const live = await h.createKey(a, { name: "Rolled back" });
      const failing = "https://fail.example/leak";
      // The event is the transaction's last write: refusing it must undo everything before it.
      await sql`ALTER TABLE events ADD CONSTRAINT leaks_test_refuse
        CHECK (data #>> '{found,url}' IS DISTINCT FROM ${sql.lit(failing)})`.execute(h.store.db);
      try {
        const res = await signed([found(live.key, failing)]);
        expect(res.statusCode).toBe(500);
      } finally {
        await sql`ALTER TABLE events DROP CONSTRAINT leaks_test_refuse`.execute(h.store.db);
      }
      expect(await verify(live.key)).toBe("VALID");
      expect((await getKey(a, live.id)).leak).toBeNull();
      expect(await eventsOf(live.id)).toHaveLength(0);
      expect((await auditOf(a, live.id)).map((e) => e.action)).toEqual(["key.created"]);
    });

    it("never logs a reported token", async () => {
      const lines: string[] = [];
      const stream = new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
          done();
        },
      });
      const logged = await buildApp({
        services: h.services,
        platformTokens: [ADMIN_TOKEN],
        logger: { level: "trace", stream },
      });
      try {
        const live = await h.createKey(a, { name: "Logged?" });
        const other = await h.createKey(a, { name: "Logged too?" });
        const body = JSON.stringify([found(live.key)]);
        const post = (url: string, payload: string, headers: Record<string, string> = {}) =>
          logged.inject({
            method: "POST",
            url,
            payload,
            headers: { "content-type": "application/json", ...headers },
            remoteAddress: "192.0.2.200",
          });
        expect(
          (
            await post("/v1/leaks/github", body, {
              "github-public-key-identifier": GH_ID,
              "github-public-key-signature": signOf(body, gh.privateKey),
            })
          ).statusCode,
        ).toBe(200);
        expect((await post("/v1/leaks/github", body)).statusCode).toBe(401);
        expect((await post("/v1/leaks", JSON.stringify({ token: other.key, bad: 1 }))).statusCode).toBe(400);
        expect((await post("/v1/leaks", `{"token":"${other.key}`)).statusCode).toBe(400);
        expect((await post("/v1/leaks", JSON.stringify({ token: other.key }))).statusCode).toBe(202);
        await h.services.leaks.settled();
        logged.log.error(
          { body: { token: other.key }, reports: [{ token: live.key }] },
          "a line with tokens",
        );
        expect(lines.some((l) => l.includes('"incoming request"'))).toBe(true);
        const text = lines.join("\n");
        expect(text).not.toContain(live.key);
        expect(text).not.toContain(other.key);
      } finally {
        await logged.close();
      }
    });

    it("answers 404 SECRET_SCANNING_NOT_CONFIGURED without a keys file", async () => {
      const bare = await createHarness(kind);
      try {
        const res = await bare.call("POST", "/v1/leaks/github", { json: [] });
        expect(res.statusCode).toBe(404);
        expect(res.json().error.code).toBe("SECRET_SCANNING_NOT_CONFIGURED");
      } finally {
        await bare.close();
      }
    });
  });

  describe("POST /v1/leaks", () => {
    const report = (json: unknown, ip = "198.51.100.7") => h.call("POST", "/v1/leaks", { json, ip });

    it("answers the same 202 for a real, unknown, malformed and revoked key, then applies the policy", async () => {
      const real = await h.createKey(a, { name: "Pasted" });
      const gone = await h.createKey(a, { name: "Gone" });
      await h.call("DELETE", `/v1/keys/${gone.id}`, { key: a.key });
      const bodies = new Set<string>();
      for (const [i, token] of [
        real.key,
        generateToken("lk", "live", "sk"),
        "lk_live_sk_short",
        gone.key,
      ].entries()) {
        const res = await report(
          { token, url: "https://pastebin.example/abc", source: "paste" },
          `198.51.100.${20 + i}`,
        );
        expect(res.statusCode, res.body).toBe(202);
        expect(Object.keys(res.headers)).not.toContain("retry-after");
        bodies.add(res.body);
      }
      expect(bodies.size).toBe(1);
      await h.services.leaks.settled();
      expect(await verify(real.key)).toBe("REVOKED");
      expect((await getKey(a, real.id)).leak).toMatchObject({ reporter: "public", action: "revoked" });
      expect((await getKey(a, gone.id)).leak).toMatchObject({
        reporter: "public",
        action: "already_revoked",
      });
      const audit = await auditOf(a, real.id);
      expect(audit.find((e) => e.action === "key.leaked")?.changes).toMatchObject({
        reporter: "public",
        url: "https://pastebin.example/abc",
        source: "paste",
      });
    });

    it("emits nothing and records nothing for a token that matches no key", async () => {
      const before = await h.store.db.selectFrom("events").select("id").execute();
      const leaksBefore = await h.store.db.selectFrom("key_leaks").select("id").execute();
      await report({ token: generateToken("lk", "live", "sk") }, "198.51.100.60");
      await signed([found(generateToken("lk", "test", "sk"))]);
      await h.services.leaks.settled();
      expect(await h.store.db.selectFrom("events").select("id").execute()).toHaveLength(before.length);
      expect(await h.store.db.selectFrom("key_leaks").select("id").execute()).toHaveLength(
        leaksBefore.length,
      );
    });

    it("limits reports per client address with 429 RATE_LIMITED and Retry-After", async () => {
      const token = generateToken("lk", "live", "sk");
      for (let i = 0; i < 5; i++) expect((await report({ token }, "203.0.113.9")).statusCode).toBe(202);
      const over = await report({ token }, "203.0.113.9");
      expect(over.statusCode).toBe(429);
      expect(over.json().error.code).toBe("RATE_LIMITED");
      expect(Number(over.headers["retry-after"])).toBeGreaterThan(0);
      expect((await report({ token }, "203.0.113.10")).statusCode).toBe(202);
    });

    it("refuses malformed input with a 4xx code, never a 500", async () => {
      const cases: unknown[] = [
        {},
        { token: 5 },
        { token: "" },
        { token: "x".repeat(300) },
        { token: "x", extra: 1 },
        [],
      ];
      for (const [i, json] of cases.entries()) {
        const res = await report(json, `192.0.2.${i + 1}`);
        expect(res.statusCode, res.body).toBe(400);
        expect(res.json().error.code).toBe("VALIDATION_ERROR");
      }
      const text = await h.call("POST", "/v1/leaks", {
        payload: "token=x",
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      expect(text.statusCode).toBe(415);
    });
  });

  describe("the leak policy", () => {
    it("defaults to revoke for live and notify for test, and a test key sees test only", async () => {
      const res = await h.call("GET", "/v1/policies/leaks", { key: b.key });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().data.policies).toEqual([
        { environment: "live", action: "revoke", is_default: true, updated_at: null },
        { environment: "test", action: "notify", is_default: true, updated_at: null },
      ]);
      const testKey = await h.createKey(b, {
        name: "Test manager",
        environment: "test",
        permissions: ["keys:manage"],
      });
      const asTest = await h.call("GET", "/v1/policies/leaks", { key: testKey.key });
      expect(asTest.json().data.policies.map((p: { environment: string }) => p.environment)).toEqual([
        "test",
      ]);
    });

    it("applies a company's notify policy to its live keys only, not another company's", async () => {
      const c = await h.createCompany("Notify Co");
      await h.services.leaks.setPolicy(
        c.id,
        { environment: "live", action: "notify" },
        { actor: { kind: "platform" }, ip: null, userAgent: null, totpUsed: false },
      );
      const ofC = await h.createKey(c, { name: "Kept" });
      const ofB = await h.createKey(b, { name: "Revoked as usual" });
      await signed([found(ofC.key), found(ofB.key)]);
      expect(await verify(ofC.key)).toBe("VALID");
      expect((await getKey(c, ofC.id)).leak).toMatchObject({ action: "notified" });
      expect(await verify(ofB.key)).toBe("REVOKED");
      const policies = (await h.call("GET", "/v1/policies/leaks", { key: c.key })).json().data.policies;
      expect(policies[0]).toMatchObject({ environment: "live", action: "notify", is_default: false });
      const ofBPolicies = (await h.call("GET", "/v1/policies/leaks", { key: b.key })).json().data.policies;
      expect(ofBPolicies[0]).toMatchObject({ environment: "live", action: "revoke", is_default: true });
    });

    it("lets an owner change it with a fresh code, audited, and keeps a test session to the test policy", async () => {
      const co = await newCompany(h, "Policy Owner Co");
      const owner = await onboardOwner(h, co);
      const patch = (json: unknown, opts: { code?: string; headers?: Record<string, string> } = {}) =>
        asPerson(h, owner.session, "PATCH", "/v1/policies/leaks", { json, ...opts });

      const asked = await patch({ environment: "live", action: "notify" });
      expect(asked.json().error.code).toBe("TOTP_REQUIRED");
      const ok = await patch({ environment: "live", action: "notify" }, { code: freshCode(h, owner) });
      expect(ok.statusCode, ok.body).toBe(200);
      expect(ok.json().data).toMatchObject({ environment: "live", action: "notify", is_default: false });

      const test = { "latchkey-environment": "test" };
      const refused = await patch(
        { environment: "live", action: "revoke" },
        { code: freshCode(h, owner), headers: test },
      );
      expect(refused.statusCode, refused.body).toBe(403);
      expect(refused.json().error.code).toBe("ENVIRONMENT_NOT_ALLOWED");
      const own = await patch({ action: "revoke" }, { code: freshCode(h, owner), headers: test });
      expect(own.json().data).toMatchObject({ environment: "test", action: "revoke" });

      const read = await asPerson(h, owner.session, "GET", "/v1/policies/leaks");
      expect(read.json().data.policies).toMatchObject([
        { environment: "live", action: "notify" },
        { environment: "test", action: "revoke" },
      ]);
      const audit = await h.call("GET", "/v1/audit?action=leak_policy.changed", { key: co.key });
      const changes = audit.json().data.events.map((e: { changes: unknown }) => e.changes);
      expect(changes).toEqual([
        { before: { action: "notify" }, after: { action: "revoke" } },
        { before: { action: "revoke" }, after: { action: "notify" } },
      ]);
      // Another company's policy is its own.
      const other = (await h.call("GET", "/v1/policies/leaks", { key: a.key })).json().data.policies;
      expect(other[0]).toMatchObject({ environment: "live", action: "revoke", is_default: true });
    });

    it("refuses a key on PATCH (owners' sessions only)", async () => {
      const res = await h.call("PATCH", "/v1/policies/leaks", { key: a.key, json: { action: "notify" } });
      expect(res.statusCode).toBe(401);
    });
  });
});

describe("leak settings", () => {
  it("stops start-up on a keys file that is not GitHub's document, and parses the report limit", () => {
    const dir = mkdtempSync(join(tmpdir(), "latchkey-leaks-config-"));
    try {
      const bad = join(dir, "bad.json");
      writeFileSync(bad, JSON.stringify({ keys: [] }));
      for (const path of [bad, join(dir, "missing.json")]) {
        expect(() => loadConfig({ LATCHKEY_GITHUB_SECRET_SCANNING_KEYS: path })).toThrow(ConfigError);
      }
      const good = join(dir, "good.json");
      writeKeys(good, [{ id: "k", pem: keyPair().pem }]);
      expect(loadConfig({ LATCHKEY_GITHUB_SECRET_SCANNING_KEYS: good }).githubScanningKeys).toBe(good);
      expect(loadConfig({}).leakReportLimits).toEqual([
        { limit: 10, window: "1m" },
        { limit: 100, window: "1h" },
      ]);
      expect(loadConfig({ LATCHKEY_LEAK_REPORT_RATE_LIMIT: "off" }).leakReportLimits).toEqual([]);
      expect(() => loadConfig({ LATCHKEY_LEAK_REPORT_RATE_LIMIT: "lots" })).toThrow(ConfigError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
