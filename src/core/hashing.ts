import { createHash, createHmac, hash, timingSafeEqual } from "node:crypto";

/**
 * Keys, secrets and generated passwords are long random strings, so a keyed hash is enough:
 * HMAC-SHA-256 with the server secret means a stolen table cannot be checked offline without it.
 */
export function hashToken(serverSecret: string, token: string): string {
  return createHmac("sha256", serverSecret).update(token).digest("base64url");
}

/** Constant-time comparison of two strings of any length (both are hashed first so lengths never leak). */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

/**
 * What the in-memory verification cache is keyed by: SHA-256 of the key. It is a fraction of the HMAC's
 * cost, so a cached verification never computes the HMAC, and like the HMAC it cannot be turned back
 * into the key (keys carry 190 random bits). It is never stored.
 */
export function fingerprint(token: string): string {
  return hash("sha256", token, "base64url");
}
