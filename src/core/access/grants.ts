import type { Actor } from "../actor.ts";
import { type Catalog, expandPreset, type Preset, unknownPermissions } from "../catalog.ts";
import { LatchkeyError } from "../errors.ts";
import { normalizeAllowlist } from "../ip.ts";
import { compileLimits, type RateLimit } from "../rate-limit.ts";

/** What an actor may grant: a platform operator anything, anyone else only what they hold. */
export function grantable(actor: Actor): ReadonlySet<string> | "all" {
  return actor.kind === "platform" ? "all" : new Set(actor.permissions);
}

/** What an API user is given: the roles it has enabled, and permissions one by one. */
export interface CredentialGrant {
  roles: readonly string[];
  permissions: readonly string[];
}

/**
 * What an API user holds: the permissions of its roles and its single permissions, together. A role the
 * catalog no longer defines (the operator removed it) grants nothing; a role's permissions are the
 * catalog's as loaded at start. Everything that decides or bounds what a credential can do uses this.
 */
export function credentialPermissions(catalog: Catalog, grant: CredentialGrant): string[] {
  if (grant.roles.length === 0) return [...grant.permissions];
  const out = new Set(grant.permissions);
  for (const id of grant.roles) for (const p of catalog.rolesById.get(id)?.permissions ?? []) out.add(p);
  return [...out];
}

/** The roles of `roles` the catalog does not define (shown as unknown; they grant nothing). */
export function unknownRoles(catalog: Catalog, roles: readonly string[]): string[] {
  return roles.filter((id) => !catalog.rolesById.has(id));
}

/**
 * Checks what someone wants to give an API user. Each new role must be in the catalog (a role the
 * catalog dropped may stay where it was, granting nothing: `kept`); the result must hold at least one
 * enabled role or permission (GRANT_EMPTY); and the caller must hold every permission it comes to,
 * roles through their permissions (nobody grants more than they hold). Returns the canonical grant.
 */
export function checkCredentialGrant(
  catalog: Catalog,
  wanted: CredentialGrant,
  caller: ReadonlySet<string> | "all",
  kept: readonly string[] = [],
): { roles: string[]; permissions: string[] } {
  const roles = [...new Set(wanted.roles)];
  const unknown = roles.filter((id) => !catalog.rolesById.has(id) && !kept.includes(id));
  if (unknown.length > 0) {
    throw new LatchkeyError("UNKNOWN_ROLE", `Not a role of the catalog: ${unknown.join(", ")}.`, {
      field: "roles",
      roles: unknown,
    });
  }
  const permissions = checkGrant(catalog, wanted.permissions, [caller]);
  const known = roles.filter((id) => catalog.rolesById.has(id));
  if (known.length === 0 && permissions.length === 0) {
    throw new LatchkeyError("GRANT_EMPTY", undefined, { field: "permissions" });
  }
  const fromRoles = credentialPermissions(catalog, { roles: known, permissions: [] });
  checkGrant(catalog, fromRoles, [caller], "roles");
  return { roles, permissions };
}

/**
 * What a key may do: what it was given, cut to what its API user holds now. A key never does more than
 * its API user, even after the user's permissions shrank. Verification and the views use this. A change
 * that could loosen a key checks all it was given instead (see `assertHoldsAll`), since its API user may
 * be given the rest back.
 */
export function effectivePermissions(
  keyPermissions: readonly string[],
  credentialPermissions: readonly string[] | null,
): string[] {
  if (credentialPermissions === null) return [...keyPermissions];
  const held = new Set(credentialPermissions);
  return keyPermissions.filter((p) => held.has(p));
}

/**
 * The permissions a new key gets. None asked for: everything its API user holds that the caller could
 * also grant. Asked for by name: each must be in the catalog and held by both (or PERMISSION_NOT_HELD).
 * A preset means "this level of what the API user may do", so it is cut to what both hold. A key with
 * nothing left is refused.
 */
export function keyGrant(
  catalog: Catalog,
  asked: {
    permissions?: readonly string[] | undefined;
    preset?: Preset | Record<string, Preset> | undefined;
  },
  credential: readonly string[],
  caller: ReadonlySet<string> | "all",
): string[] {
  const held = new Set(credential);
  const callerHas = (p: string) => caller === "all" || caller.has(p);
  let permissions: string[];
  if (asked.permissions === undefined && asked.preset === undefined) {
    permissions = credential.filter(callerHas);
  } else {
    const explicit = checkGrant(catalog, asked.permissions ?? [], [held, caller]);
    let fromPreset: string[] = [];
    if (asked.preset !== undefined) {
      try {
        fromPreset = expandPreset(catalog, asked.preset);
      } catch (err) {
        throw new LatchkeyError("VALIDATION_ERROR", (err as Error).message, { field: "preset" });
      }
      fromPreset = fromPreset.filter((p) => held.has(p) && callerHas(p));
    }
    permissions = [...new Set([...explicit, ...fromPreset])];
  }
  if (permissions.length === 0) {
    throw new LatchkeyError("VALIDATION_ERROR", "A key needs at least one permission its API user holds.", {
      field: "permissions",
    });
  }
  return permissions;
}

/**
 * A change that can widen what a key or API user reaches (its allowlist, limits, a later expiry, a
 * reactivation, a new key or password for it) needs a caller who holds all it can do: otherwise a
 * caller could weaken the guard on something stronger than itself. Revoking only ever reduces access,
 * so anyone who may manage keys may revoke.
 */
export function assertHoldsAll(catalog: Catalog, actor: Actor, permissions: readonly string[]): void {
  checkGrant(catalog, permissions, [grantable(actor)]);
}

/**
 * Checks a permission list someone wants to grant: every entry must be in the catalog and held by
 * every limit given (the credential a key belongs to, the caller minting it). Nobody grants what they lack.
 */
export function checkGrant(
  catalog: Catalog,
  wanted: readonly string[],
  limits: readonly (ReadonlySet<string> | "all")[],
  field = "permissions",
): string[] {
  const unique = [...new Set(wanted)];
  const unknown = unknownPermissions(catalog, unique);
  if (unknown.length > 0) {
    throw new LatchkeyError("UNKNOWN_PERMISSION", `Not in the permission catalog: ${unknown.join(", ")}.`, {
      field,
      permissions: unknown,
    });
  }
  const lacking = unique.filter((p) => limits.some((l) => l !== "all" && !l.has(p)));
  if (lacking.length > 0) {
    throw new LatchkeyError(
      "PERMISSION_NOT_HELD",
      `Cannot grant permissions not held: ${lacking.join(", ")}.`,
      {
        field,
        permissions: lacking,
      },
    );
  }
  return unique;
}

/** Validates and canonicalises an allowlist at write time, so a bad entry never surprises a request. */
export function checkAllowlist(entries: readonly string[] | undefined, field = "allowed_ips"): string[] {
  if (entries === undefined) return [];
  const result = normalizeAllowlist(entries);
  if (!result.ok) {
    throw new LatchkeyError("INVALID_IP_RULE", `"${result.invalid}": ${result.reason}.`, {
      field,
      entry: result.invalid,
    });
  }
  return result.entries;
}

/** Validates rate limits at write time; stored as given (`{limit, window}`), compiled when read. */
export function checkRateLimits(
  limits: readonly RateLimit[] | undefined,
  field = "rate_limits",
): RateLimit[] {
  if (limits === undefined) return [];
  const result = compileLimits(limits);
  if (!result.ok) throw new LatchkeyError("INVALID_RATE_LIMIT", `Rate limits: ${result.reason}.`, { field });
  return result.limits.map(({ limit, window }) => ({ limit, window }));
}
