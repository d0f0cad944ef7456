import { isIP } from "node:net";
import { describe, expect, it } from "vitest";
import {
  clientIp,
  compileAllowlist,
  compileTrustedProxies,
  formatIp,
  formatIpRule,
  type IpMatcher,
  MAX_ALLOWLIST_ENTRIES,
  normalizeAllowlist,
  parseIp,
  parseIpRule,
} from "../../src/core/ip.ts";

const v4 = (a: number, b: number, c: number, d: number) => ({
  version: 4,
  value: BigInt(((a << 24) | (b << 16) | (c << 8) | d) >>> 0),
});

/** Canonical text of a parsed address, or null. */
const canon = (text: string) => {
  const addr = parseIp(text);
  return addr === null ? null : formatIp(addr);
};

const canonRule = (text: string) => {
  const rule = parseIpRule(text);
  return rule === null ? null : formatIpRule(rule);
};

/** Small deterministic PRNG so the generated cases are the same on every run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("parseIp: IPv4", () => {
  it.each([
    ["0.0.0.0", 0, 0, 0, 0],
    ["1.2.3.4", 1, 2, 3, 4],
    ["10.0.0.1", 10, 0, 0, 1],
    ["127.0.0.1", 127, 0, 0, 1],
    ["192.168.100.200", 192, 168, 100, 200],
    ["255.255.255.255", 255, 255, 255, 255],
  ])("parses %s", (text, a, b, c, d) => {
    expect(parseIp(text)).toEqual(v4(a, b, c, d));
  });

  it.each([
    ["leading zero", "01.2.3.4"],
    ["leading zero in last octet", "1.2.3.04"],
    ["double zero", "1.2.00.4"],
    ["octal style", "010.0.0.1"],
    ["256", "1.2.3.256"],
    ["999", "999.1.1.1"],
    ["four digits", "1.2.3.1000"],
    ["too few octets", "1.2.3"],
    ["two octets", "1.2"],
    ["single number", "16909060"],
    ["too many octets", "1.2.3.4.5"],
    ["empty", ""],
    ["empty octet", "1..3.4"],
    ["trailing dot", "1.2.3.4."],
    ["leading dot", ".1.2.3.4"],
    ["leading space", " 1.2.3.4"],
    ["trailing space", "1.2.3.4 "],
    ["trailing newline", "1.2.3.4\n"],
    ["inner space", "1.2. 3.4"],
    ["letters", "a.b.c.d"],
    ["hex octet", "0x1.2.3.4"],
    ["sign", "+1.2.3.4"],
    ["negative", "-1.2.3.4"],
    ["with port", "1.2.3.4:80"],
    ["with prefix", "1.2.3.4/32"],
    ["full-width digits", "１.2.3.4"],
  ])("rejects %s (%j)", (_label, text) => {
    expect(parseIp(text)).toBeNull();
  });
});

describe("parseIp: IPv6", () => {
  it("parses the full form", () => {
    expect(parseIp("2001:0db8:0000:0000:0000:ff00:0042:8329")).toEqual({
      version: 6,
      value: 0x20010db8000000000000ff0000428329n,
    });
  });

  it("parses compressed forms to the same value as the full form", () => {
    const full = parseIp("2001:0db8:0000:0000:0000:0000:0000:0001");
    expect(parseIp("2001:db8::1")).toEqual(full);
    expect(parseIp("2001:db8:0:0::0:1")).toEqual(full);
    expect(parseIp("2001:DB8::1")).toEqual(full);
  });

  it.each([
    ["::", 0n],
    ["::1", 1n],
    ["1::", 1n << 112n],
    ["1::2", (1n << 112n) | 2n],
    ["::1:2:3:4:5:6:7", 0x0000000100020003000400050006_0007n],
    ["1:2:3:4:5:6:7::", 0x00010002000300040005000600070000n],
    ["1:2:3:4:5:6:7:8", 0x00010002000300040005000600070008n],
    ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", (1n << 128n) - 1n],
    ["FE80::ABCD", 0xfe80000000000000000000000000abcdn],
  ])("parses %s", (text, value) => {
    expect(parseIp(text)).toEqual({ version: 6, value });
  });

  it("parses an embedded IPv4 tail", () => {
    expect(parseIp("64:ff9b::192.0.2.33")).toEqual({
      version: 6,
      value: 0x0064ff9b0000000000000000c0000221n,
    });
    expect(parseIp("1:2:3:4:5:6:1.2.3.4")).toEqual({
      version: 6,
      value: 0x00010002000300040005000601020304n,
    });
    // IPv4-compatible (deprecated) is plain IPv6, not mapped.
    expect(parseIp("::1.2.3.4")).toEqual({ version: 6, value: 0x01020304n });
  });

  it("normalises IPv4-mapped addresses to IPv4 in every spelling", () => {
    const expected = v4(1, 2, 3, 4);
    expect(parseIp("::ffff:1.2.3.4")).toEqual(expected);
    expect(parseIp("::FFFF:1.2.3.4")).toEqual(expected);
    expect(parseIp("0:0:0:0:0:ffff:1.2.3.4")).toEqual(expected);
    expect(parseIp("::ffff:102:304")).toEqual(expected);
    expect(parseIp("0000:0000:0000:0000:0000:ffff:0102:0304")).toEqual(expected);
    expect(parseIp("::ffff:0.0.0.0")).toEqual(v4(0, 0, 0, 0));
    expect(parseIp("::ffff:255.255.255.255")).toEqual(v4(255, 255, 255, 255));
  });

  it("does not treat neighbours of the mapped range as mapped", () => {
    expect(parseIp("::fffe:1.2.3.4")?.version).toBe(6);
    expect(parseIp("1::ffff:1.2.3.4")?.version).toBe(6);
    expect(parseIp("::1:ffff:1.2.3.4")?.version).toBe(6);
  });

  it.each([
    ["single colon", ":"],
    ["triple colon", ":::"],
    ["two double colons", "1::2::3"],
    ["double colon at both ends", "::1::"],
    ["too many groups", "1:2:3:4:5:6:7:8:9"],
    ["too few groups", "1:2:3:4:5:6:7"],
    ["eight groups plus ::", "1:2:3:4:5:6:7:8::"],
    ["eight groups after ::", "::1:2:3:4:5:6:7:8"],
    ["leading single colon", ":1:2:3:4:5:6:7:8"],
    ["leading single colon with ::", ":1::2"],
    ["trailing single colon", "1:2:3:4:5:6:7:8:"],
    ["trailing single colon with ::", "1::2:"],
    ["group with five digits", "12345::1"],
    ["non-hex group", "2001:db8::g"],
    ["zone id", "fe80::1%eth0"],
    ["numeric zone id", "fe80::1%1"],
    ["brackets", "[::1]"],
    ["bracketed with port", "[::1]:443"],
    ["leading space", " ::1"],
    ["trailing space", "::1 "],
    ["IPv4 tail too long", "1:2:3:4:5:6:7:1.2.3.4"],
    ["IPv4 tail with leading zero", "::ffff:01.2.3.4"],
    ["IPv4 tail out of range", "::ffff:1.2.3.256"],
    ["IPv4 not last", "::1.2.3.4:5"],
    ["IPv4 before ::", "1.2.3.4::"],
    ["IPv4 in the middle", "1:1.2.3.4::5"],
    ["short IPv4 tail", "::1.2.3"],
    ["hex with prefix", "0x1::"],
    ["with prefix", "::1/128"],
    ["overlong", `${"0".repeat(40)}::1`],
  ])("rejects %s (%j)", (_label, text) => {
    expect(parseIp(text)).toBeNull();
  });

  it("agrees with node:net isIP on a corpus of valid and invalid strings", () => {
    const corpus = [
      "1.2.3.4",
      "01.2.3.4",
      "256.1.1.1",
      "::",
      "::1",
      "1::",
      ":",
      ":::",
      "1:2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7::",
      "::2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7:8::",
      "1::2::3",
      "::ffff:1.2.3.4",
      "::ffff:1.2.3",
      "1:2:3:4:5:6:1.2.3.4",
      "1:2:3:4:5:6:7:1.2.3.4",
      "1.2.3.4::",
      "2001:DB8::1",
      "abcde::1",
      "[::1]",
      "",
      " 1.2.3.4",
    ];
    for (const text of corpus) {
      expect({ text, valid: parseIp(text) !== null }).toEqual({ text, valid: isIP(text) !== 0 });
    }
  });

  it("parses every generated spelling of random addresses to the right value", () => {
    const random = prng(42);
    for (let n = 0; n < 500; n++) {
      // Plenty of zero groups so that "::" compression is exercised.
      const groups = Array.from({ length: 8 }, () => (random() < 0.5 ? 0 : Math.floor(random() * 0x10000)));
      const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
      const full = groups.map((g) => g.toString(16).padStart(4, "0")).join(":");
      const parsed = parseIp(full);
      const isMapped = value >> 32n === 0xffffn;
      expect(parsed).toEqual(isMapped ? { version: 4, value: value & 0xffffffffn } : { version: 6, value });
      if (parsed === null || isMapped) continue;
      const text = formatIp(parsed);
      expect(parseIp(text)).toEqual(parsed);
      expect(parseIp(text.toUpperCase())).toEqual(parsed);
      // The WHATWG URL serialiser applies the same RFC 5952 compression rules.
      expect(text).toBe(new URL(`http://[${full}]/`).hostname.slice(1, -1));
    }
  });
});

describe("formatIp", () => {
  it.each([
    ["1.2.3.4", "1.2.3.4"],
    ["::ffff:10.0.0.1", "10.0.0.1"],
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    // A single zero group is not compressed.
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    // The longest run is compressed.
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    // Of equally long runs, the first is compressed.
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["fe80::0001:0a0b", "fe80::1:a0b"],
  ])("formats %s as %s", (input, expected) => {
    expect(canon(input)).toBe(expected);
  });

  it("keeps the dotted tail for a mapped value given as IPv6", () => {
    expect(formatIp({ version: 6, value: 0xffff0a000001n })).toBe("::ffff:10.0.0.1");
  });
});

describe("parseIpRule / formatIpRule", () => {
  it("treats single addresses as host rules", () => {
    expect(parseIpRule("10.0.0.1")).toEqual({ version: 4, network: 0x0a000001n, prefix: 32 });
    expect(parseIpRule("2001:db8::1")).toEqual({
      version: 6,
      network: 0x20010db8000000000000000000000001n,
      prefix: 128,
    });
    expect(parseIpRule("::ffff:10.0.0.1")).toEqual({ version: 4, network: 0x0a000001n, prefix: 32 });
  });

  it("parses CIDR ranges", () => {
    expect(parseIpRule("10.0.0.0/8")).toEqual({ version: 4, network: 0x0a000000n, prefix: 8 });
    expect(parseIpRule("2001:db8::/32")).toEqual({ version: 6, network: 0x20010db8n << 96n, prefix: 32 });
  });

  it.each([
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["1.2.3.4/0", "0.0.0.0/0"],
    ["1.2.3.4/32", "1.2.3.4"],
    ["1.2.3.4/31", "1.2.3.4/31"],
    ["1.2.3.5/31", "1.2.3.4/31"],
    ["10.0.0.1/8", "10.0.0.0/8"],
    ["192.168.1.255/24", "192.168.1.0/24"],
    ["255.255.255.255/1", "128.0.0.0/1"],
    ["::/0", "::/0"],
    ["2001:db8::1/0", "::/0"],
    ["2001:db8::1/128", "2001:db8::1"],
    ["2001:db8::1/127", "2001:db8::/127"],
    ["2001:DB8:ABCD::1/32", "2001:db8::/32"],
    ["2001:db8:1:2:3:4:5:6/64", "2001:db8:1:2::/64"],
    ["::ffff:10.0.0.0/104", "10.0.0.0/8"],
    ["::ffff:10.1.2.3/104", "10.0.0.0/8"],
    ["::ffff:10.0.0.1/128", "10.0.0.1"],
    ["::ffff:0:0/96", "0.0.0.0/0"],
    ["::ffff:1.2.3.4/96", "0.0.0.0/0"],
  ])("canonicalises %s as %s", (input, expected) => {
    expect(canonRule(input)).toBe(expected);
  });

  it("masks host bits off the network", () => {
    expect(parseIpRule("10.0.0.1/8")?.network).toBe(0x0a000000n);
    expect(parseIpRule("2001:db8::ffff/112")?.network).toBe(0x20010db8000000000000000000000000n);
  });

  it.each([
    ["IPv4 prefix 33", "10.0.0.0/33"],
    ["IPv6 prefix 129", "::/129"],
    ["huge prefix", "10.0.0.0/1000"],
    ["negative prefix", "10.0.0.0/-1"],
    ["plus sign", "10.0.0.0/+8"],
    ["leading zero", "10.0.0.0/08"],
    ["double zero", "10.0.0.0/00"],
    ["space before prefix", "10.0.0.0/ 8"],
    ["space before slash", "10.0.0.0 /8"],
    ["trailing space", "10.0.0.0/8 "],
    ["empty prefix", "10.0.0.0/"],
    ["fractional prefix", "10.0.0.0/8.0"],
    ["hex prefix", "10.0.0.0/0x8"],
    ["netmask notation", "10.0.0.0/255.0.0.0"],
    ["two slashes", "10.0.0.0/8/8"],
    ["no address", "/8"],
    ["empty", ""],
    ["invalid address", "10.0.0.256/8"],
    ["zone id", "fe80::1%eth0/64"],
    ["mapped prefix below 96", "::ffff:10.0.0.0/95"],
    ["mapped prefix 0", "::ffff:0:0/0"],
    ["mapped prefix 80", "::ffff:1.2.3.4/80"],
    ["mapped prefix above 128", "::ffff:10.0.0.0/129"],
  ])("rejects %s (%j)", (_label, text) => {
    expect(parseIpRule(text)).toBeNull();
  });

  it("keeps an IPv6 network whose masked value leaves the mapped range as IPv6", () => {
    // The address itself is not mapped, so the /80 is an ordinary IPv6 range.
    expect(canonRule("::fffe:0:0/80")).toBe("::/80");
  });

  it("round-trips canonical text", () => {
    for (const text of ["10.0.0.0/8", "1.2.3.4", "0.0.0.0/0", "2001:db8::/32", "::1", "::/0", "fe80::/10"]) {
      expect(canonRule(text)).toBe(text);
    }
  });
});

describe("normalizeAllowlist", () => {
  it("canonicalises entries and keeps their order", () => {
    expect(normalizeAllowlist(["2001:DB8::1/128", "10.0.0.1/8", "::ffff:192.168.0.1", "1.2.3.4"])).toEqual({
      ok: true,
      entries: ["2001:db8::1", "10.0.0.0/8", "192.168.0.1", "1.2.3.4"],
    });
  });

  it("removes duplicates after canonicalisation, keeping the first position", () => {
    expect(
      normalizeAllowlist([
        "10.0.0.0/8",
        "1.2.3.4",
        "10.255.0.1/8",
        "::ffff:1.2.3.4",
        "1.2.3.4/32",
        "5.6.7.8",
      ]),
    ).toEqual({ ok: true, entries: ["10.0.0.0/8", "1.2.3.4", "5.6.7.8"] });
    expect(normalizeAllowlist(["2001:db8::1", "2001:0db8:0:0:0:0:0:1"])).toEqual({
      ok: true,
      entries: ["2001:db8::1"],
    });
  });

  it("does not merge overlapping but different ranges", () => {
    expect(normalizeAllowlist(["10.0.0.0/8", "10.1.0.0/16"])).toEqual({
      ok: true,
      entries: ["10.0.0.0/8", "10.1.0.0/16"],
    });
  });

  it("accepts an empty list", () => {
    expect(normalizeAllowlist([])).toEqual({ ok: true, entries: [] });
  });

  it.each([
    ["", "empty entry"],
    [" 1.2.3.4", "must not contain whitespace"],
    ["10.0.0.0/ 8", "must not contain whitespace"],
    ["1.2.3.256", "not a valid IPv4 or IPv6 address"],
    ["example.com", "not a valid IPv4 or IPv6 address"],
    ["10.0.0.0/08", "prefix length must be a plain integer"],
    ["10.0.0.0/-1", "prefix length must be a plain integer"],
    ["10.0.0.0/33", "prefix length must be between 0 and 32"],
    ["::/129", "prefix length must be between 0 and 128"],
    ["::ffff:10.0.0.0/95", "IPv4-mapped IPv6 prefix length must be at least 96"],
  ])("rejects %j with reason %j", (entry, reason) => {
    expect(normalizeAllowlist(["10.0.0.0/8", entry, "also-invalid"])).toEqual({
      ok: false,
      invalid: entry,
      reason,
    });
  });

  it("accepts exactly the maximum number of entries", () => {
    const entries = Array.from({ length: MAX_ALLOWLIST_ENTRIES }, (_, i) => `10.0.${i}.0/24`);
    expect(MAX_ALLOWLIST_ENTRIES).toBe(100);
    expect(normalizeAllowlist(entries)).toEqual({ ok: true, entries });
  });

  it("rejects more than the maximum, naming the first entry over the limit", () => {
    const entries = Array.from({ length: 101 }, (_, i) => `10.0.${i}.0/24`);
    const result = normalizeAllowlist(entries);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.invalid).toBe("10.0.100.0/24");
      expect(result.reason).toMatch(/too many entries/);
    }
  });

  it("counts distinct entries against the limit, so duplicates do not", () => {
    const entries = [
      ...Array.from({ length: 100 }, (_, i) => `10.0.${i}.0/24`),
      "10.0.0.1/24",
      "::ffff:10.0.99.0/120",
    ];
    expect(normalizeAllowlist(entries)).toEqual({ ok: true, entries: entries.slice(0, 100) });
  });
});

describe("compileAllowlist", () => {
  it("allows every address, valid or not, when the list is empty", () => {
    const allow = compileAllowlist([]);
    for (const ip of ["1.2.3.4", "::1", "2001:db8::1", "::ffff:10.0.0.1", "garbage", ""]) {
      expect(allow(ip)).toBe(true);
    }
  });

  it("matches IPv4 hosts and ranges", () => {
    const allow = compileAllowlist(["10.0.0.0/8", "192.168.1.7"]);
    expect(allow("10.0.0.0")).toBe(true);
    expect(allow("10.255.255.255")).toBe(true);
    expect(allow("192.168.1.7")).toBe(true);
    expect(allow("11.0.0.0")).toBe(false);
    expect(allow("9.255.255.255")).toBe(false);
    expect(allow("192.168.1.8")).toBe(false);
    expect(allow("192.168.1.6")).toBe(false);
  });

  it("handles /0 and /32 edges and high addresses without sign trouble", () => {
    expect(compileAllowlist(["0.0.0.0/0"])("255.255.255.255")).toBe(true);
    expect(compileAllowlist(["0.0.0.0/0"])("0.0.0.0")).toBe(true);
    const high = compileAllowlist(["128.0.0.0/1"]);
    expect(high("255.255.255.255")).toBe(true);
    expect(high("128.0.0.0")).toBe(true);
    expect(high("127.255.255.255")).toBe(false);
    const host = compileAllowlist(["255.255.255.255/32"]);
    expect(host("255.255.255.255")).toBe(true);
    expect(host("255.255.255.254")).toBe(false);
  });

  it("matches IPv6 hosts and ranges", () => {
    const allow = compileAllowlist(["2001:db8::/32", "::1", "fe80::/10"]);
    expect(allow("2001:db8::1")).toBe(true);
    expect(allow("2001:DB8:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF")).toBe(true);
    expect(allow("2001:db9::")).toBe(false);
    expect(allow("::1")).toBe(true);
    expect(allow("0:0:0:0:0:0:0:1")).toBe(true);
    expect(allow("::2")).toBe(false);
    expect(allow("febf:ffff::1")).toBe(true);
    expect(allow("fec0::1")).toBe(false);
  });

  it("handles /0 and /128 IPv6 edges", () => {
    const all6 = compileAllowlist(["::/0"]);
    expect(all6("::")).toBe(true);
    expect(all6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(true);
    const host = compileAllowlist(["2001:db8::1/128"]);
    expect(host("2001:db8::1")).toBe(true);
    expect(host("2001:db8::2")).toBe(false);
  });

  it("matches IPv4-mapped addresses against IPv4 rules", () => {
    const allow = compileAllowlist(["10.0.0.0/8"]);
    expect(allow("::ffff:10.1.2.3")).toBe(true);
    expect(allow("::FFFF:10.1.2.3")).toBe(true);
    expect(allow("::ffff:a01:203")).toBe(true);
    expect(allow("::ffff:11.1.2.3")).toBe(false);
  });

  it("matches IPv4 addresses against mapped IPv6 rules", () => {
    const allow = compileAllowlist(["::ffff:10.0.0.0/104"]);
    expect(allow("10.9.9.9")).toBe(true);
    expect(allow("::ffff:10.9.9.9")).toBe(true);
    expect(allow("11.0.0.1")).toBe(false);
    expect(compileAllowlist(["::ffff:1.2.3.4"])("1.2.3.4")).toBe(true);
  });

  it("never matches IPv4 addresses with non-mapped IPv6 rules", () => {
    const allow = compileAllowlist(["::/0"]);
    expect(allow("1.2.3.4")).toBe(false);
    expect(allow("::ffff:1.2.3.4")).toBe(false);
    expect(allow("::1")).toBe(true);
    // IPv4-compatible ::a.b.c.d is an IPv6 address, not an IPv4 one.
    expect(compileAllowlist(["1.2.3.4"])("::1.2.3.4")).toBe(false);
    expect(compileAllowlist(["::/96"])("1.2.3.4")).toBe(false);
  });

  it("never matches IPv6 addresses with IPv4 rules", () => {
    const allow = compileAllowlist(["0.0.0.0/0"]);
    expect(allow("::1")).toBe(false);
    expect(allow("2001:db8::1")).toBe(false);
    expect(allow("::1.2.3.4")).toBe(false);
    expect(allow("1.2.3.4")).toBe(true);
  });

  it("never matches unparsable addresses against a non-empty list", () => {
    const allow = compileAllowlist(["0.0.0.0/0", "::/0"]);
    for (const ip of [
      "",
      "garbage",
      " 1.2.3.4",
      "1.2.3.4 ",
      "01.2.3.4",
      "1.2.3",
      "fe80::1%eth0",
      "[::1]",
      "1.2.3.4:80",
    ]) {
      expect(allow(ip)).toBe(false);
    }
  });

  it("accepts non-canonical entries", () => {
    const allow = compileAllowlist(["10.0.0.1/8", "2001:DB8::/32"]);
    expect(allow("10.2.3.4")).toBe(true);
    expect(allow("2001:db8::5")).toBe(true);
  });

  it("throws on invalid entries", () => {
    expect(() => compileAllowlist(["10.0.0.0/8", "nope"])).toThrow(Error);
    expect(() => compileAllowlist(["10.0.0.0/33"])).toThrow(/10\.0\.0\.0\/33/);
    expect(() => compileAllowlist([""])).toThrow(Error);
  });

  it("agrees with a straightforward bigint reference on random IPv4 rules and addresses", () => {
    const random = prng(7);
    const rand32 = () => Math.floor(random() * 0x100000000);
    const text = (n: number) => formatIp({ version: 4, value: BigInt(n) });
    for (let n = 0; n < 300; n++) {
      const prefix = Math.floor(random() * 33);
      const base = rand32();
      const allow = compileAllowlist([`${text(base)}/${prefix}`]);
      const mask = prefix === 0 ? 0n : ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - prefix)) - 1n);
      for (let k = 0; k < 5; k++) {
        // Half the candidates share the network so that both outcomes occur.
        const candidate = k % 2 === 0 ? rand32() : (base ^ (rand32() >>> prefix)) >>> 0;
        const expected = (BigInt(candidate) & mask) === (BigInt(base) & mask);
        expect(allow(text(candidate))).toBe(expected);
      }
    }
  });
});

describe("compileTrustedProxies", () => {
  it("trusts nobody when the list is empty", () => {
    const trusted = compileTrustedProxies([]);
    expect(trusted("127.0.0.1")).toBe(false);
    expect(trusted("::1")).toBe(false);
  });

  it("otherwise matches like compileAllowlist", () => {
    const trusted = compileTrustedProxies(["10.0.0.0/8", "::1"]);
    expect(trusted("10.1.1.1")).toBe(true);
    expect(trusted("::ffff:10.1.1.1")).toBe(true);
    expect(trusted("::1")).toBe(true);
    expect(trusted("11.1.1.1")).toBe(false);
    expect(() => compileTrustedProxies(["bad"])).toThrow(Error);
  });
});

describe("clientIp", () => {
  const proxies: IpMatcher = compileTrustedProxies(["10.0.0.0/8", "127.0.0.1", "fd00::/8"]);
  const nobody: IpMatcher = () => false;

  it("returns the peer when there is no X-Forwarded-For", () => {
    expect(clientIp("203.0.113.5", undefined, proxies)).toBe("203.0.113.5");
    expect(clientIp("10.0.0.1", undefined, proxies)).toBe("10.0.0.1");
  });

  it("ignores X-Forwarded-For from an untrusted peer (spoofing)", () => {
    expect(clientIp("203.0.113.5", "10.0.0.1", proxies)).toBe("203.0.113.5");
    expect(clientIp("203.0.113.5", "198.51.100.1, 10.0.0.2", proxies)).toBe("203.0.113.5");
    expect(clientIp("203.0.113.5", "198.51.100.1", nobody)).toBe("203.0.113.5");
  });

  it("reads the first hop behind a trusted peer", () => {
    expect(clientIp("10.0.0.1", "203.0.113.5", proxies)).toBe("203.0.113.5");
  });

  it("walks right to left, skipping trusted hops", () => {
    expect(clientIp("10.0.0.1", "203.0.113.5, 10.0.0.3, 10.0.0.2", proxies)).toBe("203.0.113.5");
    expect(clientIp("127.0.0.1", "203.0.113.5,10.9.9.9", proxies)).toBe("203.0.113.5");
  });

  it("ignores spoofed entries left of the first untrusted hop", () => {
    expect(clientIp("10.0.0.1", "1.1.1.1, 10.0.0.7, 203.0.113.5, 10.0.0.2", proxies)).toBe("203.0.113.5");
    expect(clientIp("10.0.0.1", "127.0.0.1, 198.51.100.9", proxies)).toBe("198.51.100.9");
  });

  it("returns the leftmost entry when every hop is trusted", () => {
    expect(clientIp("10.0.0.1", "10.0.0.9, 10.0.0.8", proxies)).toBe("10.0.0.9");
    expect(clientIp("10.0.0.1", "10.0.0.9", proxies)).toBe("10.0.0.9");
  });

  it("stops at garbage and returns the trusted hop that forwarded it", () => {
    expect(clientIp("10.0.0.1", "garbage", proxies)).toBe("10.0.0.1");
    expect(clientIp("10.0.0.1", "203.0.113.5, garbage, 10.0.0.2", proxies)).toBe("10.0.0.2");
    expect(clientIp("10.0.0.1", "203.0.113.5, 10.0.0.2, unknown", proxies)).toBe("10.0.0.1");
    expect(clientIp("10.0.0.1", "", proxies)).toBe("10.0.0.1");
    expect(clientIp("10.0.0.1", "203.0.113.5,", proxies)).toBe("10.0.0.1");
    expect(clientIp("10.0.0.1", "203.0.113.5,,10.0.0.2", proxies)).toBe("10.0.0.2");
    expect(clientIp("10.0.0.1", "1.2.3.4:5678", proxies)).toBe("10.0.0.1");
    expect(clientIp("10.0.0.1", "[2001:db8::1]", proxies)).toBe("10.0.0.1");
    expect(clientIp("10.0.0.1", "01.2.3.4", proxies)).toBe("10.0.0.1");
  });

  it("only reaches garbage after trusted hops; an untrusted hop to its right wins", () => {
    expect(clientIp("10.0.0.1", "garbage, 203.0.113.5", proxies)).toBe("203.0.113.5");
  });

  it("tolerates optional whitespace around list elements", () => {
    expect(clientIp("10.0.0.1", "  203.0.113.5\t,\t10.0.0.2  ", proxies)).toBe("203.0.113.5");
  });

  it("joins a repeated header in order", () => {
    expect(clientIp("10.0.0.1", ["203.0.113.5, 10.0.0.3", "10.0.0.2"], proxies)).toBe("203.0.113.5");
    expect(clientIp("10.0.0.1", ["198.51.100.1", "203.0.113.5"], proxies)).toBe("203.0.113.5");
    expect(clientIp("10.0.0.1", ["10.0.0.5", "10.0.0.6"], proxies)).toBe("10.0.0.5");
    expect(clientIp("10.0.0.1", [], proxies)).toBe("10.0.0.1");
    expect(clientIp("203.0.113.9", ["1.1.1.1", "2.2.2.2"], proxies)).toBe("203.0.113.9");
  });

  it("normalises the socket address", () => {
    expect(clientIp("::ffff:127.0.0.1", undefined, proxies)).toBe("127.0.0.1");
    expect(clientIp("::ffff:203.0.113.5", "1.1.1.1", proxies)).toBe("203.0.113.5");
    expect(clientIp("2001:DB8:0:0:0:0:0:1", undefined, proxies)).toBe("2001:db8::1");
  });

  it("recognises a mapped socket address as a trusted proxy", () => {
    expect(clientIp("::ffff:127.0.0.1", "203.0.113.5", proxies)).toBe("203.0.113.5");
    expect(clientIp("::ffff:10.0.0.1", "10.0.0.2, 203.0.113.5", proxies)).toBe("203.0.113.5");
  });

  it("normalises forwarded entries and handles IPv6 hops", () => {
    expect(clientIp("fd00::1", "::FFFF:198.51.100.7", proxies)).toBe("198.51.100.7");
    expect(clientIp("fd00::1", "2001:0DB8::0001, fd12::5", proxies)).toBe("2001:db8::1");
    expect(clientIp("10.0.0.1", "2001:db8::1, ::ffff:10.0.0.2", proxies)).toBe("2001:db8::1");
  });

  it("returns an unparsable socket address unchanged without reading the header", () => {
    expect(clientIp("", "203.0.113.5", () => true)).toBe("");
    expect(clientIp("not-an-ip", "203.0.113.5", () => true)).toBe("not-an-ip");
  });

  it("hands the matcher normalised text", () => {
    const seen: string[] = [];
    const recording: IpMatcher = (ip) => {
      seen.push(ip);
      return ip === "10.0.0.1";
    };
    expect(clientIp("::ffff:10.0.0.1", "2001:DB8::1", recording)).toBe("2001:db8::1");
    expect(seen).toEqual(["10.0.0.1", "2001:db8::1"]);
  });
});
