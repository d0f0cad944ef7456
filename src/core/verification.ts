import type { VerifyCode } from "./errors.ts";
import type { IpMatcher } from "./ip.ts";
import type { Environment } from "./key-format.ts";

/** Everything needed to decide whether a key (or a credential's password) is good, loaded in one lookup. */
export interface VerifiableKey {
  keyId: string | null;
  companyId: string | null;
  credentialId: string | null;
  environment: Environment | null;
  permissions: readonly string[];
  /** The same permissions as a set, when the caller keeps one (a cached key builds it once at load). */
  permissionSet?: ReadonlySet<string>;
  revoked: boolean;
  expiresAt: Date | null;
  /** False when the API credential or its company is inactive. */
  enabled: boolean;
  /** Allowlists compiled once at load; `null` when the list is empty (every address allowed). */
  keyIps: IpMatcher | null;
  credentialIps: IpMatcher | null;
}

export interface VerifyRequirements {
  ip?: string | undefined;
  environment?: Environment | undefined;
  permissions?: readonly string[] | undefined;
}

/**
 * Decides a found key's outcome. The order matters: a dead key says so before anything about
 * the request, so a caller learns nothing about a key's scope from a revoked or expired one.
 * An allowlist with no IP to check against fails closed.
 */
export function decide(key: VerifiableKey, req: VerifyRequirements, now: Date): VerifyCode {
  if (key.revoked) return "REVOKED";
  if (key.expiresAt !== null && key.expiresAt.getTime() <= now.getTime()) return "EXPIRED";
  if (!key.enabled) return "DISABLED";
  if (req.environment !== undefined && key.environment !== null && req.environment !== key.environment) {
    return "ENVIRONMENT_MISMATCH";
  }
  for (const allow of [key.credentialIps, key.keyIps]) {
    if (allow !== null && (req.ip === undefined || !allow(req.ip))) return "IP_NOT_ALLOWED";
  }
  if (req.permissions && req.permissions.length > 0) {
    const held = key.permissionSet ?? new Set(key.permissions);
    if (!req.permissions.every((p) => held.has(p))) return "INSUFFICIENT_PERMISSIONS";
  }
  return "VALID";
}
