import { hash } from "@node-rs/argon2";
import type { Kysely } from "kysely";
import type { LimitSubject, RateLimiter } from "../../cluster/rate-limiter.ts";
import type { Actor } from "../../core/actor.ts";
import { LatchkeyError } from "../../core/errors.ts";
import { hashToken, safeEqual } from "../../core/hashing.ts";
import {
  invitationMail,
  membershipInvitedMail,
  passwordResetMail,
  totpResetMail,
} from "../../core/mail-texts.ts";
import { looksLikeCredentialUsername } from "../../core/names.ts";
import { passwordProblem } from "../../core/passwords.ts";
import { randomBase62 } from "../../core/random.ts";
import {
  FORGOT_EMAIL_LIMITS,
  FORGOT_IP_LIMITS,
  recoveryLink,
  TOKEN_LENGTH,
  TOKEN_TTL_MS,
  type TokenPurpose,
} from "../../core/recovery.ts";
import { mayAssignRole, type Role } from "../../core/roles.ts";
import type { Db } from "../../store/repositories.ts";
import type { Database, UserRow } from "../../store/schema.ts";
import type { Ctx } from "../actor.ts";
import type { AuditService } from "../audit.ts";
import type { MailOutbox } from "../mailer.ts";
import type { LoginLockout } from "./lockout.ts";
import type { SessionService } from "./sessions.ts";
import { homeMembership, type MemberRow, memberOf, normalizeEmail } from "./users.ts";

export interface RecoveryOptions {
  db: Kysely<Database>;
  clock: () => Date;
  /** Tokens are stored as their HMAC with this secret, like keys. */
  secret: string;
  audit: AuditService;
  sessions: SessionService;
  lockout: LoginLockout;
  limiter: RateLimiter;
  mail: MailOutbox;
  /** The console's address, the base of every link. */
  publicUrl: string;
  /** The step-up check (a fresh code of the acting person), as every sensitive action asks it. */
  stepUp: (actor: Actor & { kind: "user" }, code: string | undefined, ctx: Ctx) => Promise<void>;
}

type PersonCtx = Ctx & { actor: { kind: "user" } };

/** What a reissued invitation gives the one who reissued it: a password to pass on, or nothing (mailed). */
export interface Reinvited {
  id: string;
  email: string;
  invitation_sent: boolean;
  temporary_password?: string;
  /** Without mail, the fresh accept link of an existing login's pending offer, shown once. */
  accept_link?: string;
}

/**
 * Getting back in: forgotten passwords, invitations by link, reissued invitations and an owner's reset
 * of someone's lost second factor. Links are single-use and expire; only their HMAC is stored; mail
 * leaves after the change has committed.
 */
export class RecoveryService {
  constructor(private readonly o: RecoveryOptions) {}

  /**
   * A single-use link for `user`, written in `tx`; every earlier unused link of the same purpose dies
   * with it (for `membership`, of the same company: each company's offer is its own). Returns the
   * link, for the caller to mail once `tx` has committed.
   */
  async issue(
    tx: Db,
    user: Pick<UserRow, "id">,
    purpose: TokenPurpose,
    companyId: string | null = null,
  ): Promise<string> {
    const now = this.o.clock();
    let earlier = tx
      .updateTable("person_tokens")
      .set({ used_at: now })
      .where("user_id", "=", user.id)
      .where("purpose", "=", purpose)
      .where("used_at", "is", null);
    if (companyId !== null) earlier = earlier.where("company_id", "=", companyId);
    await earlier.execute();
    const token = randomBase62(TOKEN_LENGTH);
    await tx
      .insertInto("person_tokens")
      .values({
        token_hash: hashToken(this.o.secret, token),
        user_id: user.id,
        purpose,
        company_id: companyId,
        created_at: now,
        expires_at: new Date(now.getTime() + TOKEN_TTL_MS[purpose]),
        used_at: null,
      })
      .execute();
    return recoveryLink(this.o.publicUrl, purpose, token);
  }

  /** Ends the unused offer links of one membership (it was disabled, or accepted). */
  async endMembershipLinks(tx: Db, userId: string, companyId: string): Promise<void> {
    await tx
      .updateTable("person_tokens")
      .set({ used_at: this.o.clock() })
      .where("user_id", "=", userId)
      .where("company_id", "=", companyId)
      .where("purpose", "=", "membership")
      .where("used_at", "is", null)
      .execute();
  }

  /** Mails the link that accepts a company's offer to an existing login, once its change has committed. */
  async mailMembership(email: string, companyId: string, role: string, link: string) {
    const company = await this.o.db
      .selectFrom("companies")
      .select("name")
      .where("id", "=", companyId)
      .executeTakeFirstOrThrow();
    this.o.mail.deliver({
      kind: "membership_invited",
      to: email,
      ...membershipInvitedMail({ company: company.name, role, link, ttlMs: TOKEN_TTL_MS.membership }),
    });
  }

  /**
   * The signed-in person takes a company's offer with its link: the link proves they were sent it,
   * the session that they hold the login (password and second factor). A token that is unknown, used,
   * expired, of another purpose or of another login is one answer, TOKEN_INVALID, so a holder of a
   * login learns nothing of offers that are not theirs. Spent, the membership turns active and the
   * acceptance is audited in the joined company's chain.
   */
  async acceptMembership(
    ctx: PersonCtx,
    token: string,
  ): Promise<{ company: { id: string; name: string; slug: string }; role: Role }> {
    const tokenHash = hashToken(this.o.secret, token);
    const now = this.o.clock();
    const invalid = () => new LatchkeyError("TOKEN_INVALID", undefined, { field: "token" });
    return this.o.db.transaction().execute(async (tx) => {
      const found = await tx
        .selectFrom("person_tokens")
        .select(["token_hash", "user_id", "company_id", "purpose", "expires_at", "used_at"])
        .where("token_hash", "=", tokenHash)
        .forUpdate()
        .executeTakeFirst();
      if (
        !found ||
        !safeEqual(found.token_hash, tokenHash) ||
        found.purpose !== "membership" ||
        found.company_id === null ||
        found.user_id !== ctx.actor.userId ||
        found.used_at !== null ||
        found.expires_at.getTime() <= now.getTime()
      ) {
        throw invalid();
      }
      const companyId = found.company_id;
      await tx
        .updateTable("person_tokens")
        .set({ used_at: now })
        .where("token_hash", "=", tokenHash)
        .execute();
      const joined = await tx
        .updateTable("memberships")
        .set({ status: "active", accepted_at: now, updated_at: now })
        .where("user_id", "=", ctx.actor.userId)
        .where("company_id", "=", companyId)
        .where("status", "=", "invited")
        .executeTakeFirst();
      // Disabled or removed since the link was sent: the offer is gone, and the answer says no more.
      if (Number(joined.numUpdatedRows) !== 1) throw invalid();
      const member = await memberOf(tx, ctx.actor.userId, companyId);
      if (!member) throw invalid();
      await this.o.audit.append(
        tx,
        { ...ctx, actor: this.o.sessions.actorFor(member, "") },
        { action: "user.membership_accepted", companyId, target: { type: "user", id: member.id } },
      );
      const company = await tx
        .selectFrom("companies")
        .select(["id", "name", "slug"])
        .where("id", "=", companyId)
        .executeTakeFirstOrThrow();
      return { company, role: member.role };
    });
  }

  /** Mails an invitation link issued in a transaction that has now committed. */
  async mailInvitation(user: { email: string; role: string; company_id: string }, link: string) {
    const company = await this.o.db
      .selectFrom("companies")
      .select("name")
      .where("id", "=", user.company_id)
      .executeTakeFirstOrThrow();
    this.o.mail.deliver({
      kind: "invitation",
      to: user.email,
      ...invitationMail({ company: company.name, role: user.role, link, ttlMs: TOKEN_TTL_MS.invitation }),
    });
  }

  /**
   * Asks for a reset link. The answer is the same whether or not the email has an account, and the
   * limits count the email either way; only an active person's address gets mail.
   */
  async forgotPassword(rawEmail: string, ip: string | null, userAgent: string | null): Promise<void> {
    const email = normalizeEmail(rawEmail);
    const subjects: LimitSubject[] = [{ id: `forgot-email:${email}`, limits: FORGOT_EMAIL_LIMITS }];
    if (ip) subjects.push({ id: `forgot-ip:${ip}`, limits: FORGOT_IP_LIMITS });
    const decision = await this.o.limiter.consume(subjects, this.o.clock().getTime());
    if (!decision.allowed) {
      throw new LatchkeyError("RATE_LIMITED", "Too many reset requests. Try again later.", {
        retry_after: decision.retryAfterSeconds,
      });
    }
    // The rest happens after the answer, so its time says nothing of whether the account exists.
    this.o.mail.later("password_reset", () => this.sendReset(email, ip, userAgent));
  }

  private async sendReset(email: string, ip: string | null, userAgent: string | null): Promise<void> {
    if (looksLikeCredentialUsername(email)) return;
    const person = await this.o.db
      .selectFrom("users")
      .select("id")
      .where("email", "=", email)
      .executeTakeFirst();
    // A person disabled in every company has nothing to sign in to; the request is audited in the
    // company a sign-in would open.
    const user = person ? await homeMembership(this.o.db, person.id) : undefined;
    if (!user) return;
    const ctx: Ctx = { actor: { kind: "platform" }, ip, userAgent, totpUsed: false };
    const link = await this.o.db.transaction().execute(async (tx) => {
      const link = await this.issue(tx, user, "password_reset");
      await this.o.audit.append(tx, ctx, {
        action: "user.password_reset_requested",
        companyId: user.company_id,
        target: { type: "user", id: user.id },
      });
      return link;
    });
    this.o.mail.deliver({
      kind: "password_reset",
      to: user.email,
      ...passwordResetMail({ link, ttlMs: TOKEN_TTL_MS.password_reset }),
    });
  }

  /**
   * Sets a password with a link's token (a reset or an invitation). The token is spent in the same
   * transaction as the new password, by one conditional update, so it works once; the person's
   * sessions end and their other links die. They then sign in, second factor and all.
   */
  async resetPassword(
    token: string,
    newPassword: string,
    ip: string | null,
    userAgent: string | null,
  ): Promise<{ email: string }> {
    const tokenHash = hashToken(this.o.secret, token);
    const now = this.o.clock();
    const found = await this.o.db
      .selectFrom("person_tokens")
      .innerJoin("users", "users.id", "person_tokens.user_id")
      .select([
        "person_tokens.token_hash",
        "person_tokens.purpose",
        "person_tokens.expires_at",
        "person_tokens.used_at",
        "users.id as user_id",
      ])
      .where("person_tokens.token_hash", "=", tokenHash)
      // A company's offer to an existing login sets no password: whoever it was shown to (an inviter
      // without SMTP) must not take the login over with it.
      .where("person_tokens.purpose", "in", ["password_reset", "invitation"])
      .executeTakeFirst();
    // The index finds the row by its HMAC; the stored value is compared again in constant time, so
    // this check never depends on how a byte comparison ends early.
    if (
      !found ||
      !safeEqual(found.token_hash, tokenHash) ||
      found.used_at !== null ||
      found.expires_at.getTime() <= now.getTime()
    ) {
      throw new LatchkeyError("TOKEN_INVALID", undefined, { field: "token" });
    }
    const user = await homeMembership(this.o.db, found.user_id);
    if (!user) throw new LatchkeyError("TOKEN_INVALID", undefined, { field: "token" });
    // Checked before the token is spent, so a weak choice can be corrected with the same link.
    const problem = passwordProblem(newPassword, user.email);
    if (problem) {
      throw new LatchkeyError("WEAK_PASSWORD", `The new password ${problem}.`, { field: "new_password" });
    }
    const passwordHash = await hash(newPassword, { algorithm: 2 });
    const ctx: Ctx = {
      actor: this.o.sessions.actorFor(user, ""),
      ip,
      userAgent,
      totpUsed: false,
    };
    await this.o.db.transaction().execute(async (tx) => {
      const spent = await tx
        .updateTable("person_tokens")
        .set({ used_at: now })
        .where("token_hash", "=", tokenHash)
        .where("purpose", "!=", "membership")
        .where("used_at", "is", null)
        .where("expires_at", ">", now)
        .executeTakeFirst();
      if (Number(spent.numUpdatedRows) !== 1) {
        throw new LatchkeyError("TOKEN_INVALID", undefined, { field: "token" });
      }
      // Every other outstanding link of this person dies: one proof of the inbox is enough. Companies'
      // offers stay: the person accepts them signed in, which is how the email's owner gets there.
      await tx
        .updateTable("person_tokens")
        .set({ used_at: now })
        .where("user_id", "=", user.id)
        .where("purpose", "!=", "membership")
        .where("used_at", "is", null)
        .execute();
      await tx
        .updateTable("users")
        .set({
          password_hash: passwordHash,
          must_change_password: false,
          password_changed_at: now,
          // A pending 2FA secret may have been fetched by whoever held the old password: start afresh.
          totp_pending_secret: null,
          updated_at: now,
        })
        .where("id", "=", user.id)
        .execute();
      await this.o.sessions.endAll(tx, user.id);
      await this.o.audit.append(tx, ctx, {
        action: found.purpose === "invitation" ? "user.invitation_accepted" : "user.password_reset",
        companyId: user.company_id,
        target: { type: "user", id: user.id },
      });
    });
    // Whoever holds the inbox has shown it; the wrong-password count of the old password is moot.
    await this.o.lockout.clear(user.email);
    return { email: user.email };
  }

  /**
   * A new invitation for a person who has not signed in yet: a new temporary password (no SMTP) or a
   * new link (SMTP), and the old one dead either way. Needs the inviter's own fresh code.
   */
  async reinvite(ctx: PersonCtx, userId: string): Promise<Reinvited> {
    await this.o.stepUp(ctx.actor, ctx.secondFactor, ctx);
    const stepped = { ...ctx, totpUsed: true };
    const first = await this.personOf(this.o.db, ctx, userId);
    if (!mayAssignRole(ctx.actor.role, first.role)) {
      throw new LatchkeyError("FORBIDDEN", "Only an owner can reissue an owner's invitation.");
    }
    const byMail = this.o.mail.sends;
    if (first.status === "invited") return this.reoffer(stepped, first, byMail);
    const temporaryPassword = byMail ? null : randomBase62(20);
    // Mailed or not, the old temporary password stops working: a random hash nobody knows replaces it.
    const passwordHash = await hash(temporaryPassword ?? randomBase62(43), { algorithm: 2 });
    const now = this.o.clock();
    const { row, link } = await this.o.db.transaction().execute(async (tx) => {
      // The login's row is held to the end, so a membership made meanwhile (another company inviting
      // the email) waits, and the checks below see the memberships this change applies to.
      await this.lockLogin(tx, userId);
      const row = await this.personOf(tx, ctx, userId);
      if (!mayAssignRole(ctx.actor.role, row.role)) {
        throw new LatchkeyError("FORBIDDEN", "Only an owner can reissue an owner's invitation.");
      }
      // A new temporary password is a new way into every company of the login, so the inviter must be
      // able to do this in each of them.
      await this.mustManageEverywhere(
        tx,
        ctx,
        row.id,
        (actorRole, personRole) =>
          mayAssignRole(actorRole, personRole) && (actorRole === "owner" || actorRole === "moderator"),
      );
      if (row.status !== "active" || !row.must_change_password || row.password_changed_at !== null) {
        throw new LatchkeyError(
          "CONFLICT",
          "This person has already signed in; they can reset their password.",
        );
      }
      await tx
        .updateTable("users")
        // The old temporary password's holder may have fetched the pending 2FA secret: it goes too.
        .set({ password_hash: passwordHash, totp_pending_secret: null, updated_at: now })
        .where("id", "=", row.id)
        .execute();
      // Without mail the old link (if any) must die too; with mail, issuing a new one kills it.
      const link = byMail ? await this.issue(tx, row, "invitation") : null;
      if (!byMail) {
        await tx
          .updateTable("person_tokens")
          .set({ used_at: now })
          .where("user_id", "=", row.id)
          .where("purpose", "!=", "membership")
          .where("used_at", "is", null)
          .execute();
      }
      await this.o.sessions.endAll(tx, row.id);
      await this.o.audit.append(tx, stepped, {
        action: "user.reinvited",
        companyId: row.company_id,
        target: { type: "user", id: row.id },
        changes: { by: byMail ? "email" : "temporary_password" },
      });
      return { row, link };
    });
    if (link) await this.mailInvitation(row, link);
    return {
      id: row.id,
      email: row.email,
      invitation_sent: byMail,
      ...(temporaryPassword ? { temporary_password: temporaryPassword } : {}),
    };
  }

  /**
   * A fresh accept link for an existing login's pending offer; the old link dies. Nothing of the login
   * changes (its password and second factor are its person's), so no other company is involved.
   */
  private async reoffer(ctx: PersonCtx, first: MemberRow, byMail: boolean): Promise<Reinvited> {
    const companyId = ctx.actor.companyId;
    const link = await this.o.db.transaction().execute(async (tx) => {
      await this.lockLogin(tx, first.id);
      const row = await this.personOf(tx, ctx, first.id);
      if (row.status !== "invited") {
        throw new LatchkeyError("CONFLICT", "This person's membership is no longer waiting to be accepted.");
      }
      const link = await this.issue(tx, row, "membership", companyId);
      await this.o.audit.append(tx, ctx, {
        action: "user.reinvited",
        companyId,
        target: { type: "user", id: row.id },
        changes: { by: byMail ? "email" : "accept_link" },
      });
      return link;
    });
    if (byMail) await this.mailMembership(first.email, companyId, first.role, link);
    return {
      id: first.id,
      email: first.email,
      invitation_sent: byMail,
      ...(byMail ? {} : { accept_link: link }),
    };
  }

  /**
   * An owner resets someone's lost second factor: the secret, any pending one and the recovery codes
   * go, the person's sessions end, and they are told by mail. They enrol again at their next sign-in.
   */
  async resetTotp(ctx: PersonCtx, userId: string): Promise<void> {
    await this.o.stepUp(ctx.actor, ctx.secondFactor, ctx);
    const stepped = { ...ctx, totpUsed: true };
    const now = this.o.clock();
    const row = await this.o.db.transaction().execute(async (tx) => {
      // Held to the end: a membership made meanwhile waits, so the check below sees what the reset
      // applies to.
      await this.lockLogin(tx, userId);
      const row = await this.personOf(tx, ctx, userId);
      if (row.id === ctx.actor.userId) {
        throw new LatchkeyError(
          "FORBIDDEN",
          "You cannot reset your own two-factor authentication; use a recovery code, or ask another owner.",
        );
      }
      // An offer not yet accepted is no hold on the login: its inviter touches nothing of it.
      if (row.status === "invited") throw new LatchkeyError("NOT_FOUND", "No such person.");
      if (row.totp_secret === null && row.totp_pending_secret === null) {
        throw new LatchkeyError("CONFLICT", "This person has no two-factor authentication to reset.");
      }
      // The second factor guards the login in every company of the person: an owner of one company may
      // not weaken it for another's. Only an owner in each of the person's companies may reset it.
      await this.mustManageEverywhere(tx, ctx, row.id, (actorRole) => actorRole === "owner");
      await tx
        .updateTable("users")
        .set({
          totp_secret: null,
          totp_pending_secret: null,
          totp_enabled_at: null,
          totp_last_step: null,
          updated_at: now,
        })
        .where("id", "=", row.id)
        .execute();
      await tx.deleteFrom("recovery_codes").where("user_id", "=", row.id).execute();
      await this.o.sessions.endAll(tx, row.id);
      await this.o.audit.append(tx, stepped, {
        action: "user.totp_reset",
        companyId: row.company_id,
        target: { type: "user", id: row.id },
      });
      return row;
    });
    this.o.mail.deliver({
      kind: "totp_reset",
      to: row.email,
      ...totpResetMail({ by: ctx.actor.email, at: now }),
    });
  }

  /** Holds a login's row for the transaction (see users.addMember, which takes the same lock). */
  private async lockLogin(tx: Db, userId: string): Promise<void> {
    await tx.selectFrom("users").select("id").where("id", "=", userId).forUpdate().execute();
  }

  /** A person of the caller's own company; another company's answers 404 as if there were none. */
  private async personOf(db: Db, ctx: PersonCtx, userId: string): Promise<MemberRow> {
    const row = await memberOf(db, userId, ctx.actor.companyId);
    if (!row) throw new LatchkeyError("NOT_FOUND", "No such person.");
    return row;
  }

  /**
   * For what is per person (the password, the second factor): the actor must hold, in every other
   * company the person belongs to (a disabled membership counts: it may be enabled again; an invited
   * one does not: the login is not that company's until its person accepts), an active
   * membership whose role `may` do it there. Otherwise 403, naming no company: the person can recover
   * by themselves (a reset link, a recovery code), or an owner of every one of their companies can.
   */
  private async mustManageEverywhere(
    tx: Db,
    ctx: PersonCtx,
    personId: string,
    may: (actorRole: Role, personRole: Role) => boolean,
  ): Promise<void> {
    const theirs = await tx
      .selectFrom("memberships")
      .select(["company_id", "role"])
      .where("user_id", "=", personId)
      .where("company_id", "!=", ctx.actor.companyId)
      .where("status", "in", ["active", "disabled"])
      .execute();
    for (const m of theirs) {
      const mine = await memberOf(tx, ctx.actor.userId, m.company_id);
      if (mine?.status !== "active" || !may(mine.role, m.role)) {
        throw new LatchkeyError(
          "FORBIDDEN",
          "This person's login is also used elsewhere; they can recover it themselves (a reset link or a recovery code).",
        );
      }
    }
  }
}
