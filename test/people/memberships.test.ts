import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SmtpMailer } from "../../src/services/mailer.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, createHarness, type Harness } from "../helpers/harness.ts";
import { LocalSmtp } from "../helpers/smtp.ts";
import {
  allEvents,
  allStrings,
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
  type Session,
  sessionCookieOf,
  uniqueEmail,
} from "./people-helpers.ts";

interface Listed {
  id: string;
  email: string;
  role: string;
  status: string;
  created_at: string;
}

/** The token of an accept link (`…/accept-membership#token=…`). */
function tokenOf(link: unknown): string {
  return String(link).split("#token=")[1] as string;
}

/** `p`, signed in, takes a company's offer with the link its inviter was shown. */
async function accept(h: Harness, p: Person, link: unknown): Promise<void> {
  const res = await asPerson(h, p.session, "POST", "/v1/auth/accept-membership", {
    json: { token: tokenOf(link) },
  });
  expect(res.statusCode, res.body).toBe(200);
}

/** Switches `p`'s session to `companyId`, expecting success, and keeps the new session on them. */
async function switchTo(h: Harness, p: Person, companyId: string): Promise<Session> {
  const res = await asPerson(h, p.session, "POST", "/v1/auth/switch-company", {
    json: { company_id: companyId },
  });
  expect(res.statusCode, res.body).toBe(200);
  const cookie = sessionCookieOf(res);
  expect(cookie).not.toBeNull();
  p.session = { cookie: cookie as string, csrf: res.json().data.csrf_token };
  return p.session;
}

describe.each(BACKENDS)("memberships: one login in several companies on %s", (kind) => {
  let h: Harness;
  let a: NewCompany;
  let b: NewCompany;
  let ownerA: Person;
  let ownerB: Person;
  /** A developer of A, invited into B as a viewer. */
  let both: Person;

  beforeAll(async () => {
    h = await createHarness(kind);
    a = await newCompany(h, "Members A");
    b = await newCompany(h, "Members B");
    ownerA = await onboardOwner(h, a);
    ownerB = await onboardOwner(h, b);
    both = await invite(h, ownerA, "developer", { tag: "both" });
  });
  afterAll(() => h.close());

  const users = async (p: Person): Promise<Listed[]> => {
    const res = await asPerson(h, p.session, "GET", "/v1/users");
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data.users;
  };

  it("inviting an email that has a login offers a membership its person accepts: no EMAIL_TAKEN, nothing of the other company", async () => {
    // A minute on, so the time they joined B is not the time the login was made.
    h.clock.advance(60);
    const fresh = await asPerson(h, ownerB.session, "POST", "/v1/users", {
      json: { email: uniqueEmail("fresh"), role: "viewer" },
    });
    const res = await asPerson(h, ownerB.session, "POST", "/v1/users", {
      json: { email: both.email.toUpperCase(), role: "viewer" },
    });
    expect(res.statusCode, res.body).toBe(201);
    const d = res.json().data;
    expect(d).toMatchObject({ id: both.id, email: both.email, role: "viewer", invitation_sent: false });
    // A new person's fields, but an accept link (shown once, no SMTP) where the temporary password
    // would be: the login's password is its person's.
    expect(Object.keys(d).sort()).toEqual(
      [...Object.keys(fresh.json().data).filter((k) => k !== "temporary_password"), "accept_link"].sort(),
    );
    expect(d).not.toHaveProperty("temporary_password");
    expect(d.accept_link).toMatch(/\/accept-membership#token=[0-9A-Za-z]{43}$/);
    for (const s of allStrings(d)) {
      expect(s).not.toContain(a.id);
      expect(s).not.toMatch(/exist/i);
    }

    // B lists them as invited, with B's role and the time they joined B, never A's role or company.
    const listed = (await users(ownerB)).find((u) => u.id === both.id);
    expect(listed).toMatchObject({
      role: "viewer",
      status: "invited",
      created_at: h.clock.now.toISOString(),
    });
    expect(JSON.stringify(await users(ownerB))).not.toContain(a.id);
    // A still sees them as its developer.
    expect((await users(ownerA)).find((u) => u.id === both.id)?.role).toBe("developer");
    // Their password is still theirs: they sign in with it (in A, where they were first).
    const signed = await login(h, both.email, both.password, { code: freshCode(h, both) });
    expect(signed.statusCode, signed.body).toBe(200);
    expect(signed.json().data.company.id).toBe(a.id);
    both.session = { cookie: sessionCookieOf(signed) as string, csrf: signed.json().data.csrf_token };
    // Signed in as themselves, they take B's offer with its link; B then lists them active.
    const accepted = await asPerson(h, both.session, "POST", "/v1/auth/accept-membership", {
      json: { token: String(d.accept_link).split("#token=")[1] },
    });
    expect(accepted.statusCode, accepted.body).toBe(200);
    expect(accepted.json().data).toEqual({
      company: { id: b.id, name: "Members B", slug: b.slug },
      role: "viewer",
    });
    expect((await users(ownerB)).find((u) => u.id === both.id)?.status).toBe("active");

    // Inviting a member of B into B again is this company's conflict, as before.
    const again = await asPerson(h, ownerB.session, "POST", "/v1/users", {
      json: { email: both.email, role: "developer" },
    });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe("EMAIL_TAKEN");
    // B's audit and webhook trail of the invite read like any other.
    const created = (await allEvents(h, { key: b.key })).filter(
      (e) => e.action === "user.created" && e.target?.id === both.id,
    );
    expect(created).toHaveLength(1);
    expect(created[0]?.changes).toEqual({ after: { email: both.email, role: "viewer" } });
  });

  it("GET /v1/me lists the person's companies; switching opens a new session in the other one", async () => {
    const me = await asPerson(h, both.session, "GET", "/v1/me");
    expect(me.statusCode, me.body).toBe(200);
    expect(me.json().data.company_id).toBe(a.id);
    expect(
      me
        .json()
        .data.companies.map((c: { id: string; role: string }) => [c.id, c.role])
        .sort(),
    ).toEqual(
      [
        [a.id, "developer"],
        [b.id, "viewer"],
      ].sort(),
    );
    const old = both.session;
    const fresh = await switchTo(h, both, b.id);
    expect(fresh.cookie).not.toBe(old.cookie);
    expect(fresh.csrf).not.toBe(old.csrf);
    // The old session is over, and the old CSRF token is worth nothing with the new cookie.
    expect((await asPerson(h, old, "GET", "/v1/me")).statusCode).toBe(401);
    const staleCsrf = await asPerson(h, { cookie: fresh.cookie, csrf: old.csrf }, "POST", "/v1/auth/logout");
    expect(staleCsrf.statusCode).toBe(403);

    const inB = await asPerson(h, fresh, "GET", "/v1/me");
    expect(inB.json().data).toMatchObject({ company_id: b.id, role: "viewer" });
    // B's objects, never A's.
    const creds = await asPerson(h, fresh, "GET", "/v1/credentials");
    expect(creds.statusCode, creds.body).toBe(200);
    const ids = creds.json().data.credentials.map((c: { id: string }) => c.id);
    expect(ids).toContain(b.credentialId);
    expect(ids).not.toContain(a.credentialId);
    expect((await asPerson(h, fresh, "GET", `/v1/credentials/${a.credentialId}`)).statusCode).toBe(404);
    // A's developer role does not carry over: in B they are a viewer, and viewers write no keys.
    const write = await asPerson(h, fresh, "POST", "/v1/keys", {
      json: { name: "x", environment: "test", credential_id: b.testCredentialId },
      code: freshCode(h, both),
    });
    expect(write.statusCode).toBe(403);
    expect(write.json().error.code).toBe("FORBIDDEN");

    // Each company's chain holds its own half, and neither names the other company.
    const eventsA = await allEvents(h, { key: a.key });
    const eventsB = await allEvents(h, { key: b.key });
    expect(eventsA.some((e) => e.action === "user.logout" && e.actor.id === both.id)).toBe(true);
    expect(eventsB.some((e) => e.action === "user.company_switched" && e.actor.id === both.id)).toBe(true);
    expect(eventsA.some((e) => e.action === "user.company_switched")).toBe(false);
    expect(JSON.stringify(eventsA)).not.toContain(b.id);
    expect(JSON.stringify(eventsB)).not.toContain(a.id);
    for (const co of [a, b]) {
      const verified = await h.call("GET", "/v1/audit/verify", { key: co.key });
      expect(verified.json().data.valid, verified.body).toBe(true);
    }

    // The next sign-in opens the company last used.
    const next = await login(h, both.email, both.password, { code: freshCode(h, both) });
    expect(next.json().data.company.id).toBe(b.id);
    both.session = { cookie: sessionCookieOf(next) as string, csrf: next.json().data.csrf_token };
  });

  it("refuses to switch into a company without an active membership (404), or with a bad body (400)", async () => {
    const c = await newCompany(h, "Members C");
    const stranger = await asPerson(h, both.session, "POST", "/v1/auth/switch-company", {
      json: { company_id: c.id },
    });
    expect(stranger.statusCode).toBe(404);
    expect(stranger.json().error.code).toBe("NOT_FOUND");
    const unknown = await asPerson(h, both.session, "POST", "/v1/auth/switch-company", {
      json: { company_id: "co_0000000000000000000000" },
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.body.replace(unknown.json().error.request_id ?? "", "")).toBe(
      stranger.body.replace(stranger.json().error.request_id ?? "", ""),
    );
    for (const json of [
      {},
      { company_id: 7 },
      { company_id: "x".repeat(5000) },
      { company_id: a.id, extra: 1 },
    ]) {
      const res = await asPerson(h, both.session, "POST", "/v1/auth/switch-company", { json });
      expect(res.statusCode, JSON.stringify(json).slice(0, 80)).toBe(400);
      expect(res.json().error.code).toBe("VALIDATION_ERROR");
    }
    const noCsrf = await asPerson(h, both.session, "POST", "/v1/auth/switch-company", {
      json: { company_id: a.id },
      csrf: false,
    });
    expect(noCsrf.statusCode).toBe(403);
    // None of these ended the session.
    expect((await asPerson(h, both.session, "GET", "/v1/me")).statusCode).toBe(200);
  });

  it("disabling or changing a membership ends that company's sessions only", async () => {
    // both.session is in B; open one in A beside it (a sign-in opens B, used last, so switch).
    const inA = await switchTo(
      h,
      { ...both, session: await loginOk(h, both.email, both.password, { code: freshCode(h, both) }) },
      a.id,
    );
    const inB = both.session;
    expect((await asPerson(h, inB, "GET", "/v1/me")).json().data.company_id).toBe(b.id);

    const disabled = await asPerson(h, ownerB.session, "PATCH", `/v1/users/${both.id}`, {
      json: { status: "disabled" },
    });
    expect(disabled.statusCode, disabled.body).toBe(200);
    expect((await asPerson(h, inB, "GET", "/v1/me")).statusCode).toBe(401);
    expect((await asPerson(h, inA, "GET", "/v1/me")).statusCode).toBe(200);
    // B is gone from their companies, and switching there is 404.
    const me = await asPerson(h, inA, "GET", "/v1/me");
    expect(me.json().data.companies.map((c: { id: string }) => c.id)).toEqual([a.id]);
    const back = await asPerson(h, inA, "POST", "/v1/auth/switch-company", { json: { company_id: b.id } });
    expect(back.statusCode).toBe(404);
    // A sign-in now opens A, though B was used last.
    const signed = await login(h, both.email, both.password, { code: freshCode(h, both) });
    expect(signed.json().data.company.id).toBe(a.id);
    // A still has them active, as a developer.
    expect((await users(ownerA)).find((u) => u.id === both.id)).toMatchObject({
      status: "active",
      role: "developer",
    });

    const enabled = await asPerson(h, ownerB.session, "PATCH", `/v1/users/${both.id}`, {
      json: { status: "active" },
    });
    expect(enabled.statusCode, enabled.body).toBe(200);
    const inB2 = await asPerson(h, inA, "POST", "/v1/auth/switch-company", { json: { company_id: b.id } });
    expect(inB2.statusCode, inB2.body).toBe(200);
    const sessionB = { cookie: sessionCookieOf(inB2) as string, csrf: inB2.json().data.csrf_token };
    const inA2 = await switchTo(
      h,
      { ...both, session: await loginOk(h, both.email, both.password, { code: freshCode(h, both) }) },
      a.id,
    );
    // A role change in A ends A's sessions, not B's.
    const promoted = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${both.id}`, {
      json: { role: "moderator" },
    });
    expect(promoted.statusCode, promoted.body).toBe(200);
    expect((await asPerson(h, inA2, "GET", "/v1/me")).statusCode).toBe(401);
    const stillB = await asPerson(h, sessionB, "GET", "/v1/me");
    expect(stillB.statusCode).toBe(200);
    expect(stillB.json().data).toMatchObject({ company_id: b.id, role: "viewer" });
    both.session = sessionB;
  });

  it("resets of the login itself (2FA, reinvite) need authority in every company the person belongs to", async () => {
    // B's owner may not reset the second factor that also guards the person's login in A.
    const byB = await asPerson(h, ownerB.session, "POST", `/v1/users/${both.id}/reset-totp`, {
      json: {},
      code: freshCode(h, ownerB),
    });
    expect(byB.statusCode, byB.body).toBe(403);
    expect(byB.json().error.code).toBe("FORBIDDEN");
    expect(byB.body).not.toContain(a.id);
    const byA = await asPerson(h, ownerA.session, "POST", `/v1/users/${both.id}/reset-totp`, {
      json: {},
      code: freshCode(h, ownerA),
    });
    expect(byA.statusCode, byA.body).toBe(403);
    // The person's second factor is untouched: they still sign in with it.
    expect((await login(h, both.email, both.password, { code: freshCode(h, both) })).statusCode).toBe(200);

    // An owner of both companies may.
    const intoB = await asPerson(h, ownerB.session, "POST", "/v1/users", {
      json: { email: ownerA.email, role: "owner" },
    });
    expect(intoB.statusCode, intoB.body).toBe(201);
    // Offered only, B is not ownerA's yet: the reset is still refused until they accept.
    const early = await asPerson(h, ownerA.session, "POST", `/v1/users/${both.id}/reset-totp`, {
      json: {},
      code: freshCode(h, ownerA),
    });
    expect(early.statusCode, early.body).toBe(403);
    await accept(h, ownerA, intoB.json().data.accept_link);
    const reset = await asPerson(h, ownerA.session, "POST", `/v1/users/${both.id}/reset-totp`, {
      json: {},
      code: freshCode(h, ownerA),
    });
    expect(reset.statusCode, reset.body).toBe(200);
    // A per-person change ends the person's sessions in every company.
    expect((await asPerson(h, both.session, "GET", "/v1/me")).statusCode).toBe(401);
  });

  it("a reinvite of an offer sends a fresh link; a new temporary password is refused once another company shares the login", async () => {
    const email = uniqueEmail("pending");
    const inA = await asPerson(h, ownerA.session, "POST", "/v1/users", { json: { email, role: "viewer" } });
    expect(inA.statusCode, inA.body).toBe(201);
    const inB = await asPerson(h, ownerB.session, "POST", "/v1/users", { json: { email, role: "viewer" } });
    expect(inB.statusCode, inB.body).toBe(201);
    const id = inB.json().data.id;
    const first = inB.json().data.accept_link;
    // B's reinvite of its offer touches nothing of the login: a fresh link, the old one dead.
    const again = await asPerson(h, ownerB.session, "POST", `/v1/users/${id}/reinvite`, {
      json: {},
      code: freshCode(h, ownerB),
    });
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().data).toMatchObject({ id, invitation_sent: false });
    expect(again.json().data).not.toHaveProperty("temporary_password");
    const second = again.json().data.accept_link;
    expect(tokenOf(second)).not.toBe(tokenOf(first));
    // An offer is not the login's yet, so A may still reissue its own invitation (a new password).
    const reA = await asPerson(h, ownerA.session, "POST", `/v1/users/${id}/reinvite`, {
      json: {},
      code: freshCode(h, ownerA),
    });
    expect(reA.statusCode, reA.body).toBe(200);
    const temporary: string = reA.json().data.temporary_password;
    // The person changes the password, then accepts B's offer: the first link is dead, the fresh one works.
    let session = await loginOk(h, email, temporary);
    const changed = await asPerson(h, session, "POST", "/v1/auth/password", {
      json: { current_password: temporary, new_password: GOOD_PASSWORD },
    });
    expect(changed.statusCode, changed.body).toBe(200);
    session = { cookie: sessionCookieOf(changed) as string, csrf: changed.json().data.csrf_token };
    const old = await asPerson(h, session, "POST", "/v1/auth/accept-membership", {
      json: { token: tokenOf(first) },
    });
    expect(old.statusCode).toBe(400);
    expect(old.json().error.code).toBe("TOKEN_INVALID");
    const ok = await asPerson(h, session, "POST", "/v1/auth/accept-membership", {
      json: { token: tokenOf(second) },
    });
    expect(ok.statusCode, ok.body).toBe(200);
    // Single use: the same link again is the same TOKEN_INVALID.
    const reused = await asPerson(h, session, "POST", "/v1/auth/accept-membership", {
      json: { token: tokenOf(second) },
    });
    expect(reused.json().error.code).toBe("TOKEN_INVALID");
    // Now the login is B's as well: a new temporary password from B would open A, so it is refused.
    const refused = await asPerson(h, ownerB.session, "POST", `/v1/users/${id}/reinvite`, {
      json: {},
      code: freshCode(h, ownerB),
    });
    expect(refused.statusCode, refused.body).toBe(403);
    expect(refused.json().error.code).toBe("FORBIDDEN");
  });

  it("two invitations of one new email into two companies at once make one person with two memberships", async () => {
    const email = uniqueEmail("race");
    const [ra, rb] = await Promise.all([
      asPerson(h, ownerA.session, "POST", "/v1/users", { json: { email, role: "viewer" } }),
      asPerson(h, ownerB.session, "POST", "/v1/users", { json: { email, role: "developer" } }),
    ]);
    expect(ra.statusCode, ra.body).toBe(201);
    expect(rb.statusCode, rb.body).toBe(201);
    expect(ra.json().data.id).toBe(rb.json().data.id);
    // One login was made, so one temporary password exists, shown to whichever invite made it.
    const passwords = [ra, rb].map((r) => r.json().data.temporary_password).filter((p) => p !== undefined);
    expect(passwords).toHaveLength(1);
    const person = await h.store.db.selectFrom("users").select("id").where("email", "=", email).execute();
    expect(person).toHaveLength(1);
    const memberships = await h.store.db
      .selectFrom("memberships")
      .select(["company_id", "role"])
      .where("user_id", "=", ra.json().data.id)
      .orderBy("company_id")
      .execute();
    expect(memberships.map((m) => [m.company_id, m.role]).sort()).toEqual(
      [
        [a.id, "viewer"],
        [b.id, "developer"],
      ].sort(),
    );
  });

  it("POST /v1/admin/companies takes an owner who has a login already", async () => {
    const res = await h.call("POST", "/v1/admin/companies", {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      json: { name: "Members D", owner_email: ownerB.email },
    });
    expect(res.statusCode, res.body).toBe(201);
    const d = res.json().data;
    expect(d.owner).toMatchObject({ id: ownerB.id, email: ownerB.email, existing_login: true });
    expect(d.owner).not.toHaveProperty("temporary_password");
    ownerB.session = await loginOk(h, ownerB.email, ownerB.password, { code: freshCode(h, ownerB) });
    // The platform's company creation is an offer too: nothing of D until its owner accepts.
    const before = await asPerson(h, ownerB.session, "GET", "/v1/me");
    expect(before.json().data.companies.map((c: { id: string }) => c.id)).not.toContain(d.company.id);
    await accept(h, ownerB, d.owner.accept_link);
    const me = await asPerson(h, ownerB.session, "GET", "/v1/me");
    expect(me.json().data.companies.map((c: { id: string }) => c.id)).toContain(d.company.id);
    const moved = await switchTo(h, ownerB, d.company.id);
    const inD = await asPerson(h, moved, "GET", "/v1/users");
    expect(inD.json().data.users.map((u: Listed) => u.id)).toEqual([ownerB.id]);
    const fresh = await h.call("POST", "/v1/admin/companies", {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      json: { name: "Members E", owner_email: uniqueEmail("neweowner") },
    });
    expect(fresh.json().data.owner).toMatchObject({
      existing_login: false,
      temporary_password: expect.any(String),
    });
  });
});

describe.each(BACKENDS)("memberships with SMTP on %s", (kind) => {
  let h: Harness;
  let smtp: LocalSmtp;
  let a: NewCompany;
  let b: NewCompany;
  let ownerA: Person;
  let ownerB: Person;

  beforeAll(async () => {
    smtp = new LocalSmtp();
    const url = await smtp.start();
    h = await createHarness(kind, {
      services: {
        mailer: new SmtpMailer(url, "Latchkey <keys@example.test>"),
        publicUrl: "https://keys.example.test",
      },
    });
    a = await newCompany(h, "Mailed A");
    b = await newCompany(h, "Mailed B");
    ownerA = await onboardOwner(h, a);
    ownerB = await onboardOwner(h, b);
  });
  afterAll(async () => {
    await h.close();
    await smtp.close();
  });

  it("answers the same for a new person and one with a login, and mails the latter a link to accept", async () => {
    const newEmail = uniqueEmail("newbie");
    const fresh = await asPerson(h, ownerB.session, "POST", "/v1/users", {
      json: { email: newEmail, role: "viewer" },
    });
    const existing = await asPerson(h, ownerB.session, "POST", "/v1/users", {
      json: { email: ownerA.email, role: "viewer" },
    });
    expect(fresh.statusCode, fresh.body).toBe(201);
    expect(existing.statusCode, existing.body).toBe(201);
    const shape = (d: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(d).map(([k, v]) => [k, k === "id" || k === "email" ? typeof v : v]));
    expect(shape(existing.json().data)).toEqual(shape(fresh.json().data));
    expect(existing.json().data).toEqual({
      id: ownerA.id,
      email: ownerA.email,
      role: "viewer",
      merchant_account_id: null,
      invitation_sent: true,
    });

    const invitation = await smtp.waitFor(newEmail);
    expect(invitation.text).toContain("#token=");
    // The owner's own notices (a new 2FA device) go out after their commit, so pick the one about B.
    const added = await smtp.waitForMatch(ownerA.email, (m) => m.subject.includes("Mailed B"));
    expect(added.subject).toBe("You were invited to Mailed B on Latchkey");
    // A link to accept, not to set a password: the login and its password are the person's own.
    const link = added.text.match(
      /https:\/\/keys\.example\.test\/accept-membership#token=[0-9A-Za-z]{43}/,
    )?.[0];
    expect(link, added.text).toBeDefined();
    // The link sets no password: reset-password refuses it.
    const asReset = await h.call("POST", "/v1/auth/reset-password", {
      json: { token: tokenOf(link), new_password: "Another-good-passw0rd!" },
    });
    expect(asReset.json().error?.code).toBe("TOKEN_INVALID");
    // And the password still works; signed in, the person accepts and B is theirs.
    ownerA.session = await loginOk(h, ownerA.email, ownerA.password, { code: freshCode(h, ownerA) });
    await accept(h, ownerA, link);
    await switchTo(h, ownerA, b.id);
  });
});
