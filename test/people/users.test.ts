import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { createHarness, type Harness } from "../helpers/harness.ts";
import {
  allEvents,
  asPerson,
  invite,
  login,
  loginOk,
  type NewCompany,
  newCompany,
  onboard,
  onboardOwner,
  type Person,
  sessionCookieOf,
  uniqueEmail,
} from "./people-helpers.ts";

interface UserRow {
  id: string;
  email: string;
  role: string;
  status: string;
  totp_enrolled: boolean;
  password_change_required: boolean;
}

describe.each(BACKENDS)("people: inviting and managing people on %s", (kind) => {
  let h: Harness;
  let a: NewCompany;
  let b: NewCompany;
  let ownerA: Person;
  let ownerB: Person;

  beforeAll(async () => {
    h = await createHarness(kind);
    a = await newCompany(h, "People A");
    b = await newCompany(h, "People B");
    ownerA = await onboardOwner(h, a, { enrol: false });
    ownerB = await onboardOwner(h, b, { enrol: false });
  });
  afterAll(() => h.close());

  const users = async (p: Person): Promise<UserRow[]> => {
    const res = await asPerson(h, p.session, "GET", "/v1/users");
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data.users;
  };
  const userIn = async (p: Person, id: string) => (await users(p)).find((u) => u.id === id);

  it("an invite returns a temporary password once; the person signs in and must change it first", async () => {
    const email = uniqueEmail("Invitee").replace("invitee", "InViTee");
    const res = await asPerson(h, ownerA.session, "POST", "/v1/users", {
      json: { email, role: "developer" },
    });
    expect(res.statusCode, res.body).toBe(201);
    const d = res.json().data;
    expect(d).toMatchObject({ email: email.toLowerCase(), role: "developer" });
    expect(d.id).toMatch(/^usr_[0-9A-Za-z]{22}$/);
    expect(typeof d.temporary_password).toBe("string");
    expect(d.temporary_password.length).toBeGreaterThanOrEqual(12);

    const listed = await asPerson(h, ownerA.session, "GET", "/v1/users");
    expect(listed.body).not.toContain(d.temporary_password);
    expect(listed.body).not.toMatch(/password_hash|\$argon2/);
    expect(listed.json().data.users.find((u: UserRow) => u.id === d.id)).toEqual(
      expect.objectContaining({
        email: email.toLowerCase(),
        role: "developer",
        status: "active",
        password_change_required: true,
        totp_enrolled: false,
      }),
    );

    // The invited person signs in with any case of the email.
    const first = await login(h, email.toUpperCase(), d.temporary_password);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().data).toMatchObject({
      role: "developer",
      password_change_required: true,
      totp_enrolled: false,
    });
    const s = { cookie: sessionCookieOf(first) as string, csrf: first.json().data.csrf_token };
    const blocked = await asPerson(h, s, "GET", "/v1/keys");
    expect(blocked.statusCode).toBe(403);
    expect(blocked.json().error.code).toBe("PASSWORD_CHANGE_REQUIRED");

    const person = await onboard(h, d.id, email.toLowerCase(), d.temporary_password, { enrol: false });
    expect((await asPerson(h, person.session, "GET", "/v1/keys")).statusCode).toBe(200);
    const write = await asPerson(h, person.session, "POST", "/v1/keys", {
      json: { name: "x", environment: "test", credential_id: a.credentialId },
    });
    expect(write.statusCode).toBe(403);
    expect(write.json().error.code).toBe("TOTP_ENROLMENT_REQUIRED");
    expect(await userIn(ownerA, d.id)).toMatchObject({ password_change_required: false });
  });

  // Another company inviting the same email is no conflict (test/people/memberships.test.ts).
  it("inviting a member of this company again is EMAIL_TAKEN, in any case; bad roles and emails are 400", async () => {
    const email = uniqueEmail("dup");
    const first = await asPerson(h, ownerA.session, "POST", "/v1/users", { json: { email, role: "viewer" } });
    expect(first.statusCode).toBe(201);
    for (const [who, e] of [
      [ownerA, email.toUpperCase()],
      [ownerA, email],
      [ownerA, ownerA.email],
    ] as const) {
      const res = await asPerson(h, who.session, "POST", "/v1/users", { json: { email: e, role: "viewer" } });
      expect(res.statusCode, e).toBe(409);
      expect(res.json().error.code).toBe("EMAIL_TAKEN");
    }
    for (const json of [
      { email: uniqueEmail("r"), role: "admin" },
      { email: "not-an-email", role: "viewer" },
      { email: uniqueEmail("r") },
      { email: uniqueEmail("r"), role: "viewer", password: "chosen-by-inviter" },
    ]) {
      const res = await asPerson(h, ownerA.session, "POST", "/v1/users", { json });
      expect(res.statusCode, JSON.stringify(json)).toBe(400);
      expect(res.json().error.code).toBe("VALIDATION_ERROR");
    }
  });

  it("a moderator cannot make, promote, demote or disable an owner", async () => {
    const mod = await invite(h, ownerA, "moderator", { enrol: false });
    const dev = await invite(h, ownerA, "developer", { enrol: false });
    const makeOwner = await asPerson(h, mod.session, "POST", "/v1/users", {
      json: { email: uniqueEmail("wannabe"), role: "owner" },
    });
    expect(makeOwner.statusCode).toBe(403);
    expect(makeOwner.json().error.code).toBe("FORBIDDEN");
    for (const [id, json] of [
      [dev.id, { role: "owner" }],
      [mod.id, { role: "owner" }],
      [ownerA.id, { role: "moderator" }],
      [ownerA.id, { status: "disabled" }],
    ] as const) {
      const res = await asPerson(h, mod.session, "PATCH", `/v1/users/${id}`, { json });
      expect(res.statusCode, `${id} ${JSON.stringify(json)}`).toBe(403);
      expect(res.json().error.code).toBe("FORBIDDEN");
    }
    expect(await userIn(ownerA, ownerA.id)).toMatchObject({ role: "owner", status: "active" });
    expect(await userIn(ownerA, dev.id)).toMatchObject({ role: "developer" });
    expect(await userIn(ownerA, mod.id)).toMatchObject({ role: "moderator" });
    // What a moderator may do with people below an owner.
    const demote = await asPerson(h, mod.session, "PATCH", `/v1/users/${dev.id}`, {
      json: { role: "viewer" },
    });
    expect(demote.statusCode, demote.body).toBe(200);
    expect(demote.json().data.role).toBe("viewer");
    const invited = await asPerson(h, mod.session, "POST", "/v1/users", {
      json: { email: uniqueEmail("by-mod"), role: "moderator" },
    });
    expect(invited.statusCode, invited.body).toBe(201);
  });

  it("changing a role ends the person's sessions; they come back with the new role", async () => {
    const dev = await invite(h, ownerA, "developer", { enrol: false });
    const res = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${dev.id}`, {
      json: { role: "moderator" },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().data).toMatchObject({ id: dev.id, role: "moderator", status: "active" });
    const old = await asPerson(h, dev.session, "GET", "/v1/me");
    expect(old.statusCode).toBe(401);
    const again = await login(h, dev.email, dev.password);
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().data.role).toBe("moderator");
    const s = { cookie: sessionCookieOf(again) as string, csrf: again.json().data.csrf_token };
    expect((await asPerson(h, s, "GET", "/v1/users")).statusCode).toBe(200);
  });

  it("disabling a person ends their sessions and stops sign-in; enabling lets them back", async () => {
    const viewer = await invite(h, ownerA, "viewer", { enrol: false });
    const second = await loginOk(h, viewer.email, viewer.password);
    const off = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${viewer.id}`, {
      json: { status: "disabled" },
    });
    expect(off.statusCode, off.body).toBe(200);
    expect(off.json().data.status).toBe("disabled");
    for (const s of [viewer.session, second]) {
      const res = await asPerson(h, s, "GET", "/v1/keys");
      expect(res.statusCode).toBe(401);
    }
    const refused = await login(h, viewer.email, viewer.password, { ip: "10.20.0.1" });
    expect(refused.statusCode).toBe(401);
    expect(refused.json().error.code).toBe("INVALID_LOGIN");

    const on = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${viewer.id}`, {
      json: { status: "active" },
    });
    expect(on.statusCode, on.body).toBe(200);
    const back = await login(h, viewer.email, viewer.password, { ip: "10.20.0.1" });
    expect(back.statusCode, back.body).toBe(200);
    // The sessions ended by disabling stay ended.
    expect((await asPerson(h, second, "GET", "/v1/keys")).statusCode).toBe(401);
  });

  it("the last active owner can be neither demoted nor disabled (409 LAST_OWNER)", async () => {
    for (const json of [{ role: "moderator" }, { role: "viewer" }, { status: "disabled" }]) {
      const res = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${ownerA.id}`, { json });
      expect(res.statusCode, JSON.stringify(json)).toBe(409);
      expect(res.json().error.code).toBe("LAST_OWNER");
    }
    // A no-op patch is fine.
    const same = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${ownerA.id}`, {
      json: { role: "owner" },
    });
    expect(same.statusCode, same.body).toBe(200);
    expect((await asPerson(h, ownerA.session, "GET", "/v1/me")).statusCode).toBe(200);

    // A second owner, disabled, does not count.
    const second = await asPerson(h, ownerA.session, "POST", "/v1/users", {
      json: { email: uniqueEmail("owner-two"), role: "owner" },
    });
    expect(second.statusCode, second.body).toBe(201);
    const id2 = second.json().data.id;
    const disable2 = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${id2}`, {
      json: { status: "disabled" },
    });
    expect(disable2.statusCode, disable2.body).toBe(200);
    const stillLast = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${ownerA.id}`, {
      json: { role: "moderator" },
    });
    expect(stillLast.statusCode).toBe(409);
    expect(stillLast.json().error.code).toBe("LAST_OWNER");

    // With two active owners, one may go.
    const enable2 = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${id2}`, {
      json: { status: "active" },
    });
    expect(enable2.statusCode, enable2.body).toBe(200);
    const demote2 = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${id2}`, {
      json: { role: "moderator" },
    });
    expect(demote2.statusCode, demote2.body).toBe(200);
    expect(await userIn(ownerA, ownerA.id)).toMatchObject({ role: "owner", status: "active" });
    const lastAgain = await asPerson(h, ownerA.session, "PATCH", `/v1/users/${ownerA.id}`, {
      json: { status: "disabled" },
    });
    expect(lastAgain.statusCode).toBe(409);
  });

  it("two owners demoting each other at once leave exactly one owner", async () => {
    const c = await newCompany(h, "Race Co");
    const first = await onboardOwner(h, c, { enrol: false });
    const second = await invite(h, first, "owner", { enrol: false, tag: "race-owner" });
    const [r1, r2] = await Promise.all([
      asPerson(h, first.session, "PATCH", `/v1/users/${second.id}`, { json: { role: "moderator" } }),
      asPerson(h, second.session, "PATCH", `/v1/users/${first.id}`, { json: { role: "moderator" } }),
    ]);
    const statuses = [r1.statusCode, r2.statusCode];
    expect(
      statuses.filter((s) => s === 200),
      `${r1.body} ${r2.body}`,
    ).toHaveLength(1);
    const loser = r1.statusCode === 200 ? r2 : r1;
    // The loser saw the last-owner rule, had already been signed out, or was read as the moderator the
    // winner just made of them; whichever, it changed nothing.
    expect(["LAST_OWNER", "SESSION_EXPIRED", "FORBIDDEN"]).toContain(loser.json().error.code);
    const rows = await h.store.db
      .selectFrom("memberships")
      .select(["user_id", "role", "status"])
      .where("company_id", "=", c.id)
      .execute();
    expect(rows.filter((u) => u.role === "owner" && u.status === "active")).toHaveLength(1);
  });

  it("isolates companies: B's owner cannot see or change A's people, keys, credentials or audit", async () => {
    const devA = await invite(h, ownerA, "developer", { enrol: false, tag: "a-dev" });
    const idsA = (await users(ownerA)).map((u) => u.id);
    const listB = await users(ownerB);
    expect(listB.map((u) => u.id)).toEqual([ownerB.id]);
    for (const id of idsA) expect(listB.some((u) => u.id === id)).toBe(false);

    for (const [id, json] of [
      [devA.id, { role: "viewer" }],
      [devA.id, { status: "disabled" }],
      [ownerA.id, { role: "viewer" }],
    ] as const) {
      const res = await asPerson(h, ownerB.session, "PATCH", `/v1/users/${id}`, { json });
      expect(res.statusCode, `${id} ${JSON.stringify(json)}`).toBe(404);
      expect(res.json().error.code).toBe("NOT_FOUND");
    }
    expect(await userIn(ownerA, devA.id)).toMatchObject({ role: "developer", status: "active" });
    expect((await asPerson(h, devA.session, "GET", "/v1/me")).statusCode).toBe(200);

    const key = await asPerson(h, ownerB.session, "GET", `/v1/keys/${a.keyId}`);
    expect(key.statusCode).toBe(404);
    const cred = await asPerson(h, ownerB.session, "GET", `/v1/credentials/${a.credentialId}`);
    expect(cred.statusCode).toBe(404);

    // B's trail holds none of A's events, whichever way it is read.
    const eventsB = await allEvents(h, { session: ownerB.session });
    expect(eventsB.length).toBeGreaterThan(0);
    const dumpB = JSON.stringify(eventsB);
    for (const needle of [...idsA, ownerA.email, devA.email, a.id, a.keyId, a.credentialId]) {
      expect(dumpB).not.toContain(needle);
    }
    for (const q of [
      `target=${ownerA.id}`,
      `target=${devA.id}`,
      `actor=${ownerA.id}`,
      `actor=${ownerA.email}`,
    ]) {
      expect(await allEvents(h, { session: ownerB.session }, q), q).toEqual([]);
      expect(await allEvents(h, { key: b.key }, q), `${q} by key`).toEqual([]);
    }
    const exportB = await asPerson(h, ownerB.session, "GET", "/v1/audit/export");
    expect(exportB.statusCode).toBe(200);
    for (const needle of [...idsA, ownerA.email, a.id]) expect(exportB.body).not.toContain(needle);
    const verifyB = await asPerson(h, ownerB.session, "GET", "/v1/audit/verify");
    expect(verifyB.json().data).toMatchObject({ valid: true, events_checked: eventsB.length });
  });
});
