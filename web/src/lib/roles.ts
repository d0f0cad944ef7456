import type { Environment, Role } from "../api/types.ts";

/**
 * What a role may do, mirroring the server's route guards, so the console only offers what will be
 * accepted. The server refuses the rest anyway.
 */
/**
 * A person limited to one merchant account acts within it only: what only the company as a whole has
 * (webhooks, policies, people, setting up merchant accounts, the company's usage) is not theirs.
 */
export const companyLevel = (me: { merchant_account_id?: string | null }) => !me.merchant_account_id;

export const can = {
  managePeople: (role: Role) => role === "owner" || role === "moderator",
  manageApiUsers: (role: Role) => role === "owner" || role === "moderator",
  readAudit: (role: Role) => role === "owner" || role === "moderator",
  manageWebhooks: (role: Role) => role === "owner" || role === "moderator",
  /** Developers write test keys only. */
  writeKey: (role: Role, env: Environment) =>
    role === "owner" || role === "moderator" || (role === "developer" && env === "test"),
  writeAnyKey: (role: Role) => role !== "viewer",
  /** Only an owner makes owners. */
  assignRole: (actor: Role, target: Role) =>
    actor === "owner" || (actor === "moderator" && target !== "owner"),
  /** The expiry policy decides which keys may be made and which are revoked: owners only. */
  setExpiryPolicy: (role: Role) => role === "owner",
  /** Viewers may skip 2FA enrolment: they cannot change anything. */
  mustEnrol: (role: Role) => role !== "viewer",
};

export const ROLE_LABELS: Record<Role, string> = {
  owner: "Owner",
  moderator: "Moderator",
  developer: "Developer",
  viewer: "Viewer",
};
