import { hash, verify } from "@node-rs/argon2";
import type { Kysely } from "kysely";
import type { LimitSubject, RateLimiter } from "../../cluster/rate-limiter.ts";
import { LatchkeyError } from "../../core/errors.ts";
import { looksLikeCredentialUsername } from "../../core/names.ts";
import { passwordProblem } from "../../core/passwords.ts";
import type { CompiledLimit } from "../../core/rate-limit.ts";
import type { Database, UserRow } from "../../store/schema.ts";
import type { Ctx } from "../actor.ts";
import type { AuditService } from "../audit.ts";
import type { LoginLockout } from "./lockout.ts";
import type { SecondFactorService } from "./second-factor.ts";
import type { SessionInfo, SessionService } from "./sessions.ts";
import { homeMembership, normalizeEmail, type UserView, userById, userView } from "./users.ts";

export interface SignInOptions {
  db: Kysely<Database>;
  clock: () => Date;
  audit: AuditService;
  sessions: SessionService;
  secondFactor: SecondFactorService;
  lockout: LoginLockout;
  limiter: RateLimiter;
  /** Sign-in attempts per email (`LATCHKEY_LOGIN_RATE_LIMIT`); none means not limited. */
  emailLimits: readonly CompiledLimit[];
  /** Sign-in attempts per client address (`LATCHKEY_LOGIN_IP_RATE_LIMIT`); none means not limited. */
  ipLimits: readonly CompiledLimit[];
}

/** argon2id of a fixed string, so an unknown email costs as much time as a wrong password. */
const DUMMY_HASH = hash("latchkey-dummy-password", { algorithm: 2 });

/** The company a person signs in to, as the sign-in answer shows it. */
export interface SignedIn {
  session: SessionInfo;
  user: UserView;
  company: { id: string; name: string; slug: string };
}

/**
 * Proving who one is with a password: signing in (argon2id, then the second factor) and changing the
 * password. Every sign-in attempt counts against the rate limits per email and per address (shared by
 * every node in cluster mode), and against the email's lockout, before any password is checked.
 */
export class SignInService {
  constructor(private readonly o: SignInOptions) {}

  async login(
    input: { email: string; password: string; totp_code?: string | undefined },
    ip: string | null,
    userAgent: string | null,
  ): Promise<SignedIn> {
    const email = normalizeEmail(input.email);
    const anon: Ctx = { actor: { kind: "platform" }, ip, userAgent, totpUsed: false };
    await this.throttle(email, ip);
    const reservation = await this.o.lockout.reserve(email);
    if (!reservation.ok) {
      throw new LatchkeyError("LOGIN_LOCKED", undefined, { retry_after: reservation.retryAfterSeconds });
    }
    // A failure is audited in the company the sign-in would have opened (none for an unknown email).
    const failed = async (
      ctx: Ctx,
      user: UserRow | undefined,
      companyId: string | null,
      reason: "password" | "totp",
    ) => {
      await this.o.db.transaction().execute((tx) =>
        this.o.audit.append(tx, ctx, {
          action: "user.login_failed",
          companyId,
          target: user ? { type: "user", id: user.id } : undefined,
          changes: {
            email,
            reason,
            failures: reservation.failures,
            locked_for_seconds: reservation.lockedForSeconds,
          },
        }),
      );
    };
    // An API credential's username is never a sign-in, even if a person was once given one as an email.
    const user = looksLikeCredentialUsername(email)
      ? undefined
      : await this.o.db.selectFrom("users").selectAll().where("email", "=", email).executeTakeFirst();
    // An unknown email still pays for one argon2 verification, so timing does not tell it apart.
    const passwordOk = await verify(user ? user.password_hash : await DUMMY_HASH, input.password);
    // One login, several companies: the sign-in opens the company last used (see homeMembership). A
    // person disabled in every company has nowhere to sign in to, and is refused like a wrong password.
    const member = user ? await homeMembership(this.o.db, user.id) : undefined;
    if (!user || !passwordOk || !member) {
      const companyId = member?.company_id ?? null;
      await failed(anon, user, companyId, "password");
      throw new LatchkeyError("INVALID_LOGIN");
    }
    const actorCtx: Ctx = { ...anon, actor: this.o.sessions.actorFor(member, "") };
    let totpUsed = false;
    if (user.totp_secret !== null) {
      if (!input.totp_code) {
        // The password was right: this attempt was no failure. Wrong codes do count, so a person who
        // knows the password still cannot guess codes at sign-in faster than the lockout allows.
        await this.o.lockout.release(email);
        throw new LatchkeyError("TOTP_REQUIRED", "Enter the code from your authenticator app.", {}, 401);
      }
      if (!(await this.o.secondFactor.use(user, input.totp_code, actorCtx))) {
        await failed(actorCtx, user, member.company_id, "totp");
        throw new LatchkeyError("TOTP_INVALID", undefined, {}, 401);
      }
      totpUsed = true;
    }
    await this.o.lockout.clear(email);
    const company = await this.o.db
      .selectFrom("companies")
      .select(["id", "name", "slug"])
      .where("id", "=", member.company_id)
      .executeTakeFirstOrThrow();
    const session = await this.o.db.transaction().execute(async (tx) => {
      const s = await this.o.sessions.open(tx, user, member.company_id, ip, userAgent);
      await this.o.audit.append(
        tx,
        { ...actorCtx, totpUsed },
        { action: "user.login", companyId: member.company_id, target: { type: "user", id: user.id } },
      );
      return s;
    });
    return { session, user: userView(member), company };
  }

  /**
   * Counts the attempt against the per-email and per-address limits, all or nothing, refusing it with
   * the exact wait when either is full. These bound spraying one password over many accounts from one
   * address, and one account from many addresses; the lockout bounds wrong passwords for one email.
   */
  private async throttle(email: string, ip: string | null): Promise<void> {
    const subjects: LimitSubject[] = [];
    if (this.o.emailLimits.length > 0)
      subjects.push({ id: `login-email:${email}`, limits: this.o.emailLimits });
    if (ip && this.o.ipLimits.length > 0) subjects.push({ id: `login-ip:${ip}`, limits: this.o.ipLimits });
    if (subjects.length === 0) return;
    const decision = await this.o.limiter.consume(subjects, this.o.clock().getTime());
    if (!decision.allowed) {
      throw new LatchkeyError("RATE_LIMITED", "Too many sign-in attempts. Try again later.", {
        retry_after: decision.retryAfterSeconds,
      });
    }
  }

  /** Changes a password; the session is replaced (privilege change), others end. */
  async changePassword(
    ctx: Ctx & { actor: { kind: "user" } },
    current: string,
    next: string,
  ): Promise<SessionInfo> {
    const user = await userById(this.o.db, ctx.actor.userId);
    // The current password is a password guess like a sign-in's: a stolen session must not try them at
    // argon2 speed. It takes its place in the same lockout before it is checked.
    const reservation = await this.o.lockout.reserve(user.email);
    if (!reservation.ok) {
      throw new LatchkeyError("LOGIN_LOCKED", undefined, { retry_after: reservation.retryAfterSeconds });
    }
    if (!(await verify(user.password_hash, current))) {
      throw new LatchkeyError("INVALID_LOGIN", "The current password is wrong.", {
        field: "current_password",
      });
    }
    await this.o.lockout.clear(user.email);
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
      const now = this.o.clock();
      await tx
        .updateTable("users")
        .set({
          password_hash: passwordHash,
          must_change_password: false,
          password_changed_at: now,
          // The pending 2FA secret stays the same across reloads (see SecondFactorService.setup), so
          // whoever held the old password may have fetched it: a new password starts enrolment afresh.
          totp_pending_secret: null,
          updated_at: now,
        })
        .where("id", "=", user.id)
        .execute();
      // One login: its password changes for every company, and every company's sessions end.
      await this.o.sessions.endAll(tx, user.id);
      await this.o.audit.append(tx, ctx, {
        action: "user.password_changed",
        companyId: ctx.actor.companyId,
        target: { type: "user", id: user.id },
      });
      return this.o.sessions.open(tx, user, ctx.actor.companyId, ctx.ip, ctx.userAgent);
    });
  }
}
