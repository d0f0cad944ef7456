import type { Change } from "../cluster/changes.ts";

interface Entry<T> {
  value: T;
  expiresAt: number;
  keyId: string;
  credentialId: string | null;
  /** Set on every hit; eviction gives a used entry a second chance instead of reordering on each hit. */
  used: boolean;
}

export interface KeyCacheOptions {
  /** Found keys kept at most. */
  max: number;
  /** "No such key" answers kept at most, apart from found keys so a flood of made-up keys cannot push them out. */
  maxNegative: number;
  /** Read on every insert, so cluster mode can shorten it while the invalidation bus is down. */
  ttlMs: () => number;
  negativeTtlMs: () => number;
  /**
   * How long past its TTL a found key is kept for `stale`, to answer while the store cannot be
   * reached; read at every lookup, so it can be withdrawn at once (0: expired entries go).
   */
  graceMs?: () => number;
  now: () => number;
}

/**
 * Verification lookups by key fingerprint: found keys in a bounded cache with second-chance (CLOCK)
 * eviction, and negative answers in a smaller one of their own, both with a short TTL. Changes drop
 * entries by key id or credential id through indexes, so an invalidation costs the same whatever the
 * cache holds. A hit is one map read and a flag write.
 */
export class KeyCache<T> {
  private readonly found = new Map<string, Entry<T>>();
  private readonly missing = new Map<string, number>();
  private readonly byKey = new Map<string, string>();
  private readonly byCredential = new Map<string, Set<string>>();
  private changes = 0;

  constructor(private readonly opts: KeyCacheOptions) {}

  /** The cached answer: the value, null for a cached "no such key", undefined when not cached. */
  get(fingerprint: string): T | null | undefined {
    const entry = this.found.get(fingerprint);
    if (entry !== undefined) {
      const now = this.opts.now();
      if (entry.expiresAt > now) {
        entry.used = true;
        return entry.value;
      }
      // Expired, but kept through its grace in case the store cannot be reached to reload it.
      if (entry.expiresAt + this.grace() <= now) this.drop(fingerprint);
      return undefined;
    }
    const missingUntil = this.missing.get(fingerprint);
    if (missingUntil === undefined) return undefined;
    if (missingUntil > this.opts.now()) return null;
    this.missing.delete(fingerprint);
    return undefined;
  }

  /**
   * A found key whose TTL has run out but whose grace has not, for when the store cannot be reached
   * to reload it. No change to it has been heard since it was read (a change drops the entry).
   */
  stale(fingerprint: string): T | undefined {
    const entry = this.found.get(fingerprint);
    if (entry === undefined || entry.expiresAt + this.grace() <= this.opts.now()) return undefined;
    return entry.value;
  }

  private grace(): number {
    return this.opts.graceMs?.() ?? 0;
  }

  /**
   * A stamp to take before reading the store: a lookup that was in flight while a change arrived may
   * have read the row as it was before, so `set` and `setMissing` with an older stamp keep nothing.
   */
  get stamp(): number {
    return this.changes;
  }

  set(
    fingerprint: string,
    value: T,
    ids: { keyId: string; credentialId: string | null },
    stamp = this.changes,
  ): void {
    if (this.opts.max <= 0 || stamp !== this.changes) return;
    this.drop(fingerprint);
    this.found.set(fingerprint, {
      value,
      expiresAt: this.opts.now() + this.opts.ttlMs(),
      keyId: ids.keyId,
      credentialId: ids.credentialId,
      used: false,
    });
    this.byKey.set(ids.keyId, fingerprint);
    if (ids.credentialId !== null) {
      let set = this.byCredential.get(ids.credentialId);
      if (!set) {
        set = new Set();
        this.byCredential.set(ids.credentialId, set);
      }
      set.add(fingerprint);
    }
    if (this.found.size > this.opts.max) this.evict();
  }

  setMissing(fingerprint: string, stamp = this.changes): void {
    if (this.opts.maxNegative <= 0 || stamp !== this.changes) return;
    this.missing.delete(fingerprint);
    this.missing.set(fingerprint, this.opts.now() + this.opts.negativeTtlMs());
    // Negative answers are cheap to recompute: the oldest simply goes.
    if (this.missing.size > this.opts.maxNegative) {
      this.missing.delete(this.missing.keys().next().value as string);
    }
  }

  /** Drops every entry a change touches. */
  apply(change: Change): void {
    this.changes++;
    if (change.kind === "key_created") {
      this.missing.delete(change.fingerprint);
    } else if (change.kind === "key") {
      const fingerprint = this.byKey.get(change.keyId);
      if (fingerprint !== undefined) this.drop(fingerprint);
    } else {
      const set = this.byCredential.get(change.credentialId);
      if (set) for (const fingerprint of [...set]) this.drop(fingerprint);
    }
  }

  clear(): void {
    this.changes++;
    this.found.clear();
    this.missing.clear();
    this.byKey.clear();
    this.byCredential.clear();
  }

  get size(): number {
    return this.found.size + this.missing.size;
  }

  private drop(fingerprint: string): void {
    const entry = this.found.get(fingerprint);
    if (entry === undefined) return;
    this.found.delete(fingerprint);
    if (this.byKey.get(entry.keyId) === fingerprint) this.byKey.delete(entry.keyId);
    if (entry.credentialId !== null) {
      const set = this.byCredential.get(entry.credentialId);
      set?.delete(fingerprint);
      if (set?.size === 0) this.byCredential.delete(entry.credentialId);
    }
  }

  /** Walks from the oldest entry: a used one is moved to the back with its flag cleared, an unused one goes. */
  private evict(): void {
    for (const [fingerprint, entry] of this.found) {
      if (this.found.size <= this.opts.max) return;
      if (entry.used) {
        entry.used = false;
        this.found.delete(fingerprint);
        this.found.set(fingerprint, entry);
      } else {
        this.drop(fingerprint);
      }
    }
  }
}
