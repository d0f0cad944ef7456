import { crc32 } from "node:zlib";

/**
 * A Latchkey key's shape, checked offline: `<brand>_<live|test>_<sk|ss>_<32 base62><6 base62 CRC32>`.
 * A typo or a made-up key fails here without a request. (The same rule as Latchkey's own
 * src/core/key-format.ts; the SDK carries it so it has no dependency on the server.)
 */
const TOKEN = /^([a-z][a-z0-9]{0,15})_(live|test)_(sk|ss)_[0-9A-Za-z]{32}([0-9A-Za-z]{6})$/;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function base62(value: number, width: number): string {
  let n = value;
  let out = "";
  while (n > 0) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out.padStart(width, "0");
}

export interface KeyShape {
  brand: string;
  environment: "live" | "test";
  kind: "sk" | "ss";
}

/** The key's brand, environment and kind if it is well formed and its checksum holds; else null. */
export function checkKey(key: string): KeyShape | null {
  if (key.length > 64) return null;
  const m = TOKEN.exec(key);
  if (!m) return null;
  if (base62(crc32(key.slice(0, -6)), 6) !== m[4]) return null;
  return { brand: m[1] as string, environment: m[2] as "live" | "test", kind: m[3] as "sk" | "ss" };
}
