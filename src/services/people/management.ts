import { hash } from "@node-rs/argon2";
import type { Kysely } from "kysely";
import { assertCompanyLevel } from "../../core/access/merchant-accounts.ts";
import { LatchkeyError } from "../../core/errors.ts";
import { looksLikeCredentialUsername } from "../../core/names.ts";
import { randomBase62 } from "../../core/random.ts";
import { mayAssignRole, type Role } from "../../core/roles.ts";
import { type Db, users } from "../../store/repositories.ts";
import type { Database } from "../../store/schema.ts";
import type { Ctx } from "../actor.ts";
import type { AuditService } from "../audit.ts";
import type { EventOutbox } from "../events.ts";
import { usableMerchantAccount } from "../merchant-accounts.ts";
import type { SessionService } from "./sessions.ts";
import { memberOf, membersQuery, normalizeEmail, type UserView, userView } from "./users.ts";

export interface ManagementOptions {
  db: Kysely<Database>;
  clock: () => Date;
  audit: AuditService;
  /** The webhook outbox (user.invited, user.role_changed), written with the change. */
  events: EventOutbox;
  sessions: SessionService;
  /** Ends the accept links of one membership (see RecoveryService.endMembershipLinks). */
  endOffers: (tx: Db, userId: string, companyId: string) => Promise<void>;
}

/**
 * A company's people as its owners and moderators manage them: inviting, changing roles, disabling.
 * Only an owner makes or unmakes owners, and a company never loses its last active owner. People are
 * managed by the company as a whole: a person limited to one merchant account manages nobody
 * (MERCHANT_ACCOUNT_NOT_ALLOWED), which keeps one account's owner from reaching the company's people.
 */
export class PeopleManagement {
  constructor(private readonly o: ManagementOptions) {}

  async me(userId: string, companyId: string): Promise<UserView> {
    const row = await memberOf(this.o.db, userId, companyId);
    if (!row) throw new LatchkeyError("NOT_FOUND");
    return userView(row);
  }

  /** The company's people, with their membership here; nothing of their other companies. */
  async list(companyId: string): Promise<UserView[]> {
    const rows = await membersQuery(this.o.db)
      .where("memberships.company_id", "=", companyId)
      .orderBy("users.id", "asc")
      .execute();
    return rows.map(userView);
  }

  /**
   * Invites a person into the actor's company. An email with no login yet becomes a person with a
   * temporary password, shown once (they must change it at first sign-in); `withLink` (mail is
   * configured) writes an invitation link in the same transaction instead, and the password made here
   * is one nobody knows. An email that already has a login (in another company) gets an `invited`
   * membership only, and `offer` writes its accept link: the login's password may be known to someone
   * other than the email's owner (another company's inviter was shown it), so the membership grants
   * nothing until the login's person accepts it signed in. Nothing in the audit or webhook event says
   * the login existed. A member (or an invited one) of this company already: EMAIL_TAKEN.
   */
  async invite(
    ctx: Ctx & { actor: { kind: "user" } },
    input: { email: string; role: Role; merchant_account_id?: string | null | undefined },
    offer: (tx: Db, user: { id: string }, companyId: string) => Promise<string>,
    withLink?: (tx: Db, user: { id: string }) => Promise<string>,
  ) {
    assertCompanyLevel(ctx.actor);
    if (!mayAssignRole(ctx.actor.role, input.role)) {
      throw new LatchkeyError("FORBIDDEN", "Only an owner can make someone an owner.", { field: "role" });
    }
    const email = normalizeEmail(input.email);
    if (looksLikeCredentialUsername(email)) {
      throw new LatchkeyError(
        "VALIDATION_ERROR",
        "That is an API credential's username, not a person's email.",
        {
          field: "email",
        },
      );
    }
    // Hashed whether or not the login exists, so the time the answer takes does not tell either.
    const temporaryPassword = randomBase62(20);
    const passwordHash = await hash(temporaryPassword, { algorithm: 2 });
    const now = this.o.clock();
    const companyId = ctx.actor.companyId;
    const made = await this.o.db.transaction().execute(async (tx) => {
      const account = await usableMerchantAccount(
        tx,
        companyId,
        input.merchant_account_id ?? null,
        ctx.actor,
      );
      const person = await users.addMember(tx, {
        email,
        passwordHash,
        companyId,
        role: input.role,
        merchantAccountId: account,
        invitedBy: ctx.actor.userId,
        now,
      });
      if (!person) throw new LatchkeyError("EMAIL_TAKEN", undefined, { field: "email" });
      // The same event whether the login is new or not: it is this company's new person.
      await this.o.audit.append(tx, ctx, {
        action: "user.created",
        companyId,
        target: { type: "user", id: person.id },
        changes: { after: { email, role: input.role, ...(account ? { merchant_account_id: account } : {}) } },
      });
      // People are company-wide, which is live's: their events go to live endpoints.
      const created = await memberOf(tx, person.id, companyId);
      if (!created) throw new Error("the membership just written is missing");
      await this.o.events.emit(tx, {
        companyId,
        environment: "live",
        type: "user.invited",
        data: { ...userView(created), invited_by: ctx.actor.userId },
      });
      const link = !person.existed && withLink ? await withLink(tx, { id: person.id }) : null;
      const acceptLink = person.existed ? await offer(tx, { id: person.id }, companyId) : null;
      return { id: person.id, existed: person.existed, link, acceptLink, account };
    });
    this.o.events.committed();
    return {
      id: made.id,
      email,
      role: input.role,
      merchant_account_id: made.account,
      existed: made.existed,
      temporary_password: made.existed ? null : temporaryPassword,
      link: made.link,
      accept_link: made.acceptLink,
    };
  }

  /**
   * Changes a person's role, status or merchant account (null: the whole company); any of them ends
   * their sessions here, so the change holds at once. The account must be the company's and active.
   */
  async update(
    ctx: Ctx & { actor: { kind: "user" } },
    userId: string,
    patch: {
      role?: Role | undefined;
      status?: "active" | "disabled" | undefined;
      merchant_account_id?: string | null | undefined;
    },
  ): Promise<UserView> {
    assertCompanyLevel(ctx.actor);
    const companyId = ctx.actor.companyId;
    const updated = await this.o.db.transaction().execute(async (tx) => {
      // Lock the company's owners first, so two demotions cannot both pass the last-owner check.
      const owners = await tx
        .selectFrom("memberships")
        .select(["user_id"])
        .where("company_id", "=", companyId)
        .where("role", "=", "owner")
        .where("status", "=", "active")
        .forUpdate()
        .execute();
      const locked = await tx
        .selectFrom("memberships")
        .select("user_id")
        .where("company_id", "=", companyId)
        .where("user_id", "=", userId)
        .forUpdate()
        .executeTakeFirst();
      const row = locked ? await memberOf(tx, userId, companyId) : undefined;
      if (!row) throw new LatchkeyError("NOT_FOUND", "No such person.");
      const role = patch.role ?? row.role;
      // An offer not yet accepted is never made active by an inviter: enabling one that was disabled
      // before it was accepted brings it back to invited (a reinvite then sends a link).
      const wanted = patch.status ?? row.status;
      const status =
        wanted === "active" &&
        row.status !== "active" &&
        (row.status === "invited" || row.accepted_at === null)
          ? "invited"
          : wanted;
      const account =
        patch.merchant_account_id === undefined || patch.merchant_account_id === row.merchant_account_id
          ? row.merchant_account_id
          : await usableMerchantAccount(tx, companyId, patch.merchant_account_id, ctx.actor);
      const after = { ...row, role, status, merchant_account_id: account };
      if (role === row.role && status === row.status && account === row.merchant_account_id) {
        return userView(row);
      }
      // A moderator neither makes nor unmakes owners.
      if (!mayAssignRole(ctx.actor.role, role) || !mayAssignRole(ctx.actor.role, row.role)) {
        throw new LatchkeyError("FORBIDDEN", "Only an owner can change an owner or make one.");
      }
      const losesOwner =
        row.role === "owner" && row.status === "active" && (role !== "owner" || status !== "active");
      if (losesOwner && owners.length <= 1) throw new LatchkeyError("LAST_OWNER");
      await tx
        .updateTable("memberships")
        .set({ role, status, merchant_account_id: account, updated_at: this.o.clock() })
        .where("user_id", "=", row.id)
        .where("company_id", "=", companyId)
        .execute();
      // A change of privilege ends the person's sessions in this company; they sign in again with the
      // new role or merchant account. Their sessions in other companies hold other memberships, which did not change.
      await this.o.sessions.endAll(tx, row.id, companyId);
      // A disabled offer cannot be accepted: its link dies with it.
      if (status === "disabled") await this.o.endOffers(tx, row.id, companyId);
      const target = { type: "user", id: row.id };
      if (role !== row.role) {
        await this.o.audit.append(tx, ctx, {
          action: "user.role_changed",
          companyId,
          target,
          changes: { before: { role: row.role }, after: { role } },
        });
        await this.o.events.emit(tx, {
          companyId,
          environment: "live",
          type: "user.role_changed",
          data: { ...userView(after), previous_role: row.role },
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
      if (account !== row.merchant_account_id) {
        // Its own action, so a trail reader can find who moved a person between accounts.
        await this.o.audit.append(tx, ctx, {
          action: "user.merchant_account_changed",
          companyId,
          target,
          changes: {
            before: { merchant_account_id: row.merchant_account_id },
            after: { merchant_account_id: account },
          },
        });
      }
      return userView(after);
    });
    this.o.events.committed();
    return updated;
  }
}
