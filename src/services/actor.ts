/**
 * Who is acting. Every service call that changes something takes one, so it can be checked
 * against what the actor holds and recorded (created_by today, the audit trail later).
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
    }
  | { kind: "credential"; credentialId: string; companyId: string; permissions: readonly string[] };

export function actorRef(actor: Actor): string {
  switch (actor.kind) {
    case "platform":
      return "platform";
    case "key":
      return actor.keyId;
    case "credential":
      return actor.credentialId;
  }
}

/** What an actor may grant: a platform operator anything, anyone else only what they hold. */
export function grantable(actor: Actor): ReadonlySet<string> | "all" {
  return actor.kind === "platform" ? "all" : new Set(actor.permissions);
}
