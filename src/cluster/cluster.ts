import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import type { Change, Changes } from "./changes.ts";
import { type RedisDownPolicy, RedisRateLimiter } from "./rate-limiter.ts";

export interface ClusterOptions {
  url: string;
  /** Prefix of every Redis key and channel, so several deployments can share one Redis. */
  prefix?: string;
  /** How long cached answers may live while this node cannot hear the others' changes. */
  degradedTtlMs: number;
  rateLimitWhenDown: RedisDownPolicy;
  log: { info(msg: string): void; warn(msg: string): void; error(obj: unknown, msg: string): void };
}

export type BusState = "connecting" | "connected" | "unreachable";

/** What the bus needs of this node's verification cache: to shorten its TTL while the bus is deaf. */
export interface CacheTtlControl {
  limitCacheTtl(ttlMs: number | null): void;
  readonly cacheTtlMs: number;
}

interface Envelope {
  node: string;
  change: Change;
}

/**
 * Cluster mode: any number of stateless nodes on one PostgreSQL, with Redis carrying what must be
 * shared at once. Each committed change is published; every other node drops its cached entry.
 * While this node cannot hear the bus it keeps cached answers only briefly (and says so in the logs
 * and /healthz), so a missed revocation is never served for longer than that. Rate limits are counted
 * in Redis so all nodes together allow no more than the limit.
 */
export class Cluster {
  readonly nodeId = randomBytes(6).toString("hex");
  readonly limiter: RedisRateLimiter;
  private readonly channel: string;
  /** Publishes and counts; fails fast when Redis is away (no offline queue) so requests never hang. */
  private readonly client: Redis;
  private readonly subscriber: Redis;
  private state: BusState = "connecting";
  private verification: CacheTtlControl | null = null;
  private lastError: string | null = null;
  private closing = false;

  constructor(private readonly opts: ClusterOptions) {
    const prefix = opts.prefix ?? "latchkey:";
    this.channel = `${prefix}changes`;
    const common = {
      lazyConnect: true,
      // Keep trying for ever, backing off to one attempt a second: a node outlives a Redis restart.
      retryStrategy: (times: number) => Math.min(50 * times, 1000),
      connectTimeout: 2000,
    };
    this.client = new Redis(opts.url, {
      ...common,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: 500,
    });
    this.subscriber = new Redis(opts.url, { ...common, maxRetriesPerRequest: null });
    this.limiter = new RedisRateLimiter(this.client, {
      prefix,
      whenDown: opts.rateLimitWhenDown,
      onError: (err) => this.noteError(err),
    });
    this.client.on("error", (err) => this.noteError(err));
    this.subscriber.on("error", (err) => this.noteError(err));
    this.subscriber.on("ready", () => void this.onReady());
    this.subscriber.on("close", () => this.onLost());
    this.subscriber.on("message", (channel: string, message: string) => this.onMessage(channel, message));
  }

  /**
   * Wires the bus to this node's changes and cache, and connects. Start-up does not wait for Redis:
   * a node that cannot reach it starts degraded and recovers when Redis comes.
   */
  async start(changes: Changes, verification: CacheTtlControl): Promise<void> {
    this.verification = verification;
    changes.onLocal((change) => this.publish(change));
    this.receive = (change) => changes.receive(change);
    this.client.connect().catch((err) => this.noteError(err));
    this.subscriber.connect().catch((err) => this.noteError(err));
    // Until the bus is heard, assume it is not.
    verification.limitCacheTtl(this.opts.degradedTtlMs);
    // Wait up to 2 s for the subscription, so a healthy start does not begin degraded.
    await new Promise<void>((resolve) => {
      this.onConnected = resolve;
      setTimeout(resolve, 2000).unref();
    });
    this.onConnected = () => {};
    if (this.state !== "connected") this.onLost();
  }

  private receive: (change: Change) => void = () => {};
  private onConnected: () => void = () => {};

  private publish(change: Change): void {
    const envelope: Envelope = { node: this.nodeId, change };
    this.client.publish(this.channel, JSON.stringify(envelope)).catch((err) => {
      // The other nodes are most likely cut off too, and so on the short TTL; if not, their normal
      // TTL bounds how long they can miss this change.
      this.noteError(err);
    });
  }

  private async onReady(): Promise<void> {
    try {
      await this.subscriber.subscribe(this.channel);
    } catch (err) {
      this.noteError(err);
      return;
    }
    const was = this.state;
    this.state = "connected";
    this.lastError = null;
    // Changes published while this node was away were missed: start the cache afresh.
    this.verification?.limitCacheTtl(null);
    if (was === "unreachable") this.opts.log.info("cluster: Redis is back; cache TTL restored");
    this.onConnected();
  }

  private onLost(): void {
    if (this.closing || this.state === "unreachable") return;
    this.state = "unreachable";
    this.verification?.limitCacheTtl(this.opts.degradedTtlMs);
    this.opts.log.warn(
      `cluster: Redis is unreachable; cached keys now live at most ${this.opts.degradedTtlMs} ms ` +
        `and rate limits ${this.opts.rateLimitWhenDown === "open" ? "fall back to this node's own counters" : "refuse requests"}`,
    );
  }

  private onMessage(channel: string, message: string): void {
    if (channel !== this.channel) return;
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message) as Envelope;
    } catch {
      return;
    }
    if (envelope.node === this.nodeId || !isChange(envelope.change)) return;
    this.receive(envelope.change);
  }

  private noteError(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (message !== this.lastError) this.opts.log.error({ err }, "cluster: Redis error");
    this.lastError = message;
  }

  /** What /healthz reports. */
  health() {
    return {
      mode: "cluster" as const,
      node: this.nodeId,
      redis: this.state,
      cache_ttl_ms: this.verification?.cacheTtlMs ?? null,
      rate_limits_when_redis_down: this.opts.rateLimitWhenDown,
    };
  }

  get busState(): BusState {
    return this.state;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.subscriber.disconnect();
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

function isChange(value: unknown): value is Change {
  if (value === null || typeof value !== "object") return false;
  const c = value as Record<string, unknown>;
  return (
    (c.kind === "key" && typeof c.keyId === "string") ||
    (c.kind === "key_created" && typeof c.fingerprint === "string") ||
    (c.kind === "credential" && typeof c.credentialId === "string")
  );
}
