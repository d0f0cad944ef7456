import type { Change } from "./changes.ts";

/** What the cache keeps per key hash: the loaded subject, or null for "no such key" (negative entry). */
interface Entry<T> {
  value: T | null;
  expiresAt: number;
  keyId: string | null;
  credentialId: string | null;
}

/**
 * A bounded LRU of verification lookups by key hash, with positive and negative entries and a short TTL.
 * Local changes drop their entries at once (see Changes); the TTL bounds staleness from anywhere else.
 */
export class KeyCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly opts: { max: number; ttlMs: number; negativeTtlMs: number; now: () => number },
  ) {}

  get(hash: string): { value: T | null } | undefined {
    const entry = this.entries.get(hash);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.opts.now()) {
      this.entries.delete(hash);
      return undefined;
    }
    // Re-insert to mark it most recently used (a Map iterates in insertion order).
    this.entries.delete(hash);
    this.entries.set(hash, entry);
    return { value: entry.value };
  }

  set(hash: string, value: T | null, ids: { keyId: string | null; credentialId: string | null }): void {
    if (this.opts.max <= 0) return;
    const ttl = value === null ? this.opts.negativeTtlMs : this.opts.ttlMs;
    this.entries.delete(hash);
    this.entries.set(hash, { value, expiresAt: this.opts.now() + ttl, ...ids });
    while (this.entries.size > this.opts.max) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  /** Drops every entry a change touches. Writes are rare next to verifications, so a scan is fine. */
  apply(change: Change): void {
    if (change.kind === "key_created") {
      this.entries.delete(change.keyHash);
      return;
    }
    for (const [hash, entry] of this.entries) {
      if (change.kind === "key" ? entry.keyId === change.keyId : entry.credentialId === change.credentialId) {
        this.entries.delete(hash);
      }
    }
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
