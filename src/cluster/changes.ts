/**
 * What changed, announced after the change commits, so whatever caches verification answers can drop
 * them. The verification cache listens to every change; in cluster mode the bus publishes this node's
 * own changes and delivers the other nodes' ones.
 */
export type Change = (
  | { kind: "key"; keyId: string }
  /** A new key: drops a cached "no such key" answer. The fingerprint is the cache's key, never the key. */
  | { kind: "key_created"; fingerprint: string }
  | { kind: "credential"; credentialId: string }
) &
  ChangeScope;

/**
 * Whose object changed, so a change is told only to those who may see the object (a company's
 * verify-key stream). Absent in a change from a node that predates it: then nobody is told what changed,
 * only that something did.
 */
export interface ChangeScope {
  companyId?: string | null;
  environment?: "live" | "test" | null;
  /** The merchant account of the object (null: company-level); absent from older nodes' changes. */
  merchantAccountId?: string | null;
}

type Listener = (change: Change) => void;

export class Changes {
  private readonly listeners: Listener[] = [];
  private readonly localListeners: Listener[] = [];

  /** Every change, made here or on another node. */
  on(listener: Listener): void {
    this.listeners.push(listener);
  }

  /** Only changes made on this node (what a bus sends to the others). */
  onLocal(listener: Listener): void {
    this.localListeners.push(listener);
  }

  /** A change committed on this node. */
  emit(change: Change): void {
    for (const listener of this.listeners) listener(change);
    for (const listener of this.localListeners) listener(change);
  }

  /** A change another node made, delivered by the bus. */
  receive(change: Change): void {
    for (const listener of this.listeners) listener(change);
  }
}
