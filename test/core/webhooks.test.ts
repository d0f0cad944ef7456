import { describe, expect, it } from "vitest";
import {
  checkWebhookUrl,
  compileDestinationRule,
  JITTER,
  MAX_RETRY_AFTER_SECONDS,
  newSigningSecret,
  nextAttemptAt,
  parseRetryAfter,
  RETRY_SCHEDULE_SECONDS,
} from "../../src/core/webhooks.ts";

const NOW = new Date("2026-03-01T00:00:00.000Z");
const waited = (d: Date | null) => (d === null ? null : (d.getTime() - NOW.getTime()) / 1000);

describe("the retry schedule", () => {
  it("waits 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h, then gives up", () => {
    expect(RETRY_SCHEDULE_SECONDS).toEqual([5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]);
    const waits = RETRY_SCHEDULE_SECONDS.map((_, i) => waited(nextAttemptAt(i + 1, NOW, null, () => 0)));
    expect(waits).toEqual([...RETRY_SCHEDULE_SECONDS]);
    expect(nextAttemptAt(RETRY_SCHEDULE_SECONDS.length + 1, NOW, null)).toBeNull();
  });

  it("adds up to a tenth as jitter, never less than the schedule", () => {
    expect(waited(nextAttemptAt(2, NOW, null, () => 0.999999))).toBeCloseTo(300 * (1 + JITTER), 0);
    expect(waited(nextAttemptAt(2, NOW, null, () => 0.5))).toBe(315);
  });

  it("takes Retry-After instead, capped at a day, and still gives up after the last attempt", () => {
    expect(waited(nextAttemptAt(1, NOW, 120))).toBe(120);
    expect(waited(nextAttemptAt(1, NOW, 0))).toBe(0);
    expect(waited(nextAttemptAt(1, NOW, 10 ** 9))).toBe(MAX_RETRY_AFTER_SECONDS);
    expect(nextAttemptAt(10, NOW, 5)).toBeNull();
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("120", NOW)).toBe(120);
    expect(parseRetryAfter(" 7 ", NOW)).toBe(7);
    expect(parseRetryAfter("Sun, 01 Mar 2026 00:02:00 GMT", NOW)).toBe(120);
    expect(parseRetryAfter("Sat, 28 Feb 2026 00:00:00 GMT", NOW)).toBe(0);
    expect(parseRetryAfter(undefined, NOW)).toBeNull();
    expect(parseRetryAfter("soon", NOW)).toBeNull();
    expect(parseRetryAfter("-5", NOW)).toBeNull();
  });
});

describe("where deliveries may connect", () => {
  const strict = compileDestinationRule([]);
  it.each([
    "127.0.0.1",
    "127.255.0.1",
    "::1",
    "::ffff:127.0.0.1",
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "172.16.5.4",
    "172.31.255.255",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "224.0.0.251",
    "255.255.255.255",
    "192.0.2.1",
    "2001:db8::1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::1",
    "not an address",
  ])("refuses %s", (ip) => {
    expect(strict(ip)).toBe(false);
  });

  it.each(["93.184.215.14", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"])(
    "allows the public address %s",
    (ip) => {
      expect(strict(ip)).toBe(true);
    },
  );

  it("lets through what the operator allows, and only that", () => {
    const rule = compileDestinationRule(["127.0.0.1/32", "10.20.0.0/16"]);
    expect(rule("127.0.0.1")).toBe(true);
    expect(rule("10.20.3.4")).toBe(true);
    expect(rule("10.21.0.1")).toBe(false);
    expect(rule("::1")).toBe(false);
  });
});

describe("endpoint URLs and secrets", () => {
  it("takes http and https URLs without credentials or fragments", () => {
    expect(checkWebhookUrl("https://Hooks.Example.com:8443/a?b=1").href).toBe(
      "https://hooks.example.com:8443/a?b=1",
    );
    for (const bad of [
      "ftp://x.example/",
      "https://u:p@x.example/",
      "https://x.example/#f",
      "javascript:alert(1)",
      "x",
    ]) {
      expect(() => checkWebhookUrl(bad), bad).toThrow(expect.objectContaining({ code: "VALIDATION_ERROR" }));
    }
  });

  it("makes whsec_ secrets of 32 random bytes", () => {
    const a = newSigningSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.slice(6), "base64")).toHaveLength(32);
    expect(newSigningSecret()).not.toBe(a);
  });
});
