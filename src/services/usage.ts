import type { Kysely } from "kysely";
import { apiKeys, keyUsage } from "../store/repositories.ts";
import type { Database } from "../store/schema.ts";

/** What one key did since the last flush. */
interface Pending {
  at: Date | null;
  ip: string | null;
  /** Requests and refusals per UTC day (YYYY-MM-DD). */
  days: Map<string, { requests: number; denied: number }>;
}

const DAY_MS = 86_400_000;

/**
 * Last-used times and addresses and per-day counts, gathered in memory on the verification path and
 * written in batches, so verifying a key never writes to the database. Counts are added to the stored
 * ones (never overwritten), so every node's counts add up. A crash loses at most one flush interval of
 * usage, never a key or an audit event; an orderly shutdown flushes.
 */
export class UsageRecorder {
  private pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private day = "";
  private dayEnds = 0;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** A verification of a known key: allowed (`ok`) or refused. */
  record(keyId: string, at: Date, ip: string | null, ok = true): void {
    const ms = at.getTime();
    if (ms >= this.dayEnds || ms < this.dayEnds - DAY_MS) {
      this.day = at.toISOString().slice(0, 10);
      this.dayEnds = (Math.floor(ms / DAY_MS) + 1) * DAY_MS;
    }
    let pending = this.pending.get(keyId);
    if (pending === undefined) {
      pending = { at: null, ip: null, days: new Map() };
      this.pending.set(keyId, pending);
    }
    let counts = pending.days.get(this.day);
    if (counts === undefined) {
      counts = { requests: 0, denied: 0 };
      pending.days.set(this.day, counts);
    }
    if (ok) {
      counts.requests++;
      if (pending.at === null || pending.at.getTime() <= ms) {
        pending.at = at;
        pending.ip = ip;
      }
    } else {
      counts.denied++;
    }
  }

  /** How many keys have usage not yet written (after a failed final flush: what shutting down loses). */
  get pendingKeys(): number {
    return this.pending.size;
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /**
   * Writes what has been gathered, last-used times and counts in one transaction; a failed batch is
   * merged back so the next flush retries it and no count is lost or added twice.
   */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.size === 0) return;
      const batch = this.pending;
      this.pending = new Map();
      const uses: { id: string; at: Date; ip: string | null }[] = [];
      const counts: { keyId: string; day: string; requests: number; denied: number }[] = [];
      for (const [id, p] of batch) {
        if (p.at !== null) uses.push({ id, at: p.at, ip: p.ip });
        for (const [day, c] of p.days) counts.push({ keyId: id, day, ...c });
      }
      // Every node writes its rows in the same order, so two flushes at once never deadlock.
      uses.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
      counts.sort((x, y) =>
        x.keyId < y.keyId ? -1 : x.keyId > y.keyId ? 1 : x.day < y.day ? -1 : x.day > y.day ? 1 : 0,
      );
      try {
        await this.db.transaction().execute(async (tx) => {
          await apiKeys.recordUse(tx, uses);
          await keyUsage.add(tx, counts);
        });
      } catch (err) {
        this.mergeBack(batch);
        this.onError(err);
      }
    });
    return this.flushing;
  }

  private mergeBack(batch: Map<string, Pending>): void {
    for (const [id, old] of batch) {
      const now = this.pending.get(id);
      if (now === undefined) {
        this.pending.set(id, old);
        continue;
      }
      if (old.at !== null && (now.at === null || now.at < old.at)) {
        now.at = old.at;
        now.ip = old.ip;
      }
      for (const [day, c] of old.days) {
        const into = now.days.get(day);
        if (into) {
          into.requests += c.requests;
          into.denied += c.denied;
        } else now.days.set(day, c);
      }
    }
  }

  /**
   * Stops the timer and writes what is pending. There is no later flush to retry a failed one, so a
   * store that fails for a moment (a failover, a dropped connection) is given a few more tries.
   */
  async stop(opts: { retries?: number; retryDelayMs?: number } = {}): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const retries = opts.retries ?? 3;
    const delay = opts.retryDelayMs ?? 250;
    await this.flush();
    for (let attempt = 0; attempt < retries && this.pending.size > 0; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, delay * 2 ** attempt));
      await this.flush();
    }
  }
}
