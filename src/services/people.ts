import { createHash, randomBytes } from "node:crypto";
import { hash, verify } from "@node-rs/argon2";
import { type Kysely, sql } from "kysely";
import QRCode from "qrcode";
import type { Catalog } from "../core/catalog.ts";
import { LatchkeyError } from "../core/errors.ts";
import { hashToken, safeEqual } from "../core/hashing.ts";
import { newId } from "../core/ids.ts";
import { looksLikeCredentialUsername } from "../core/names.ts";
import { passwordProblem } from "../core/passwords.ts";
import { randomBase62 } from "../core/random.ts";
import type { CompiledLimit } from "../core/rate-limit.ts";
import { mayAssignRole, type Role, rolePermissions } from "../core/roles.ts";
import { SecretBox } from "../core/secret-box.ts";
import { checkTotp, newTotpSecret, otpauthUrl } from "../core/totp.ts";
import type { Db } from "../store/repositories.ts";
import type { Database, SessionRow, UserRow } from "../store/schema.ts";
import type { Actor, Ctx } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import type { RateLimiter } from "./rate-limiter.ts";

export interface PeopleOptions {
  db: Kysely<Database>;
  catalog: Catalog;
  secret: string;
  clock: () => Date;
  audit: AuditService;
  /** Minutes of inactivity after which a session ends. */
  sessionIdleMinutes?: number;
  /** Hours after sign-in at which a session ends whatever happens. */
  sessionMaxHours?: number;
  issuer?: string;
  /** Sign-in attempt limits, counted per email (and per address unless `loginIpLimits` is given). */
  loginLimits?: readonly CompiledLimit[];
  /** Per-address limits; an office behind one NAT needs more room than one account does. */
  loginIpLimits?: readonly CompiledLimit[];
  limiter?: RateLimiter;
}

export interface UserView {
  id: string;
  email: string;
  role: Role;
  status: "active" | "disabled";
  totp_enrolled: boolean;
  password_change_required: boolean;
  created_at: string;
}

export interface SessionInfo {
  token: string;
  csrf_token: string;
  expires_at: string;
}

const FAILURES_BEFORE_LOCK = 5;
const BASE_LOCK_SECONDS = 30;
const MAX_LOCK_SECONDS = 3600;
const IP_FAILURE_LIMIT = 20;
const IP_WINDOW_MS = 15 * 60 * 1000;
const RECOVERY_CODES = 10;
const STEP_UP_FAILURE_LIMIT = 10;

/** argon2id of a fixed string, so an unknown email costs as much time as a wrong password. */
const DUMMY_HASH = hash("latchkey-dummy-password", { algorithm: 2 });

function sha256(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

function userView(row: UserRow): UserView {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    status: row.status,
    totp_enrolled: row.totp_secret !== null,
    password_change_required: row.must_change_password,
    created_at: row.created_at.toISOString(),
  };
}

/** A company's people: sign-in with argon2id and TOTP, sessions, roles, and step-up codes. */
export class PeopleService {
  private readonly box: SecretBox;
  private readonly idleMs: number;
  private readonly maxMs: number;
  /** Failed sign-ins per source address (in memory; shared through Redis in cluster mode later). */
  private readonly ipFailures = new Map<string, number[]>();
  /** Wrong step-up codes per person (in memory, like the address throttle). */
  private readonly stepUpFailures = new Map<string, number[]>();

  constructor(private readonly o: PeopleOptions) {
    this.box = new SecretBox(o.secret, "totp");
    this.idleMs = (o.sessionIdleMinutes ?? 30) * 60_000;
    this.maxMs = (o.sessionMaxHours ?? 12) * 3_600_000;
  }

  private now() {
    return this.o.clock();
  }

  // ---- sign-in -------------------------------------------------------------------------------------

  private ipBlocked(ip: string | null, now: number): boolean {
    if (!ip) return false;
    const recent = (this.ipFailures.get(ip) ?? []).filter((t) => t > now - IP_WINDOW_MS);
    this.ipFailures.set(ip, recent);
    return recent.length >= IP_FAILURE_LIMIT;
  }

  private async lockedUntil(email: string): Promise<Date | null> {
    const row = await this.o.db
      .selectFrom("login_attempts")
      .select("locked_until")
      .where("email", "=", email)
      .executeTakeFirst();
    return row?.locked_until && row.locked_until > this.now() ? row.locked_until : null;
  }

  /** Counts a failure for the email (known or not) and the address; locks for a growing delay. */
  private async fail(
    email: string,
    ctx: Ctx,
    companyId: string | null,
    userId: string | null,
    reason: string,
  ) {
    const now = this.now();
    if (ctx.ip) this.ipFailures.set(ctx.ip, [...(this.ipFailures.get(ctx.ip) ?? []), now.getTime()]);
    await this.o.db.transaction().execute(async (tx) => {
      await sql`INSERT INTO login_attempts (email, failures, updated_at) VALUES (${email}, 0, ${now})
                ON CONFLICT (email) DO NOTHING`.execute(tx);
      const row = await tx
        .selectFrom("login_attempts")
        .select("failures")
        .where("email", "=", email)
        .forUpdate()
        .executeTakeFirstOrThrow();
      const failures = row.failures + 1;
      const over = failures - FAILURES_BEFORE_LOCK;
      const lockSeconds = over >= 0 ? Math.min(BASE_LOCK_SECONDS * 2 ** over, MAX_LOCK_SECONDS) : 0;
      await tx
        .updateTable("login_attempts")
        .set({
          failures,
          locked_until: lockSeconds > 0 ? new Date(now.getTime() + lockSeconds * 1000) : null,
          updated_at: now,
        })
        .where("email", "=", email)
        .execute();
      await this.o.audit.append(tx, ctx, {
        action: "user.login_failed",
        companyId,
        target: userId ? { type: "user", id: userId } : undefined,
        changes: { email, reason, failures, locked_for_seconds: lockSeconds },
      });
    });
  }

  async login(
    input: { email: string; password: string; totp_code?: string | undefined },
    ip: string | null,
    userAgent: string | null,
  ): Promise<{ session: SessionInfo; user: UserView; company: { id: string; name: string; slug: string } }> {
    const email = input.email.trim().toLowerCase();
    const now = this.now();
    const anon: Ctx = { actor: { kind: "platform" }, ip, userAgent, totpUsed: false };
    if (this.ipBlocked(ip, now.getTime())) throw new LatchkeyError("LOGIN_LOCKED");
    // Every attempt counts against the sign-in limits (shared by all nodes in cluster mode), so
    // passwords cannot be sprayed across accounts from one address or at one account from many.
    const emailLimits = this.o.loginLimits ?? [];
    const ipLimits = this.o.loginIpLimits ?? emailLimits;
    if (this.o.limiter && (emailLimits.length > 0 || (ip && ipLimits.length > 0))) {
      const subjects = [];
      if (emailLimits.length > 0) subjects.push({ id: `login-email:${email}`, limits: emailLimits });
      if (ip && ipLimits.length > 0) subjects.push({ id: `login-ip:${ip}`, limits: ipLimits });
      const decision = await this.o.limiter.consume(subjects, now.getTime());
      if (!decision.allowed) {
        throw new LatchkeyError("RATE_LIMITED", "Too many sign-in attempts. Try again later.", {
          retry_after: decision.retryAfterSeconds,
        });
      }
    }
    const locked = await this.lockedUntil(email);
    if (locked) {
      throw new LatchkeyError("LOGIN_LOCKED", undefined, {
        retry_after: Math.ceil((locked.getTime() - now.getTime()) / 1000),
      });
    }
    // An API credential's username is never a sign-in, even if a person was once given one as an email.
    const user = looksLikeCredentialUsername(email)
      ? undefined
      : await this.o.db.selectFrom("users").selectAll().where("email", "=", email).executeTakeFirst();
    // An unknown email still pays for one argon2 verification, so timing does not tell it apart.
    const passwordOk = await verify(user ? user.password_hash : await DUMMY_HASH, input.password);
    if (!user || !passwordOk || user.status !== "active") {
      await this.fail(email, anon, user?.company_id ?? null, user?.id ?? null, "password");
      throw new LatchkeyError("INVALID_LOGIN");
    }
    const actorCtx: Ctx = { ...anon, actor: this.actorFor(user, "") };
    let totpUsed = false;
    if (user.totp_secret !== null) {
      if (!input.totp_code) {
        throw new LatchkeyError("TOTP_REQUIRED", "Enter the code from your authenticator app.", {}, 401);
      }
      const ok = await this.useSecondFactor(user, input.totp_code, actorCtx);
      if (!ok) {
        await this.fail(email, actorCtx, user.company_id, user.id, "totp");
        throw new LatchkeyError("TOTP_INVALID", undefined, {}, 401);
      }
      totpUsed = true;
    }
    await this.o.db.deleteFrom("login_attempts").where("email", "=", email).execute();
    const company = await this.o.db
      .selectFrom("companies")
      .select(["id", "name", "slug"])
      .where("id", "=", user.company_id)
      .executeTakeFirstOrThrow();
    const session = await this.o.db.transaction().execute(async (tx) => {
      const s = await this.openSession(tx, user, ip, userAgent);
      await this.o.audit.append(
        tx,
        { ...actorCtx, totpUsed },
        {
          action: "user.login",
          companyId: user.company_id,
          target: { type: "user", id: user.id },
        },
      );
      return s;
    });
    return { session, user: userView(user), company };
  }

  private async openSession(db: Db, user: UserRow, ip: string | null, userAgent: string | null) {
    const now = this.now();
    const token = randomBytes(32).toString("base64url");
    const csrf = randomBytes(24).toString("base64url");
    const expires = new Date(now.getTime() + this.maxMs);
    await db
      .insertInto("sessions")
      .values({
        id: newId("ses", now),
        token_hash: sha256(token),
        user_id: user.id,
        company_id: user.company_id,
        csrf_token: csrf,
        created_at: now,
        last_seen_at: now,
        expires_at: expires,
        ended_at: null,
        ip,
        user_agent: userAgent ? userAgent.slice(0, 512) : null,
      })
      .execute();
    return { token, csrf_token: csrf, expires_at: expires.toISOString() };
  }

  /** Ends every session of a person (disabled, role changed) or all but none. */
  private async endSessions(db: Db, userId: string) {
    await db
      .updateTable("sessions")
      .set({ ended_at: this.now() })
      .where("user_id", "=", userId)
      .where("ended_at", "is", null)
      .execute();
  }

  actorFor(user: UserRow, sessionId: string): Actor & { kind: "user" } {
    return {
      kind: "user",
      userId: user.id,
      email: user.email,
      companyId: user.company_id,
      role: user.role,
      sessionId,
      totpEnrolled: user.totp_secret !== null,
      permissions: [...rolePermissions(user.role, this.o.catalog.permissions)],
    };
  }

  /**
   * The person behind a session cookie, or null when the session is unknown, ended, idle too long or
   * past its absolute end. Last-seen is written at most once a minute, not on every request.
   */
  async authenticate(
    token: string,
  ): Promise<{ actor: Actor & { kind: "user" }; session: SessionRow; user: UserRow } | null> {
    const session = await this.o.db
      .selectFrom("sessions")
      .selectAll()
      .where("token_hash", "=", sha256(token))
      .executeTakeFirst();
    const now = this.now();
    if (!session || session.ended_at !== null) return null;
    if (session.expires_at <= now || session.last_seen_at.getTime() + this.idleMs <= now.getTime())
      return null;
    const user = await this.o.db
      .selectFrom("users")
      .selectAll()
      .where("id", "=", session.user_id)
      .executeTakeFirst();
    if (user?.status !== "active") return null;
    if (now.getTime() - session.last_seen_at.getTime() > 60_000) {
      await this.o.db
        .updateTable("sessions")
        .set({ last_seen_at: now })
        .where("id", "=", session.id)
        .execute();
    }
    return { actor: this.actorFor(user, session.id), session, user };
  }

  async logout(ctx: Ctx & { actor: { kind: "user" } }) {
    await this.o.db.transaction().execute(async (tx) => {
      await tx
        .updateTable("sessions")
        .set({ ended_at: this.now() })
        .where("id", "=", ctx.actor.sessionId)
        .execute();
      await this.o.audit.append(tx, ctx, {
        action: "user.logout",
        companyId: ctx.actor.companyId,
        target: { type: "user", id: ctx.actor.userId },
      });
    });
  }

  async sessionOf(sessionId: string): Promise<SessionRow> {
    const row = await this.o.db
      .selectFrom("sessions")
      .selectAll()
      .where("id", "=", sessionId)
      .executeTakeFirst();
    if (!row) throw new LatchkeyError("SESSION_EXPIRED");
    return row;
  }

  async me(userId: string): Promise<UserView> {
    return userView(await this.user(userId));
  }

  private async user(userId: string): Promise<UserRow> {
    const row = await this.o.db.selectFrom("users").selectAll().where("id", "=", userId).executeTakeFirst();
    if (!row) throw new LatchkeyError("NOT_FOUND");
    return row;
  }

  /** Changes a password; the session is replaced (privilege change), others end. */
  async changePassword(
    ctx: Ctx & { actor: { kind: "user" } },
    current: string,
    next: string,
  ): Promise<SessionInfo> {
    const user = await this.user(ctx.actor.userId);
    if (!(await verify(user.password_hash, current))) {
      throw new LatchkeyError("INVALID_LOGIN", "The current password is wrong.", {
        field: "current_password",
      });
    }
    const problem = passwordProblem(next, user.email);
    if (problem)
      throw new LatchkeyError("WEAK_PASSWORD", `The new password ${problem}.`, { field: "new_password" });
    if (await verify(user.password_hash, next)) {
      throw new LatchkeyError("WEAK_PASSWORD", "The new password must differ from the current one.", {
        field: "new_password",
      });
    }
    const passwordHash = await hash(next, { algorithm: 2 });
    return this.o.db.transaction().execute(async (tx) => {
      await tx
        .updateTable("users")
        .set({
          password_hash: passwordHash,
          must_change_password: false,
          password_changed_at: this.now(),
          updated_at: this.now(),
        })
        .where("id", "=", user.id)
        .execute();
      await this.endSessions(tx, user.id);
      await this.o.audit.append(tx, ctx, {
        action: "user.password_changed",
        companyId: user.company_id,
        target: { type: "user", id: user.id },
      });
      return this.openSession(tx, user, ctx.ip, ctx.userAgent);
    });
  }

  // ---- two-factor ----------------------------------------------------------------------------------

  async totpSetup(ctx: Ctx & { actor: { kind: "user" } }) {
    const user = await this.user(ctx.actor.userId);
    if (user.totp_secret !== null)
      throw new LatchkeyError("CONFLICT", "Two-factor authentication is already set up.");
    const secret = newTotpSecret();
    await this.o.db
      .updateTable("users")
      .set({ totp_pending_secret: this.box.seal(secret), updated_at: this.now() })
      .where("id", "=", user.id)
      .execute();
    const url = otpauthUrl(secret, user.email, this.o.issuer ?? "Latchkey");
    const qr_svg = await QRCode.toString(url, { type: "svg", margin: 1 });
    return { secret, otpauth_url: url, qr_svg };
  }

  /** Confirms enrolment with a first code; returns ten recovery codes, shown once, stored hashed. */
  async totpConfirm(ctx: Ctx & { actor: { kind: "user" } }, code: string) {
    const user = await this.user(ctx.actor.userId);
    if (user.totp_secret !== null)
      throw new LatchkeyError("CONFLICT", "Two-factor authentication is already set up.");
    if (user.totp_pending_secret === null)
      throw new LatchkeyError("CONFLICT", "Start with POST /v1/auth/totp/setup.");
    const secret = this.box.open(user.totp_pending_secret);
    const check = checkTotp(secret, code, this.now(), null);
    if (!check.ok) throw new LatchkeyError("TOTP_INVALID", undefined, { field: "code" });
    const codes = Array.from({ length: RECOVERY_CODES }, () => {
      const raw = randomBase62(10).toLowerCase();
      return `${raw.slice(0, 5)}-${raw.slice(5)}`;
    });
    const session = await this.o.db.transaction().execute(async (tx) => {
      await tx
        .updateTable("users")
        .set({
          totp_secret: user.totp_pending_secret,
          totp_pending_secret: null,
          totp_enabled_at: this.now(),
          totp_last_step: check.step,
          updated_at: this.now(),
        })
        .where("id", "=", user.id)
        .execute();
      await tx.deleteFrom("recovery_codes").where("user_id", "=", user.id).execute();
      await tx
        .insertInto("recovery_codes")
        .values(
          codes.map((c) => ({ user_id: user.id, code_hash: hashToken(this.o.secret, c), used_at: null })),
        )
        .execute();
      await this.endSessions(tx, user.id);
      await this.o.audit.append(
        tx,
        { ...ctx, totpUsed: true },
        {
          action: "user.totp_enrolled",
          companyId: user.company_id,
          target: { type: "user", id: user.id },
        },
      );
      return this.openSession(tx, user, ctx.ip, ctx.userAgent);
    });
    return { recovery_codes: codes, session };
  }

  /**
   * Checks a TOTP code (once per time step, ±1 step of drift) or a recovery code (once each), and
   * consumes it. The row lock makes two requests with one code race to a single winner.
   */
  private async useSecondFactor(user: UserRow, code: string, ctx: Ctx): Promise<boolean> {
    if (user.totp_secret === null) return false;
    const secret = this.box.open(user.totp_secret);
    return this.o.db.transaction().execute(async (tx) => {
      const row = await tx
        .selectFrom("users")
        .select("totp_last_step")
        .where("id", "=", user.id)
        .forUpdate()
        .executeTakeFirstOrThrow();
      const last = row.totp_last_step === null ? null : Number(row.totp_last_step);
      const check = checkTotp(secret, code.trim(), this.now(), last);
      if (check.ok) {
        await tx.updateTable("users").set({ totp_last_step: check.step }).where("id", "=", user.id).execute();
        return true;
      }
      if (/^\d{6}$/.test(code.trim())) return false;
      const used = await tx
        .updateTable("recovery_codes")
        .set({ used_at: this.now() })
        .where("user_id", "=", user.id)
        .where("code_hash", "=", hashToken(this.o.secret, code.trim().toLowerCase()))
        .where("used_at", "is", null)
        .executeTakeFirst();
      if (Number(used.numUpdatedRows) !== 1) return false;
      await this.o.audit.append(tx, ctx, {
        action: "user.recovery_code_used",
        companyId: user.company_id,
        target: { type: "user", id: user.id },
      });
      return true;
    });
  }

  /** Step-up for a sensitive action: throws TOTP_REQUIRED / TOTP_INVALID unless a fresh code is given. */
  async stepUp(actor: Actor & { kind: "user" }, code: string | undefined, ctx: Ctx): Promise<void> {
    if (!actor.totpEnrolled) throw new LatchkeyError("TOTP_ENROLMENT_REQUIRED");
    if (!code) throw new LatchkeyError("TOTP_REQUIRED");
    // A six-digit code falls to guessing unless wrong ones are limited: ten in a row per person per window.
    const now = this.now().getTime();
    const recent = (this.stepUpFailures.get(actor.userId) ?? []).filter((t) => t > now - IP_WINDOW_MS);
    if (recent.length >= STEP_UP_FAILURE_LIMIT) {
      throw new LatchkeyError("RATE_LIMITED", "Too many wrong two-factor codes. Try again later.");
    }
    const user = await this.user(actor.userId);
    if (!(await this.useSecondFactor(user, code, ctx))) {
      this.stepUpFailures.set(actor.userId, [...recent, now]);
      throw new LatchkeyError("TOTP_INVALID");
    }
    this.stepUpFailures.delete(actor.userId);
  }

  /** Constant-time check of a session's CSRF token. */
  csrfMatches(session: SessionRow, given: string | undefined): boolean {
    return given !== undefined && safeEqual(given, session.csrf_token);
  }

  // ---- people management ---------------------------------------------------------------------------

  async list(companyId: string): Promise<UserView[]> {
    const rows = await this.o.db
      .selectFrom("users")
      .selectAll()
      .where("company_id", "=", companyId)
      .orderBy("id", "asc")
      .execute();
    return rows.map(userView);
  }

  async invite(ctx: Ctx & { actor: { kind: "user" } }, input: { email: string; role: Role }) {
    if (!mayAssignRole(ctx.actor.role, input.role)) {
      throw new LatchkeyError("FORBIDDEN", "Only an owner can make someone an owner.", { field: "role" });
    }
    const email = input.email.trim().toLowerCase();
    if (looksLikeCredentialUsername(email)) {
      throw new LatchkeyError(
        "VALIDATION_ERROR",
        "That is an API credential's username, not a person's email.",
        {
          field: "email",
        },
      );
    }
    const temporaryPassword = randomBase62(20);
    const passwordHash = await hash(temporaryPassword, { algorithm: 2 });
    const now = this.now();
    const id = newId("usr", now);
    await this.o.db.transaction().execute(async (tx) => {
      const taken = await tx.selectFrom("users").select("id").where("email", "=", email).executeTakeFirst();
      if (taken) throw new LatchkeyError("EMAIL_TAKEN", undefined, { field: "email" });
      await tx
        .insertInto("users")
        .values({
          id,
          company_id: ctx.actor.companyId,
          email,
          password_hash: passwordHash,
          role: input.role,
          created_at: now,
        })
        .execute();
      await this.o.audit.append(tx, ctx, {
        action: "user.created",
        companyId: ctx.actor.companyId,
        target: { type: "user", id },
        changes: { after: { email, role: input.role } },
      });
    });
    return { id, email, role: input.role, temporary_password: temporaryPassword };
  }

  async update(
    ctx: Ctx & { actor: { kind: "user" } },
    userId: string,
    patch: { role?: Role | undefined; status?: "active" | "disabled" | undefined },
  ): Promise<UserView> {
    const companyId = ctx.actor.companyId;
    return this.o.db.transaction().execute(async (tx) => {
      // Lock the company's owners first, so two demotions cannot both pass the last-owner check.
      const owners = await tx
        .selectFrom("users")
        .select(["id"])
        .where("company_id", "=", companyId)
        .where("role", "=", "owner")
        .where("status", "=", "active")
        .forUpdate()
        .execute();
      const row = await tx
        .selectFrom("users")
        .selectAll()
        .where("company_id", "=", companyId)
        .where("id", "=", userId)
        .forUpdate()
        .executeTakeFirst();
      if (!row) throw new LatchkeyError("NOT_FOUND", "No such person.");
      const role = patch.role ?? row.role;
      const status = patch.status ?? row.status;
      if (role === row.role && status === row.status) return userView(row);
      // A moderator neither makes nor unmakes owners.
      if (!mayAssignRole(ctx.actor.role, role) || !mayAssignRole(ctx.actor.role, row.role)) {
        throw new LatchkeyError("FORBIDDEN", "Only an owner can change an owner or make one.");
      }
      const losesOwner =
        row.role === "owner" && row.status === "active" && (role !== "owner" || status !== "active");
      if (losesOwner && owners.length <= 1) throw new LatchkeyError("LAST_OWNER");
      await tx
        .updateTable("users")
        .set({ role, status, updated_at: this.now() })
        .where("id", "=", row.id)
        .execute();
      // A change of privilege ends the person's sessions; they sign in again with the new role.
      await this.endSessions(tx, row.id);
      const target = { type: "user", id: row.id };
      if (role !== row.role) {
        await this.o.audit.append(tx, ctx, {
          action: "user.role_changed",
          companyId,
          target,
          changes: { before: { role: row.role }, after: { role } },
        });
      }
      if (status !== row.status) {
        await this.o.audit.append(tx, ctx, {
          action: status === "disabled" ? "user.disabled" : "user.enabled",
          companyId,
          target,
          changes: { before: { status: row.status }, after: { status } },
        });
      }
      return userView({ ...row, role, status });
    });
  }
}
