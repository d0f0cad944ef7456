import { describe, expect, it } from "vitest";
import {
  companySlug,
  credentialUsername,
  looksLikeCredentialUsername,
  USERNAME_PATTERN,
  usernameFormat,
} from "../../src/core/names.ts";

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

describe("username formats", () => {
  it("makes legal-entity-management usernames as ws_123456@Scope.Company_<slug>", () => {
    for (let i = 0; i < 50; i++) {
      const username = credentialUsername("AcmePayments", "legal_entity_management");
      expect(username).toMatch(/^ws_\d{6}@Scope\.Company_AcmePayments$/);
      expect(username).toMatch(USERNAME_PATTERN);
      expect(usernameFormat(username)).toBe("legal_entity_management");
    }
    const ws = credentialUsername("AcmePayments", "web_service");
    expect(ws).toMatch(/^ws_\d{6}@Company\.AcmePayments$/);
    expect(usernameFormat(ws)).toBe("web_service");
    expect(usernameFormat(credentialUsername("AcmePayments"))).toBe("web_service");
  });

  it("USERNAME_PATTERN refuses near-misses of the LEM shape", () => {
    for (const bad of [
      "ws_123456@Scope.Company_",
      "ws_123456@Scope.Company.Acme",
      "ws_123456@scope.company_Acme",
      "ws_123456@Scope.Acme",
      "ws_123456@Scope.Company_Ac_me",
      "ws_12345@Scope.Company_Acme",
    ]) {
      expect(USERNAME_PATTERN.test(bad), bad).toBe(false);
    }
  });

  it("keeps a person from signing in as either kind of API user", () => {
    for (const name of [
      "ws_123456@Company.Acme",
      "WS_123456@company.acme",
      "ws_123456@Scope.Company_Acme",
      " ws_123456@SCOPE.COMPANY_acme ",
    ]) {
      expect(looksLikeCredentialUsername(name), name).toBe(true);
    }
    for (const email of ["ws_123456@scope.example", "someone@company.example", "ws@Company.Acme"]) {
      expect(looksLikeCredentialUsername(email), email).toBe(false);
    }
  });
});
