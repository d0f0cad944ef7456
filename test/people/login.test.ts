import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { totpCode } from "../../src/core/totp.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "../helpers/harness.ts";
import {
  asPerson,
  freshCode,
  GOOD_PASSWORD,
  invite,
  login,
  loginOk,
  type NewCompany,
  newCompany,
  onboardOwner,
  type Person,
  rawSessionCookie,
  type Session,
  sessionCookieOf,
  uniqueEmail,
  wrongCode,
} from "./people-helpers.ts";

describe.each(BACKENDS)("people: first sign-in on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  // State carried from one step of the first sign-in to the next.
  let session: Session;
  let secret: string;
  const password = GOOD_PASSWORD;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h, "First Login Ltd");
  });
  afterAll(() => h.close());

  it("signs in with the temporary password: a HttpOnly, SameSite=Strict, Path=/ cookie and the full answer", async () => {
    const res = await login(h, co.owner.email, co.owner.temporaryPassword);
    expect(res.statusCode, res.body).toBe(200);
    const raw = rawSessionCookie(res);
    expect(raw).toBeDefined();
    expect(raw).toMatch(/;\s*HttpOnly/i);
    expect(raw).toMatch(/;\s*SameSite=Strict/i);
    expect(raw).toMatch(/;\s*Path=\/(;|$)/);
    const data = res.json().data;
    expect(data).toMatchObject({
      user: { id: co.owner.id, email: co.owner.email },
      company: { id: co.id, name: "First Login Ltd", slug: co.slug },
      role: "owner",
      password_change_required: true,
      totp_enrolled: false,
    });
    expect(typeof data.csrf_token).toBe("string");
    expect(data.csrf_token.length).toBeGreaterThanOrEqual(16);
    session = { cookie: sessionCookieOf(res) as string, csrf: data.csrf_token };

    const me = await asPerson(h, session, "GET", "/v1/me");
    expect(me.statusCode).toBe(200);
    expect(me.json().data).toMatchObject({
      user: { id: co.owner.id, email: co.owner.email },
      company_id: co.id,
      role: "owner",
      csrf_token: data.csrf_token,
      password_change_required: true,
      totp_enrolled: false,
    });
  });

  it("refuses everything but the auth routes until the password is changed (403 PASSWORD_CHANGE_REQUIRED)", async () => {
    for (const [method, url] of [
      ["GET", "/v1/keys"],
      ["GET", "/v1/credentials"],
      ["GET", "/v1/users"],
      ["GET", "/v1/audit"],
    ] as const) {
      const res = await asPerson(h, session, method, url);
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(res.json().error.code).toBe("PASSWORD_CHANGE_REQUIRED");
    }
    const invited = await asPerson(h, session, "POST", "/v1/users", {
      json: { email: uniqueEmail("early"), role: "viewer" },
    });
    expect(invited.statusCode).toBe(403);
    expect(invited.json().error.code).toBe("PASSWORD_CHANGE_REQUIRED");
  });

  it("refuses a wrong current password and weak new passwords with the reason", async () => {
    const wrong = await asPerson(h, session, "POST", "/v1/auth/password", {
      json: { current_password: "not-the-temporary-one", new_password: password },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.code).toBe("INVALID_LOGIN");

    const local = co.owner.email.split("@")[0] as string;
    const weak: [string, RegExp][] = [
      ["Sh0rt!pw", /at least 12 characters/],
      ["Password2024!", /commonly used/],
      ["1234567890abXY", /sequence/],
      ["aaaaaaaaaaaaaaaa", /too few different characters/],
      [`Zq!${local}!Zq`, /email/],
      [co.owner.temporaryPassword, /differ/],
    ];
    for (const [candidate, reason] of weak) {
      const res = await asPerson(h, session, "POST", "/v1/auth/password", {
        json: { current_password: co.owner.temporaryPassword, new_password: candidate },
      });
      expect(res.statusCode, candidate).toBe(400);
      const err = res.json().error;
      expect(err.code).toBe("WEAK_PASSWORD");
      expect(err.field).toBe("new_password");
      expect(err.message).toMatch(reason);
    }
  });

  it("changes the password: the session is replaced and the old cookie is dead", async () => {
    const res = await asPerson(h, session, "POST", "/v1/auth/password", {
      json: { current_password: co.owner.temporaryPassword, new_password: password },
    });
    expect(res.statusCode, res.body).toBe(200);
    const cookie = sessionCookieOf(res);
    expect(cookie).not.toBeNull();
    expect(cookie).not.toBe(session.cookie);
    const csrf = res.json().data.csrf_token;
    expect(csrf).not.toBe(session.csrf);

    const old = await asPerson(h, session, "GET", "/v1/me");
    expect(old.statusCode).toBe(401);
    expect(old.json().error.code).toBe("SESSION_EXPIRED");

    session = { cookie: cookie as string, csrf };
    const keys = await asPerson(h, session, "GET", "/v1/keys");
    expect(keys.statusCode).toBe(200);

    // The temporary password is gone for good.
    const again = await login(h, co.owner.email, co.owner.temporaryPassword, { ip: "10.1.0.1" });
    expect(again.statusCode).toBe(401);
    expect(again.json().error.code).toBe("INVALID_LOGIN");
  });

  it("refuses key and credential writes before 2FA enrolment (403 TOTP_ENROLMENT_REQUIRED)", async () => {
    const create = await asPerson(h, session, "POST", "/v1/keys", {
      json: { name: "too early", environment: "test" },
    });
    expect(create.statusCode).toBe(403);
    expect(create.json().error.code).toBe("TOTP_ENROLMENT_REQUIRED");
    const pw = await asPerson(h, session, "POST", `/v1/credentials/${co.credentialId}/password`);
    expect(pw.statusCode).toBe(403);
    expect(pw.json().error.code).toBe("TOTP_ENROLMENT_REQUIRED");
    const cred = await asPerson(h, session, "PATCH", `/v1/credentials/${co.credentialId}`, {
      json: { description: "x" },
    });
    expect(cred.statusCode).toBe(403);
    expect(cred.json().error.code).toBe("TOTP_ENROLMENT_REQUIRED");
    const list = await h.call("GET", "/v1/keys", { key: co.key });
    expect(list.json().data.keys).toHaveLength(1);
  });

  it("enrols TOTP: setup gives secret, otpauth URL and QR; a wrong first code is refused; ten recovery codes", async () => {
    const setup = await asPerson(h, session, "POST", "/v1/auth/totp/setup");
    expect(setup.statusCode, setup.body).toBe(200);
    const d = setup.json().data;
    expect(d.secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(d.otpauth_url).toMatch(/^otpauth:\/\/totp\//);
    expect(d.otpauth_url).toContain(`secret=${d.secret}`);
    expect(d.qr_svg).toContain("<svg");
    secret = d.secret;

    const bad = await asPerson(h, session, "POST", "/v1/auth/totp/confirm", {
      json: { code: wrongCode(secret, h.clock.now) },
    });
    expect(bad.statusCode).toBe(403);
    expect(bad.json().error.code).toBe("TOTP_INVALID");

    const ok = await asPerson(h, session, "POST", "/v1/auth/totp/confirm", {
      json: { code: totpCode(secret, h.clock.now) },
    });
    expect(ok.statusCode, ok.body).toBe(200);
    const codes: string[] = ok.json().data.recovery_codes;
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    const cookie = sessionCookieOf(ok) as string;
    expect(cookie).not.toBe(session.cookie);
    const old = await asPerson(h, session, "GET", "/v1/me");
    expect(old.statusCode).toBe(401);
    session = { cookie, csrf: ok.json().data.csrf_token };

    const me = await asPerson(h, session, "GET", "/v1/me");
    expect(me.json().data).toMatchObject({ totp_enrolled: true, password_change_required: false });

    // Enrolment is done once.
    const twice = await asPerson(h, session, "POST", "/v1/auth/totp/setup");
    expect(twice.statusCode).toBe(409);
  });

  it("an enrolled person must send a code: none is 401 TOTP_REQUIRED, a wrong one 401, a fresh one signs in", async () => {
    const none = await login(h, co.owner.email, password, { ip: "10.1.0.2" });
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe("TOTP_REQUIRED");
    expect(sessionCookieOf(none)).toBeNull();

    h.clock.advance(30);
    const wrong = await login(h, co.owner.email, password, {
      code: wrongCode(secret, h.clock.now),
      ip: "10.1.0.2",
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.code).toBe("TOTP_INVALID");
    expect(sessionCookieOf(wrong)).toBeNull();

    // A wrong password with a right code is still just a wrong login.
    const badPw = await login(h, co.owner.email, "Wrong-Password-123", {
      code: totpCode(secret, h.clock.now),
      ip: "10.1.0.2",
    });
    expect(badPw.statusCode).toBe(401);
    expect(badPw.json().error.code).toBe("INVALID_LOGIN");

    const ok = await login(h, co.owner.email, password, {
      code: totpCode(secret, h.clock.now),
      ip: "10.1.0.2",
    });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().data).toMatchObject({
      totp_enrolled: true,
      password_change_required: false,
      role: "owner",
    });
    const keys = await h.call("GET", "/v1/keys", { headers: { cookie: sessionCookieOf(ok) as string } });
    expect(keys.statusCode).toBe(200);
  });
});

describe.each(BACKENDS)("people: sign-in refusals, lockout and second factors on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let owner: Person;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h, "Lockout Co");
    owner = await onboardOwner(h, co);
  });
  afterAll(() => h.close());

  it("a wrong password and an unknown email get the identical 401 INVALID_LOGIN", async () => {
    const wrong = await login(h, owner.email, "Not-The-Password-99", { ip: "10.2.0.1" });
    const unknown = await login(h, uniqueEmail("nobody"), "Not-The-Password-99", { ip: "10.2.0.2" });
    const upper = await login(h, owner.email.toUpperCase(), "Not-The-Password-99", { ip: "10.2.0.3" });
    for (const res of [wrong, unknown, upper]) {
      expect(res.statusCode).toBe(401);
      expect(sessionCookieOf(res)).toBeNull();
    }
    const strip = (r: typeof wrong) => {
      const { request_id: _, ...rest } = r.json().error;
      return rest;
    };
    expect(strip(wrong)).toEqual({ code: "INVALID_LOGIN", message: strip(wrong).message });
    expect(strip(unknown)).toEqual(strip(wrong));
    expect(strip(upper)).toEqual(strip(wrong));
  });

  it("a ws_… API credential username never signs in, even with the credential's own password", async () => {
    const gen = await h.call("POST", `/v1/credentials/${co.credentialId}/password`, { key: co.key });
    expect(gen.statusCode, gen.body).toBe(200);
    const { username, password } = gen.json().data;
    expect(username).toBe(co.username);
    expect(username).toMatch(/^ws_\d{6}@Company\./);
    for (const name of [username, username.toLowerCase()]) {
      const res = await login(h, name, password, { ip: "10.2.1.1" });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe("INVALID_LOGIN");
    }
  });

  it("a person cannot be invited under a ws_… credential username and then sign in with it", async () => {
    const res = await asPerson(h, owner.session, "POST", "/v1/users", {
      json: { email: co.username, role: "viewer" },
    });
    // Refusing the invite is the right answer; if it is accepted, the sign-in below must still fail.
    const temporary: string =
      res.statusCode === 201 ? res.json().data.temporary_password : "Whatever-Pass-123";
    const signIn = await login(h, co.username, temporary, { ip: "10.2.1.2" });
    expect(signIn.statusCode, `invite answered ${res.statusCode}; sign-in answered ${signIn.body}`).toBe(401);
    expect(signIn.json().error.code).toBe("INVALID_LOGIN");
  });

  it("a company cannot be created with a ws_… username as its owner's email and sign in with it", async () => {
    const fake = "ws_123456@Company.SomeoneElse";
    const res = await h.call("POST", "/v1/admin/companies", {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      json: { name: "Impostor", owner_email: fake },
    });
    const temporary: string =
      res.statusCode === 201 ? res.json().data.owner.temporary_password : "Whatever-Pass-123";
    const signIn = await login(h, fake, temporary, { ip: "10.2.1.3" });
    expect(signIn.statusCode, `create answered ${res.statusCode}; sign-in answered ${signIn.body}`).toBe(401);
    expect(signIn.json().error.code).toBe("INVALID_LOGIN");
  });

  it("locks an account after five failures (429 LOGIN_LOCKED, even with the right password) and frees it after the delay", async () => {
    const ip = "10.3.0.1";
    // Earlier tests left failures on this account; a successful sign-in clears them.
    await loginOk(h, owner.email, owner.password, { code: freshCode(h, owner), ip });
    h.clock.advance(30);
    for (let i = 0; i < 5; i++) {
      // Case and spaces do not make a different account.
      const email = i % 2 === 0 ? owner.email : ` ${owner.email.toUpperCase()} `;
      const res = await login(h, email, `Wrong-Password-${i}x`, { ip });
      expect(res.statusCode, `attempt ${i + 1}`).toBe(401);
      expect(res.json().error.code).toBe("INVALID_LOGIN");
    }
    // A code for the current step, unused so far (the clock must not move: the lock lasts 30 s).
    const code = totpCode(owner.secret as string, h.clock.now);
    const locked = await login(h, owner.email, owner.password, { code, ip });
    expect(locked.statusCode).toBe(429);
    expect(locked.json().error.code).toBe("LOGIN_LOCKED");
    expect(locked.json().error.details?.retry_after).toBeGreaterThan(0);
    expect(sessionCookieOf(locked)).toBeNull();
    // From another address too: the lock is on the account.
    const elsewhere = await login(h, owner.email, owner.password, { code, ip: "10.3.0.2" });
    expect(elsewhere.statusCode).toBe(429);

    h.clock.advance(31);
    const ok = await login(h, owner.email, owner.password, { code: freshCode(h, owner), ip });
    expect(ok.statusCode, ok.body).toBe(200);
    // Success clears the count: one more failure is a plain 401, not a lock.
    const after = await login(h, owner.email, "Wrong-Password-again", { ip });
    expect(after.statusCode).toBe(401);
  });

  it("locks an unknown email exactly like a known one, so the lock never says whether it exists", async () => {
    const ghost = uniqueEmail("ghost");
    const ip = "10.3.1.1";
    for (let i = 0; i < 5; i++) {
      const res = await login(h, ghost, `Wrong-Password-${i}x`, { ip });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe("INVALID_LOGIN");
    }
    const lockedGhost = await login(h, ghost, "Wrong-Password-x", { ip });

    // The same sequence against a real account at the same moment.
    const viewer = await invite(h, owner, "viewer", { enrol: false });
    const ip2 = "10.3.1.2";
    for (let i = 0; i < 5; i++) await login(h, viewer.email, `Wrong-Password-${i}x`, { ip: ip2 });
    const lockedReal = await login(h, viewer.email, "Wrong-Password-x", { ip: ip2 });

    expect(lockedGhost.statusCode).toBe(429);
    expect(lockedReal.statusCode).toBe(429);
    const strip = (r: typeof lockedGhost) => {
      const { request_id: _, details, ...rest } = r.json().error;
      return { ...rest, keys: Object.keys(details ?? {}).sort() };
    };
    expect(strip(lockedGhost)).toEqual(strip(lockedReal));
    expect(lockedGhost.json().error.code).toBe("LOGIN_LOCKED");

    h.clock.advance(31);
    const ghostAfter = await login(h, ghost, "Wrong-Password-x", { ip });
    expect(ghostAfter.statusCode).toBe(401);
    expect(ghostAfter.json().error.code).toBe("INVALID_LOGIN");
  });

  it("the lock grows with further failures (30 s, then 60 s)", async () => {
    const dev = await invite(h, owner, "developer", { enrol: false });
    const ip = "10.3.2.1";
    for (let i = 0; i < 5; i++) await login(h, dev.email, `Wrong-Password-${i}x`, { ip });
    const first = await login(h, dev.email, dev.password, { ip });
    expect(first.statusCode).toBe(429);
    expect(first.json().error.details?.retry_after).toBeLessThanOrEqual(30);

    h.clock.advance(31);
    const sixth = await login(h, dev.email, "Wrong-Password-6x", { ip });
    expect(sixth.statusCode).toBe(401);
    const second = await login(h, dev.email, dev.password, { ip });
    expect(second.statusCode).toBe(429);
    expect(second.json().error.details?.retry_after).toBeGreaterThan(30);

    h.clock.advance(31);
    const still = await login(h, dev.email, dev.password, { ip });
    expect(still.statusCode, "a second lock lasts longer than the first").toBe(429);

    h.clock.advance(30);
    const ok = await login(h, dev.email, dev.password, { ip });
    expect(ok.statusCode, ok.body).toBe(200);
  });

  it("many failures from one address across emails do not lock out a person there (only the address limit, unset here, would)", async () => {
    const ip = "10.4.0.1";
    for (let i = 0; i < 25; i++) {
      const res = await login(h, uniqueEmail("spray"), "Sprayed-Password-1", { ip });
      expect(res.statusCode, `attempt ${i + 1}`).toBe(401);
      expect(res.json().error.code).toBe("INVALID_LOGIN");
    }
    const ok = await login(h, owner.email, owner.password, { code: freshCode(h, owner), ip });
    expect(ok.statusCode, ok.body).toBe(200);
  });

  it("refuses a replayed TOTP code at sign-in", async () => {
    const code = freshCode(h, owner);
    const first = await login(h, owner.email, owner.password, { code, ip: "10.5.0.1" });
    expect(first.statusCode, first.body).toBe(200);
    const again = await login(h, owner.email, owner.password, { code, ip: "10.5.0.1" });
    expect(again.statusCode).toBe(401);
    expect(again.json().error.code).toBe("TOTP_INVALID");
  });

  it("a recovery code signs in once; its second use fails; others still work (any case)", async () => {
    const [first, second] = owner.recoveryCodes as [string, string];
    expect(first).toMatch(/^[0-9a-z]{5}-[0-9a-z]{5}$/);
    const ok = await login(h, owner.email, owner.password, { code: first, ip: "10.5.1.1" });
    expect(ok.statusCode, ok.body).toBe(200);
    const reused = await login(h, owner.email, owner.password, { code: first, ip: "10.5.1.1" });
    expect(reused.statusCode).toBe(401);
    expect(reused.json().error.code).toBe("TOTP_INVALID");
    const next = await login(h, owner.email, owner.password, { code: second.toUpperCase(), ip: "10.5.1.1" });
    expect(next.statusCode, next.body).toBe(200);
    // Another person's recovery code is not this person's.
    const other = await login(h, owner.email, owner.password, { code: "abcde-fghij", ip: "10.5.1.1" });
    expect(other.statusCode).toBe(401);
  });

  it("each sign-in opens a new session with its own cookie and CSRF token", async () => {
    const a = await loginOk(h, owner.email, owner.password, { code: freshCode(h, owner), ip: "10.6.0.1" });
    const b = await loginOk(h, owner.email, owner.password, { code: freshCode(h, owner), ip: "10.6.0.1" });
    expect(a.cookie).not.toBe(b.cookie);
    expect(a.csrf).not.toBe(b.csrf);
    for (const s of [a, b]) expect((await asPerson(h, s, "GET", "/v1/me")).statusCode).toBe(200);
  });
});
