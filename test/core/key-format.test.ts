import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  type Environment,
  generateToken,
  PREFIX_RANDOM_CHARS,
  parseToken,
  type TokenKind,
} from "../../src/core/key-format.ts";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Written here rather than imported, so the test checks the scheme and not the code against itself. */
function base62Crc(body: string): string {
  let n = crc32(body);
  let out = "";
  do {
    out = ALPHABET.charAt(n % 62) + out;
    n = Math.floor(n / 62);
  } while (n > 0);
  return out.padStart(6, "0");
}

const withChecksum = (body: string) => body + base62Crc(body);
const RANDOM32 = "a1b2c3d4E5F6G7H8i9j0KLMNopqrSTUV";

/** Swaps the character at `i` for another base62 character. */
function flip(token: string, i: number): string {
  const c = token.charAt(i);
  const other = c === "A" ? "B" : "A";
  return token.slice(0, i) + other + token.slice(i + 1);
}

describe("generateToken", () => {
  const cases: [string, Environment, TokenKind][] = [
    ["lk", "live", "sk"],
    ["lk", "test", "sk"],
    ["wp3", "live", "ss"],
    ["wp3", "test", "ss"],
    ["abcdefghijklmnop", "live", "sk"],
    ["x", "test", "sk"],
  ];

  it.each(cases)("has the shape <brand>_<env>_<kind>_<38 base62> for %s %s %s", (brand, env, kind) => {
    const token = generateToken(brand, env, kind);
    expect(token).toMatch(new RegExp(`^${brand}_${env}_${kind}_[0-9A-Za-z]{38}$`));
    expect(token.length).toBeLessThanOrEqual(64);
  });

  it.each(cases)("is accepted by parseToken for %s %s %s", (brand, env, kind) => {
    const token = generateToken(brand, env, kind);
    expect(parseToken(token)).toEqual({
      brand,
      environment: env,
      kind,
      prefix: token.slice(0, `${brand}_${env}_${kind}_`.length + 8),
    });
  });

  it.each(["LK", "1lk", "", "a".repeat(17), "w-p", "wp_3", "wé"])("refuses the brand %j", (brand) => {
    expect(() => generateToken(brand, "live", "sk")).toThrow(/brand/);
  });

  it("ends with the base62 CRC32 of everything before it", () => {
    for (let i = 0; i < 200; i++) {
      const token = generateToken("wp3", i % 2 ? "live" : "test", i % 3 ? "sk" : "ss");
      expect(token.slice(-6)).toBe(base62Crc(token.slice(0, -6)));
    }
  });

  it("never repeats in 1000 tokens, random part included", () => {
    const tokens = Array.from({ length: 1000 }, () => generateToken("lk", "live", "sk"));
    expect(new Set(tokens).size).toBe(1000);
    expect(new Set(tokens.map((t) => t.slice(11, 43))).size).toBe(1000);
  });

  it("uses the whole base62 alphabet in the random part", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++)
      for (const c of generateToken("lk", "live", "sk").slice(11, 43)) seen.add(c);
    expect(seen.size).toBe(62);
  });
});

describe("parseToken", () => {
  it("accepts a hand-built token with a correct checksum and derives the displayed prefix", () => {
    const token = withChecksum(`wp3_live_sk_${RANDOM32}`);
    expect(parseToken(token)).toEqual({
      brand: "wp3",
      environment: "live",
      kind: "sk",
      prefix: "wp3_live_sk_a1b2c3d4",
    });
    expect(PREFIX_RANDOM_CHARS).toBe(8);
  });

  it("keeps brand, env, kind and the first 8 random characters as the prefix", () => {
    for (let i = 0; i < 50; i++) {
      const token = generateToken("lk", "test", "ss");
      const parsed = parseToken(token);
      expect(parsed?.prefix).toBe(`lk_test_ss_${token.slice(11, 19)}`);
      expect(parsed?.prefix).toMatch(/^lk_test_ss_[0-9A-Za-z]{8}$/);
    }
  });

  it("rejects any single changed character in the body", () => {
    const token = generateToken("lk", "live", "sk");
    for (let i = "lk_live_sk_".length; i < token.length - 6; i++) {
      expect(parseToken(flip(token, i)), `position ${i}`).toBeNull();
    }
  });

  it("rejects any single changed character in the checksum", () => {
    const token = generateToken("lk", "live", "sk");
    for (let i = token.length - 6; i < token.length; i++) {
      expect(parseToken(flip(token, i)), `position ${i}`).toBeNull();
    }
  });

  it("rejects a token whose env or kind was changed after checksumming", () => {
    const token = generateToken("lk", "live", "sk");
    expect(parseToken(token.replace("_live_", "_test_"))).toBeNull();
    expect(parseToken(token.replace("_sk_", "_ss_"))).toBeNull();
  });

  // Each malformed body carries a correct checksum, so only the targeted defect can be why it fails.
  it.each([
    ["31 random characters", `lk_live_sk_${RANDOM32.slice(1)}`],
    ["33 random characters", `lk_live_sk_${RANDOM32}x`],
    ["an uppercase brand", `LK_live_sk_${RANDOM32}`],
    ["a mixed-case brand", `Lk_live_sk_${RANDOM32}`],
    ["a brand of 17 characters", `${"a".repeat(17)}_live_sk_${RANDOM32}`],
    ["a brand starting with a digit", `3wp_live_sk_${RANDOM32}`],
    ["an empty brand", `_live_sk_${RANDOM32}`],
    ["a brand with a dash", `w-p_live_sk_${RANDOM32}`],
    ["env prod", `lk_prod_sk_${RANDOM32}`],
    ["env LIVE", `lk_LIVE_sk_${RANDOM32}`],
    ["no env", `lk_sk_${RANDOM32}`],
    ["kind pk", `lk_live_pk_${RANDOM32}`],
    ["kind SK", `lk_live_SK_${RANDOM32}`],
    ["a dash in the random part", `lk_live_sk_${RANDOM32.slice(0, 31)}-`],
    ["an underscore in the random part", `lk_live_sk_${RANDOM32.slice(0, 31)}_`],
    ["a non-ASCII letter in the random part", `lk_live_sk_${RANDOM32.slice(0, 31)}é`],
    ["a space in the random part", `lk_live_sk_${RANDOM32.slice(0, 31)} `],
  ])("rejects %s", (_what, body) => {
    expect(parseToken(withChecksum(body))).toBeNull();
  });

  it("rejects a checksum part that is not base62", () => {
    const token = generateToken("lk", "live", "sk");
    expect(parseToken(`${token.slice(0, -1)}-`)).toBeNull();
    expect(parseToken(`${token.slice(0, -1)}+`)).toBeNull();
  });

  it("rejects a token with missing or extra characters", () => {
    const token = generateToken("lk", "live", "sk");
    expect(parseToken(token.slice(0, -1))).toBeNull();
    expect(parseToken(`${token}0`)).toBeNull();
    expect(parseToken(`${token}\n`)).toBeNull();
    expect(parseToken(` ${token}`)).toBeNull();
  });

  it("accepts the longest valid token and rejects anything over 64 characters", () => {
    const longest = generateToken("abcdefghijklmnop", "live", "sk");
    expect(longest.length).toBe(63);
    expect(parseToken(longest)).not.toBeNull();
    expect(parseToken(`${longest}0`)).toBeNull();
    expect(parseToken("a".repeat(65))).toBeNull();
    expect(parseToken(`${longest}${"x".repeat(10_000)}`)).toBeNull();
  });

  it("rejects the empty string and strings that are only separators", () => {
    expect(parseToken("")).toBeNull();
    expect(parseToken("___")).toBeNull();
    expect(parseToken("lk_live_sk_")).toBeNull();
  });
});
