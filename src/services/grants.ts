import { type Catalog, unknownPermissions } from "../core/catalog.ts";
import { LatchkeyError } from "../core/errors.ts";
import { normalizeAllowlist } from "../core/ip.ts";
import { compileLimits, type RateLimit } from "../core/rate-limit.ts";

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
