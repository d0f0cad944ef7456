import { crc32 } from "node:zlib";
import { randomBase62, toBase62 } from "./random.ts";

export type Environment = "live" | "test";
/** `sk` is a key, `ss` the secret half of a key + secret pair. */
export type TokenKind = "sk" | "ss";

const RANDOM_LENGTH = 32;
const CHECKSUM_LENGTH = 6;
/** Characters of the random part kept in the displayed prefix (`wp3_live_sk_a1b2c3d4`). */
export const PREFIX_RANDOM_CHARS = 8;
export const BRAND_PATTERN = /^[a-z][a-z0-9]{0,15}$/;

const TOKEN_PATTERN = /^([a-z][a-z0-9]{0,15})_(live|test)_(sk|ss)_([0-9A-Za-z]{32})([0-9A-Za-z]{6})$/;

export interface ParsedToken {
  brand: string;
  environment: Environment;
  kind: TokenKind;
  /** What lists show: brand, environment, kind and the first random characters. */
  prefix: string;
}

function checksum(body: string): string {
  return toBase62(crc32(body), CHECKSUM_LENGTH);
}

/**
 * A new key or secret: `<brand>_<env>_<kind>_<32 base62><6 base62 CRC32>`.
 * The checksum (GitHub's scheme) lets anyone reject a mistyped or made-up token offline,
 * and the fixed shape lets secret scanners find leaked ones.
 *
 * @example generateToken("wp3", "live", "sk") // "wp3_live_sk_…"
 */
export function generateToken(brand: string, environment: Environment, kind: TokenKind): string {
  if (!BRAND_PATTERN.test(brand)) throw new Error(`invalid key brand: ${brand}`);
  const body = `${brand}_${environment}_${kind}_${randomBase62(RANDOM_LENGTH)}`;
  return body + checksum(body);
}

/** Parses a token and checks its checksum; null when malformed, so no lookup is ever made for it. */
export function parseToken(token: string): ParsedToken | null {
  if (token.length > 64) return null;
  const m = TOKEN_PATTERN.exec(token);
  if (!m) return null;
  const [, brand, environment, kind, , sum] = m as unknown as [
    string,
    string,
    Environment,
    TokenKind,
    string,
    string,
  ];
  const body = token.slice(0, token.length - CHECKSUM_LENGTH);
  if (checksum(body) !== sum) return null;
  // The prefix is the token's own beginning: a slice, not a new string (this runs on every verification).
  const prefix = token.slice(0, token.length - CHECKSUM_LENGTH - RANDOM_LENGTH + PREFIX_RANDOM_CHARS);
  return { brand, environment, kind, prefix };
}
