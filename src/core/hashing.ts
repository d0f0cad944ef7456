import { createHash, createHmac, timingSafeEqual } from "node:crypto";

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
