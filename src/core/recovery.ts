import type { CompiledLimit } from "./rate-limit.ts";

/**
 * The rules of getting back in: how long an emailed link lives, how often one may be asked for, and
 * where it points. Pure, so the server and the console agree.
 */

/** A password reset link works for an hour: long enough to reach an inbox, short if the inbox is not yours. */
export const PASSWORD_RESET_TTL_MS = 60 * 60_000;
/** An invitation works for a week: people are invited before they sit down to it. */
export const INVITATION_TTL_MS = 7 * 24 * 60 * 60_000;

export type TokenPurpose = "password_reset" | "invitation" | "membership";

export const TOKEN_TTL_MS: Record<TokenPurpose, number> = {
  password_reset: PASSWORD_RESET_TTL_MS,
  invitation: INVITATION_TTL_MS,
  // Joining another company with an existing login lives as long as an invitation does.
  membership: INVITATION_TTL_MS,
};

/**
 * Forgot-password requests per email: each may send a mail, so a stranger must not fill an inbox.
 * Counted whether or not the email has an account, so a refusal tells nothing either.
 */
export const FORGOT_EMAIL_LIMITS: readonly CompiledLimit[] = [
  { limit: 3, window: "15m", windowMs: 15 * 60_000 },
  { limit: 10, window: "1d", windowMs: 24 * 60 * 60_000 },
];
/** Forgot-password requests per client address, roomier for an office behind one NAT. */
export const FORGOT_IP_LIMITS: readonly CompiledLimit[] = [
  { limit: 20, window: "15m", windowMs: 15 * 60_000 },
  { limit: 100, window: "1d", windowMs: 24 * 60 * 60_000 },
];

/** A token is 43 base62 characters (about 256 bits), the part of a link only its holder has. */
export const TOKEN_PATTERN = "^[0-9A-Za-z]{43}$";
export const TOKEN_LENGTH = 43;

/**
 * The console page a link opens. The token rides in the #fragment, which browsers never send to a
 * server, so it reaches no access log, proxy or Referer; the page posts it to the API.
 */
export function recoveryLink(publicUrl: string, purpose: TokenPurpose, token: string): string {
  const page =
    purpose === "invitation"
      ? "accept-invitation"
      : purpose === "membership"
        ? "accept-membership"
        : "reset-password";
  return `${publicUrl}/${page}#token=${token}`;
}
