/** Passwords people choose: what makes one refused, in words shown to them. */
const COMMON = new Set([
  "password",
  "password1",
  "password123",
  "123456789012",
  "qwertyuiopas",
  "letmein",
  "welcome",
  "iloveyou",
  "administrator",
  "changeme",
  "latchkey",
  "trustno1",
]);

export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 128;

/** Why a new password is too weak, or null when it is acceptable. */
export function passwordProblem(password: string, email: string): string | null {
  if (password.length < MIN_PASSWORD_LENGTH) return `must be at least ${MIN_PASSWORD_LENGTH} characters`;
  if (password.length > MAX_PASSWORD_LENGTH) return `must be at most ${MAX_PASSWORD_LENGTH} characters`;
  const lower = password.toLowerCase();
  if (new Set(lower).size < 5) return "uses too few different characters";
  const stem = lower.replace(/[^a-z]/g, "");
  if (COMMON.has(lower) || COMMON.has(stem)) return "is a commonly used password";
  if (/^(?:0123456789|1234567890|abcdefghij|qwertyuiop)/.test(lower))
    return "is a keyboard or number sequence";
  const local = email.toLowerCase().split("@")[0] ?? "";
  if (local.length >= 4 && lower.includes(local)) return "must not contain your email address";
  return null;
}
