import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { type Company, createHarness, type Harness } from "../helpers/harness.ts";

const PAYMENTS_READ = [
  "payment_route:read",
  "payment_statement:read",
  "payment_transaction:read",
  "payment_commit:read",
  "payment_request:read",
  "payment_command:read",
  "payment_scheme:read",
];
const PAYMENTS_WRITE = PAYMENTS_READ.map((p) => p.replace(":read", ":write"));
const sorted = (list: string[]) => [...list].sort();

describe.each(BACKENDS)("API keys on %s", (kind) => {
  let h: Harness;
  let co: Company;
  beforeAll(async () => {
    h = await createHarness(kind);
    co = await h.createCompany("Keys Company");
  });
  afterAll(() => h.close());

  const createKey = (body: Record<string, unknown>) =>
    h.call("POST", "/v1/keys", { key: co.key, json: { name: "k", environment: "live", ...body } });

  async function createCredential(permissions: string[]) {
    const res = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "Integration", permissions },
    });
    expect(res.statusCode).toBe(201);
    return res.json().data as { id: string };
  }

  const getKey = async (id: string) => {
    const res = await h.call("GET", `/v1/keys/${id}`, { key: co.key });
    expect(res.statusCode).toBe(200);
    return res.json().data;
  };

  const verify = async (key: string) =>
    (await h.call("POST", "/v1/verify", { key: co.key, json: { key } })).json().data;

  /** Every read action of the platform's groups, never of Latchkey's own management group. */
  const catalogReads = () =>
    h.catalog.groups
      .filter((g) => !g.built_in)
      .flatMap((g) => g.entities.flatMap((e) => e.actions.map((a) => `${e.id}:${a.id}`)))
      .filter((p) => p.endsWith(":read"));

  it("creates a live key with explicit permissions on the caller's own credential", async () => {
    const res = await createKey({
      name: "Payins",
      permissions: ["payin:read", "payin:create", "payin:read"],
    });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body.success).toBe(true);
    const key = body.data;
    expect(key.id).toMatch(/^key_[0-9A-Za-z]{22}$/);
    expect(key.key).toMatch(/^lk_live_sk_[0-9A-Za-z]{38}$/);
    expect(key.prefix).toMatch(/^lk_live_sk_[0-9A-Za-z]{8}$/);
    expect(key.key.startsWith(key.prefix)).toBe(true);
    expect(key).not.toHaveProperty("secret");
    expect(key).toMatchObject({
      name: "Payins",
      environment: "live",
      status: "active",
      has_secret: false,
      credential_id: co.credentialId,
      expires_at: null,
      last_used_at: null,
      created_at: h.clock.now.toISOString(),
    });
    expect(sorted(key.permissions)).toEqual(["payin:create", "payin:read"]);
    expect(await verify(key.key)).toMatchObject({ valid: true, code: "VALID", key_id: key.id });
  });

  it("creates test keys with the test prefix", async () => {
    const res = await createKey({
      environment: "test",
      credential_id: co.testCredentialId,
      permissions: ["payin:read"],
    });
    expect(res.statusCode).toBe(201);
    const key = res.json().data;
    expect(key.environment).toBe("test");
    expect(key.key).toMatch(/^lk_test_sk_[0-9A-Za-z]{38}$/);
    expect(key.prefix).toBe(key.key.slice(0, 19));
  });

  it("expands the read_only preset to the read actions of every platform group", async () => {
    const res = await createKey({ preset: "read_only" });
    expect(res.statusCode).toBe(201);
    const key = res.json().data;
    expect(sorted(key.permissions)).toEqual(sorted(catalogReads()));
    expect(key.permissions).toContain("payment_transaction:read");
    expect(key.permissions).not.toContain("audit:read");
    expect(key.permissions.some((p: string) => !p.endsWith(":read"))).toBe(false);
    const platformGroups = h.catalog.groups.filter((g) => !g.built_in).map((g) => g.id);
    expect(key.permission_summary).toEqual(Object.fromEntries(platformGroups.map((g) => [g, "read_only"])));
  });

  it("cuts a preset to what the credential holds", async () => {
    const cred = await createCredential(["payin:read", "payin:create", "onramp:create", "customer:read"]);
    const res = await createKey({ credential_id: cred.id, preset: "read_only" });
    expect(res.statusCode).toBe(201);
    expect(sorted(res.json().data.permissions)).toEqual(["customer:read", "payin:read"]);
  });

  it("expands a per-group preset map", async () => {
    const res = await createKey({ preset: { payments: "full_access" } });
    expect(res.statusCode).toBe(201);
    const key = res.json().data;
    expect(sorted(key.permissions)).toEqual(sorted([...PAYMENTS_READ, ...PAYMENTS_WRITE]));
    expect(key.permission_summary).toEqual({ payments: "full_access" });
  });

  it("gives a key without permissions everything its credential holds", async () => {
    const cred = await createCredential(["payout:read", "payout:create", "statement:read"]);
    const res = await createKey({ credential_id: cred.id });
    expect(res.statusCode).toBe(201);
    expect(res.json().data).toMatchObject({ credential_id: cred.id });
    expect(sorted(res.json().data.permissions)).toEqual(["payout:create", "payout:read", "statement:read"]);
  });

  it("returns the secret of a key + secret pair once and never again", async () => {
    const res = await createKey({ name: "Paired", permissions: ["payin:read"], with_secret: true });
    expect(res.statusCode).toBe(201);
    const key = res.json().data;
    expect(key.secret).toMatch(/^lk_live_ss_[0-9A-Za-z]{38}$/);
    expect(key.has_secret).toBe(true);

    const shown = await getKey(key.id);
    expect(shown.has_secret).toBe(true);
    expect(shown).not.toHaveProperty("secret");
    expect(shown).not.toHaveProperty("key");
    const list = await h.call("GET", "/v1/keys", { key: co.key });
    expect(list.body).not.toContain(key.secret);
    expect(list.body).not.toContain(key.key);
  });

  it("summarises permissions per group as read_only, write, full_access or custom", async () => {
    const res = await createKey({
      permissions: [
        "customer:read",
        "currency_account:read",
        "merchant_account:read",
        ...PAYMENTS_WRITE,
        "onramp:read",
        "onramp:create",
        "transactions:read",
        "payin:read",
      ],
    });
    expect(res.statusCode).toBe(201);
    expect(res.json().data.permission_summary).toEqual({
      merchant: "read_only",
      payments: "write",
      onramp: "full_access",
      money_movement: "custom",
    });
  });

  it("canonicalises allowed IPs and drops duplicates", async () => {
    const res = await createKey({
      permissions: ["payin:read"],
      allowed_ips: [
        "10.0.0.1/8",
        "10.0.0.0/8",
        "192.168.1.10",
        "2001:0db8:0000:0000:0000:0000:0000:0001",
        "2001:DB8::1",
        "2001:db8:0:0:1::/64",
      ],
    });
    expect(res.statusCode).toBe(201);
    const expected = ["10.0.0.0/8", "192.168.1.10", "2001:db8::1", "2001:db8::/64"];
    expect(res.json().data.allowed_ips).toEqual(expected);
    expect((await getKey(res.json().data.id)).allowed_ips).toEqual(expected);
  });

  it("refuses an invalid allowed IP entry at write time", async () => {
    const res = await createKey({ permissions: ["payin:read"], allowed_ips: ["10.0.0.300"] });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.field).toBe("allowed_ips");
  });

  it("takes an expiry in the future and refuses one in the past", async () => {
    const at = new Date(h.clock.now.getTime() + 86_400_000).toISOString();
    const res = await createKey({ permissions: ["payin:read"], expires_at: at });
    expect(res.statusCode).toBe(201);
    expect(res.json().data.expires_at).toBe(at);

    const past = await createKey({
      permissions: ["payin:read"],
      expires_at: new Date(h.clock.now.getTime() - 1000).toISOString(),
    });
    expect(past.statusCode).toBe(400);
    expect(past.json().error).toMatchObject({ code: "VALIDATION_ERROR", field: "expires_at" });
  });

  it("refuses a key for an inactive credential with 409 CREDENTIAL_INACTIVE", async () => {
    const cred = await createCredential(["payin:read"]);
    const patch = await h.call("PATCH", `/v1/credentials/${cred.id}`, {
      key: co.key,
      json: { status: "inactive" },
    });
    expect(patch.statusCode).toBe(200);
    const res = await createKey({ credential_id: cred.id });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe("CREDENTIAL_INACTIVE");
  });

  it("answers 404 for an unknown credential_id", async () => {
    const res = await createKey({ credential_id: `cred_${"0".repeat(22)}`, permissions: ["payin:read"] });
    expect(res.statusCode).toBe(404);
    expect(res.json().success).toBe(false);
  });

  it("refuses a key whose permission set would be empty", async () => {
    const cred = await createCredential(["customer:write"]);
    const fromPreset = await createKey({ credential_id: cred.id, preset: "read_only" });
    expect(fromPreset.statusCode).toBe(400);
    expect(fromPreset.json().error.code).toBe("VALIDATION_ERROR");
    const explicit = await createKey({ credential_id: cred.id, permissions: [] });
    expect(explicit.statusCode).toBe(400);
  });

  it("filters the list by credential, environment and status", async () => {
    const cred = await createCredential(["payin:read"]);
    const make = async (body: Record<string, unknown>) => {
      const res = await createKey({ credential_id: cred.id, ...body });
      expect(res.statusCode).toBe(201);
      return res.json().data.id as string;
    };
    const live = await make({});
    // Test keys belong to test API users: this one has none, so the environment filter finds none.
    const test = await createKey({ environment: "test", credential_id: co.testCredentialId });
    expect(test.statusCode).toBe(201);
    const revoked = await make({});
    const expired = await make({ expires_at: new Date(h.clock.now.getTime() + 60_000).toISOString() });
    expect((await h.call("DELETE", `/v1/keys/${revoked}`, { key: co.key })).statusCode).toBe(200);
    h.clock.advance(61);

    const ids = async (query: string) => {
      const res = await h.call("GET", `/v1/keys?credential_id=${cred.id}${query}`, { key: co.key });
      expect(res.statusCode).toBe(200);
      return res
        .json()
        .data.keys.map((k: { id: string }) => k.id)
        .sort();
    };
    expect(await ids("")).toEqual([live, revoked, expired].sort());
    expect(await ids("&environment=test")).toEqual([]);
    const tests = await h.call("GET", "/v1/keys?environment=test", { key: co.key });
    const testIds = tests.json().data.keys.map((k: { id: string }) => k.id);
    expect(testIds).toContain(test.json().data.id);
    expect(testIds).not.toContain(live);
    expect(await ids("&environment=live")).toEqual([live, revoked, expired].sort());
    expect(await ids("&status=active")).toEqual([live]);
    expect(await ids("&status=revoked")).toEqual([revoked]);
    expect(await ids("&status=expired")).toEqual([expired]);

    const all = await h.call("GET", "/v1/keys?status=revoked", { key: co.key });
    for (const k of all.json().data.keys) expect(k.status).toBe("revoked");
  });

  it("pages through keys newest first with next_cursor", async () => {
    const cred = await createCredential(["payin:read"]);
    const created: string[] = [];
    for (let i = 0; i < 5; i++) {
      h.clock.advance(1);
      const res = await createKey({ credential_id: cred.id, name: `page ${i}` });
      created.push(res.json().data.id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const url: string = `/v1/keys?credential_id=${cred.id}&limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const res = await h.call("GET", url, { key: co.key });
      expect(res.statusCode).toBe(200);
      const data = res.json().data;
      expect(data.keys.length).toBeLessThanOrEqual(2);
      seen.push(...data.keys.map((k: { id: string }) => k.id));
      cursor = data.next_cursor;
      if (cursor === null) break;
    }
    expect(cursor).toBeNull();
    expect(seen).toEqual([...created].reverse());
  });

  it("gets one key's metadata and answers 404 for an unknown one", async () => {
    const created = await h.createKey(co, {
      name: "One",
      description: "for GET",
      permissions: ["payin:read"],
    });
    const shown = await getKey(created.id);
    expect(shown).toMatchObject({
      id: created.id,
      name: "One",
      description: "for GET",
      environment: "live",
      prefix: created.key.slice(0, 19),
      permissions: ["payin:read"],
      status: "active",
      credential_id: co.credentialId,
    });
    expect(shown).not.toHaveProperty("key");
    const missing = await h.call("GET", `/v1/keys/key_${"0".repeat(22)}`, { key: co.key });
    expect(missing.statusCode).toBe(404);
  });

  it("updates name, description and allowed IPs but never permissions", async () => {
    const created = await h.createKey(co, { permissions: ["payin:read", "payin:create"] });
    const patch = (json: Record<string, unknown>) =>
      h.call("PATCH", `/v1/keys/${created.id}`, { key: co.key, json });

    const res = await patch({ name: "Renamed", description: "now documented", allowed_ips: ["10.0.0.9/24"] });
    expect(res.statusCode).toBe(200);
    expect(await getKey(created.id)).toMatchObject({
      name: "Renamed",
      description: "now documented",
      allowed_ips: ["10.0.0.0/24"],
    });

    const changed = await patch({ permissions: ["payin:read"] });
    expect(changed.statusCode).toBe(409);
    expect(changed.json().error.code).toBe("PERMISSIONS_IMMUTABLE");
    const widened = await patch({ permissions: ["payin:read", "payin:create", "payout:read"] });
    expect(widened.statusCode).toBe(409);
    expect(widened.json().error.code).toBe("PERMISSIONS_IMMUTABLE");

    const same = await patch({ permissions: ["payin:create", "payin:read"], name: "Same perms" });
    expect(same.statusCode).toBe(200);
    const after = await getKey(created.id);
    expect(after.name).toBe("Same perms");
    expect(sorted(after.permissions)).toEqual(["payin:create", "payin:read"]);
  });

  it("revokes at once, and a second revocation still succeeds", async () => {
    const created = await h.createKey(co, { permissions: ["payin:read"] });
    expect((await verify(created.key)).code).toBe("VALID");
    const first = await h.call("DELETE", `/v1/keys/${created.id}`, { key: co.key });
    expect(first.statusCode).toBe(200);
    expect(first.json().data.message).toBe("API key revoked successfully");
    expect(await verify(created.key)).toMatchObject({ valid: false, code: "REVOKED" });
    const second = await h.call("DELETE", `/v1/keys/${created.id}`, { key: co.key });
    expect(second.statusCode).toBe(200);
    expect((await getKey(created.id)).status).toBe("revoked");
  });
});

// Its own suite, so that at most one harness per file is open at a time.
describe.each(BACKENDS)("API keys under a custom brand on %s", (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness(kind, { keyPrefix: "wp3" });
  });
  afterAll(() => h.close());

  it("issues wp3_live_sk_ keys and wp3_live_ss_ secrets", async () => {
    const company = await h.createCompany("Branded");
    expect(company.key).toMatch(/^wp3_live_sk_[0-9A-Za-z]{38}$/);
    const key = await h.createKey(company, { permissions: ["onramp:read"], with_secret: true });
    expect(key.key).toMatch(/^wp3_live_sk_[0-9A-Za-z]{38}$/);
    expect(key.secret).toMatch(/^wp3_live_ss_[0-9A-Za-z]{38}$/);
    const shown = await h.call("GET", `/v1/keys/${key.id}`, { key: company.key });
    expect(shown.json().data.prefix).toBe(key.key.slice(0, 20));
    const verified = await h.call("POST", "/v1/verify", {
      key: company.key,
      json: { key: key.key, secret: key.secret },
    });
    expect(verified.json().data.code).toBe("VALID");
  });
});
