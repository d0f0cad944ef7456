import type { Environment } from "./key-format.ts";
import type { Role } from "./roles.ts";

/**
 * Who is acting. Every service call that changes something takes one, so it can be checked against
 * what the actor holds and recorded in the audit trail. `environment` is the world the actor acts in:
 * a key's own, its API user's, or the one a person's console is switched to. The platform acts in live.
 */
export type Actor =
  | { kind: "platform" }
  | {
      /**
       * Latchkey itself, doing what a company's policy asks without anyone asking at that moment (the
       * expiry scheduler revoking an unused key). It acts in the environment of what it changes and
       * holds nothing, so it can grant nothing.
       */
      kind: "system";
      job: "expiry";
      companyId: string;
      environment: Environment;
      permissions: readonly string[];
    }
  | {
      kind: "key";
      keyId: string;
      prefix: string;
      companyId: string | null;
      credentialId: string | null;
      environment: Environment;
      /** The merchant account it acts within (its API user's); null: the company as a whole. */
      merchantAccountId: string | null;
      permissions: readonly string[];
      /** The same permissions as a set, built once when the key is loaded. */
      permissionSet?: ReadonlySet<string>;
    }
  | {
      kind: "credential";
      credentialId: string;
      companyId: string;
      environment: Environment;
      merchantAccountId: string | null;
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
      environment: Environment;
      /**
       * The merchant account a person acts within (their membership's); absent or null: the whole
       * company. See core/access/merchant-accounts.ts.
       */
      merchantAccountId?: string | null;
      permissions: readonly string[];
    };

export function actorRef(actor: Actor): string {
  switch (actor.kind) {
    case "platform":
      return "platform";
    case "system":
      return `system:${actor.job}`;
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
    case "system":
      return `${actor.job} policy`;
    case "key":
      return actor.prefix;
    case "credential":
      return actor.credentialId;
    case "user":
      return actor.email;
  }
}
