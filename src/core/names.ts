import { randomInt } from "node:crypto";

/**
 * A company's slug as it appears in credential usernames (`ws_123456@Company.AcmePayments`):
 * ASCII letters and digits of its name in CamelCase. Names with none fall back to "Company".
 */
export function companySlug(name: string): string {
  const words = name
    .normalize("NFKD")
    // Accents become separate marks under NFKD; dropping them keeps "Müller" one word.
    .replace(/\p{M}/gu, "")
    .replace(/[^A-Za-z0-9]+/g, " ")
    .trim()
    .split(" ")
    .filter(Boolean);
  const slug = words
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("")
    .slice(0, 40);
  return slug.length > 0 ? slug : "Company";
}

/** The Adyen-style username of a dedicated API user. */
export function credentialUsername(slug: string): string {
  return `ws_${String(randomInt(0, 1_000_000)).padStart(6, "0")}@Company.${slug}`;
}

export const USERNAME_PATTERN = /^ws_\d{6}@Company\.[A-Za-z0-9]{1,48}$/;

/** True for anything shaped like an API credential's username, which a person may never sign in as. */
export function looksLikeCredentialUsername(value: string): boolean {
  return /^ws_\d{6}@company\./i.test(value.trim());
}
