import { verify } from "@node-rs/argon2";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { totpCode } from "../../src/core/totp.ts";
import { buildApp } from "../../src/http/app.ts";
import { createServices } from "../../src/services/services.ts";
import { BACKENDS } from "../helpers/backends.ts";
import { ADMIN_TOKEN, createHarness, type Harness, SECRET } from "../helpers/harness.ts";
import { answerOf, burst, tally } from "./limit-helpers.ts";
import {
  invite,
  login,
  type NewCompany,
  newCompany,
  onboardOwner,
  type Person,
  uniqueEmail,
  wrongCode,
} from "./people-helpers.ts";

// Every argon2 verification is counted: a password checked is a guess an attacker got.
vi.mock("@node-rs/argon2", async (importOriginal) => {
  const real = await importOriginal<typeof import("@node-rs/argon2")>();
  return { ...real, verify: vi.fn(real.verify) };
});
const passwordChecks = () => vi.mocked(verify).mock.calls.length;

describe.each(BACKENDS)("people: sign-in lockout and limits under concurrency on %s", (kind) => {
  let h: Harness;
  let co: NewCompany;
  let owner: Person;

  beforeAll(async () => {
    h = await createHarness(kind);
    co = await newCompany(h, "Lockout Burst Co");
    owner = await onboardOwner(h, co);
  });
  afterAll(() => h.close());

  /** A node on the same store and clock, with the sign-in limits a configuration gives. */
  async function node(env: Record<string, string>) {
    const config = loadConfig(env);
    const services = createServices({
      db: h.store.db,
      catalog: h.catalog,
      secret: SECRET,
      keyPrefix: "lk",
      clock: h.clock.read,
      loginLimits: config.loginLimits,
      loginIpLimits: config.loginIpLimits,
    });
    const app = await buildApp({
      services,
      trustedProxies: [],
      platformTokens: [ADMIN_TOKEN],
      logger: false,
    });
    return {
      login: (email: string, password: string, ip: string) =>
        app.inject({
          method: "POST",
          url: "/v1/auth/login",
          payload: { email, password },
          remoteAddress: ip,
        }),
      close: async () => {
        await app.close();
        await services.close();
      },
    };
  }

  const failedEvents = async (email: string) =>
    Number(
      (
        await h.store.db
          .selectFrom("audit_events")
          .select((eb) => eb.fn.countAll().as("n"))
          .where("action", "=", "user.login_failed")
          .where("changes", "@>", JSON.stringify({ email }) as never)
          .executeTakeFirstOrThrow()
      ).n,
    );

  /** Sixty wrong passwords for one email at once, and the right one as soon as the lock answers. */
  async function passwordBurst(email: string, rightPassword: string) {
    const before = passwordChecks();
    const { results, inside } = await burst(
      60,
      (i) => login(h, email, `Wrong-Password-${i}x`, { ip: `10.20.0.${i + 1}` }),
      () => login(h, email, rightPassword, { ip: "10.20.1.1" }),
      (r: LightMyRequestResponse) => r.statusCode,
    );
    return { results, inside, checks: passwordChecks() - before };
  }

  it("sixty concurrent wrong passwords for one email get five checks; the rest, and the right password inside the burst, are locked out with the exact wait", async () => {
    const viewer = await invite(h, owner, "viewer", { enrol: false });
    const { results, inside, checks } = await passwordBurst(viewer.email, viewer.password);
    expect(checks).toBe(5);
    expect(tally(results.map(answerOf))).toEqual({ "401 INVALID_LOGIN": 5, "429 LOGIN_LOCKED": 55 });
    expect(await failedEvents(viewer.email)).toBe(5);
    expect(answerOf(inside)).toEqual({ status: 429, code: "LOGIN_LOCKED", retryAfter: 30 });
    expect(inside.headers["retry-after"]).toBe("30");

    h.clock.advance(29);
    expect(answerOf(await login(h, viewer.email, viewer.password))).toEqual({
      status: 429,
      code: "LOGIN_LOCKED",
      retryAfter: 1,
    });
    h.clock.advance(1);
    const ok = await login(h, viewer.email, viewer.password);
    expect(ok.statusCode, ok.body).toBe(200);
  });

  it("an email no one has gets the same five checks and the same answers, so the lock never tells", async () => {
    const ghost = uniqueEmail("ghost");
    const { results, inside, checks } = await passwordBurst(ghost, "Whatever-Password-1");
    expect(checks).toBe(5);
    expect(tally(results.map(answerOf))).toEqual({ "401 INVALID_LOGIN": 5, "429 LOGIN_LOCKED": 55 });
    expect(answerOf(inside)).toEqual({ status: 429, code: "LOGIN_LOCKED", retryAfter: 30 });
    const strip = (r: LightMyRequestResponse) => {
      const { request_id: _, ...rest } = r.json().error;
      return rest;
    };
    const viewer = await invite(h, owner, "viewer", { enrol: false });
    const real = await passwordBurst(viewer.email, viewer.password);
    expect(strip(inside)).toEqual(strip(real.inside));
    h.clock.advance(30);
  });

  it("the right password without its code is no failure; wrong codes are", async () => {
    h.clock.advance(30);
    for (let i = 0; i < 4; i++) {
      expect((await login(h, owner.email, `Wrong-Password-${i}x`)).statusCode).toBe(401);
    }
    for (let i = 0; i < 3; i++) {
      const res = await login(h, owner.email, owner.password);
      expect(answerOf(res), `right password without a code, ${i + 1}`).toMatchObject({
        status: 401,
        code: "TOTP_REQUIRED",
      });
    }
    const ok = await login(h, owner.email, owner.password, {
      code: totpCode(owner.secret as string, h.clock.now),
    });
    expect(ok.statusCode, ok.body).toBe(200);

    h.clock.advance(30);
    const wrong = wrongCode(owner.secret as string, h.clock.now);
    const guesses = await Promise.all(
      Array.from({ length: 20 }, () => login(h, owner.email, owner.password, { code: wrong })),
    );
    expect(tally(guesses.map(answerOf))).toEqual({ "401 TOTP_INVALID": 5, "429 LOGIN_LOCKED": 15 });
    const right = await login(h, owner.email, owner.password, {
      code: totpCode(owner.secret as string, h.clock.now),
    });
    expect(answerOf(right)).toMatchObject({ status: 429, code: "LOGIN_LOCKED" });
    h.clock.advance(30);
  });

  it("an address with 25 failures over other emails does not lock out a person there: only LATCHKEY_LOGIN_IP_RATE_LIMIT limits it", async () => {
    const defaults = await node({});
    try {
      const viewer = await invite(h, owner, "viewer", { enrol: false });
      const ip = "10.21.0.1";
      for (let i = 0; i < 25; i++) {
        const res = await defaults.login(uniqueEmail("spray"), "Sprayed-Password-1", ip);
        expect(res.statusCode, `attempt ${i + 1}`).toBe(401);
      }
      const ok = await defaults.login(viewer.email, viewer.password, ip);
      expect(ok.statusCode, ok.body).toBe(200);
    } finally {
      await defaults.close();
    }
  });

  it("LATCHKEY_LOGIN_IP_RATE_LIMIT is the per-address limit, with the exact wait, and off turns it off", async () => {
    const viewer = await invite(h, owner, "viewer", { enrol: false });
    const tight = await node({ LATCHKEY_LOGIN_IP_RATE_LIMIT: "5/1m" });
    const off = await node({ LATCHKEY_LOGIN_IP_RATE_LIMIT: "off" });
    try {
      const ip = "10.22.0.1";
      for (let i = 0; i < 5; i++) {
        expect((await tight.login(uniqueEmail("spray"), "Sprayed-Password-1", ip)).statusCode).toBe(401);
      }
      const refused = await tight.login(viewer.email, viewer.password, ip);
      expect(answerOf(refused)).toMatchObject({ status: 429, code: "RATE_LIMITED" });
      const wait = answerOf(refused).retryAfter as number;
      expect(wait).toBeGreaterThan(0);
      expect(refused.headers["retry-after"]).toBe(String(wait));

      // Off: seventy failures from one address (more than the default 60 a minute), none refused.
      const ip2 = "10.22.0.2";
      for (let i = 0; i < 70; i++) {
        const res = await off.login(uniqueEmail("spray"), "Sprayed-Password-1", ip2);
        expect(res.statusCode, `attempt ${i + 1}`).toBe(401);
      }
      const ok = await off.login(viewer.email, viewer.password, ip2);
      expect(ok.statusCode, ok.body).toBe(200);

      // The wait is exact: a second early the address is still refused, on time it signs in.
      h.clock.advance(wait - 1);
      expect(answerOf(await tight.login(viewer.email, viewer.password, ip))).toEqual({
        status: 429,
        code: "RATE_LIMITED",
        retryAfter: 1,
      });
      h.clock.advance(1);
      const later = await tight.login(viewer.email, viewer.password, ip);
      expect(later.statusCode, later.body).toBe(200);
    } finally {
      await tight.close();
      await off.close();
    }
  });
});
