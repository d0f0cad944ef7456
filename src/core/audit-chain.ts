import { createHash } from "node:crypto";

/** The fields of an audit event that its hash covers: everything but the hash itself. */
export interface ChainedEvent {
  id: string;
  chain: string;
  seq: number;
  at: string;
  company_id: string | null;
  actor_type: string;
  actor_id: string | null;
  actor_label: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  changes: unknown;
  ip: string | null;
  user_agent: string | null;
  totp_used: boolean;
  prev_hash: string;
  /** Absent on events written before live and test were split (their hashes never covered them). */
  environment?: "live" | "test";
  actor_environment?: "live" | "test";
  /**
   * Present only on an event about a merchant account's object (migration 012): a company-level
   * event, like every event written before, hashes without it, so old events stay verifiable and
   * clearing the column on a merchant account's event breaks its hash as changing it does.
   */
  merchant_account_id?: string;
  /**
   * The merchant account the actor acted within (migration 015), present only when it had one, so a
   * company-level actor's event, and every older one, hashes as before.
   */
  actor_merchant_account_id?: string;
}

export const GENESIS_HASH = "0".repeat(64);

/** JSON with object keys sorted at every depth, so equal events always hash the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value as Record<string, unknown>)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

export function eventHash(event: ChainedEvent): string {
  return createHash("sha256").update(canonicalJson(event)).digest("hex");
}

export interface ChainCheck {
  valid: boolean;
  events_checked: number;
  first_broken_event_id: string | null;
}

/**
 * Walks a chain in order. An edited row no longer matches its hash; a deleted row leaves a gap in the
 * sequence and a successor whose prev_hash points at nothing; a deleted tail leaves the head (the last
 * hash recorded separately) pointing past the end.
 */
export function checkChain(
  events: Iterable<ChainedEvent & { hash: string }>,
  head: { seq: number; hash: string } | null,
): ChainCheck {
  let prevHash = GENESIS_HASH;
  let expectedSeq = 1;
  let checked = 0;
  for (const event of events) {
    checked += 1;
    const { hash, ...fields } = event;
    if (event.seq !== expectedSeq || event.prev_hash !== prevHash || eventHash(fields) !== hash) {
      return { valid: false, events_checked: checked, first_broken_event_id: event.id };
    }
    prevHash = hash;
    expectedSeq += 1;
  }
  const tailIntact = head === null ? checked === 0 : head.seq === expectedSeq - 1 && head.hash === prevHash;
  return { valid: tailIntact, events_checked: checked, first_broken_event_id: null };
}
