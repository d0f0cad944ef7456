import type { Role } from "../core/roles.ts";

/**
 * Who is acting. Every service call that changes something takes one (inside a Ctx), so it can be
 * checked against what the actor holds and recorded in the audit trail.
 */
export type Actor =
  | { kind: "platform" }
  | {
      kind: "key";
      keyId: string;
      prefix: string;
      companyId: string | null;
      credentialId: string | null;
      permissions: readonly string[];
      /** The same permissions as a set, built once when the key is loaded. */
      permissionSet?: ReadonlySet<string>;
    }
  | {
      kind: "credential";
      credentialId: string;
      companyId: string;
      permissions: readonly string[];
      permissionSet?: ReadonlySet<string>;
    }
  | {
      kind: "user";
      userId: string;
      email: string;
      companyId: string;
      role: Role;
      sessionId: string;
      totpEnrolled: boolean;
      permissions: readonly string[];
    };

/** The request around a change: who, from where, and whether a second factor was shown for it. */
export interface Ctx {
  actor: Actor;
  ip: string | null;
  userAgent: string | null;
  totpUsed: boolean;
}

/** A context for work the platform does itself (the CLI, company set-up). */
export function platformCtx(): Ctx {
  return { actor: { kind: "platform" }, ip: null, userAgent: null, totpUsed: false };
}

export function actorRef(actor: Actor): string {
  switch (actor.kind) {
    case "platform":
      return "platform";
    case "key":
      return actor.keyId;
    case "credential":
      return actor.credentialId;
    case "user":
      return actor.userId;
  }
}

/** How the actor appears in the audit trail: the key's prefix, the person's email. Never a secret. */
export function actorLabel(actor: Actor): string | null {
  switch (actor.kind) {
    case "platform":
      return "platform";
    case "key":
      return actor.prefix;
    case "credential":
      return actor.credentialId;
    case "user":
      return actor.email;
  }
}

/** What an actor may grant: a platform operator anything, anyone else only what they hold. */
export function grantable(actor: Actor): ReadonlySet<string> | "all" {
  return actor.kind === "platform" ? "all" : new Set(actor.permissions);
}

/** A developer writes test keys only. */
export function restrictedToTest(actor: Actor): boolean {
  return actor.kind === "user" && actor.role === "developer";
}
