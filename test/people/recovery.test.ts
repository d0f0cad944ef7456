import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/core/hashing.ts";
import { totpCode } from "../../src/core/totp.ts";
import { buildApp } from "../../src/http/app.ts";
import { SmtpMailer } from "../../src/services/mailer.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, createHarness, type Harness, SECRET } from "../helpers/harness.ts";
import { LocalSmtp, linkOf, tokenOf } from "../helpers/smtp.ts";
import {
  allEvents,
  asPerson,
  freshCode,
  GOOD_PASSWORD,
  login,
  loginOk,
  mgmtKey,
  type NewCompany,
  newCompany,
  onboardOwner,
  type Person,
  relogin,
  type Session,
  sessionCookieOf,
  uniqueEmail,
} from "./people-helpers.ts";

const PUBLIC_URL = "https://keys.example.test";
const NEW_PASSWORD = "Copper-Meadow-Falcon-93";

describe.each(BACKENDS)("email and recovery on %s, with SMTP", (kind) => {
  let h: Harness;
  let smtp: LocalSmtp;
  let co: NewCompany;
  let owner: Person;

  beforeAll(async () => {
    smtp = new LocalSmtp();
    const url = await smtp.start();
    h = await createHarness(kind, {
      services: { mailer: new SmtpMailer(url, "Latchkey <keys@example.test>"), publicUrl: PUBLIC_URL },
    });
    co = await newCompany(h, "Recovery Co");
    owner = await onboardOwner(h, co);
  });
  afterAll(async () => {
    await h.close();
    await smtp.close();
  });

  /** Invites by email, follows the mailed link to set a password, and (unless told not to) enrols. */
  async function invited(role: "moderator" | "developer" | "viewer" | "owner", enrol = true) {
    const email = uniqueEmail(role);
    const res = await asPerson(h, owner.session, "POST", "/v1/users", { json: { email, role } });
    expect(res.statusCode, res.body).toBe(201);
    const id: string = res.json().data.id;
    const mail = await smtp.waitFor(email);
    const set = await h.call("POST", "/v1/auth/reset-password", {
      json: { token: tokenOf(mail), new_password: GOOD_PASSWORD },
    });
    expect(set.statusCode, set.body).toBe(200);
    let session = await loginOk(h, email, GOOD_PASSWORD);
    const person: Person = { id, email, password: GOOD_PASSWORD, secret: null, recoveryCodes: [], session };
    if (!enrol) return person;
    const setup = await asPerson(h, session, "POST", "/v1/auth/totp/setup");
    person.secret = setup.json().data.secret;
    const confirm = await asPerson(h, session, "POST", "/v1/auth/totp/confirm", {
      json: { code: totpCode(person.secret as string, h.clock.now) },
    });
    expect(confirm.statusCode, confirm.body).toBe(200);
    session = { cookie: sessionCookieOf(confirm) as string, csrf: confirm.json().data.csrf_token };
    person.session = session;
    person.recoveryCodes = confirm.json().data.recovery_codes;
    // The new-device notice is on its way; wait for it so later counts of this inbox are stable.
    await smtp.waitFor(email, 2);
    return person;
  }

  const forgot = (email: string, ip = "198.51.100.7") =>
    h.call("POST", "/v1/auth/forgot-password", { json: { email }, ip });
  const reset = (token: string, new_password = NEW_PASSWORD) =>
    h.call("POST", "/v1/auth/reset-password", { json: { token, new_password } });

  describe("forgot password", () => {
    it("answers an unknown email exactly as a known one, and mails only the known one", async () => {
      const person = await invited("developer");
      const unknown = uniqueEmail("nobody");
      const a = await forgot(unknown);
      const b = await forgot(person.email);
      expect(a.statusCode).toBe(202);
      expect(b.statusCode).toBe(202);
      expect(a.body).toBe(b.body);
      const mail = await smtp.waitFor(person.email, 3); // the invitation, the new device, the reset
      expect(mail.subject).toMatch(/reset/i);
      expect(mail.from).toBe("keys@example.test");
      expect(linkOf(mail)).toMatch(/^https:\/\/keys\.example\.test\/reset-password#token=/);
      await h.services.mail.settled();
      expect(smtp.to(unknown)).toEqual([]);
    });

    it("sets a new password once, ends the person's sessions, and lets them sign in with it", async () => {
      const person = await invited("developer");
      const before = smtp.to(person.email).length;
      expect((await forgot(person.email)).statusCode).toBe(202);
      const token = tokenOf(await smtp.waitFor(person.email, before + 1));
      const done = await reset(token);
      expect(done.statusCode, done.body).toBe(200);
      expect(done.json().data.email).toBe(person.email);
      // The old session is over, the old password is dead, the new one works (with the second factor).
      expect((await asPerson(h, person.session, "GET", "/v1/me")).statusCode).toBe(401);
      expect((await login(h, person.email, GOOD_PASSWORD, { code: freshCode(h, person) })).statusCode).toBe(
        401,
      );
      await loginOk(h, person.email, NEW_PASSWORD, { code: freshCode(h, person) });
      // Used once: the same link again is refused.
      const again = await reset(token, "Another-Quiet-Orchard-58");
      expect(again.statusCode).toBe(400);
      expect(again.json().error.code).toBe("TOKEN_INVALID");
      const events = await allEvents(h, { key: co.key }, `target=${person.id}`);
      expect(events.map((e) => e.action)).toEqual(
        expect.arrayContaining(["user.password_reset_requested", "user.password_reset"]),
      );
    });

    it("refuses a link past its hour, and an older link once a newer one is sent", async () => {
      const person = await invited("viewer", false);
      const n = smtp.to(person.email).length;
      await forgot(person.email);
      const first = tokenOf(await smtp.waitFor(person.email, n + 1));
      await forgot(person.email);
      const second = tokenOf(await smtp.waitFor(person.email, n + 2));
      expect((await reset(first)).json().error.code).toBe("TOKEN_INVALID");
      h.clock.advance(3601);
      expect((await reset(second)).json().error.code).toBe("TOKEN_INVALID");
      // An hour idle ended the owner's session too.
      await relogin(h, owner);
    });

    it("keeps the link usable after a weak password is refused", async () => {
      const person = await invited("viewer", false);
      const n = smtp.to(person.email).length;
      await forgot(person.email);
      const token = tokenOf(await smtp.waitFor(person.email, n + 1));
      const weak = await reset(token, "password");
      expect(weak.statusCode).toBe(400);
      expect(weak.json().error.code).toBe("WEAK_PASSWORD");
      expect((await reset(token)).statusCode).toBe(200);
    });

    it("stores only the HMAC of a token, nowhere in the clear", async () => {
      const person = await invited("viewer", false);
      const n = smtp.to(person.email).length;
      await forgot(person.email);
      const token = tokenOf(await smtp.waitFor(person.email, n + 1));
      const rows = await h.store.db.selectFrom("person_tokens").selectAll().execute();
      const dump = JSON.stringify(rows);
      expect(dump).not.toContain(token);
      expect(rows.map((r) => r.token_hash)).toContain(hashToken(SECRET, token));
      const audit = JSON.stringify(await h.store.db.selectFrom("audit_events").selectAll().execute());
      expect(audit).not.toContain(token);
      const outbox = JSON.stringify(await h.store.db.selectFrom("events").selectAll().execute());
      expect(outbox).not.toContain(token);
    });

    it("writes no token to the request log, at trace level, when it is asked for or used", async () => {
      const lines: string[] = [];
      const stream = new Writable({
        write(chunk, _enc, done) {
          lines.push(String(chunk));
          done();
        },
      });
      const app = await buildApp({
        services: h.services,
        platformTokens: [ADMIN_TOKEN],
        logger: { level: "trace", stream },
      });
      try {
        const person = await invited("viewer", false);
        const n = smtp.to(person.email).length;
        const ask = await app.inject({
          method: "POST",
          url: "/v1/auth/forgot-password",
          payload: { email: person.email },
        });
        expect(ask.statusCode).toBe(202);
        const token = tokenOf(await smtp.waitFor(person.email, n + 1));
        const use = await app.inject({
          method: "POST",
          url: "/v1/auth/reset-password",
          payload: { token, new_password: NEW_PASSWORD },
        });
        expect(use.statusCode).toBe(200);
        expect(lines.length).toBeGreaterThan(0);
        expect(lines.join("\n")).not.toContain(token);
      } finally {
        await app.close();
      }
    });

    it("limits requests per email whether or not it has an account, with the exact wait", async () => {
      for (const email of [uniqueEmail("limited"), (await invited("viewer", false)).email]) {
        for (let i = 0; i < 3; i++) expect((await forgot(email, `203.0.113.${i + 1}`)).statusCode).toBe(202);
        const refused = await forgot(email, "203.0.113.99");
        expect(refused.statusCode).toBe(429);
        expect(refused.json().error.code).toBe("RATE_LIMITED");
        expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
      }
    });

    it("limits requests per address across emails", async () => {
      const ip = "192.0.2.44";
      for (let i = 0; i < 20; i++) expect((await forgot(uniqueEmail("spray"), ip)).statusCode).toBe(202);
      expect((await forgot(uniqueEmail("spray"), ip)).statusCode).toBe(429);
    });

    it("answers malformed tokens and bodies with 400, never a 500", async () => {
      for (const json of [
        {},
        { token: "short", new_password: NEW_PASSWORD },
        { token: "x".repeat(43), new_password: 5 },
        { token: `${"a".repeat(42)}!`, new_password: NEW_PASSWORD },
        { token: "a".repeat(43), new_password: NEW_PASSWORD, extra: 1 },
      ]) {
        const res = await h.call("POST", "/v1/auth/reset-password", { json });
        expect(res.statusCode, JSON.stringify(json)).toBe(400);
      }
      expect((await reset("a".repeat(43))).json().error.code).toBe("TOKEN_INVALID");
      expect((await h.call("POST", "/v1/auth/forgot-password", { json: { email: 7 } })).statusCode).toBe(400);
    });
  });

  describe("invitations by email", () => {
    it("mails a link instead of showing a temporary password, and the link sets the first password", async () => {
      const email = uniqueEmail("mailed");
      const res = await asPerson(h, owner.session, "POST", "/v1/users", { json: { email, role: "viewer" } });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json().data.invitation_sent).toBe(true);
      expect(res.json().data.temporary_password).toBeUndefined();
      const mail = await smtp.waitFor(email);
      expect(mail.text).toContain("Recovery Co");
      expect(linkOf(mail)).toMatch(/\/accept-invitation#token=/);
      expect((await reset(tokenOf(mail))).statusCode).toBe(200);
      const signedIn = await login(h, email, NEW_PASSWORD);
      expect(signedIn.json().data.password_change_required).toBe(false);
    });

    it("reissues an invitation with the inviter's code: a new link, the old one dead, audited", async () => {
      const email = uniqueEmail("late");
      const res = await asPerson(h, owner.session, "POST", "/v1/users", {
        json: { email, role: "developer" },
      });
      const id: string = res.json().data.id;
      const old = tokenOf(await smtp.waitFor(email));
      const url = `/v1/users/${id}/reinvite`;
      const asked = await asPerson(h, owner.session, "POST", url);
      expect(asked.json().error.code).toBe("TOTP_REQUIRED");
      const again = await asPerson(h, owner.session, "POST", url, { code: freshCode(h, owner) });
      expect(again.statusCode, again.body).toBe(200);
      expect(again.json().data).toMatchObject({ id, email, invitation_sent: true });
      expect(again.json().data.temporary_password).toBeUndefined();
      const fresh = tokenOf(await smtp.waitFor(email, 2));
      expect((await reset(old)).json().error.code).toBe("TOKEN_INVALID");
      expect((await reset(fresh)).statusCode).toBe(200);
      const events = await allEvents(h, { key: co.key }, `target=${id}`);
      const reinvited = events.find((e) => e.action === "user.reinvited");
      expect(reinvited?.totp_used).toBe(true);
      // Signed in (a password set): a reissue is refused; a reset is the way back now.
      const done = await asPerson(h, owner.session, "POST", url, { code: freshCode(h, owner) });
      expect(done.statusCode).toBe(409);
    });

    it("answers 404 for another company's person", async () => {
      const other = await newCompany(h, "Stranger Co");
      const strangerOwner = await onboardOwner(h, other);
      const email = uniqueEmail("theirs");
      const res = await asPerson(h, strangerOwner.session, "POST", "/v1/users", {
        json: { email, role: "viewer" },
      });
      const id: string = res.json().data.id;
      const code = freshCode(h, owner);
      expect(
        (await asPerson(h, owner.session, "POST", `/v1/users/${id}/reinvite`, { code })).statusCode,
      ).toBe(404);
      const code2 = freshCode(h, owner);
      const r = await asPerson(h, owner.session, "POST", `/v1/users/${other.owner.id}/reset-totp`, {
        code: code2,
      });
      expect(r.statusCode).toBe(404);
    });
  });

  describe("an owner resets a person's second factor", () => {
    it("takes the owner's code, ends the person's sessions, mails them, and lets them enrol again", async () => {
      const person = await invited("developer");
      const url = `/v1/users/${person.id}/reset-totp`;
      expect((await asPerson(h, owner.session, "POST", url)).json().error.code).toBe("TOTP_REQUIRED");
      const done = await asPerson(h, owner.session, "POST", url, { code: freshCode(h, owner) });
      expect(done.statusCode, done.body).toBe(200);
      expect(done.json().data).toEqual({ id: person.id, totp_enrolled: false });
      expect((await asPerson(h, person.session, "GET", "/v1/me")).statusCode).toBe(401);
      const mail = await smtp.waitFor(person.email, 3); // the invitation, the new device, the reset
      expect(mail.subject).toMatch(/reset/i);
      expect(mail.text).toContain(co.owner.email);
      // No code needed (none is set up); a recovery code of before is dead; enrolment starts over.
      const signedIn = await login(h, person.email, person.password);
      expect(signedIn.statusCode, signedIn.body).toBe(200);
      expect(signedIn.json().data.totp_enrolled).toBe(false);
      const session: Session = {
        cookie: sessionCookieOf(signedIn) as string,
        csrf: signedIn.json().data.csrf_token,
      };
      expect((await asPerson(h, session, "POST", "/v1/auth/totp/setup")).statusCode).toBe(200);
      const events = await allEvents(h, { key: co.key }, `target=${person.id}`);
      expect(events.find((e) => e.action === "user.totp_reset")?.totp_used).toBe(true);
    });

    it("is refused to a moderator, and to an owner on themselves", async () => {
      const moderator = await invited("moderator");
      const person = await invited("viewer");
      const res = await asPerson(h, moderator.session, "POST", `/v1/users/${person.id}/reset-totp`, {
        code: freshCode(h, moderator),
      });
      expect(res.json().error.code).toBe("FORBIDDEN");
      const self = await asPerson(h, owner.session, "POST", `/v1/users/${owner.id}/reset-totp`, {
        code: freshCode(h, owner),
      });
      expect(self.json().error.code).toBe("FORBIDDEN");
    });
  });

  describe("security notices", () => {
    it("tells a person by email when a new two-factor device is enrolled", async () => {
      const person = await invited("developer");
      const mail = smtp.to(person.email)[1] as { subject: string; text: string };
      expect(mail.subject).toMatch(/two-factor device/i);
      expect(mail.text).not.toMatch(/#token=/);
    });
  });

  describe("key notices to owners", () => {
    it("mails the company's owners when one of its keys is reported leaked, once", async () => {
      const n = smtp.to(co.owner.email).length;
      const key = await mgmtKey(h, co, { name: "Leaky" });
      const res = await h.call("POST", "/v1/leaks", {
        json: { token: key.key, url: "https://gist.example/x" },
      });
      expect(res.statusCode).toBe(202);
      await h.services.leaks.settled();
      await h.services.keyNoticeMail.settled();
      const mail = await smtp.waitFor(co.owner.email, n + 1);
      expect(mail.subject).toMatch(/found in public/);
      expect(mail.text).toContain("Leaky");
      expect(mail.text).toContain("https://gist.example/x");
      expect(mail.text).not.toContain(key.key);
      // Claimed once: another pass sends nothing more.
      expect(await h.services.keyNoticeMail.runOnce()).toBe(0);
      await h.services.mail.settled();
      expect(smtp.to(co.owner.email)).toHaveLength(n + 1);
    });

    it("mails the owners when a key is about to expire", async () => {
      const n = smtp.to(co.owner.email).length;
      const expires = new Date(h.clock.now.getTime() + 3 * 24 * 3600_000).toISOString();
      await mgmtKey(h, co, { name: "Short lived", expires_at: expires });
      await h.services.expiryScheduler.runOnce();
      await h.services.keyNoticeMail.settled();
      const mail = await smtp.waitFor(co.owner.email, n + 1);
      expect(mail.subject).toMatch(/expires soon/);
      expect(mail.text).toContain("Short lived");
      expect(mail.text).toContain(expires);
    });
  });

  describe("the account menu", () => {
    it("regenerates recovery codes with a current code: the old ones die, the new ones work", async () => {
      const person = await invited("developer");
      const url = "/v1/auth/recovery-codes";
      expect((await asPerson(h, person.session, "POST", url)).json().error.code).toBe("TOTP_REQUIRED");
      const res = await asPerson(h, person.session, "POST", url, { code: freshCode(h, person) });
      expect(res.statusCode, res.body).toBe(200);
      const codes: string[] = res.json().data.recovery_codes;
      expect(codes).toHaveLength(10);
      expect(codes.some((c) => person.recoveryCodes.includes(c))).toBe(false);
      const old = await login(h, person.email, person.password, { code: person.recoveryCodes[0] as string });
      expect(old.statusCode).toBe(401);
      await loginOk(h, person.email, person.password, { code: codes[0] as string });
      const events = await allEvents(h, { key: co.key }, `target=${person.id}`);
      expect(events.map((e) => e.action)).toContain("user.recovery_codes_regenerated");
    });
  });

  describe("two-factor enrolment", () => {
    it("keeps the pending secret across reloads, so a code scanned before one still confirms", async () => {
      const person = await invited("developer", false);
      const first = await asPerson(h, person.session, "POST", "/v1/auth/totp/setup");
      const code = totpCode(first.json().data.secret, h.clock.now);
      const reload = await asPerson(h, person.session, "POST", "/v1/auth/totp/setup");
      expect(reload.json().data.secret).toBe(first.json().data.secret);
      const confirm = await asPerson(h, person.session, "POST", "/v1/auth/totp/confirm", { json: { code } });
      expect(confirm.statusCode, confirm.body).toBe(200);
    });

    it("drops the pending secret when the password changes: the old password's holder may have fetched it", async () => {
      const person = await invited("developer", false);
      const pending = async () =>
        (
          await h.store.db
            .selectFrom("users")
            .select("totp_pending_secret")
            .where("id", "=", person.id)
            .executeTakeFirstOrThrow()
        ).totp_pending_secret;
      expect((await asPerson(h, person.session, "POST", "/v1/auth/totp/setup")).statusCode).toBe(200);
      expect(await pending()).not.toBeNull();
      const changed = await asPerson(h, person.session, "POST", "/v1/auth/password", {
        json: { current_password: person.password, new_password: "Tangerine-Orbit-Lantern-42" },
      });
      expect(changed.statusCode, changed.body).toBe(200);
      expect(await pending()).toBeNull();
    });

    it("makes a new secret only when asked to restart", async () => {
      const person = await invited("developer", false);
      const first = await asPerson(h, person.session, "POST", "/v1/auth/totp/setup");
      const restarted = await asPerson(h, person.session, "POST", "/v1/auth/totp/setup", {
        json: { restart: true },
      });
      expect(restarted.statusCode, restarted.body).toBe(200);
      expect(restarted.json().data.secret).not.toBe(first.json().data.secret);
      const stale = await asPerson(h, person.session, "POST", "/v1/auth/totp/confirm", {
        json: { code: totpCode(first.json().data.secret, h.clock.now) },
      });
      expect(stale.json().error.code).toBe("TOTP_INVALID");
      const bad = await asPerson(h, person.session, "POST", "/v1/auth/totp/setup", {
        json: { restart: "yes" },
      });
      expect(bad.statusCode).toBe(400);
    });
  });
});

describe.each(BACKENDS)("email and recovery on %s, without SMTP", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let owner: Person;
  const printed: string[] = [];

  beforeAll(async () => {
    h = await createHarness(kind, {
      services: { mailLog: { info: (msg) => printed.push(msg), error() {} }, publicUrl: PUBLIC_URL },
    });
    co = await newCompany(h);
    owner = await onboardOwner(h, co);
  });
  afterAll(() => h.close());

  it("shows a temporary password on invitation, and a reissue replaces it", async () => {
    const email = uniqueEmail("temp");
    const res = await asPerson(h, owner.session, "POST", "/v1/users", { json: { email, role: "viewer" } });
    expect(res.json().data.invitation_sent).toBe(false);
    const first: string = res.json().data.temporary_password;
    expect(first).toMatch(/^[0-9A-Za-z]{20}$/);
    const again = await asPerson(h, owner.session, "POST", `/v1/users/${res.json().data.id}/reinvite`, {
      code: freshCode(h, owner),
    });
    expect(again.statusCode, again.body).toBe(200);
    const second: string = again.json().data.temporary_password;
    expect(second).not.toBe(first);
    expect((await login(h, email, first)).statusCode).toBe(401);
    expect((await login(h, email, second)).statusCode).toBe(200);
  });

  it("prints a reset link for the operator, which works", async () => {
    const n = printed.length;
    expect(
      (await h.call("POST", "/v1/auth/forgot-password", { json: { email: co.owner.email } })).statusCode,
    ).toBe(202);
    await h.services.mail.settled();
    const line = printed.slice(n).join("\n");
    expect(line).toContain(`To: ${co.owner.email}`);
    const token = tokenOf({ text: line });
    const res = await h.call("POST", "/v1/auth/reset-password", {
      json: { token, new_password: NEW_PASSWORD },
    });
    expect(res.statusCode, res.body).toBe(200);
    await loginOk(h, co.owner.email, NEW_PASSWORD, { code: freshCode(h, owner) });
  });
});
