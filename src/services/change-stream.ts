import { randomBytes } from "node:crypto";
import type { Change, Changes } from "../cluster/changes.ts";
import { visibleFrom } from "../core/access/environments.ts";
import type { VerifierScope } from "./verification.ts";

/** What a verify key's stream says, in order. */
export type StreamEvent =
  /** Something changed that the subscriber's cached answers may hold: drop them. */
  | { type: "change"; id: string; change: PublicChange }
  /** The subscriber may have missed changes (it resumed from too far back, or this node was deaf to the others): drop everything. */
  | { type: "reset"; id: string }
  /** This node cannot hear the other nodes: keep answers at most `ttl_ms` until a reset says it can again. */
  | { type: "degraded"; id: string; ttl_ms: number };

/** A change as a stream tells it: which key or API user, or a new key's fingerprint (never the key). */
export type PublicChange =
  | { kind: "key"; key_id: string }
  | { kind: "key_created"; fingerprint: string }
  | { kind: "credential"; credential_id: string };

export interface ChangeStreamOptions {
  /** Events kept for subscribers that reconnect with Last-Event-ID. */
  keep?: number;
  /** The cache TTL this node uses while it cannot hear the others (told to subscribers). */
  degradedTtlMs?: number;
}

type Listener = (event: StreamEvent) => void;

interface Kept {
  seq: number;
  change: Change;
}

/**
 * Every change this node hears (its own and, in cluster mode, the other nodes'), for verify keys that
 * keep a cache of their own (the SDK): each subscriber is told, at once, of the changes to objects it
 * may see. Event ids are this stream's epoch and a sequence number, so a subscriber that reconnects
 * (to this node) with Last-Event-ID gets what it missed; one that cannot be caught up (another node,
 * a restart, too long away) is told to start afresh.
 */
export class ChangeStream {
  private readonly epoch = randomBytes(6).toString("hex");
  private seq = 0;
  private readonly kept: Kept[] = [];
  private readonly keep: number;
  private readonly listeners = new Set<{ scope: VerifierScope; listener: Listener }>();
  private deaf = false;
  private readonly degradedTtlMs: number;
  /** The last status event's sequence number: a subscriber that missed one cannot be caught up. */
  private lastStatusSeq = 0;

  constructor(changes: Changes, opts: ChangeStreamOptions = {}) {
    this.keep = opts.keep ?? 10_000;
    this.degradedTtlMs = opts.degradedTtlMs ?? 1000;
    changes.on((change) => this.heard(change));
  }

  private id(seq: number): string {
    return `${this.epoch}-${seq}`;
  }

  private heard(change: Change): void {
    const seq = ++this.seq;
    this.kept.push({ seq, change });
    if (this.kept.length > this.keep) this.kept.shift();
    for (const { scope, listener } of this.listeners) {
      const event = eventFor(scope, change, this.id(seq));
      if (event) listener(event);
    }
  }

  /**
   * Whether this node hears the other nodes (the cluster bus says so). Deaf, subscribers must keep
   * answers briefly; hearing again, they start afresh, as this node's own cache does.
   */
  setHearing(hearing: boolean): void {
    if (!hearing && !this.deaf) {
      this.deaf = true;
      this.broadcast((id) => ({ type: "degraded", id, ttl_ms: this.degradedTtlMs }));
    } else if (hearing && this.deaf) {
      this.deaf = false;
      this.broadcast((id) => ({ type: "reset", id }));
    }
  }

  private broadcast(make: (id: string) => StreamEvent): void {
    // A status event takes a sequence number of its own, so a resumed subscriber replays it in order.
    const seq = ++this.seq;
    this.lastStatusSeq = seq;
    for (const { listener } of this.listeners) listener(make(this.id(seq)));
  }

  /**
   * Starts telling `listener` of changes `scope` may see. With a Last-Event-ID this stream issued and
   * still holds, the events after it come first; with any other, a reset. The first events say whether
   * this node is deaf. Returns the way to stop.
   */
  subscribe(scope: VerifierScope, lastEventId: string | undefined, listener: Listener): () => void {
    const entry = { scope, listener };
    const resumeFrom = this.resumable(lastEventId);
    if (resumeFrom === null) {
      if (lastEventId !== undefined) listener({ type: "reset", id: this.id(this.seq) });
    } else {
      for (const kept of this.kept) {
        if (kept.seq <= resumeFrom) continue;
        const event = eventFor(scope, kept.change, this.id(kept.seq));
        if (event) listener(event);
      }
    }
    if (this.deaf) listener({ type: "degraded", id: this.id(this.seq), ttl_ms: this.degradedTtlMs });
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  /** The sequence number to resume after, or null when `lastEventId` cannot be caught up from here. */
  private resumable(lastEventId: string | undefined): number | null {
    if (lastEventId === undefined) return null;
    const dash = lastEventId.lastIndexOf("-");
    if (dash < 0 || lastEventId.slice(0, dash) !== this.epoch) return null;
    const seq = Number(lastEventId.slice(dash + 1));
    if (!Number.isInteger(seq) || seq < 0 || seq > this.seq) return null;
    // A status event (deaf, hearing again) is not kept: a subscriber that missed one starts afresh.
    if (seq < this.lastStatusSeq) return null;
    const oldest = this.kept[0]?.seq ?? this.seq + 1;
    // Everything after `seq` must still be held.
    return seq + 1 >= oldest || seq === this.seq ? seq : null;
  }

  /** The id a new subscriber starts from (this stream's latest event). */
  get latestId(): string {
    return this.id(this.seq);
  }
}

/** What `scope` is told of a change: the change itself if it may see the object, a reset if nobody knows whose it is. */
function eventFor(scope: VerifierScope, change: Change, id: string): StreamEvent | null {
  const known = change.companyId !== undefined;
  if (!known)
    return scope.companyId === null
      ? { type: "change", id, change: publicChange(change) }
      : { type: "reset", id };
  if (scope.companyId !== null && change.companyId !== scope.companyId) return null;
  if (!visibleFrom(scope.environment, change.environment ?? null)) return null;
  // A merchant account's verifier hears of its account's objects only; of a change that does not say
  // whose it is, only that something changed.
  const account = scope.merchantAccountId ?? null;
  if (account !== null && change.merchantAccountId !== account) {
    return change.merchantAccountId === undefined ? { type: "reset", id } : null;
  }
  return { type: "change", id, change: publicChange(change) };
}

function publicChange(change: Change): PublicChange {
  if (change.kind === "key") return { kind: "key", key_id: change.keyId };
  if (change.kind === "key_created") return { kind: "key_created", fingerprint: change.fingerprint };
  return { kind: "credential", credential_id: change.credentialId };
}
