import { randomBytes } from "node:crypto";
import { LatchkeyError } from "./errors.ts";
import { compileAllowlist, type IpMatcher, parseIp } from "./ip.ts";

/*
 * The rules of webhooks that need no I/O: what a URL may be, which addresses Latchkey may connect to,
 * the retry schedule, and the shape of signing secrets.
 */

/** The type of the event `POST /v1/webhooks/:id/test` sends, to that one endpoint only. */
export const TEST_EVENT_TYPE = "webhook.test";

export const MAX_URL_LENGTH = 2048;

/**
 * A signing secret in the Standard Webhooks form: `whsec_` and the base64 of 32 random bytes (the spec
 * asks for 24 to 64), the form the `standardwebhooks` verifier takes as it is.
 */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

/** How long a replaced signing secret keeps signing beside the new one. */
export const SECRET_OVERLAP_SECONDS = 24 * 3600;

/**
 * Seconds to wait after the first, second, … failed attempt (the Standard Webhooks schedule). After the
 * last one fails the delivery is given up and the endpoint disabled: it failed for about three days.
 */
export const RETRY_SCHEDULE_SECONDS = [
  5,
  5 * 60,
  30 * 60,
  2 * 3600,
  5 * 3600,
  10 * 3600,
  14 * 3600,
  20 * 3600,
  24 * 3600,
] as const;

/** Up to this much later than the schedule says, so endpoints that failed together are not retried together. */
export const JITTER = 0.1;

/** A `Retry-After` longer than this is cut to it: a receiver cannot park its queue for weeks. */
export const MAX_RETRY_AFTER_SECONDS = 24 * 3600;

/**
 * When to try again after failed attempt number `attempt` (1-based), or null when it was the last.
 * `retryAfter` (seconds the receiver asked for) replaces the schedule's wait, capped.
 */
export function nextAttemptAt(
  attempt: number,
  now: Date,
  retryAfter: number | null,
  random: () => number = Math.random,
): Date | null {
  const base = RETRY_SCHEDULE_SECONDS[attempt - 1];
  if (base === undefined) return null;
  const seconds =
    retryAfter !== null ? Math.min(retryAfter, MAX_RETRY_AFTER_SECONDS) : base * (1 + JITTER * random());
  return new Date(now.getTime() + Math.round(seconds * 1000));
}

/** `Retry-After` as seconds from `now`: delay-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: Date): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text);
  // An HTTP date names its day and month; Date.parse would also read "-5" as a year.
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return null;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}

/**
 * An endpoint URL as Latchkey accepts it: http or https, no user name or password in it (they would be
 * sent to the receiver in clear and shown in every list), no fragment, a host. Returns the normalised
 * URL; throws VALIDATION_ERROR naming `url` otherwise. The host's addresses are checked separately.
 */
export function checkWebhookUrl(text: string): URL {
  const invalid = (why: string) => new LatchkeyError("VALIDATION_ERROR", why, { field: "url" });
  if (text.length > MAX_URL_LENGTH) throw invalid(`url must be at most ${MAX_URL_LENGTH} characters.`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid("url must be an absolute http or https URL.");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw invalid("url must be http or https.");
  if (url.username !== "" || url.password !== "")
    throw invalid("url must not carry a user name or password.");
  if (url.hash !== "") throw invalid("url must not have a #fragment.");
  if (url.hostname === "") throw invalid("url must name a host.");
  return url;
}

/** The host of a URL as an address when it is an IP literal (`[::1]` → `::1`), else null. */
export function literalAddress(url: URL): string | null {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return parseIp(host) ? host : null;
}

/**
 * Addresses no webhook goes to unless the operator allows them: this host, private networks, link-local
 * (cloud metadata services live at 169.254.169.254), and every other range that is not ordinary public
 * unicast (RFC 6890's special-purpose registries). IPv4-mapped IPv6 is read as the IPv4 address.
 */
export const SPECIAL_NETWORKS = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.0.2.0/24",
  "192.88.99.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "198.51.100.0/24",
  "203.0.113.0/24",
  "224.0.0.0/4",
  "240.0.0.0/4",
  "::/128",
  "::1/128",
  "64:ff9b::/96",
  "64:ff9b:1::/48",
  "100::/64",
  "2001::/23",
  "2001:db8::/32",
  "2002::/16",
  "fc00::/7",
  "fe80::/10",
  "fec0::/10",
  "ff00::/8",
] as const;

const special = compileAllowlist(SPECIAL_NETWORKS);

/**
 * Which addresses deliveries may connect to: public unicast ones, and those in `allowed` (the operator's
 * `LATCHKEY_WEBHOOK_ALLOWED_NETWORKS`, e.g. `127.0.0.1/32` for a receiver on the same host). Compiled once.
 */
export function compileDestinationRule(allowed: readonly string[]): IpMatcher {
  const operator = allowed.length > 0 ? compileAllowlist(allowed) : () => false;
  return (ip) => parseIp(ip) !== null && (operator(ip) || !special(ip));
}
