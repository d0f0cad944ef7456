/** A parsed address: version and 32- or 128-bit value. IPv4-mapped IPv6 (::ffff:1.2.3.4) is normalised to its IPv4 form. */
export type IpAddress = { version: 4 | 6; value: bigint };

/** A network: `network` has every bit below `prefix` cleared. */
export type IpRule = { version: 4 | 6; network: bigint; prefix: number };

/** Compiled once when a rule set is saved/loaded, then called per request. */
export type IpMatcher = (ip: string) => boolean;

export const MAX_ALLOWLIST_ENTRIES = 100;

// Longest valid IPv6 text: six 4-digit groups plus a dotted quad.
const MAX_IPV6_LENGTH = 45;
const ALL_ONES_128 = (1n << 128n) - 1n;

/** Strict dotted quad to an unsigned 32-bit number, or -1. Hand-rolled because it runs on every request. */
function parseIpv4Number(text: string): number {
  const length = text.length;
  if (length < 7 || length > 15) return -1;
  let result = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      result = result * 256 + octet;
      dots++;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      // A second digit after a leading "0" would be read as octal by some parsers, so refuse it.
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return result * 256 + octet;
}

function parseHexGroup(part: string): number {
  const length = part.length;
  if (length === 0 || length > 4) return -1;
  let value = 0;
  for (let i = 0; i < length; i++) {
    const c = part.charCodeAt(i);
    let digit: number;
    if (c >= 48 && c <= 57) digit = c - 48;
    else if (c >= 97 && c <= 102) digit = c - 87;
    else if (c >= 65 && c <= 70) digit = c - 55;
    else return -1;
    value = value * 16 + digit;
  }
  return value;
}

/** Appends the 16-bit groups of `parts` to `out`; `allowIpv4Tail` lets the final part be a dotted quad. */
function pushGroups(parts: readonly string[], allowIpv4Tail: boolean, out: number[]): boolean {
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (allowIpv4Tail && i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIpv4Number(part);
      if (v4 < 0) return false;
      out.push(v4 >>> 16, v4 & 0xffff);
    } else {
      const group = parseHexGroup(part);
      if (group < 0) return false;
      out.push(group);
    }
  }
  return true;
}

/** The eight 16-bit groups of an IPv6 address, or null. Zone ids ("%eth0") fail as non-hex. */
function parseIpv6Groups(text: string): number[] | null {
  if (text.length < 2 || text.length > MAX_IPV6_LENGTH) return null;
  const gap = text.indexOf("::");
  if (gap === -1) {
    const groups: number[] = [];
    if (!pushGroups(text.split(":"), true, groups) || groups.length !== 8) return null;
    return groups;
  }
  if (text.indexOf("::", gap + 1) !== -1) return null;
  const head = text.slice(0, gap);
  const tail = text.slice(gap + 2);
  const headGroups: number[] = [];
  const tailGroups: number[] = [];
  if (head !== "" && !pushGroups(head.split(":"), false, headGroups)) return null;
  if (tail !== "" && !pushGroups(tail.split(":"), true, tailGroups)) return null;
  const missing = 8 - headGroups.length - tailGroups.length;
  // "::" stands for at least one zero group.
  if (missing < 1) return null;
  return [...headGroups, ...new Array<number>(missing).fill(0), ...tailGroups];
}

function isMappedGroups(groups: readonly number[]): boolean {
  return (
    groups[0] === 0 &&
    groups[1] === 0 &&
    groups[2] === 0 &&
    groups[3] === 0 &&
    groups[4] === 0 &&
    groups[5] === 0xffff
  );
}

function mappedIpv4Number(groups: readonly number[]): number {
  return ((groups[6] as number) * 0x10000 + (groups[7] as number)) >>> 0;
}

function groupsToBigint(groups: readonly number[]): bigint {
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(group);
  return value;
}

function bigintToGroups(value: bigint): number[] {
  const groups: number[] = new Array<number>(8);
  for (let i = 7; i >= 0; i--) {
    groups[i] = Number(value & 0xffffn);
    value >>= 16n;
  }
  return groups;
}

/** Parses without folding IPv4-mapped IPv6 into IPv4, so rule parsing can tell the two apart. */
function parseRaw(text: string): { version: 4; value: number } | { version: 6; groups: number[] } | null {
  const v4 = parseIpv4Number(text);
  if (v4 >= 0) return { version: 4, value: v4 };
  const groups = parseIpv6Groups(text);
  return groups === null ? null : { version: 6, groups };
}

export function parseIp(text: string): IpAddress | null {
  const v4 = parseIpv4Number(text);
  if (v4 >= 0) return { version: 4, value: BigInt(v4) };
  const groups = parseIpv6Groups(text);
  if (groups === null) return null;
  if (isMappedGroups(groups)) return { version: 4, value: BigInt(mappedIpv4Number(groups)) };
  return { version: 6, value: groupsToBigint(groups) };
}

function formatIpv4Number(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

function formatIpv6Groups(groups: readonly number[]): string {
  // RFC 5952 section 5: mapped addresses keep their IPv4 tail in dotted form.
  if (isMappedGroups(groups)) return `::ffff:${formatIpv4Number(mappedIpv4Number(groups))}`;
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    // Strictly longer only, so the first of equally long runs wins; a lone zero group is never compressed.
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

export function formatIp(addr: IpAddress): string {
  return addr.version === 4
    ? formatIpv4Number(Number(addr.value))
    : formatIpv6Groups(bigintToGroups(addr.value));
}

function ipv4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

function ipv6Mask(prefix: number): bigint {
  return ALL_ONES_128 ^ ((1n << BigInt(128 - prefix)) - 1n);
}

/** The rule, or why the text is not one. */
function parseRuleDetailed(text: string): IpRule | string {
  if (text === "") return "empty entry";
  if (/\s/.test(text)) return "must not contain whitespace";
  const slash = text.indexOf("/");
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const address = parseRaw(addressText);
  if (address === null) return "not a valid IPv4 or IPv6 address";
  const maxPrefix = address.version === 4 ? 32 : 128;
  let prefix = maxPrefix;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(prefixText)) return "prefix length must be a plain integer";
    prefix = Number(prefixText);
    if (prefix > maxPrefix) return `prefix length must be between 0 and ${maxPrefix}`;
  }
  if (address.version === 4) {
    return { version: 4, network: BigInt((address.value & ipv4Mask(prefix)) >>> 0), prefix };
  }
  if (isMappedGroups(address.groups)) {
    // Shorter prefixes would reach outside ::ffff:0:0/96 and have no IPv4 equivalent.
    if (prefix < 96) return "IPv4-mapped IPv6 prefix length must be at least 96";
    const v4Prefix = prefix - 96;
    const network = (mappedIpv4Number(address.groups) & ipv4Mask(v4Prefix)) >>> 0;
    return { version: 4, network: BigInt(network), prefix: v4Prefix };
  }
  return { version: 6, network: groupsToBigint(address.groups) & ipv6Mask(prefix), prefix };
}

export function parseIpRule(text: string): IpRule | null {
  const rule = parseRuleDetailed(text);
  return typeof rule === "string" ? null : rule;
}

export function formatIpRule(rule: IpRule): string {
  const address = formatIp({ version: rule.version, value: rule.network });
  return rule.prefix === (rule.version === 4 ? 32 : 128) ? address : `${address}/${rule.prefix}`;
}

/** Validates and canonicalises an allowlist at write time. Duplicates (after canonicalisation) are removed, order kept. Max 100 entries. */
export function normalizeAllowlist(
  entries: readonly string[],
): { ok: true; entries: string[] } | { ok: false; invalid: string; reason: string } {
  const seen = new Set<string>();
  const result: string[] = [];
  for (const entry of entries) {
    const rule = parseRuleDetailed(entry);
    if (typeof rule === "string") return { ok: false, invalid: entry, reason: rule };
    const canonical = formatIpRule(rule);
    if (seen.has(canonical)) continue;
    if (result.length === MAX_ALLOWLIST_ENTRIES) {
      return {
        ok: false,
        invalid: entry,
        reason: `too many entries (at most ${MAX_ALLOWLIST_ENTRIES} distinct entries)`,
      };
    }
    seen.add(canonical);
    result.push(canonical);
  }
  return { ok: true, entries: result };
}

function compileRules(entries: readonly string[]): IpMatcher {
  const v4Networks: number[] = [];
  const v4Masks: number[] = [];
  const v6Networks: bigint[] = [];
  const v6Masks: bigint[] = [];
  for (const entry of entries) {
    const rule = parseRuleDetailed(entry);
    if (typeof rule === "string")
      throw new Error(`Invalid IP allowlist entry ${JSON.stringify(entry)}: ${rule}`);
    if (rule.version === 4) {
      v4Networks.push(Number(rule.network));
      v4Masks.push(ipv4Mask(rule.prefix));
    } else {
      v6Networks.push(rule.network);
      v6Masks.push(ipv6Mask(rule.prefix));
    }
  }
  const v4Count = v4Networks.length;
  const v6Count = v6Networks.length;

  const matchV4 = (value: number): boolean => {
    for (let i = 0; i < v4Count; i++) {
      if ((value & (v4Masks[i] as number)) >>> 0 === v4Networks[i]) return true;
    }
    return false;
  };

  return (ip: string): boolean => {
    const v4 = parseIpv4Number(ip);
    if (v4 >= 0) return matchV4(v4);
    const groups = parseIpv6Groups(ip);
    if (groups === null) return false;
    if (isMappedGroups(groups)) return matchV4(mappedIpv4Number(groups));
    if (v6Count === 0) return false;
    const value = groupsToBigint(groups);
    for (let i = 0; i < v6Count; i++) {
      if ((value & (v6Masks[i] as bigint)) === v6Networks[i]) return true;
    }
    return false;
  };
}

/** Compiled once when a rule set is saved/loaded, then called per request. An EMPTY list allows every address. An unparsable address never matches a non-empty list. Throws on invalid entries (validate first with normalizeAllowlist). */
export function compileAllowlist(entries: readonly string[]): IpMatcher {
  if (entries.length === 0) return () => true;
  return compileRules(entries);
}

/**
 * Like compileAllowlist, but an EMPTY list trusts nobody. Use this for trusted proxies: a matcher from
 * compileAllowlist([]) would trust every peer and let any client choose its address via X-Forwarded-For.
 */
export function compileTrustedProxies(entries: readonly string[]): IpMatcher {
  if (entries.length === 0) return () => false;
  return compileRules(entries);
}

/**
 * The caller's address: the socket peer, unless the peer is a trusted proxy; only then X-Forwarded-For is read right to left, skipping trusted hops, and the first untrusted hop is the client. If every hop is trusted, the leftmost entry is the client. Invalid entries in XFF stop the walk: the last valid hop examined (the trusted proxy that would have forwarded it) is returned. The result is normalised (mapped IPv4 → plain IPv4 text, IPv6 → canonical compressed text).
 * `forwardedFor` is the raw header value (string, string[] when repeated — join with ",", or undefined).
 * Without it, a trusted peer's X-Real-IP (one address; repeated, it is ignored) names the client.
 * A socket address that does not parse is returned unchanged.
 */
export function clientIp(
  socketAddress: string,
  forwardedFor: string | string[] | undefined,
  isTrustedProxy: IpMatcher,
  realIp?: string | string[] | undefined,
): string {
  const peer = parseIp(socketAddress);
  if (peer === null) return socketAddress;
  let current = formatIp(peer);
  if (!isTrustedProxy(current)) return current;
  // A trusted proxy that sends X-Real-IP alone (nginx's common setup) names the client in it.
  if (forwardedFor === undefined) {
    const real = typeof realIp === "string" ? parseIp(realIp.trim()) : null;
    return real === null ? current : formatIp(real);
  }
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor).split(",");
  for (let i = hops.length - 1; i >= 0; i--) {
    // Whitespace around list elements is optional in HTTP headers.
    const hop = parseIp((hops[i] as string).trim());
    if (hop === null) return current;
    current = formatIp(hop);
    if (!isTrustedProxy(current)) return current;
  }
  return current;
}
