import { describe, expect, it } from "vitest";
import { companySlug, credentialUsername, USERNAME_PATTERN } from "../../src/core/names.ts";

describe("companySlug", () => {
  it.each([
    ["Acme Payments Ltd.", "AcmePaymentsLtd"],
    ["acme payments", "AcmePayments"],
    ["Café Zoë", "CafeZoe"],
    ["Ａｃｍｅ Ｐａｙ", "AcmePay"],
    ["  we-link / messaging  ", "WeLinkMessaging"],
    ["3D Secure GmbH", "3DSecureGmbH"],
    ["WEPAYMENTS", "WEPAYMENTS"],
    ["web3pay", "Web3pay"],
  ])("%j → %j", (name, slug) => {
    expect(companySlug(name)).toBe(slug);
  });

  // NFKD splits "ü" into "u" + a combining mark; the mark must vanish, not act as a word break ("MuLler").
  it.each([
    ["Müller Bank", "MullerBank"],
    ["São Paulo Pagamentos", "SaoPauloPagamentos"],
    ["Ñandú", "Nandu"],
    ["Crème Brûlée Pay", "CremeBruleePay"],
  ])("strips an accent inside a word without splitting it: %j → %j", (name, slug) => {
    expect(companySlug(name)).toBe(slug);
  });

  it.each(["株式会社", "Ωμέγα", "🚀🚀", "", "   ", "!!!", "\u200b\u200d", "שלום"])(
    "falls back to Company for %j",
    (name) => {
      expect(companySlug(name)).toBe("Company");
    },
  );

  it("keeps at most 40 characters", () => {
    const slug = companySlug("The Extraordinarily Long Named International Payments Company Limited");
    expect(slug).toBe("TheExtraordinarilyLongNamedInternational");
    expect(companySlug("a".repeat(500))).toHaveLength(40);
    expect(companySlug("x y ".repeat(100)).length).toBeLessThanOrEqual(40);
  });

  it("always yields 1-40 ASCII letters and digits for odd input", () => {
    for (const name of [
      "Zoë\u0000Null",
      "a\u202eevil",
      "İstanbul Ödeme",
      "ﬁnance",
      "<script>alert(1)</script>",
      "x".repeat(10_000),
      "\ud800lonely surrogate",
      "Mañana 😀 Pay",
    ]) {
      expect(companySlug(name), name.slice(0, 30)).toMatch(/^[A-Za-z0-9]{1,40}$/);
    }
  });
});

describe("credentialUsername", () => {
  it("matches USERNAME_PATTERN and ends with the slug", () => {
    for (const slug of ["AcmePayments", "Company", "A", companySlug("x".repeat(100))]) {
      const username = credentialUsername(slug);
      expect(username).toMatch(USERNAME_PATTERN);
      expect(username).toMatch(/^ws_\d{6}@Company\./);
      expect(username.endsWith(`@Company.${slug}`)).toBe(true);
    }
  });

  it("pads the number to six digits and varies it", () => {
    const numbers = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const username = credentialUsername("Acme");
      expect(username).toMatch(/^ws_\d{6}@Company\.Acme$/);
      numbers.add(username.slice(3, 9));
    }
    expect(numbers.size).toBeGreaterThan(250);
  });

  it("USERNAME_PATTERN refuses other shapes", () => {
    for (const bad of [
      "ws_12345@Company.Acme",
      "ws_1234567@Company.Acme",
      "ws_123456@company.Acme",
      "ws_123456@Company.",
      "ws_123456@Company.Ac-me",
      "ws_123456@Company.Acme\n",
      "admin@example.com",
    ]) {
      expect(USERNAME_PATTERN.test(bad), bad).toBe(false);
    }
  });
});
