import { LatchkeyError } from "../../core/errors.ts";
import type { UserView } from "../../core/views.ts";
import type { Db } from "../../store/repositories.ts";
import type { MembershipRow, UserRow } from "../../store/schema.ts";

/** A person as the API shows them: never a hash or a secret (the shape is core's UserView). */
export type { UserView };

/**
 * A person as one company knows them: the login (the person's row) with the membership of that
 * company (its id, role, status and the merchant account it is limited to, if any). Nothing here says which other companies the person belongs to.
 */
export type MemberRow = UserRow &
  Pick<MembershipRow, "company_id" | "role" | "status" | "accepted_at" | "merchant_account_id"> & {
    member_since: Date;
  };

export function userView(row: MemberRow): UserView {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    status: row.status,
    merchant_account_id: row.merchant_account_id,
    totp_enrolled: row.totp_secret !== null,
    password_change_required: row.must_change_password,
    // When they joined this company, not when the login was made: the inviter of a person who already
    // had a login learns nothing of the login's age from it.
    created_at: row.member_since.toISOString(),
  };
}

/** People joined with their memberships, for a query to narrow to a company or a person. */
export function membersQuery(db: Db) {
  return db
    .selectFrom("users")
    .innerJoin("memberships", "memberships.user_id", "users.id")
    .selectAll("users")
    .select([
      "memberships.company_id",
      "memberships.role",
      "memberships.status",
      "memberships.accepted_at",
      "memberships.merchant_account_id",
      "memberships.created_at as member_since",
    ]);
}

/** A person in one company, read fresh; undefined when they are not a member there at all. */
export async function memberOf(db: Db, userId: string, companyId: string): Promise<MemberRow | undefined> {
  return membersQuery(db)
    .where("users.id", "=", userId)
    .where("memberships.company_id", "=", companyId)
    .executeTakeFirst();
}

/**
 * The company a person's sign-in opens (and where their own per-person events such as a password reset
 * are audited): the one they last signed in to or switched to while still active there, else their
 * oldest active membership. Undefined: active nowhere.
 */
export async function homeMembership(db: Db, userId: string): Promise<MemberRow | undefined> {
  const person = await db
    .selectFrom("users")
    .select("last_company_id")
    .where("id", "=", userId)
    .executeTakeFirst();
  if (person?.last_company_id) {
    const last = await memberOf(db, userId, person.last_company_id);
    if (last?.status === "active") return last;
  }
  return membersQuery(db)
    .where("users.id", "=", userId)
    .where("memberships.status", "=", "active")
    .orderBy("memberships.created_at", "asc")
    .orderBy("memberships.company_id", "asc")
    .limit(1)
    .executeTakeFirst();
}

/** A person's row, read fresh: every part of the people service decides on what the store holds now. */
export async function userById(db: Db, userId: string): Promise<UserRow> {
  const row = await db.selectFrom("users").selectAll().where("id", "=", userId).executeTakeFirst();
  if (!row) throw new LatchkeyError("NOT_FOUND");
  return row;
}

/** Emails are compared trimmed and lower-cased, so case and spaces never make a second account. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}
