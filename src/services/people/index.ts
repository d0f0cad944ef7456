import type { Kysely } from "kysely";
import type { RateLimiter } from "../../cluster/rate-limiter.ts";
import type { Actor } from "../../core/actor.ts";
import type { Catalog } from "../../core/catalog.ts";
import type { CompiledLimit } from "../../core/rate-limit.ts";
import type { Role } from "../../core/roles.ts";
import type { Database, SessionRow, UserRow } from "../../store/schema.ts";
import type { Ctx } from "../actor.ts";
import type { AuditService } from "../audit.ts";
import type { EventOutbox } from "../events.ts";
import { LoginLockout } from "./lockout.ts";
import { PeopleManagement } from "./management.ts";
import { SecondFactorService } from "./second-factor.ts";
import { type SessionInfo, SessionService } from "./sessions.ts";
import { type SignedIn, SignInService } from "./sign-in.ts";
import { StepUpService } from "./step-up.ts";
import type { UserView } from "./users.ts";

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

  constructor(o: PeopleOptions) {
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
    this.signIn = new SignInService({
      ...base,
      sessions: this.sessions,
      secondFactor: this.secondFactor,
      lockout: new LoginLockout({ db: o.db, clock: o.clock }),
      limiter: o.limiter,
      emailLimits,
      ipLimits: o.loginIpLimits ?? emailLimits,
    });
    this.management = new PeopleManagement({ ...base, events: o.events, sessions: this.sessions });
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
  ): Promise<{ actor: Actor & { kind: "user" }; session: SessionRow; user: UserRow } | null> {
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

  totpSetup(ctx: Ctx & { actor: { kind: "user" } }) {
    return this.secondFactor.setup(ctx);
  }

  totpConfirm(ctx: Ctx & { actor: { kind: "user" } }, code: string) {
    return this.secondFactor.confirm(ctx, code);
  }

  /** Step-up for a sensitive action: what the key and credential services ask through their guard. */
  stepUp(actor: Actor & { kind: "user" }, code: string | undefined, ctx: Ctx): Promise<void> {
    return this.stepUpService.verify(actor, code, ctx);
  }

  me(userId: string): Promise<UserView> {
    return this.management.me(userId);
  }

  list(companyId: string): Promise<UserView[]> {
    return this.management.list(companyId);
  }

  invite(ctx: Ctx & { actor: { kind: "user" } }, input: { email: string; role: Role }) {
    return this.management.invite(ctx, input);
  }

  update(
    ctx: Ctx & { actor: { kind: "user" } },
    userId: string,
    patch: { role?: Role | undefined; status?: "active" | "disabled" | undefined },
  ): Promise<UserView> {
    return this.management.update(ctx, userId, patch);
  }
}
