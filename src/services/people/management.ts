import { hash } from "@node-rs/argon2";
import type { Kysely } from "kysely";
import { LatchkeyError } from "../../core/errors.ts";
import { newId } from "../../core/ids.ts";
import { looksLikeCredentialUsername } from "../../core/names.ts";
import { randomBase62 } from "../../core/random.ts";
import { mayAssignRole, type Role } from "../../core/roles.ts";
import type { Db } from "../../store/repositories.ts";
import type { Database } from "../../store/schema.ts";
import type { Ctx } from "../actor.ts";
import type { AuditService } from "../audit.ts";
import type { EventOutbox } from "../events.ts";
import type { SessionService } from "./sessions.ts";
import { normalizeEmail, type UserView, userById, userView } from "./users.ts";

export interface ManagementOptions {
  db: Kysely<Database>;
  clock: () => Date;
  audit: AuditService;
  /** The webhook outbox (user.invited, user.role_changed), written with the change. */
  events: EventOutbox;
  sessions: SessionService;
}

/**
 * A company's people as its owners and moderators manage them: inviting, changing roles, disabling.
 * Only an owner makes or unmakes owners, and a company never loses its last active owner.
 */
export class PeopleManagement {
  constructor(private readonly o: ManagementOptions) {}

  async me(userId: string): Promise<UserView> {
    return userView(await userById(this.o.db, userId));
  }

  async list(companyId: string): Promise<UserView[]> {
    const rows = await this.o.db
      .selectFrom("users")
      .selectAll()
      .where("company_id", "=", companyId)
      .orderBy("id", "asc")
      .execute();
    return rows.map(userView);
  }

  /**
   * Invites a person with a temporary password, shown once; they must change it at first sign-in.
   * `withLink` (mail is configured) writes an invitation link in the same transaction instead, and the
   * password made here is one nobody knows.
   */
  async invite(
    ctx: Ctx & { actor: { kind: "user" } },
    input: { email: string; role: Role },
    withLink?: (tx: Db, user: { id: string }) => Promise<string>,
  ) {
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
    const temporaryPassword = randomBase62(20);
    const passwordHash = await hash(temporaryPassword, { algorithm: 2 });
    const now = this.o.clock();
    const id = newId("usr", now);
    const link = await this.o.db.transaction().execute(async (tx) => {
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
      // People are company-wide, which is live's: their events go to live endpoints.
      const created = await tx.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
      await this.o.events.emit(tx, {
        companyId: ctx.actor.companyId,
        environment: "live",
        type: "user.invited",
        data: { ...userView(created), invited_by: ctx.actor.userId },
      });
      return withLink ? await withLink(tx, { id }) : null;
    });
    this.o.events.committed();
    return { id, email, role: input.role, temporary_password: temporaryPassword, link };
  }

  /** Changes a person's role or status; either ends their sessions, so the change holds at once. */
  async update(
    ctx: Ctx & { actor: { kind: "user" } },
    userId: string,
    patch: { role?: Role | undefined; status?: "active" | "disabled" | undefined },
  ): Promise<UserView> {
    const companyId = ctx.actor.companyId;
    const updated = await this.o.db.transaction().execute(async (tx) => {
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
        .set({ role, status, updated_at: this.o.clock() })
        .where("id", "=", row.id)
        .execute();
      // A change of privilege ends the person's sessions; they sign in again with the new role.
      await this.o.sessions.endAll(tx, row.id);
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
          data: { ...userView({ ...row, role, status }), previous_role: row.role },
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
    this.o.events.committed();
    return updated;
  }
}
