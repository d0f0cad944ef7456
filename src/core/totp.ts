import { Secret, TOTP } from "otpauth";

/** RFC 6238 with the common authenticator-app parameters: SHA-1, 6 digits, 30-second steps. */
const PERIOD = 30;
const DIGITS = 6;

export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

function totp(secret: string, label = "", issuer = "Latchkey"): TOTP {
  return new TOTP({
    issuer,
    label,
    algorithm: "SHA1",
    digits: DIGITS,
    period: PERIOD,
    secret: Secret.fromBase32(secret),
  });
}

export function otpauthUrl(secret: string, account: string, issuer: string): string {
  return totp(secret, account, issuer).toString();
}

/** The code for a moment (tests and the enrolment check use it). */
export function totpCode(secret: string, at: Date): string {
  return totp(secret).generate({ timestamp: at.getTime() });
}

export type TotpCheck = { ok: true; step: number } | { ok: false; reason: "invalid" | "replayed" };

/**
 * Accepts a code from the current step or one step either side (clock drift), and only if its step
 * is later than the last one accepted for this person, so a code works once.
 */
export function checkTotp(secret: string, code: string, at: Date, lastStep: number | null): TotpCheck {
  if (!/^\d{6}$/.test(code)) return { ok: false, reason: "invalid" };
  const delta = totp(secret).validate({ token: code, timestamp: at.getTime(), window: 1 });
  if (delta === null) return { ok: false, reason: "invalid" };
  const step = Math.floor(at.getTime() / 1000 / PERIOD) + delta;
  if (lastStep !== null && step <= lastStep) return { ok: false, reason: "replayed" };
  return { ok: true, step };
}
