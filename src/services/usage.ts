import type { Kysely } from "kysely";
import { apiKeys } from "../store/repositories.ts";
import type { Database } from "../store/schema.ts";

/**
 * Last-used times and addresses, gathered in memory on the verification path and written in batches,
 * so verifying a key never writes to the database. A crash loses at most one flush interval of them.
 */
export class UsageRecorder {
  private pending = new Map<string, { at: Date; ip: string | null }>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  record(keyId: string, at: Date, ip: string | null): void {
    this.pending.set(keyId, { at, ip });
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Writes what has been gathered; a failed batch is merged back so the next flush retries it. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.size === 0) return;
      const batch = this.pending;
      this.pending = new Map();
      try {
        await apiKeys.recordUse(
          this.db,
          [...batch].map(([id, u]) => ({ id, ...u })),
        );
      } catch (err) {
        for (const [id, u] of batch) if (!this.pending.has(id)) this.pending.set(id, u);
        this.onError(err);
      }
    });
    return this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }
}
