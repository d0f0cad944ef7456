import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { totpCode } from "../../src/core/totp.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { createHarness, type Harness } from "../helpers/harness.ts";
import {
  asPerson,
  freshCode,
  invite,
  mgmtKey,
  type NewCompany,
  newCompany,
  onboardOwner,
  type Person,
  uniqueEmail,
} from "./people-helpers.ts";

type Method = "POST" | "PATCH" | "DELETE";

describe.each(BACKENDS)("people: roles × routes on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let owner: Person;
  let moderator: Person;
  let developer: Person;
  let viewer: Person;
  let liveKey: { id: string; key: string; prefix: string };
  let people: [string, Person][];

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h, "Roles Co");
    owner = await onboardOwner(h, co);
    moderator = await invite(h, owner, "moderator");
    developer = await invite(h, owner, "developer");
    viewer = await invite(h, owner, "viewer");
    liveKey = await mgmtKey(h, co, { name: "live one", environment: "live", permissions: ["onramp:read"] });
    people = [
      ["owner", owner],
      ["moderator", moderator],
      ["developer", developer],
      ["viewer", viewer],
    ];
  });
  afterAll(() => h.close());

  // Every session must still be alive at the start of each test (idle timeout is tested elsewhere).
  beforeEach(async () => {
    for (const [role, p] of people) {
      expect((await asPerson(h, p.session, "GET", "/v1/me")).statusCode, role).toBe(200);
    }
  });

  const getKey = async (id: string) => (await h.call("GET", `/v1/keys/${id}`, { key: co.key })).json().data;
  const keyCount = async () => (await h.call("GET", "/v1/keys", { key: co.key })).json().data.keys.length;
  const newCredential = async () => {
    const res = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "role target", permissions: ["onramp:read"] },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data.id as string;
  };
  const expectCode = (res: LightMyRequestResponse, status: number, code: string, what: string) => {
    expect(res.statusCode, `${what}: ${res.body}`).toBe(status);
    expect(res.json().error.code, what).toBe(code);
  };

  it("every role reads keys (live keys' metadata, never the key) and credentials", async () => {
    for (const [role, p] of people) {
      const list = await asPerson(h, p.session, "GET", "/v1/keys");
      expect(list.statusCode, role).toBe(200);
      const live = list.json().data.keys.find((k: { id: string }) => k.id === liveKey.id);
      expect(live, role).toMatchObject({ environment: "live", prefix: liveKey.prefix });
      expect(live.key).toBeUndefined();
      expect(list.body).not.toContain(liveKey.key);

      const one = await asPerson(h, p.session, "GET", `/v1/keys/${liveKey.id}`);
      expect(one.statusCode, role).toBe(200);
      expect(one.json().data).toMatchObject({
        id: liveKey.id,
        environment: "live",
        permissions: ["onramp:read"],
      });

      const creds = await asPerson(h, p.session, "GET", "/v1/credentials");
      expect(creds.statusCode, role).toBe(200);
      const cred = await asPerson(h, p.session, "GET", `/v1/credentials/${co.credentialId}`);
      expect(cred.statusCode, role).toBe(200);
      expect(cred.json().data.username).toBe(co.username);
    }
  });

  it("only owners and moderators read people and the audit trail", async () => {
    for (const [role, p] of people) {
      for (const url of ["/v1/users", "/v1/audit", "/v1/audit/verify", "/v1/audit/export"]) {
        const res = await asPerson(h, p.session, "GET", url);
        if (role === "owner" || role === "moderator") {
          expect(res.statusCode, `${role} ${url}`).toBe(200);
        } else {
          expectCode(res, 403, "FORBIDDEN", `${role} ${url}`);
        }
      }
    }
  });

  describe.each(["owner", "moderator"] as const)("a %s", (role) => {
    const me = () => (role === "owner" ? owner : moderator);

    it("creates, changes, rotates and revokes live and test keys", async () => {
      const p = me();
      for (const environment of ["live", "test"] as const) {
        const created = await asPerson(h, p.session, "POST", "/v1/keys", {
          code: freshCode(h, p),
          json: {
            name: `${role} ${environment}`,
            environment,
            credential_id: environment === "test" ? co.testCredentialId : co.credentialId,
          },
        });
        expect(created.statusCode, created.body).toBe(201);
        const id = created.json().data.id;
        const renamed = await asPerson(h, p.session, "PATCH", `/v1/keys/${id}`, {
          json: { name: "renamed" },
        });
        expect(renamed.statusCode, renamed.body).toBe(200);
        const fenced = await asPerson(h, p.session, "PATCH", `/v1/keys/${id}`, {
          code: freshCode(h, p),
          json: { allowed_ips: ["203.0.113.0/24"] },
        });
        expect(fenced.statusCode, fenced.body).toBe(200);
        const rotated = await asPerson(h, p.session, "POST", `/v1/keys/${id}/rotate`, {
          code: freshCode(h, p),
          json: { grace_seconds: 0 },
        });
        expect(rotated.statusCode, rotated.body).toBe(200);
        const revoked = await asPerson(h, p.session, "DELETE", `/v1/keys/${rotated.json().data.id}`, {
          code: freshCode(h, p),
        });
        expect(revoked.statusCode, revoked.body).toBe(200);
      }
    });

    it("creates and changes API credentials, their IPs and passwords", async () => {
      const p = me();
      const created = await asPerson(h, p.session, "POST", "/v1/credentials", {
        json: { name: `${role} credential`, permissions: ["onramp:read"] },
      });
      expect(created.statusCode, created.body).toBe(201);
      const id = created.json().data.id;
      const renamed = await asPerson(h, p.session, "PATCH", `/v1/credentials/${id}`, {
        json: { description: "by a manager" },
      });
      expect(renamed.statusCode, renamed.body).toBe(200);
      const fenced = await asPerson(h, p.session, "PATCH", `/v1/credentials/${id}`, {
        code: freshCode(h, p),
        json: { allowed_ips: ["203.0.113.5"] },
      });
      expect(fenced.statusCode, fenced.body).toBe(200);
      const pw = await asPerson(h, p.session, "POST", `/v1/credentials/${id}/password`, {
        code: freshCode(h, p),
      });
      expect(pw.statusCode, pw.body).toBe(200);
      const off = await asPerson(h, p.session, "PATCH", `/v1/credentials/${id}`, {
        json: { status: "inactive" },
      });
      expect(off.statusCode, off.body).toBe(200);
      expect(off.json().data.status).toBe("inactive");
    });

    it("invites people and changes their role", async () => {
      const p = me();
      const res = await asPerson(h, p.session, "POST", "/v1/users", {
        json: { email: uniqueEmail(`by-${role}`), role: "developer" },
      });
      expect(res.statusCode, res.body).toBe(201);
      const patch = await asPerson(h, p.session, "PATCH", `/v1/users/${res.json().data.id}`, {
        json: { role: "viewer" },
      });
      expect(patch.statusCode, patch.body).toBe(200);
      expect(patch.json().data.role).toBe("viewer");
    });
  });

  it("a developer creates, changes, rotates and revokes test keys", async () => {
    const p = developer;
    const created = await asPerson(h, p.session, "POST", "/v1/keys", {
      code: freshCode(h, p),
      json: {
        name: "dev test",
        environment: "test",
        credential_id: co.testCredentialId,
        permissions: ["onramp:read"],
      },
    });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().data.id;
    const renamed = await asPerson(h, p.session, "PATCH", `/v1/keys/${id}`, {
      json: { name: "dev renamed" },
    });
    expect(renamed.statusCode, renamed.body).toBe(200);
    const rotated = await asPerson(h, p.session, "POST", `/v1/keys/${id}/rotate`, {
      code: freshCode(h, p),
      json: { grace_seconds: 0 },
    });
    expect(rotated.statusCode, rotated.body).toBe(200);
    const revoked = await asPerson(h, p.session, "DELETE", `/v1/keys/${rotated.json().data.id}`, {
      code: freshCode(h, p),
    });
    expect(revoked.statusCode, revoked.body).toBe(200);
    // A key made by someone else, if it is a test key, is the developer's to revoke too.
    const other = await mgmtKey(h, co, { permissions: ["onramp:read"] });
    const revokeOther = await asPerson(h, p.session, "DELETE", `/v1/keys/${other.id}`, {
      code: freshCode(h, p),
    });
    expect(revokeOther.statusCode, revokeOther.body).toBe(200);
  });

  it("a developer gets 403 FORBIDDEN for every write to a live key, even with a valid code", async () => {
    const p = developer;
    const before = await keyCount();
    const create = await asPerson(h, p.session, "POST", "/v1/keys", {
      code: freshCode(h, p),
      json: {
        name: "dev live",
        environment: "live",
        credential_id: co.credentialId,
        permissions: ["onramp:read"],
      },
    });
    expectCode(create, 403, "FORBIDDEN", "create live");
    expect(await keyCount()).toBe(before);

    const target = await mgmtKey(h, co, {
      name: "live target",
      environment: "live",
      permissions: ["onramp:read"],
    });
    const rename = await asPerson(h, p.session, "PATCH", `/v1/keys/${target.id}`, {
      json: { name: "mine now" },
    });
    expectCode(rename, 403, "FORBIDDEN", "rename live");
    const ips = await asPerson(h, p.session, "PATCH", `/v1/keys/${target.id}`, {
      code: freshCode(h, p),
      json: { allowed_ips: ["203.0.113.9"] },
    });
    expectCode(ips, 403, "FORBIDDEN", "allowlist live");
    const rotate = await asPerson(h, p.session, "POST", `/v1/keys/${target.id}/rotate`, {
      code: freshCode(h, p),
      json: {},
    });
    expectCode(rotate, 403, "FORBIDDEN", "rotate live");
    const revoke = await asPerson(h, p.session, "DELETE", `/v1/keys/${target.id}`, { code: freshCode(h, p) });
    expectCode(revoke, 403, "FORBIDDEN", "revoke live");
    expect(await getKey(target.id)).toMatchObject({
      name: "live target",
      status: "active",
      allowed_ips: [],
      replaced_by: null,
    });
  });

  it("a developer cannot grant what a developer does not hold", async () => {
    const res = await asPerson(h, developer.session, "POST", "/v1/keys", {
      code: freshCode(h, developer),
      json: {
        name: "sneaky",
        environment: "test",
        credential_id: co.testCredentialId,
        permissions: ["audit:read"],
      },
    });
    expect(res.statusCode, res.body).toBe(403);
    expect(["PERMISSION_NOT_HELD", "FORBIDDEN"]).toContain(res.json().error.code);
  });

  it("a developer cannot reach live keys through a test key they mint", async () => {
    const before = (await h.call("GET", "/v1/keys?environment=live", { key: co.key })).json().data.keys
      .length;
    const target = await mgmtKey(h, co, {
      name: "live bystander",
      environment: "live",
      permissions: ["onramp:read"],
    });
    const minted = await asPerson(h, developer.session, "POST", "/v1/keys", {
      code: freshCode(h, developer),
      json: {
        name: "dev machine key",
        environment: "test",
        credential_id: co.testCredentialId,
        permissions: ["keys:manage", "onramp:read"],
      },
    });
    // Refusing to mint such a key is one right answer; if it is minted, it must not touch live keys.
    if (minted.statusCode === 201) {
      const devKey: string = minted.json().data.key;
      const create = await h.call("POST", "/v1/keys", {
        key: devKey,
        json: { name: "escalated", environment: "live", permissions: ["onramp:read"] },
      });
      expect(create.statusCode, `live key created with a developer's test key: ${create.body}`).toBe(403);
      const revoke = await h.call("DELETE", `/v1/keys/${target.id}`, { key: devKey });
      expect(revoke.statusCode, `live key revoked with a developer's test key: ${revoke.body}`).toBe(403);
      const rotate = await h.call("POST", `/v1/keys/${target.id}/rotate`, { key: devKey, json: {} });
      expect(rotate.statusCode, `live key rotated with a developer's test key: ${rotate.body}`).toBe(403);
    } else {
      expect(minted.statusCode, minted.body).toBe(403);
    }
    expect(await getKey(target.id)).toMatchObject({ status: "active", replaced_by: null });
    const after = (await h.call("GET", "/v1/keys?environment=live", { key: co.key })).json().data.keys.length;
    expect(after).toBe(before + 1);
  });

  /** Every write a developer may not make (credentials, people) and a viewer may not make at all. */
  const writes = (
    cred: string,
    testKey: string,
    userId: string,
  ): [Method, string, Record<string, unknown> | undefined][] => [
    ["POST", "/v1/credentials", { name: "nope", permissions: ["onramp:read"] }],
    ["PATCH", `/v1/credentials/${cred}`, { description: "nope" }],
    ["PATCH", `/v1/credentials/${cred}`, { allowed_ips: ["203.0.113.1"] }],
    ["PATCH", `/v1/credentials/${cred}`, { status: "inactive" }],
    ["POST", `/v1/credentials/${cred}/password`, undefined],
    ["POST", "/v1/users", { email: uniqueEmail("nope"), role: "viewer" }],
    ["PATCH", `/v1/users/${userId}`, { role: "developer" }],
    ["PATCH", `/v1/users/${userId}`, { status: "disabled" }],
    ["POST", "/v1/keys", { name: "nope", environment: "test", credential_id: co.testCredentialId }],
    ["PATCH", `/v1/keys/${testKey}`, { name: "nope" }],
    ["POST", `/v1/keys/${testKey}/rotate`, {}],
    ["DELETE", `/v1/keys/${testKey}`, undefined],
  ];

  it("a developer cannot write API credentials or people (403 FORBIDDEN)", async () => {
    const cred = await newCredential();
    const testKey = (await mgmtKey(h, co, { permissions: ["onramp:read"] })).id;
    for (const [method, url, json] of writes(cred, testKey, viewer.id).slice(0, 8)) {
      const res = await asPerson(h, developer.session, method, url, {
        code: freshCode(h, developer),
        ...(json !== undefined ? { json } : {}),
      });
      expectCode(res, 403, "FORBIDDEN", `developer ${method} ${url} ${JSON.stringify(json)}`);
    }
    const c = (await h.call("GET", `/v1/credentials/${cred}`, { key: co.key })).json().data;
    expect(c).toMatchObject({ description: "", allowed_ips: [], status: "active", has_password: false });
    const v = (await asPerson(h, owner.session, "GET", "/v1/users")).json().data.users;
    expect(v.find((u: { id: string }) => u.id === viewer.id)).toMatchObject({
      role: "viewer",
      status: "active",
    });
  });

  it("a viewer gets 403 FORBIDDEN for every write, even with a valid code", async () => {
    const cred = await newCredential();
    const testKey = (await mgmtKey(h, co, { permissions: ["onramp:read"] })).id;
    const before = await keyCount();
    h.clock.advance(30);
    // The viewer is refused before any code is looked at, so one unused code serves every request.
    const code = totpCode(viewer.secret as string, h.clock.now);
    for (const [method, url, json] of writes(cred, testKey, developer.id)) {
      const res = await asPerson(h, viewer.session, method, url, {
        code,
        ...(json !== undefined ? { json } : {}),
      });
      expectCode(res, 403, "FORBIDDEN", `viewer ${method} ${url} ${JSON.stringify(json)}`);
    }
    const liveCreate = await asPerson(h, viewer.session, "POST", "/v1/keys", {
      code,
      json: { name: "nope", environment: "live", credential_id: co.credentialId },
    });
    expectCode(liveCreate, 403, "FORBIDDEN", "viewer live key");
    expect(await keyCount()).toBe(before);
    expect(await getKey(testKey)).toMatchObject({ name: "k", status: "active", replaced_by: null });
    const c = (await h.call("GET", `/v1/credentials/${cred}`, { key: co.key })).json().data;
    expect(c).toMatchObject({ description: "", allowed_ips: [], status: "active", has_password: false });
  });
});
