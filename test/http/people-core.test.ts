import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { totpCode } from "../../src/core/totp.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "../helpers/harness.ts";

interface Session {
  cookie: string;
  csrf: string;
  secret?: string;
}

const NEW_PASSWORD = "a long and unusual passphrase 42";

describe.each(BACKENDS)("people, 2FA and audit on %s", (kind) => {
  let h: Harness;
  let companyId: string;
  let credentialId: string;
  let testCredentialId: string;
  let managementKey: string;
  let owner: Session;
  const ownerEmail = `owner-${kind}@people.test`;

  const cookieOf = (res: { headers: Record<string, unknown> }) =>
    String(res.headers["set-cookie"]).split(";")[0] as string;
  const as = (s: Session, extra: Record<string, string> = {}) => ({
    cookie: s.cookie,
    "x-csrf-token": s.csrf,
    ...extra,
  });
  const code = (s: Session) => totpCode(s.secret as string, h.clock.now);
  /** Each code works once: move to the next 30-second step before asking for another. */
  const nextStep = () => h.clock.advance(30);

  async function login(email: string, password: string, totp?: string) {
    return h.call("POST", "/v1/auth/login", {
      json: { email, password, ...(totp ? { totp_code: totp } : {}) },
    });
  }

  /** First sign-in as a new person: temporary password, new password, 2FA enrolment. */
  async function onboard(email: string, temporary: string): Promise<Session> {
    const first = await login(email, temporary);
    expect(first.statusCode).toBe(200);
    expect(first.json().data.password_change_required).toBe(true);
    let s: Session = { cookie: cookieOf(first), csrf: first.json().data.csrf_token };
    const changed = await h.call("POST", "/v1/auth/password", {
      headers: as(s),
      json: { current_password: temporary, new_password: NEW_PASSWORD },
    });
    expect(changed.statusCode).toBe(200);
    s = { cookie: cookieOf(changed), csrf: changed.json().data.csrf_token };
    const setup = await h.call("POST", "/v1/auth/totp/setup", { headers: as(s) });
    expect(setup.json().data.otpauth_url).toMatch(/^otpauth:\/\/totp\//);
    expect(setup.json().data.qr_svg).toContain("<svg");
    const secret = setup.json().data.secret as string;
    const confirmed = await h.call("POST", "/v1/auth/totp/confirm", {
      headers: as(s),
      json: { code: totpCode(secret, h.clock.now) },
    });
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.json().data.recovery_codes).toHaveLength(10);
    nextStep();
    return { cookie: cookieOf(confirmed), csrf: confirmed.json().data.csrf_token, secret };
  }

  beforeAll(async () => {
    h = await createHarness(kind);
    const res = await h.call("POST", "/v1/admin/companies", {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      json: { name: `People ${kind}`, owner_email: ownerEmail },
    });
    const d = res.json().data;
    companyId = d.company.id;
    credentialId = d.default_credential.id;
    testCredentialId = d.default_test_credential.id;
    managementKey = d.management_key.key;
    const first = await login(ownerEmail, d.owner.temporary_password);
    const pending: Session = { cookie: cookieOf(first), csrf: first.json().data.csrf_token };
    // Until the temporary password is replaced, only the auth routes answer.
    const blocked = await h.call("GET", "/v1/keys", { headers: { cookie: pending.cookie } });
    expect(blocked.json().error.code).toBe("PASSWORD_CHANGE_REQUIRED");
    owner = await onboard(ownerEmail, d.owner.temporary_password);
  });
  afterAll(() => h.close());

  it("sets an HttpOnly, SameSite=Strict session cookie and answers /v1/me with the CSRF token", async () => {
    const res = await login(ownerEmail, NEW_PASSWORD, code(owner));
    nextStep();
    const cookie = String(res.headers["set-cookie"]);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    const me = await h.call("GET", "/v1/me", { headers: { cookie: cookieOf(res) } });
    expect(me.json().data).toMatchObject({
      role: "owner",
      totp_enrolled: true,
      csrf_token: res.json().data.csrf_token,
    });
  });

  it("gives a wrong password and an unknown email the same answer, and never lets an API username in", async () => {
    const wrong = await login(ownerEmail, "not the password at all");
    const unknown = await login(`nobody-${kind}@people.test`, "not the password at all");
    const username = (await h.call("GET", `/v1/credentials/${credentialId}`, { key: managementKey })).json()
      .data.username;
    const api = await login(username, "whatever it is");
    for (const r of [wrong, unknown, api]) {
      expect(r.statusCode).toBe(401);
      expect(r.json().error.code).toBe("INVALID_LOGIN");
      expect(r.json().error.message).toBe(wrong.json().error.message);
    }
  });

  it("asks an enrolled person for a code at sign-in and accepts a recovery code once", async () => {
    const none = await login(ownerEmail, NEW_PASSWORD);
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe("TOTP_REQUIRED");
    const bad = await login(ownerEmail, NEW_PASSWORD, "000000");
    expect(bad.statusCode).toBe(401);
  });

  it("locks an email after repeated failures, whether or not it exists, until the delay passes", async () => {
    for (const email of [`locked-${kind}@people.test`, ownerEmail]) {
      for (let i = 0; i < 5; i++) await login(email, "wrong password here");
      const locked = await login(email, "wrong password here");
      expect(locked.statusCode).toBe(429);
      expect(locked.json().error.code).toBe("LOGIN_LOCKED");
    }
    h.clock.advance(120);
    const ok = await login(ownerEmail, NEW_PASSWORD, code(owner));
    expect(ok.statusCode).toBe(200);
    owner = { ...owner, cookie: cookieOf(ok), csrf: ok.json().data.csrf_token };
    nextStep();
  });

  it("needs a fresh code for key creation: none, wrong, replayed and valid", async () => {
    const body = {
      name: "from a person",
      environment: "live",
      credential_id: credentialId,
      permissions: ["payin:read"],
    };
    const none = await h.call("POST", "/v1/keys", { headers: as(owner), json: body });
    expect(none.json().error.code).toBe("TOTP_REQUIRED");
    const wrong = await h.call("POST", "/v1/keys", {
      headers: as(owner, { "x-totp-code": "000000" }),
      json: body,
    });
    expect(wrong.json().error.code).toBe("TOTP_INVALID");
    const fresh = code(owner);
    const ok = await h.call("POST", "/v1/keys", { headers: as(owner), json: { ...body, totp_code: fresh } });
    expect(ok.statusCode).toBe(201);
    const replay = await h.call("POST", "/v1/keys", {
      headers: as(owner, { "x-totp-code": fresh }),
      json: body,
    });
    expect(replay.json().error.code).toBe("TOTP_INVALID");
    nextStep();
    const revoke = await h.call("DELETE", `/v1/keys/${ok.json().data.id}`, { headers: as(owner) });
    expect(revoke.json().error.code).toBe("TOTP_REQUIRED");
    const revoked = await h.call("DELETE", `/v1/keys/${ok.json().data.id}`, {
      headers: as(owner, { "x-totp-code": code(owner) }),
    });
    expect(revoked.statusCode).toBe(200);
    nextStep();
    // Machines are not asked: the management key needs no code for the same action.
    const byKey = await h.call("POST", "/v1/keys", { key: managementKey, json: body });
    expect(byKey.statusCode).toBe(201);
  });

  it("refuses a cookie write without its CSRF token, and a session on /v1/verify", async () => {
    const noCsrf = await h.call("POST", "/v1/credentials", {
      headers: { cookie: owner.cookie },
      json: { name: "x", permissions: ["payin:read"] },
    });
    expect(noCsrf.json().error.code).toBe("CSRF_INVALID");
    const verify = await h.call("POST", "/v1/verify", { headers: as(owner), json: { key: managementKey } });
    expect(verify.statusCode).toBe(403);
  });

  it("gives developers test keys only and viewers nothing to write", async () => {
    const dev = await h.call("POST", "/v1/users", {
      headers: as(owner),
      json: { email: `dev-${kind}@people.test`, role: "developer" },
    });
    expect(dev.statusCode).toBe(201);
    const developer = await onboard(`dev-${kind}@people.test`, dev.json().data.temporary_password);
    const base = { name: "dev key", permissions: ["payin:read"] };
    const live = await h.call("POST", "/v1/keys", {
      headers: as(developer, { "x-totp-code": code(developer) }),
      json: { ...base, credential_id: credentialId, environment: "live" },
    });
    expect(live.statusCode).toBe(403);
    nextStep();
    const test = await h.call("POST", "/v1/keys", {
      headers: as(developer, { "x-totp-code": code(developer) }),
      json: { ...base, credential_id: testCredentialId, environment: "test" },
    });
    expect(test.statusCode).toBe(201);
    nextStep();
    expect(
      (await h.call("GET", "/v1/keys?environment=live", { headers: { cookie: developer.cookie } }))
        .statusCode,
    ).toBe(200);
    expect((await h.call("GET", "/v1/audit", { headers: { cookie: developer.cookie } })).statusCode).toBe(
      403,
    );

    const view = await h.call("POST", "/v1/users", {
      headers: as(owner),
      json: { email: `viewer-${kind}@people.test`, role: "viewer" },
    });
    const first = await login(`viewer-${kind}@people.test`, view.json().data.temporary_password);
    let viewer: Session = { cookie: cookieOf(first), csrf: first.json().data.csrf_token };
    const changed = await h.call("POST", "/v1/auth/password", {
      headers: as(viewer),
      json: { current_password: view.json().data.temporary_password, new_password: NEW_PASSWORD },
    });
    viewer = { cookie: cookieOf(changed), csrf: changed.json().data.csrf_token };
    expect((await h.call("GET", "/v1/credentials", { headers: { cookie: viewer.cookie } })).statusCode).toBe(
      200,
    );
    const write = await h.call("POST", "/v1/credentials", {
      headers: as(viewer),
      json: { name: "v", permissions: ["payin:read"] },
    });
    expect(write.statusCode).toBe(403);
  });

  it("keeps the last owner and lets only owners make owners", async () => {
    const me = (await h.call("GET", "/v1/me", { headers: { cookie: owner.cookie } })).json().data.user.id;
    const demote = await h.call("PATCH", `/v1/users/${me}`, {
      headers: as(owner),
      json: { role: "moderator" },
    });
    expect(demote.json().error.code).toBe("LAST_OWNER");
    const mod = await h.call("POST", "/v1/users", {
      headers: as(owner),
      json: { email: `mod-${kind}@people.test`, role: "moderator" },
    });
    const moderator = await onboard(`mod-${kind}@people.test`, mod.json().data.temporary_password);
    const makeOwner = await h.call("POST", "/v1/users", {
      headers: as(moderator),
      json: { email: `owner2-${kind}@people.test`, role: "owner" },
    });
    expect(makeOwner.statusCode).toBe(403);
  });

  it("ends a session at logout and after 30 idle minutes", async () => {
    const a = await login(ownerEmail, NEW_PASSWORD, code(owner));
    nextStep();
    const s: Session = { cookie: cookieOf(a), csrf: a.json().data.csrf_token };
    expect((await h.call("POST", "/v1/auth/logout", { headers: as(s) })).statusCode).toBe(200);
    expect((await h.call("GET", "/v1/me", { headers: { cookie: s.cookie } })).statusCode).toBe(401);
    h.clock.advance(31 * 60);
    expect((await h.call("GET", "/v1/me", { headers: { cookie: owner.cookie } })).statusCode).toBe(401);
    const again = await login(ownerEmail, NEW_PASSWORD, code(owner));
    owner = { ...owner, cookie: cookieOf(again), csrf: again.json().data.csrf_token };
    nextStep();
  });

  it("keeps another company's people and trail out of reach", async () => {
    const other = await h.createCompany();
    const mine = (await h.call("GET", "/v1/users", { headers: { cookie: owner.cookie } })).json().data.users;
    const foreign = await h.call("GET", "/v1/audit", { key: other.key });
    expect(
      foreign.json().data.events.every((e: { target: { id: string } | null }) => e.target?.id !== mine[0].id),
    ).toBe(true);
    expect(foreign.json().data.events.some((e: { action: string }) => e.action === "user.login")).toBe(false);
  });

  it("records who did what, with 2FA, and detects an edited, a deleted and a dropped newest event", async () => {
    const trail = await h.call("GET", "/v1/audit?action=key.created", { headers: { cookie: owner.cookie } });
    const created = trail.json().data.events as {
      actor: { type: string; label: string };
      totp_used: boolean;
    }[];
    const byOwner = created.find((e) => e.actor.label === ownerEmail);
    expect(byOwner).toMatchObject({ totp_used: true, actor: { type: "user" } });
    const byKey = created.find((e) => e.actor.type === "key");
    expect(byKey).toMatchObject({
      totp_used: false,
      actor: { label: expect.stringMatching(/^lk_live_sk_/) },
    });
    const failed = await h.call("GET", "/v1/audit?action=user.login_failed", {
      headers: { cookie: owner.cookie },
    });
    expect(failed.json().data.events.length).toBeGreaterThan(0);
    expect(JSON.stringify(trail.json())).not.toMatch(/lk_(live|test)_sk_[0-9A-Za-z]{38}/);

    const check = async () =>
      (await h.call("GET", "/v1/audit/verify", { headers: { cookie: owner.cookie } })).json().data;
    expect((await check()).valid).toBe(true);
    const events = await h.store.db
      .selectFrom("audit_events")
      .select(["id", "seq"])
      .where("chain", "=", companyId)
      .orderBy("seq", "asc")
      .execute();
    const middle = events[Math.floor(events.length / 2)] as { id: string };
    await sql`UPDATE audit_events SET changes = '{"edited":true}' WHERE id = ${middle.id}`.execute(
      h.store.db,
    );
    expect(await check()).toMatchObject({ valid: false, first_broken_event_id: middle.id });
    await sql`DELETE FROM audit_events WHERE id = ${middle.id}`.execute(h.store.db);
    const afterDelete = await check();
    expect(afterDelete.valid).toBe(false);
    expect(afterDelete.first_broken_event_id).not.toBeNull();

    // Dropping the newest event leaves no gap in the rows, but the chain's head still names it.
    const fresh = await h.createCompany();
    const verifyFresh = async () => (await h.call("GET", "/v1/audit/verify", { key: fresh.key })).json().data;
    expect((await verifyFresh()).valid).toBe(true);
    const newest = await h.store.db
      .selectFrom("audit_events")
      .select("id")
      .where("chain", "=", fresh.id)
      .orderBy("seq", "desc")
      .executeTakeFirstOrThrow();
    await sql`DELETE FROM audit_events WHERE id = ${newest.id}`.execute(h.store.db);
    expect((await verifyFresh()).valid).toBe(false);
  });

  it("stops accepting step-up codes after ten wrong ones in a row, for a while", async () => {
    const body = {
      name: "guessing",
      environment: "live",
      credential_id: credentialId,
      permissions: ["payin:read"],
    };
    for (let i = 0; i < 10; i++) {
      const wrong = await h.call("POST", "/v1/keys", {
        headers: as(owner, { "x-totp-code": "000000" }),
        json: body,
      });
      expect(wrong.json().error.code).toBe("TOTP_INVALID");
    }
    const blocked = await h.call("POST", "/v1/keys", {
      headers: as(owner, { "x-totp-code": code(owner) }),
      json: body,
    });
    expect(blocked.statusCode).toBe(429);
    h.clock.advance(16 * 60);
    const again = await login(ownerEmail, NEW_PASSWORD, code(owner));
    owner = { ...owner, cookie: cookieOf(again), csrf: again.json().data.csrf_token };
    nextStep();
    const ok = await h.call("POST", "/v1/keys", {
      headers: as(owner, { "x-totp-code": code(owner) }),
      json: body,
    });
    expect(ok.statusCode).toBe(201);
  });
});
