import { randomBase62, toBase62 } from "./random.ts";

export type IdPrefix = "co" | "cred" | "key" | "usr" | "evt" | "ses" | "msg" | "wh" | "dlv" | "leak" | "ma";

/**
 * Prefixed ids (`key_…`) so a log line says what an id is. The first 8 characters after the prefix
 * encode the creation time, so ids sort by age and serve as pagination cursors.
 */
export function newId(prefix: IdPrefix, now: Date = new Date()): string {
  return `${prefix}_${toBase62(now.getTime(), 8)}${randomBase62(14)}`;
}

const ID_PATTERN = /^(co|cred|key|usr|evt|ses|msg|wh|dlv|leak|ma)_[0-9A-Za-z]{22}$/;

export function isId(value: string, prefix: IdPrefix): boolean {
  return ID_PATTERN.test(value) && value.startsWith(`${prefix}_`);
}
