import { createHash, randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import type { Actor } from "../../core/actor.ts";
import type { Catalog } from "../../core/catalog.ts";
import { LatchkeyError } from "../../core/errors.ts";
import { safeEqual } from "../../core/hashing.ts";
import { newId } from "../../core/ids.ts";
import { rolePermissions } from "../../core/roles.ts";
import type { Db } from "../../store/repositories.ts";
import type { Database, SessionRow, UserRow } from "../../store/schema.ts";
import type { Ctx } from "../actor.ts";
import type { AuditService } from "../audit.ts";
import { type MemberRow, memberOf } from "./users.ts";

export interface SessionOptions {
  db: Kysely<Database>;
  catalog: Catalog;
  clock: () => Date;
  audit: AuditService;
  /** Minutes of inactivity after which a session ends. */
  idleMinutes?: number;
  /** Hours after sign-in at which a session ends whatever happens. */
  maxHours?: number;
}

/** What a new session gives the browser: the cookie's token (stored only as a hash) and the CSRF token. */
export interface SessionInfo {
  token: string;
  csrf_token: string;
  expires_at: string;
}

/** A session token is a random 256-bit value, so a fast hash is enough to keep it out of the store. */
function tokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/**
 * Dashboard sessions: opened at sign-in (and again whenever privileges change, so a session fixed
 * before the change is worth nothing after it), ended by sign-out, idleness, age or a change of role.
 */
export class SessionService {
  private readonly idleMs: number;
  private readonly maxMs: number;

  constructor(private readonly o: SessionOptions) {
    this.idleMs = (o.idleMinutes ?? 30) * 60_000;
    this.maxMs = (o.maxHours ?? 12) * 3_600_000;
  }

  /**
   * Opens a session for a person in one company, inside the caller's transaction (with the change that
   * needs it). A session acts in that company only; another company needs another session.
   */
  async open(
    db: Db,
    user: Pick<UserRow, "id">,
    companyId: string,
    ip: string | null,
    userAgent: string | null,
    /** The latest end the new session may have: a session that replaces one without a fresh proof of
     * who the person is (a switch of company) keeps the end of the one it replaces. */
    endsBy?: Date,
  ): Promise<SessionInfo> {
    const now = this.o.clock();
    const token = randomBytes(32).toString("base64url");
    const csrf = randomBytes(24).toString("base64url");
    const fullTerm = now.getTime() + this.maxMs;
    const expires = new Date(endsBy ? Math.min(fullTerm, endsBy.getTime()) : fullTerm);
    await db
      .insertInto("sessions")
      .values({
        id: newId("ses", now),
        token_hash: tokenHash(token),
        user_id: user.id,
        company_id: companyId,
        csrf_token: csrf,
        created_at: now,
        last_seen_at: now,
        expires_at: expires,
        ended_at: null,
        ip,
        user_agent: userAgent ? userAgent.slice(0, 512) : null,
      })
      .execute();
    // The next sign-in opens the company this session acts in.
    await db.updateTable("users").set({ last_company_id: companyId }).where("id", "=", user.id).execute();
    return { token, csrf_token: csrf, expires_at: expires.toISOString() };
  }

  /**
   * Ends a person's sessions: in every company for a change to the login (password, second factor),
   * or in `companyId` only for a change to one membership (role, merchant account, disabled), which other companies'
   * sessions do not depend on.
   */
  async endAll(db: Db, userId: string, companyId?: string): Promise<void> {
    let q = db
      .updateTable("sessions")
      .set({ ended_at: this.o.clock() })
      .where("user_id", "=", userId)
      .where("ended_at", "is", null);
    if (companyId !== undefined) q = q.where("company_id", "=", companyId);
    await q.execute();
  }

  actorFor(user: MemberRow, sessionId: string): Actor & { kind: "user" } {
    return {
      kind: "user",
      userId: user.id,
      email: user.email,
      companyId: user.company_id,
      role: user.role,
      sessionId,
      totpEnrolled: user.totp_secret !== null,
      // Live (both worlds) unless the request says the console is switched to Test (see http/auth.ts).
      environment: "live",
      // A membership limited to one merchant account walls the person in as an account's key is.
      merchantAccountId: user.merchant_account_id,
      permissions: [...rolePermissions(user.role, this.o.catalog.permissions)],
    };
  }

  /**
   * The person behind a session cookie, or null when the session is unknown, ended, idle too long or
   * past its absolute end. Last-seen is written at most once a minute, not on every request.
   */
  async authenticate(
    token: string,
  ): Promise<{ actor: Actor & { kind: "user" }; session: SessionRow; user: MemberRow } | null> {
    const session = await this.o.db
      .selectFrom("sessions")
      .selectAll()
      .where("token_hash", "=", tokenHash(token))
      .executeTakeFirst();
    const now = this.o.clock();
    if (!session || session.ended_at !== null) return null;
    if (session.expires_at <= now || session.last_seen_at.getTime() + this.idleMs <= now.getTime())
      return null;
    // The session's company's membership decides: disabled there (or removed) and the session is dead,
    // whatever the person's standing elsewhere.
    const user = await memberOf(this.o.db, session.user_id, session.company_id);
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

  async logout(ctx: Ctx & { actor: { kind: "user" } }): Promise<void> {
    await this.o.db.transaction().execute(async (tx) => {
      await tx
        .updateTable("sessions")
        .set({ ended_at: this.o.clock() })
        .where("id", "=", ctx.actor.sessionId)
        .execute();
      await this.o.audit.append(tx, ctx, {
        action: "user.logout",
        companyId: ctx.actor.companyId,
        target: { type: "user", id: ctx.actor.userId },
      });
    });
  }

  /**
   * Moves a signed-in person to another company of theirs: this session ends and a new one (new token,
   * new CSRF token) opens in the other company, so nothing of the first carries over. Each company's
   * audit chain gets its own half: a sign-out in the one left, a sign-in in the one entered, neither
   * naming the other company. A company where the person has no active membership is 404, as if it
   * did not exist.
   */
  async switchCompany(
    ctx: Ctx & { actor: { kind: "user" } },
    companyId: string,
  ): Promise<{ session: SessionInfo; member: MemberRow }> {
    const member = await memberOf(this.o.db, ctx.actor.userId, companyId);
    if (member?.status !== "active") throw new LatchkeyError("NOT_FOUND", "No such company.");
    const session = await this.o.db.transaction().execute(async (tx) => {
      const ended = await tx
        .updateTable("sessions")
        .set({ ended_at: this.o.clock() })
        .where("id", "=", ctx.actor.sessionId)
        .where("ended_at", "is", null)
        .returning("expires_at")
        .executeTakeFirst();
      // Two switches with one session: the first wins, the second finds it ended.
      if (!ended) throw new LatchkeyError("SESSION_EXPIRED");
      await this.o.audit.append(tx, ctx, {
        action: "user.logout",
        companyId: ctx.actor.companyId,
        target: { type: "user", id: ctx.actor.userId },
      });
      // No password or code was shown for the switch, so it must not buy time: the new session ends
      // when the one signed in with would have (else switching back and forth kept a cookie for ever).
      const s = await this.open(tx, member, companyId, ctx.ip, ctx.userAgent, ended.expires_at);
      await this.o.audit.append(
        tx,
        { ...ctx, actor: this.actorFor(member, "") },
        {
          action: "user.company_switched",
          companyId,
          target: { type: "user", id: member.id },
        },
      );
      return s;
    });
    return { session, member };
  }

  /** The companies a person may act in (active memberships), for the console's switcher. */
  async companiesOf(
    userId: string,
  ): Promise<{ id: string; name: string; slug: string; role: string; merchant_account_id: string | null }[]> {
    return this.o.db
      .selectFrom("memberships")
      .innerJoin("companies", "companies.id", "memberships.company_id")
      .select([
        "companies.id",
        "companies.name",
        "companies.slug",
        "memberships.role",
        "memberships.merchant_account_id",
      ])
      .where("memberships.user_id", "=", userId)
      .where("memberships.status", "=", "active")
      .orderBy("companies.name", "asc")
      .orderBy("companies.id", "asc")
      .execute();
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

  /** Constant-time check of a session's CSRF token. */
  csrfMatches(session: SessionRow, given: string | undefined): boolean {
    return given !== undefined && safeEqual(given, session.csrf_token);
  }
}
