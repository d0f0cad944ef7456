import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { totpCode } from "../../src/core/totp.ts";
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
  relogin,
  wrongCode,
} from "./people-helpers.ts";

/** How a step-up code travels with a request. */
type Via = { none: true } | { header: string } | { body: string };

describe.each(BACKENDS)("people: TOTP step-up on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let owner: Person;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h, "Step Up Co");
    owner = await onboardOwner(h, co);
  });
  afterAll(() => h.close());

  const secret = () => owner.secret as string;
  const keyBody = (name = "step-up key") => ({
    name,
    environment: "test",
    credential_id: co.testCredentialId,
  });
  const createKey = (code?: string) =>
    asPerson(h, owner.session, "POST", "/v1/keys", {
      ...(code !== undefined ? { code } : {}),
      json: keyBody(),
    });
  const keyCount = async () => (await h.call("GET", "/v1/keys", { key: co.key })).json().data.keys.length;
  const getKey = async (id: string) => (await h.call("GET", `/v1/keys/${id}`, { key: co.key })).json().data;
  const getCred = async (id: string) =>
    (await h.call("GET", `/v1/credentials/${id}`, { key: co.key })).json().data;
  const newCredential = async () => {
    const res = await h.call("POST", "/v1/credentials", {
      key: co.key,
      json: { name: "step-up credential", permissions: ["onramp:read", "keys:manage"] },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data.id as string;
  };

  it("the code that confirmed enrolment cannot be used again", async () => {
    // The clock has not moved since the owner confirmed enrolment with this step's code.
    const before = await keyCount();
    const res = await createKey(totpCode(secret(), h.clock.now));
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe("TOTP_INVALID");
    expect(await keyCount()).toBe(before);
  });

  it("accepts ±1 step of clock drift and refuses ±2", async () => {
    h.clock.advance(300);
    await relogin(h, owner);
    h.clock.advance(300);
    const at = (steps: number) => totpCode(secret(), new Date(h.clock.now.getTime() + steps * 30_000));
    for (const steps of [-2, 2]) {
      const res = await createKey(at(steps));
      expect(res.statusCode, `${steps} steps`).toBe(403);
      expect(res.json().error.code).toBe("TOTP_INVALID");
    }
    const behind = await createKey(at(-1));
    expect(behind.statusCode, behind.body).toBe(201);
    h.clock.advance(300);
    const ahead = await createKey(at(1));
    expect(ahead.statusCode, ahead.body).toBe(201);
  });

  it("a code works once: the same code again is 403 TOTP_INVALID, on any route, and so is an older one", async () => {
    h.clock.advance(60); // past the step the drift test used last
    const code = freshCode(h, owner);
    const older = totpCode(secret(), new Date(h.clock.now.getTime() - 30_000));
    const first = await createKey(code);
    expect(first.statusCode, first.body).toBe(201);
    const before = await keyCount();
    const again = await createKey(code);
    expect(again.statusCode).toBe(403);
    expect(again.json().error.code).toBe("TOTP_INVALID");
    const revoke = await asPerson(h, owner.session, "DELETE", `/v1/keys/${first.json().data.id}`, { code });
    expect(revoke.statusCode).toBe(403);
    expect(revoke.json().error.code).toBe("TOTP_INVALID");
    expect((await getKey(first.json().data.id)).status).toBe("active");
    // The previous step's code was never used, but a later step has been: it is refused as well.
    const stale = await createKey(older);
    expect(stale.statusCode).toBe(403);
    expect(stale.json().error.code).toBe("TOTP_INVALID");
    expect(await keyCount()).toBe(before);
  });

  it("two requests racing with one code: exactly one wins", async () => {
    const code = freshCode(h, owner);
    const before = await keyCount();
    const results = await Promise.all([createKey(code), createKey(code), createKey(code)]);
    const statuses = results.map((r) => r.statusCode).sort();
    expect(statuses).toEqual([201, 403, 403]);
    for (const r of results.filter((x) => x.statusCode === 403)) {
      expect(r.json().error.code).toBe("TOTP_INVALID");
    }
    expect(await keyCount()).toBe(before + 1);
  });

  /**
   * The six step-up actions of issue 3. Each: `prepare` makes a fresh target, `send` makes the request,
   * `unchanged` checks a refused request did nothing, `done` checks a successful one did its work.
   */
  interface StepUpCase {
    name: string;
    prepare: () => Promise<string>;
    send: (target: string, via: Via, as?: { key: string }) => Promise<LightMyRequestResponse>;
    unchanged: (target: string) => Promise<void>;
    done: (target: string, res: LightMyRequestResponse) => Promise<void>;
  }

  const send = (
    method: "POST" | "DELETE" | "PATCH",
    url: string,
    body: Record<string, unknown> | undefined,
    via: Via,
    as?: { key: string },
  ) => {
    const json = "body" in via ? { ...(body ?? {}), totp_code: via.body } : body;
    if (as) return h.call(method, url, { key: as.key, ...(json !== undefined ? { json } : {}) });
    return asPerson(h, owner.session, method, url, {
      ...("header" in via ? { code: via.header } : {}),
      ...(json !== undefined ? { json } : {}),
    });
  };

  const cases: StepUpCase[] = [
    {
      name: "POST /v1/keys",
      prepare: async () => String(await keyCount()),
      send: (_t, via, as) => send("POST", "/v1/keys", keyBody("stepped"), via, as),
      unchanged: async (count) => expect(await keyCount()).toBe(Number(count)),
      done: async (_t, res) => {
        expect(res.statusCode, res.body).toBe(201);
        expect(res.json().data.key).toMatch(/^lk_test_sk_/);
      },
    },
    {
      name: "DELETE /v1/keys/:id",
      prepare: async () => (await mgmtKey(h, co)).id,
      send: (id, via, as) => send("DELETE", `/v1/keys/${id}`, undefined, via, as),
      unchanged: async (id) => expect((await getKey(id)).status).toBe("active"),
      done: async (id, res) => {
        expect(res.statusCode, res.body).toBe(200);
        expect((await getKey(id)).status).toBe("revoked");
      },
    },
    {
      name: "POST /v1/keys/:id/rotate",
      prepare: async () => (await mgmtKey(h, co, { permissions: ["onramp:read"] })).id,
      send: (id, via, as) => send("POST", `/v1/keys/${id}/rotate`, { grace_seconds: 60 }, via, as),
      unchanged: async (id) => expect((await getKey(id)).replaced_by).toBeNull(),
      done: async (id, res) => {
        expect(res.statusCode, res.body).toBe(200);
        expect((await getKey(id)).replaced_by).toBe(res.json().data.id);
      },
    },
    {
      name: "POST /v1/credentials/:id/password",
      prepare: newCredential,
      send: (id, via, as) => send("POST", `/v1/credentials/${id}/password`, undefined, via, as),
      unchanged: async (id) => expect((await getCred(id)).has_password).toBe(false),
      done: async (id, res) => {
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().data.password).toEqual(expect.any(String));
        expect((await getCred(id)).has_password).toBe(true);
      },
    },
    {
      name: "PATCH /v1/credentials/:id with allowed_ips",
      prepare: newCredential,
      send: (id, via, as) =>
        send("PATCH", `/v1/credentials/${id}`, { allowed_ips: ["198.51.100.0/24"] }, via, as),
      unchanged: async (id) => expect((await getCred(id)).allowed_ips).toEqual([]),
      done: async (id, res) => {
        expect(res.statusCode, res.body).toBe(200);
        expect((await getCred(id)).allowed_ips).toEqual(["198.51.100.0/24"]);
      },
    },
    {
      name: "PATCH /v1/keys/:id with allowed_ips",
      prepare: async () => (await mgmtKey(h, co)).id,
      send: (id, via, as) => send("PATCH", `/v1/keys/${id}`, { allowed_ips: ["198.51.100.7"] }, via, as),
      unchanged: async (id) => expect((await getKey(id)).allowed_ips).toEqual([]),
      done: async (id, res) => {
        expect(res.statusCode, res.body).toBe(200);
        expect((await getKey(id)).allowed_ips).toEqual(["198.51.100.7"]);
      },
    },
  ];

  describe.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    it("without a code: 403 TOTP_REQUIRED, nothing changes", async () => {
      await relogin(h, owner);
      const target = await c.prepare();
      const res = await c.send(target, { none: true });
      expect(res.statusCode, res.body).toBe(403);
      expect(res.json().error.code).toBe("TOTP_REQUIRED");
      await c.unchanged(target);
    });

    it("with a wrong code (header or body): 403 TOTP_INVALID, nothing changes", async () => {
      const target = await c.prepare();
      h.clock.advance(30);
      for (const via of [
        { header: wrongCode(secret(), h.clock.now) },
        { body: wrongCode(secret(), h.clock.now) },
      ]) {
        const res = await c.send(target, via);
        expect(res.statusCode, `${JSON.stringify(via)}: ${res.body}`).toBe(403);
        expect(res.json().error.code).toBe("TOTP_INVALID");
      }
      await c.unchanged(target);
    });

    it("with a fresh code in X-TOTP-Code: succeeds", async () => {
      const target = await c.prepare();
      const res = await c.send(target, { header: freshCode(h, owner) });
      await c.done(target, res);
    });

    it("with a fresh code as totp_code in the body: succeeds", async () => {
      const target = await c.prepare();
      const res = await c.send(target, { body: freshCode(h, owner) });
      await c.done(target, res);
    });
  });

  describe.each(cases.map((c) => [c.name, c] as const))("%s by a management key", (_name, c) => {
    it("is never asked for a code", async () => {
      const target = await c.prepare();
      const res = await c.send(target, { none: true }, { key: co.key });
      await c.done(target, res);
    });
  });

  it("changes that touch no IP list need no code; creating a credential with IPs does", async () => {
    await relogin(h, owner);
    const key = await mgmtKey(h, co);
    const rename = await asPerson(h, owner.session, "PATCH", `/v1/keys/${key.id}`, {
      json: { name: "renamed" },
    });
    expect(rename.statusCode, rename.body).toBe(200);
    const cred = await newCredential();
    const describe_ = await asPerson(h, owner.session, "PATCH", `/v1/credentials/${cred}`, {
      json: { description: "no IPs here" },
    });
    expect(describe_.statusCode, describe_.body).toBe(200);

    const plain = await asPerson(h, owner.session, "POST", "/v1/credentials", {
      json: { name: "plain", permissions: ["onramp:read"] },
    });
    expect(plain.statusCode, plain.body).toBe(201);
    const withIps = { name: "fenced", permissions: ["onramp:read"], allowed_ips: ["192.0.2.0/24"] };
    const noCode = await asPerson(h, owner.session, "POST", "/v1/credentials", { json: withIps });
    expect(noCode.statusCode).toBe(403);
    expect(noCode.json().error.code).toBe("TOTP_REQUIRED");
    const withCode = await asPerson(h, owner.session, "POST", "/v1/credentials", {
      code: freshCode(h, owner),
      json: withIps,
    });
    expect(withCode.statusCode, withCode.body).toBe(201);
  });

  it("a recovery code works once for a step-up", async () => {
    const [a, b] = owner.recoveryCodes.slice(-2) as [string, string];
    const first = await createKey(a);
    expect(first.statusCode, first.body).toBe(201);
    const again = await createKey(a);
    expect(again.statusCode).toBe(403);
    expect(again.json().error.code).toBe("TOTP_INVALID");
    const inBody = await asPerson(h, owner.session, "POST", "/v1/keys", {
      json: { ...keyBody(), totp_code: b },
    });
    expect(inBody.statusCode, inBody.body).toBe(201);
  });
});
