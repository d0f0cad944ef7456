import { LatchkeyError } from "../../core/errors.ts";
import type { UserView } from "../../core/views.ts";
import type { Db } from "../../store/repositories.ts";
import type { UserRow } from "../../store/schema.ts";

/** A person as the API shows them: never a hash or a secret (the shape is core's UserView). */
export type { UserView };

export function userView(row: UserRow): UserView {
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
