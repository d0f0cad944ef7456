import { describe, expect, it } from "vitest";
import { compileAllowlist } from "../../src/core/ip.ts";
import { decide, type VerifiableKey } from "../../src/core/verification.ts";

const NOW = new Date("2026-01-15T12:00:00.000Z");

const good = (over: Partial<VerifiableKey> = {}): VerifiableKey => ({
  keyId: "key_x",
  companyId: "co_x",
  credentialId: "cred_x",
  environment: "live",
  permissions: ["payin:read", "payin:create", "payout:read"],
  revoked: false,
  expiresAt: null,
  enabled: true,
  keyIps: null,
  credentialIps: null,
  ...over,
});

/** A key that fails every check, and a request that trips every requirement. */
const allWrong = (): VerifiableKey =>
  good({
    revoked: true,
    expiresAt: new Date(NOW.getTime() - 1000),
    enabled: false,
    environment: "test",
    keyIps: compileAllowlist(["10.0.0.0/8"]),
    credentialIps: compileAllowlist(["10.0.0.0/8"]),
    permissions: [],
  });
const badRequest = { ip: "192.0.2.1", environment: "live" as const, permissions: ["payin:read"] };

describe("decide", () => {
  it("is VALID for a good key and a satisfiable request", () => {
    expect(decide(good(), { ip: "192.0.2.1", environment: "live", permissions: ["payin:read"] }, NOW)).toBe(
      "VALID",
    );
  });

  it("checks revoked, expired, disabled, environment, IP, permissions in that order", () => {
    const key = allWrong();
    const order: [string, Partial<VerifiableKey>][] = [
      ["REVOKED", { revoked: false }],
      ["EXPIRED", { expiresAt: null }],
      ["DISABLED", { enabled: true }],
      ["ENVIRONMENT_MISMATCH", { environment: "live" }],
      ["IP_NOT_ALLOWED", { keyIps: null, credentialIps: null }],
      ["INSUFFICIENT_PERMISSIONS", { permissions: ["payin:read"] }],
    ];
    let current = key;
    for (const [code, fix] of order) {
      expect(decide(current, badRequest, NOW)).toBe(code);
      current = { ...current, ...fix };
    }
    expect(decide(current, badRequest, NOW)).toBe("VALID");
  });

  it("says REVOKED for a revoked key that is also expired and disabled, whatever the request", () => {
    const key = good({ revoked: true, expiresAt: new Date(0), enabled: false });
    expect(decide(key, {}, NOW)).toBe("REVOKED");
    expect(decide(key, badRequest, NOW)).toBe("REVOKED");
  });

  it("treats expiresAt equal to now as expired, one millisecond later as not yet", () => {
    expect(decide(good({ expiresAt: new Date(NOW.getTime()) }), {}, NOW)).toBe("EXPIRED");
    expect(decide(good({ expiresAt: new Date(NOW.getTime() + 1) }), {}, NOW)).toBe("VALID");
    expect(decide(good({ expiresAt: new Date(NOW.getTime() - 1) }), {}, NOW)).toBe("EXPIRED");
  });

  it("ignores the environment when the request names none or the key has none (a password)", () => {
    expect(decide(good({ environment: "test" }), {}, NOW)).toBe("VALID");
    expect(decide(good({ environment: null }), { environment: "live" }, NOW)).toBe("VALID");
    expect(decide(good({ environment: "test" }), { environment: "test" }, NOW)).toBe("VALID");
    expect(decide(good({ environment: "live" }), { environment: "test" }, NOW)).toBe("ENVIRONMENT_MISMATCH");
  });

  it("allows any caller, even one with no IP, when both allowlists are null", () => {
    for (const ip of [undefined, "203.0.113.9", "2001:db8::1", "not an ip"]) {
      expect(decide(good(), { ip }, NOW)).toBe("VALID");
    }
  });

  it("fails closed when an allowlist is set and no IP is given", () => {
    expect(decide(good({ keyIps: compileAllowlist(["0.0.0.0/0"]) }), {}, NOW)).toBe("IP_NOT_ALLOWED");
    expect(decide(good({ credentialIps: compileAllowlist(["0.0.0.0/0"]) }), { ip: undefined }, NOW)).toBe(
      "IP_NOT_ALLOWED",
    );
  });

  it("applies the credential's and the key's allowlists both", () => {
    const key = good({
      credentialIps: compileAllowlist(["10.0.0.0/8"]),
      keyIps: compileAllowlist(["10.1.0.0/16", "192.168.1.1"]),
    });
    expect(decide(key, { ip: "10.1.2.3" }, NOW)).toBe("VALID");
    expect(decide(key, { ip: "10.2.0.1" }, NOW)).toBe("IP_NOT_ALLOWED"); // credential yes, key no
    expect(decide(key, { ip: "192.168.1.1" }, NOW)).toBe("IP_NOT_ALLOWED"); // key yes, credential no
    expect(decide(key, { ip: "::ffff:10.1.0.9" }, NOW)).toBe("VALID");
  });

  it("applies a credential allowlist alone and a key allowlist alone", () => {
    const cred = good({ credentialIps: compileAllowlist(["2001:db8::/32"]) });
    expect(decide(cred, { ip: "2001:db8::5" }, NOW)).toBe("VALID");
    expect(decide(cred, { ip: "2001:db9::5" }, NOW)).toBe("IP_NOT_ALLOWED");
    const key = good({ keyIps: compileAllowlist(["203.0.113.7"]) });
    expect(decide(key, { ip: "203.0.113.7" }, NOW)).toBe("VALID");
    expect(decide(key, { ip: "203.0.113.8" }, NOW)).toBe("IP_NOT_ALLOWED");
  });

  it("requires every requested permission", () => {
    const key = good();
    expect(decide(key, { permissions: ["payin:read", "payout:read"] }, NOW)).toBe("VALID");
    expect(decide(key, { permissions: ["payin:read", "payout:create"] }, NOW)).toBe(
      "INSUFFICIENT_PERMISSIONS",
    );
    expect(decide(key, { permissions: ["payout:create"] }, NOW)).toBe("INSUFFICIENT_PERMISSIONS");
    expect(decide(good({ permissions: [] }), { permissions: ["payin:read"] }, NOW)).toBe(
      "INSUFFICIENT_PERMISSIONS",
    );
  });

  it("matches permissions exactly, not by prefix or case", () => {
    const key = good({ permissions: ["payin:read"] });
    expect(decide(key, { permissions: ["payin:rea"] }, NOW)).toBe("INSUFFICIENT_PERMISSIONS");
    expect(decide(key, { permissions: ["PAYIN:READ"] }, NOW)).toBe("INSUFFICIENT_PERMISSIONS");
    expect(decide(key, { permissions: ["payin:*"] }, NOW)).toBe("INSUFFICIENT_PERMISSIONS");
  });

  it("is VALID with empty requirements, even for a key holding nothing", () => {
    expect(decide(good(), {}, NOW)).toBe("VALID");
    expect(decide(good({ permissions: [] }), { permissions: [] }, NOW)).toBe("VALID");
    expect(decide(good(), { ip: undefined, environment: undefined, permissions: undefined }, NOW)).toBe(
      "VALID",
    );
  });
});
