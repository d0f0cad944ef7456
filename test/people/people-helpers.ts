import type { LightMyRequestResponse } from "fastify";
import { expect } from "vitest";
import { totpCode } from "../../src/core/totp.ts";
import { ADMIN_TOKEN, type Harness } from "../helpers/harness.ts";

/** A password every rule accepts (long, varied, not common, no sequence, no email in it). */
export const GOOD_PASSWORD = "Violet-Harbour-Lantern-47";

export interface Session {
  /** The value for a `cookie` request header: `lk_session=…`. */
  cookie: string;
  csrf: string;
}

export interface Person {
  id: string;
  email: string;
  password: string;
  /** The TOTP secret once enrolled. */
  secret: string | null;
  recoveryCodes: string[];
  session: Session;
}

export interface NewCompany {
  id: string;
  name: string;
  slug: string;
  key: string;
  keyId: string;
  keyPrefix: string;
  credentialId: string;
  username: string;
  /** The default test API user, which test keys belong to. */
  testCredentialId: string;
  owner: { id: string; email: string; temporaryPassword: string };
}

let counter = 0;

/** A unique email for this run. */
export function uniqueEmail(tag: string): string {
  counter += 1;
  return `${tag}${counter}-${Math.random().toString(36).slice(2, 8)}@people.test`;
}

/** A company through the platform route, keeping what the harness drops: the owner's temporary password. */
export async function newCompany(h: Harness, name?: string): Promise<NewCompany> {
  counter += 1;
  const ownerEmail = uniqueEmail("owner");
  const res = await h.call("POST", "/v1/admin/companies", {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    json: { name: name ?? `People Co ${counter}`, owner_email: ownerEmail },
  });
  if (res.statusCode !== 201) throw new Error(`newCompany: ${res.statusCode} ${res.body}`);
  const d = res.json().data;
  return {
    id: d.company.id,
    name: d.company.name,
    slug: d.company.slug,
    key: d.management_key.key,
    keyId: d.management_key.id,
    keyPrefix: d.management_key.prefix,
    credentialId: d.default_credential.id,
    username: d.default_credential.username,
    testCredentialId: d.default_test_credential.id,
    owner: { id: d.owner.id, email: d.owner.email, temporaryPassword: d.owner.temporary_password },
  };
}

/** Creates a key with the company's management key (no step-up for machine callers). */
export async function mgmtKey(
  h: Harness,
  co: NewCompany,
  body: Record<string, unknown> = {},
): Promise<{ id: string; key: string; prefix: string }> {
  const res = await h.call("POST", "/v1/keys", {
    key: co.key,
    json: {
      name: "k",
      environment: "test",
      ...(body.environment === undefined || body.environment === "test"
        ? { credential_id: co.testCredentialId }
        : {}),
      ...body,
    },
  });
  if (res.statusCode !== 201) throw new Error(`mgmtKey: ${res.statusCode} ${res.body}`);
  return res.json().data;
}

/** The `lk_session=…` pair a response sets, or null. */
export function sessionCookieOf(res: LightMyRequestResponse): string | null {
  const c = res.cookies.find((x) => x.name === "lk_session");
  return c && c.value !== "" ? `lk_session=${c.value}` : null;
}

/** The raw Set-Cookie header for the session cookie. */
export function rawSessionCookie(res: LightMyRequestResponse): string | undefined {
  const raw = res.headers["set-cookie"];
  const all = Array.isArray(raw) ? raw : raw ? [String(raw)] : [];
  return all.find((c) => c.startsWith("lk_session="));
}

export interface CallOpts {
  json?: unknown;
  headers?: Record<string, string>;
  /** Sent as X-TOTP-Code. */
  code?: string;
  /** The CSRF token to send; defaults to the session's on writes; false sends none. */
  csrf?: string | false;
  ip?: string;
}

/** A request with a session cookie (and its CSRF token on writes unless told otherwise). */
export function asPerson(
  h: Harness,
  session: Session,
  method: "GET" | "POST" | "PATCH" | "DELETE" | "PUT",
  url: string,
  opts: CallOpts = {},
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { cookie: session.cookie, ...(opts.headers ?? {}) };
  const csrf = opts.csrf === undefined ? (method === "GET" ? false : session.csrf) : opts.csrf;
  if (csrf !== false) headers["x-csrf-token"] = csrf;
  if (opts.code !== undefined) headers["x-totp-code"] = opts.code;
  return h.call(method, url, {
    headers,
    ...(opts.json !== undefined ? { json: opts.json } : {}),
    ...(opts.ip !== undefined ? { ip: opts.ip } : {}),
  });
}

export function login(
  h: Harness,
  email: string,
  password: string,
  opts: { code?: string; ip?: string; userAgent?: string } = {},
): Promise<LightMyRequestResponse> {
  return h.call("POST", "/v1/auth/login", {
    json: { email, password, ...(opts.code !== undefined ? { totp_code: opts.code } : {}) },
    ...(opts.ip !== undefined ? { ip: opts.ip } : {}),
    ...(opts.userAgent !== undefined ? { headers: { "user-agent": opts.userAgent } } : {}),
  });
}

/** Signs in and expects success. */
export async function loginOk(
  h: Harness,
  email: string,
  password: string,
  opts: { code?: string; ip?: string } = {},
): Promise<Session> {
  const res = await login(h, email, password, opts);
  expect(res.statusCode, res.body).toBe(200);
  const cookie = sessionCookieOf(res);
  expect(cookie).not.toBeNull();
  return { cookie: cookie as string, csrf: res.json().data.csrf_token };
}

/** Moves the clock to the next 30-second step and returns the person's code for it. */
export function freshCode(h: Harness, p: { secret: string | null }): string {
  if (!p.secret) throw new Error("not enrolled");
  h.clock.advance(30);
  return totpCode(p.secret, h.clock.now);
}

/** A six-digit code that is valid for none of the steps within ±3 of `at`. */
export function wrongCode(secret: string, at: Date): string {
  const near = new Set<string>();
  for (let s = -3; s <= 3; s++) near.add(totpCode(secret, new Date(at.getTime() + s * 30_000)));
  for (const c of ["000000", "111111", "222222", "333333", "444444", "555555", "123456", "654321"]) {
    if (!near.has(c)) return c;
  }
  throw new Error("unreachable");
}

/** Signs in an enrolled person with a fresh code and stores the new session on them. */
export async function relogin(h: Harness, p: Person): Promise<Session> {
  const code = p.secret ? freshCode(h, p) : undefined;
  p.session = await loginOk(h, p.email, p.password, code !== undefined ? { code } : {});
  return p.session;
}

/**
 * The first sign-in of a person with a temporary password: sign in, set a new password, and (unless
 * told not to) enrol TOTP. Returns the person with the session the last step left them.
 */
export async function onboard(
  h: Harness,
  id: string,
  email: string,
  temporaryPassword: string,
  opts: { enrol?: boolean; password?: string } = {},
): Promise<Person> {
  const password = opts.password ?? GOOD_PASSWORD;
  let session = await loginOk(h, email, temporaryPassword);
  const changed = await asPerson(h, session, "POST", "/v1/auth/password", {
    json: { current_password: temporaryPassword, new_password: password },
  });
  expect(changed.statusCode, changed.body).toBe(200);
  session = { cookie: sessionCookieOf(changed) as string, csrf: changed.json().data.csrf_token };
  const person: Person = { id, email, password, secret: null, recoveryCodes: [], session };
  if (opts.enrol === false) return person;
  const setup = await asPerson(h, session, "POST", "/v1/auth/totp/setup");
  expect(setup.statusCode, setup.body).toBe(200);
  const secret: string = setup.json().data.secret;
  const confirm = await asPerson(h, session, "POST", "/v1/auth/totp/confirm", {
    json: { code: totpCode(secret, h.clock.now) },
  });
  expect(confirm.statusCode, confirm.body).toBe(200);
  person.secret = secret;
  person.recoveryCodes = confirm.json().data.recovery_codes;
  person.session = { cookie: sessionCookieOf(confirm) as string, csrf: confirm.json().data.csrf_token };
  return person;
}

/** A company's owner, onboarded (and enrolled unless told not to). */
export async function onboardOwner(h: Harness, c: NewCompany, opts: { enrol?: boolean } = {}) {
  return onboard(h, c.owner.id, c.owner.email, c.owner.temporaryPassword, opts);
}

/** Invites a person as `inviter` and onboards them. */
export async function invite(
  h: Harness,
  inviter: Person,
  role: "owner" | "moderator" | "developer" | "viewer",
  opts: { enrol?: boolean; tag?: string } = {},
): Promise<Person> {
  const email = uniqueEmail(opts.tag ?? role);
  const res = await asPerson(h, inviter.session, "POST", "/v1/users", { json: { email, role } });
  expect(res.statusCode, res.body).toBe(201);
  const d = res.json().data;
  return onboard(h, d.id, email, d.temporary_password, opts);
}

/** Every string anywhere in a JSON value. */
export function allStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const v of value) allStrings(v, out);
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      out.push(k);
      allStrings(v, out);
    }
  }
  return out;
}

export interface AuditEvent {
  id: string;
  seq: number;
  at: string;
  action: string;
  actor: { type: string; id: string | null; label: string | null };
  target: { type: string; id: string } | null;
  changes: Record<string, unknown>;
  ip: string | null;
  user_agent: string | null;
  totp_used: boolean;
}

/** Every audit event of the caller's company, newest first, following the cursor. */
export async function allEvents(
  h: Harness,
  auth: { key: string } | { session: Session },
  query = "",
): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  let cursor: string | null = null;
  for (;;) {
    const sep = query ? "&" : "";
    const url: string = `/v1/audit?${query}${sep}limit=500${cursor ? `&cursor=${cursor}` : ""}`;
    const res: LightMyRequestResponse =
      "key" in auth
        ? await h.call("GET", url, { key: auth.key })
        : await asPerson(h, auth.session, "GET", url);
    expect(res.statusCode, res.body).toBe(200);
    const d: { events: AuditEvent[]; next_cursor: string | null } = res.json().data;
    events.push(...d.events);
    cursor = d.next_cursor;
    if (!cursor) return events;
  }
}
