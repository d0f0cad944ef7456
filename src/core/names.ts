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

/**
 * The two kinds of API user the Adyen doc names, each with its username shape: a web service user
 * (`ws_123456@Company.Acme`) and a legal-entity-management user (`ws_123456@Scope.Company_Acme`).
 * The kind is read from the username, so it can never drift from it; it is fixed at creation.
 */
export const USERNAME_FORMATS = ["web_service", "legal_entity_management"] as const;
export type UsernameFormat = (typeof USERNAME_FORMATS)[number];

const REALM: Record<UsernameFormat, string> = {
  web_service: "Company.",
  legal_entity_management: "Scope.Company_",
};

/** The Adyen-style username of a dedicated API user, of the given format. */
export function credentialUsername(slug: string, format: UsernameFormat = "web_service"): string {
  return `ws_${String(randomInt(0, 1_000_000)).padStart(6, "0")}@${REALM[format]}${slug}`;
}

export const USERNAME_PATTERN = /^ws_\d{6}@(?:Company\.|Scope\.Company_)[A-Za-z0-9]{1,48}$/;

/** The format of a credential's username (anything not LEM-shaped is a web service username). */
export function usernameFormat(username: string): UsernameFormat {
  return /^ws_\d{6}@Scope\.Company_/.test(username) ? "legal_entity_management" : "web_service";
}

/** True for anything shaped like an API credential's username, which a person may never sign in as. */
export function looksLikeCredentialUsername(value: string): boolean {
  return /^ws_\d{6}@(?:company\.|scope\.company_)/i.test(value.trim());
}
