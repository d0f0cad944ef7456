import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../helpers/backends.ts";
import { createHarness, type Harness } from "../helpers/harness.ts";
import {
  asPerson,
  freshCode,
  invite,
  login,
  loginOk,
  mgmtKey,
  type NewCompany,
  newCompany,
  onboardOwner,
  type Person,
  rawSessionCookie,
  relogin,
  type Session,
  sessionCookieOf,
  uniqueEmail,
} from "./people-helpers.ts";

describe.each(BACKENDS)("people: sessions and CSRF on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let owner: Person;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h, "Session Co");
    owner = await onboardOwner(h, co);
  });
  afterAll(() => h.close());

  const keyCount = async () => (await h.call("GET", "/v1/keys", { key: co.key })).json().data.keys.length;

  it("GETs need no CSRF token", async () => {
    const s = await relogin(h, owner);
    for (const url of ["/v1/me", "/v1/keys", "/v1/credentials", "/v1/users", "/v1/audit"]) {
      const res = await asPerson(h, s, "GET", url, { csrf: false });
      expect(res.statusCode, url).toBe(200);
    }
  });

  it("a cookie write without the CSRF token, with a wrong one or another session's is 403 CSRF_INVALID and changes nothing", async () => {
    const s = await relogin(h, owner);
    const other = await loginOk(h, owner.email, owner.password, { code: freshCode(h, owner) });
    const before = await keyCount();
    for (const csrf of [false, "", "wrong-token", other.csrf, `${s.csrf}x`] as const) {
      const res = await asPerson(h, s, "POST", "/v1/keys", {
        csrf,
        code: freshCode(h, owner),
        json: { name: "csrf probe", environment: "test", credential_id: co.testCredentialId },
      });
      expect(res.statusCode, `csrf=${String(csrf)}`).toBe(403);
      expect(res.json().error.code).toBe("CSRF_INVALID");
    }
    expect(await keyCount()).toBe(before);

    const ok = await asPerson(h, s, "POST", "/v1/keys", {
      code: freshCode(h, owner),
      json: { name: "with csrf", environment: "test", credential_id: co.testCredentialId },
    });
    expect(ok.statusCode, ok.body).toBe(201);
    expect(await keyCount()).toBe(before + 1);
  });

  it("every kind of cookie write checks the CSRF token", async () => {
    const s = await relogin(h, owner);
    const key = await mgmtKey(h, co, { name: "target" });
    const writes: [method: "POST" | "PATCH" | "DELETE", url: string, json?: unknown][] = [
      ["POST", "/v1/users", { email: uniqueEmail("csrf"), role: "viewer" }],
      ["PATCH", `/v1/users/${owner.id}`, { role: "owner" }],
      [
        "POST",
        "/v1/auth/password",
        { current_password: owner.password, new_password: "Another-Good-Pass-81" },
      ],
      ["POST", "/v1/auth/logout"],
      ["POST", "/v1/credentials", { name: "c", permissions: ["onramp:read"] }],
      ["PATCH", `/v1/credentials/${co.credentialId}`, { description: "changed" }],
      ["POST", `/v1/credentials/${co.credentialId}/password`],
      ["PATCH", `/v1/keys/${key.id}`, { name: "renamed" }],
      ["POST", `/v1/keys/${key.id}/rotate`, {}],
      ["DELETE", `/v1/keys/${key.id}`],
    ];
    for (const [method, url, json] of writes) {
      const res = await asPerson(h, s, method, url, {
        csrf: false,
        code: freshCode(h, owner),
        ...(json !== undefined ? { json } : {}),
      });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(res.json().error.code, `${method} ${url}`).toBe("CSRF_INVALID");
    }
    // Nothing happened: the session is alive, the key untouched, the password unchanged.
    expect((await asPerson(h, s, "GET", "/v1/me")).statusCode).toBe(200);
    const k = await h.call("GET", `/v1/keys/${key.id}`, { key: co.key });
    expect(k.json().data).toMatchObject({ name: "target", status: "active", replaced_by: null });
    await loginOk(h, owner.email, owner.password, { code: freshCode(h, owner) });
  });

  it("logout ends the session server-side: the old cookie is refused, other sessions live on", async () => {
    const keep = await relogin(h, owner);
    const gone = await loginOk(h, owner.email, owner.password, { code: freshCode(h, owner) });
    const out = await asPerson(h, gone, "POST", "/v1/auth/logout");
    expect(out.statusCode, out.body).toBe(200);
    // The answer clears the cookie in the browser as well.
    const cleared = rawSessionCookie(out);
    expect(cleared).toBeDefined();
    expect(sessionCookieOf(out)).toBeNull();

    for (const [method, url] of [
      ["GET", "/v1/me"],
      ["GET", "/v1/keys"],
      ["POST", "/v1/auth/logout"],
    ] as const) {
      const res = await asPerson(h, gone, method, url);
      expect(res.statusCode, `${method} ${url}`).toBe(401);
      expect(res.json().error.code).toBe("SESSION_EXPIRED");
    }
    expect((await asPerson(h, keep, "GET", "/v1/me")).statusCode).toBe(200);
  });

  it("an unknown or forged cookie is 401, and no credentials at all is 401", async () => {
    const forged: Session = { cookie: "lk_session=not-a-real-session-token", csrf: "x" };
    const res = await asPerson(h, forged, "GET", "/v1/keys");
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe("SESSION_EXPIRED");
    const none = await h.call("GET", "/v1/keys");
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe("UNAUTHORIZED");
  });

  it("a person's session is never an API credential", async () => {
    const s = await relogin(h, owner);
    const token = s.cookie.slice("lk_session=".length);
    const probe = { key: co.key, permissions: ["onramp:read"] };

    // The route itself works for a key holding keys:verify.
    const byKey = await h.call("POST", "/v1/verify", { key: co.key, json: probe });
    expect(byKey.statusCode).toBe(200);
    expect(byKey.json().data.valid).toBe(true);

    const byCookie = await asPerson(h, s, "POST", "/v1/verify", { json: probe });
    expect([401, 403]).toContain(byCookie.statusCode);
    expect(byCookie.json().success).toBe(false);

    const asApiKey = await h.call("POST", "/v1/verify", { key: token, json: probe });
    expect(asApiKey.statusCode).toBe(401);
    const asBearer = await h.call("GET", "/v1/keys", { headers: { authorization: `Bearer ${token}` } });
    expect(asBearer.statusCode).toBe(401);

    // And the token is not a key that verifies either.
    const verifyToken = await h.call("POST", "/v1/verify", { key: co.key, json: { key: token } });
    expect(verifyToken.statusCode).toBe(200);
    expect(verifyToken.json().data.valid).toBe(false);
  });

  it("changing the password ends every other session of the person", async () => {
    const a = await relogin(h, owner);
    const b = await loginOk(h, owner.email, owner.password, { code: freshCode(h, owner) });
    const next = "Second-Good-Password-62";
    const res = await asPerson(h, a, "POST", "/v1/auth/password", {
      json: { current_password: owner.password, new_password: next },
    });
    expect(res.statusCode, res.body).toBe(200);
    owner.password = next;
    const fresh: Session = { cookie: sessionCookieOf(res) as string, csrf: res.json().data.csrf_token };
    expect((await asPerson(h, a, "GET", "/v1/me")).statusCode).toBe(401);
    expect((await asPerson(h, b, "GET", "/v1/me")).statusCode).toBe(401);
    expect((await asPerson(h, fresh, "GET", "/v1/me")).statusCode).toBe(200);
    owner.session = fresh;
  });

  it("counts guesses of the current password in the sign-in lockout, so a stolen session cannot try them fast", async () => {
    const person = await invite(h, owner, "viewer", { tag: "guessed" });
    const guesses = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        asPerson(h, person.session, "POST", "/v1/auth/password", {
          json: { current_password: `wrong-guess-${i}`, new_password: "Another-Long-Passphrase-93" },
        }),
      ),
    );
    const codes = guesses.map((r) => r.json().error.code).sort();
    expect(codes.filter((c) => c === "INVALID_LOGIN")).toHaveLength(5);
    expect(codes.filter((c) => c === "LOGIN_LOCKED")).toHaveLength(3);
    // The right password inside the lock is refused too, with the wait, and so is a sign-in.
    const right = await asPerson(h, person.session, "POST", "/v1/auth/password", {
      json: { current_password: person.password, new_password: "Another-Long-Passphrase-93" },
    });
    expect(right.statusCode).toBe(429);
    expect(Number(right.headers["retry-after"])).toBeGreaterThan(0);
    expect((await login(h, person.email, person.password)).json().error.code).toBe("LOGIN_LOCKED");
    h.clock.advance(31);
    const after = await asPerson(h, person.session, "POST", "/v1/auth/password", {
      json: { current_password: person.password, new_password: "Another-Long-Passphrase-93" },
    });
    expect(after.statusCode, after.body).toBe(200);
  });

  it("ends a session after 30 minutes without activity; activity keeps it alive", async () => {
    const s = await relogin(h, owner);
    h.clock.advance(29 * 60);
    expect((await asPerson(h, s, "GET", "/v1/me")).statusCode).toBe(200);
    h.clock.advance(29 * 60);
    expect((await asPerson(h, s, "GET", "/v1/keys")).statusCode).toBe(200);
    h.clock.advance(31 * 60);
    const res = await asPerson(h, s, "GET", "/v1/me");
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe("SESSION_EXPIRED");
    // Activity after expiry does not revive it.
    expect((await asPerson(h, s, "GET", "/v1/me")).statusCode).toBe(401);
  });

  it("ends a session 12 hours after sign-in even with steady activity", async () => {
    const s = await relogin(h, owner);
    for (let i = 1; i <= 28; i++) {
      h.clock.advance(25 * 60);
      const res = await asPerson(h, s, "GET", "/v1/me");
      expect(res.statusCode, `after ${i * 25} minutes`).toBe(200);
    }
    h.clock.advance(19 * 60); // 11 h 59 min
    expect((await asPerson(h, s, "GET", "/v1/me")).statusCode).toBe(200);
    h.clock.advance(61); // 12 h 0 min 1 s; the last request was a minute ago
    const res = await asPerson(h, s, "GET", "/v1/me");
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe("SESSION_EXPIRED");
  });
});

describe.each(BACKENDS)("people: the session cookie behind a TLS proxy on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;

  beforeAll(async () => {
    h = await createHarness(kind, { trustedProxies: ["127.0.0.1"] });
    co = await newCompany(h, "Proxy Co");
  });
  afterAll(() => h.close());

  it("is not Secure over plain HTTP (so local use works) and is Secure when a trusted proxy says HTTPS", async () => {
    const plain = await h.call("POST", "/v1/auth/login", {
      json: { email: co.owner.email, password: co.owner.temporaryPassword },
    });
    expect(plain.statusCode, plain.body).toBe(200);
    expect(rawSessionCookie(plain)).not.toMatch(/;\s*Secure/i);

    const https = await h.call("POST", "/v1/auth/login", {
      headers: { "x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9" },
      json: { email: co.owner.email, password: co.owner.temporaryPassword },
    });
    expect(https.statusCode, https.body).toBe(200);
    expect(rawSessionCookie(https)).toMatch(/;\s*Secure/i);
  });
});
