import type { Kysely } from "kysely";
import type { RateLimiter } from "../../cluster/rate-limiter.ts";
import { assertCompanyLevel } from "../../core/access/merchant-accounts.ts";
import type { Actor } from "../../core/actor.ts";
import type { Catalog } from "../../core/catalog.ts";
import { totpEnrolledMail } from "../../core/mail-texts.ts";
import type { CompiledLimit } from "../../core/rate-limit.ts";
import type { Role } from "../../core/roles.ts";
import type { Database, SessionRow } from "../../store/schema.ts";
import type { Ctx } from "../actor.ts";
import type { AuditService } from "../audit.ts";
import type { EventOutbox } from "../events.ts";
import type { MailOutbox } from "../mailer.ts";
import { LoginLockout } from "./lockout.ts";
import { PeopleManagement } from "./management.ts";
import { RecoveryService, type Reinvited } from "./recovery.ts";
import { SecondFactorService } from "./second-factor.ts";
import { type SessionInfo, SessionService } from "./sessions.ts";
import { type SignedIn, SignInService } from "./sign-in.ts";
import { StepUpService } from "./step-up.ts";
import { type MemberRow, type UserView, userView } from "./users.ts";

export type { SessionInfo } from "./sessions.ts";
export type { UserView } from "./users.ts";

export interface PeopleOptions {
  db: Kysely<Database>;
  catalog: Catalog;
  secret: string;
  clock: () => Date;
  audit: AuditService;
  /** The webhook outbox: events are emitted in the transaction of their change. */
  events: EventOutbox;
  /** Counts sign-in attempts and step-up codes: this node's own counters, or Redis in cluster mode. */
  limiter: RateLimiter;
  /** Minutes of inactivity after which a session ends. */
  sessionIdleMinutes?: number;
  /** Hours after sign-in at which a session ends whatever happens. */
  sessionMaxHours?: number;
  issuer?: string;
  /** Sign-in attempt limits, counted per email (and per address unless `loginIpLimits` is given). */
  loginLimits?: readonly CompiledLimit[];
  /** Per-address limits; an office behind one NAT needs more room than one account does. */
  loginIpLimits?: readonly CompiledLimit[];
  /** Mail to people (invitations, reset links, security notices), sent after each change commits. */
  mail: MailOutbox;
  /** The console's address, the base of links in mail. */
  publicUrl: string;
}

/**
 * A company's people, as the HTTP layer sees them: one object over the parts that each do one job
 * (sign-in, sessions, two-factor enrolment, step-up, managing people), built here so that they share
 * one session store, one second factor and one limiter.
 */
export class PeopleService {
  readonly sessions: SessionService;
  readonly secondFactor: SecondFactorService;
  private readonly stepUpService: StepUpService;
  readonly signIn: SignInService;
  readonly management: PeopleManagement;
  readonly recovery: RecoveryService;
  private readonly mail: MailOutbox;

  private readonly clockNow: () => Date;
  private readonly db: Kysely<Database>;
  private readonly publicUrl: string;

  constructor(o: PeopleOptions) {
    this.clockNow = o.clock;
    this.db = o.db;
    this.publicUrl = o.publicUrl;
    const base = { db: o.db, clock: o.clock, audit: o.audit };
    this.sessions = new SessionService({
      ...base,
      catalog: o.catalog,
      ...(o.sessionIdleMinutes !== undefined ? { idleMinutes: o.sessionIdleMinutes } : {}),
      ...(o.sessionMaxHours !== undefined ? { maxHours: o.sessionMaxHours } : {}),
    });
    this.secondFactor = new SecondFactorService({
      ...base,
      secret: o.secret,
      sessions: this.sessions,
      ...(o.issuer !== undefined ? { issuer: o.issuer } : {}),
    });
    this.stepUpService = new StepUpService({
      db: o.db,
      clock: o.clock,
      limiter: o.limiter,
      secondFactor: this.secondFactor,
    });
    const emailLimits = o.loginLimits ?? [];
    const lockout = new LoginLockout({ db: o.db, clock: o.clock });
    this.mail = o.mail;
    this.recovery = new RecoveryService({
      ...base,
      secret: o.secret,
      sessions: this.sessions,
      lockout,
      limiter: o.limiter,
      mail: o.mail,
      publicUrl: o.publicUrl,
      stepUp: (actor, code, ctx) => this.stepUp(actor, code, ctx),
    });
    this.signIn = new SignInService({
      ...base,
      sessions: this.sessions,
      secondFactor: this.secondFactor,
      lockout,
      limiter: o.limiter,
      emailLimits,
      ipLimits: o.loginIpLimits ?? emailLimits,
    });
    this.management = new PeopleManagement({
      ...base,
      events: o.events,
      sessions: this.sessions,
      endOffers: (tx, userId, companyId) => this.recovery.endMembershipLinks(tx, userId, companyId),
    });
  }

  login(
    input: { email: string; password: string; totp_code?: string | undefined },
    ip: string | null,
    userAgent: string | null,
  ): Promise<SignedIn> {
    return this.signIn.login(input, ip, userAgent);
  }

  changePassword(
    ctx: Ctx & { actor: { kind: "user" } },
    current: string,
    next: string,
  ): Promise<SessionInfo> {
    return this.signIn.changePassword(ctx, current, next);
  }

  authenticate(
    token: string,
  ): Promise<{ actor: Actor & { kind: "user" }; session: SessionRow; user: MemberRow } | null> {
    return this.sessions.authenticate(token);
  }

  logout(ctx: Ctx & { actor: { kind: "user" } }): Promise<void> {
    return this.sessions.logout(ctx);
  }

  sessionOf(sessionId: string): Promise<SessionRow> {
    return this.sessions.sessionOf(sessionId);
  }

  csrfMatches(session: SessionRow, given: string | undefined): boolean {
    return this.sessions.csrfMatches(session, given);
  }

  totpSetup(ctx: Ctx & { actor: { kind: "user" } }, opts: { restart?: boolean | undefined } = {}) {
    return this.secondFactor.setup(ctx, opts);
  }

  /** Confirms enrolment, then tells the person by mail that a new device holds their second factor. */
  async totpConfirm(ctx: Ctx & { actor: { kind: "user" } }, code: string) {
    const result = await this.secondFactor.confirm(ctx, code);
    this.mail.deliver({
      kind: "totp_enrolled",
      to: ctx.actor.email,
      ...totpEnrolledMail({ at: this.clockNow(), ip: ctx.ip }),
    });
    return result;
  }

  /** New recovery codes, shown once; the old ones die. Needs a current code (step-up). */
  async regenerateRecoveryCodes(ctx: Ctx & { actor: { kind: "user" } }): Promise<string[]> {
    await this.stepUp(ctx.actor, ctx.secondFactor, ctx);
    return this.secondFactor.regenerateRecoveryCodes({ ...ctx, totpUsed: true });
  }

  forgotPassword(email: string, ip: string | null, userAgent: string | null): Promise<void> {
    return this.recovery.forgotPassword(email, ip, userAgent);
  }

  resetPassword(token: string, newPassword: string, ip: string | null, userAgent: string | null) {
    return this.recovery.resetPassword(token, newPassword, ip, userAgent);
  }

  reinvite(ctx: Ctx & { actor: { kind: "user" } }, userId: string): Promise<Reinvited> {
    assertCompanyLevel(ctx.actor);
    return this.recovery.reinvite(ctx, userId);
  }

  resetTotp(ctx: Ctx & { actor: { kind: "user" } }, userId: string): Promise<void> {
    assertCompanyLevel(ctx.actor);
    return this.recovery.resetTotp(ctx, userId);
  }

  /** Step-up for a sensitive action: what the key and credential services ask through their guard. */
  stepUp(actor: Actor & { kind: "user" }, code: string | undefined, ctx: Ctx): Promise<void> {
    return this.stepUpService.verify(actor, code, ctx);
  }

  me(userId: string, companyId: string): Promise<UserView> {
    return this.management.me(userId, companyId);
  }

  /** The companies the person may act in, for the console's switcher. */
  companies(userId: string) {
    return this.sessions.companiesOf(userId);
  }

  /** Ends this session and opens one in another company of the person (see SessionService). */
  async switchCompany(ctx: Ctx & { actor: { kind: "user" } }, companyId: string) {
    const { session, member } = await this.sessions.switchCompany(ctx, companyId);
    const company = await this.db
      .selectFrom("companies")
      .select(["id", "name", "slug"])
      .where("id", "=", companyId)
      .executeTakeFirstOrThrow();
    return { session, user: userView(member), company };
  }

  /**
   * People are managed by the company as a whole: a person limited to one merchant account neither
   * lists nor invites nor changes anyone (see PeopleManagement).
   */
  list(actor: Actor & { kind: "user" }): Promise<UserView[]> {
    assertCompanyLevel(actor);
    return this.management.list(actor.companyId);
  }

  /**
   * Invites a person. With mail configured they get a link to choose a password (and no temporary
   * password is shown); without, the temporary password is shown once to the inviter, as before.
   * A person who already has a login gets an offer to accept signed in: mailed with its link, or
   * without mail the link is in this answer once, for the inviter to pass on (so without mail the
   * inviter can tell the login existed). The link alone opens nothing: accepting needs the login.
   */
  async invite(
    ctx: Ctx & { actor: { kind: "user" } },
    input: { email: string; role: Role; merchant_account_id?: string | null | undefined },
  ) {
    const byMail = this.mail.sends;
    const made = await this.management.invite(
      ctx,
      input,
      (tx, user, companyId) => this.recovery.issue(tx, user, "membership", companyId),
      byMail ? (tx, user) => this.recovery.issue(tx, user, "invitation") : undefined,
    );
    if (made.link) {
      await this.recovery.mailInvitation(
        { email: made.email, role: made.role, company_id: ctx.actor.companyId },
        made.link,
      );
    }
    if (made.accept_link && byMail) {
      await this.recovery.mailMembership(made.email, ctx.actor.companyId, made.role, made.accept_link);
    }
    return {
      id: made.id,
      email: made.email,
      role: made.role,
      merchant_account_id: made.merchant_account_id,
      invitation_sent: byMail,
      ...(byMail || made.temporary_password === null ? {} : { temporary_password: made.temporary_password }),
      ...(byMail || made.accept_link === null ? {} : { accept_link: made.accept_link }),
    };
  }

  /** Takes a company's offer to this login with its link (see RecoveryService.acceptMembership). */
  acceptMembership(ctx: Ctx & { actor: { kind: "user" } }, token: string) {
    return this.recovery.acceptMembership(ctx, token);
  }

  update(
    ctx: Ctx & { actor: { kind: "user" } },
    userId: string,
    patch: {
      role?: Role | undefined;
      status?: "active" | "disabled" | undefined;
      merchant_account_id?: string | null | undefined;
    },
  ): Promise<UserView> {
    return this.management.update(ctx, userId, patch);
  }
}
