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
  /**
   * How long a Redis command may take, and how long the bus may leave this node's heartbeat unanswered,
   * before Redis counts as away. Default 500 ms.
   */
  timeoutMs?: number;
  log: { info(msg: string): void; warn(msg: string): void; error(obj: unknown, msg: string): void };
  /** Told of every Redis error, and of how long each change from another node took to arrive (/metrics). */
  observe?: { redisError(): void; busLag(ms: number): void };
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
  /** When it was published (ms since the epoch), so the receiver can tell how long the bus took. */
  sentAt?: number;
}

/** Unanswered heartbeats remembered at most; by then Redis has long counted as away. */
const MAX_BEATS_IN_FLIGHT = 64;

/**
 * Cluster mode: any number of stateless nodes on one PostgreSQL, with Redis carrying what must be
 * shared at once. Each committed change is published; every other node drops its cached entry.
 * While this node cannot hear the bus it keeps cached answers only briefly (and says so in the logs
 * and /healthz), so a missed revocation is never served for longer than that. Rate limits are counted
 * in Redis so all nodes together allow no more than the limit.
 *
 * Redis is judged by what it does, not by the state of its sockets: a frozen or partitioned Redis keeps
 * its connections open and simply stops answering. So the node publishes a heartbeat to a channel of
 * its own every fifth of the timeout, and counts Redis as away once a heartbeat has gone unheard for
 * the whole timeout: the one round trip proves that both publishing and the subscription work.
 */
export class Cluster {
  readonly nodeId = randomBytes(6).toString("hex");
  readonly limiter: RedisRateLimiter;
  private readonly channel: string;
  private readonly beatChannel: string;
  private readonly timeoutMs: number;
  /** Publishes and counts; fails fast when Redis is away (no offline queue) so requests never hang. */
  private readonly client: Redis;
  private readonly subscriber: Redis;
  private state: BusState = "connecting";
  private verification: CacheTtlControl | null = null;
  /** Heartbeats sent and not yet heard back, oldest first. */
  private readonly beats: { seq: number; sentAt: number }[] = [];
  private beatSeq = 0;
  private beatTimer: NodeJS.Timeout | null = null;
  /** What went wrong last, said once when Redis is found away; errors while away are only counted. */
  private lastError: string | null = null;
  private errorsWhileAway = 0;
  private awaySince = 0;
  private closing = false;

  constructor(private readonly opts: ClusterOptions) {
    const prefix = opts.prefix ?? "latchkey:";
    this.channel = `${prefix}changes`;
    this.beatChannel = `${prefix}beat:${this.nodeId}`;
    this.timeoutMs = opts.timeoutMs ?? 500;
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
      commandTimeout: this.timeoutMs,
    });
    this.subscriber = new Redis(opts.url, { ...common, maxRetriesPerRequest: null });
    this.limiter = new RedisRateLimiter(this.client, {
      prefix,
      whenDown: opts.rateLimitWhenDown,
      // While Redis is known to be away, limits are decided at once instead of after a timeout each.
      available: () => this.state !== "unreachable",
      onError: (err) => this.noteError(err),
    });
    this.client.on("error", (err) => this.noteError(err));
    this.subscriber.on("error", (err) => this.noteError(err));
    this.subscriber.on("ready", () => void this.onReady());
    this.subscriber.on("close", () => this.onLost("the connection closed"));
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
    const every = Math.max(10, Math.floor(this.timeoutMs / 5));
    this.beatTimer = setInterval(() => this.beat(), every);
    this.beatTimer.unref();
    // Wait up to 2 s for the first heartbeat, so a healthy start does not begin degraded.
    await new Promise<void>((resolve) => {
      this.onConnected = resolve;
      setTimeout(resolve, 2000).unref();
    });
    this.onConnected = () => {};
    if (this.state !== "connected") this.onLost("it did not answer within 2 s of start-up");
  }

  private receive: (change: Change) => void = () => {};
  private onConnected: () => void = () => {};

  private publish(change: Change): void {
    const envelope: Envelope = { node: this.nodeId, change, sentAt: Date.now() };
    this.client.publish(this.channel, JSON.stringify(envelope)).catch((err) => {
      // The other nodes are most likely cut off too, and so on the short TTL; if not, their normal
      // TTL bounds how long they can miss this change.
      this.noteError(err);
    });
  }

  /**
   * Judges the last heartbeats, then sends the next. The judgement waits for the I/O phase of the
   * event loop (setImmediate), so a heartbeat that arrived while this process was busy is read before
   * it is missed; and only heartbeats that were actually sent count, so a stalled process does not
   * blame Redis for its own stall.
   */
  private beat(): void {
    setImmediate(() => {
      const oldest = this.beats[0];
      // While connecting, start() gives Redis its 2 s; afterwards, the timeout is the bound.
      if (this.state === "connected" && oldest !== undefined && Date.now() - oldest.sentAt > this.timeoutMs)
        this.onLost(`it did not answer for ${this.timeoutMs} ms`);
      if (this.closing) return;
      // Lost ones (sent to a connection that then died) are forgotten once later ones are in flight.
      if (this.beats.length >= MAX_BEATS_IN_FLIGHT) this.beats.shift();
      const seq = ++this.beatSeq;
      this.beats.push({ seq, sentAt: Date.now() });
      // A failed publish is simply never heard; the count above notices.
      this.client.publish(this.beatChannel, String(seq)).catch((err) => this.noteError(err));
    });
  }

  /** A heartbeat came back: Redis takes publishes and delivers them. Those sent before it were delivered too (one connection keeps order). */
  private heard(seq: number): void {
    while (this.beats.length > 0 && (this.beats[0] as { seq: number }).seq <= seq) this.beats.shift();
    if (this.state === "connected") return;
    const was = this.state;
    this.state = "connected";
    // Changes published while this node was away were missed: start the cache afresh.
    this.verification?.limitCacheTtl(null);
    if (was === "unreachable") {
      const seconds = ((Date.now() - this.awaySince) / 1000).toFixed(1);
      const errors = this.errorsWhileAway > 0 ? ` (${this.errorsWhileAway} errors while away)` : "";
      this.opts.log.info(`cluster: Redis is back after ${seconds} s${errors}; cache TTL restored`);
    }
    this.lastError = null;
    this.errorsWhileAway = 0;
    this.onConnected();
  }

  private async onReady(): Promise<void> {
    try {
      await this.subscriber.subscribe(this.channel, this.beatChannel);
    } catch (err) {
      this.noteError(err);
      return;
    }
    // Heard back, this proves the bus; no need to wait for the next tick.
    this.beat();
  }

  private onLost(why: string): void {
    if (this.closing || this.state === "unreachable") return;
    this.state = "unreachable";
    this.awaySince = Date.now();
    this.errorsWhileAway = 0;
    this.verification?.limitCacheTtl(this.opts.degradedTtlMs);
    const cause = this.lastError ? ` (${this.lastError})` : "";
    this.opts.log.warn(
      `cluster: Redis is unreachable: ${why}${cause}; cached keys now live at most ${this.opts.degradedTtlMs} ms ` +
        `and rate limits ${this.opts.rateLimitWhenDown === "open" ? "fall back to this node's own counters" : "refuse requests"}`,
    );
  }

  private onMessage(channel: string, message: string): void {
    if (channel === this.beatChannel) {
      this.heard(Number(message));
      return;
    }
    if (channel !== this.channel) return;
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message) as Envelope;
    } catch {
      return;
    }
    if (envelope.node === this.nodeId || !isChange(envelope.change)) return;
    // A node of an older version sends no timestamp; clocks a little apart can make the lag negative.
    if (typeof envelope.sentAt === "number")
      this.opts.observe?.busLag(Math.max(0, Date.now() - envelope.sentAt));
    this.receive(envelope.change);
  }

  /**
   * While Redis is up, each new kind of error is logged once. While it is away, errors (a reconnect
   * refused, a timeout, a publish that failed) are what "away" means: they are counted, and said in
   * one line when it comes back, so an outage costs two log lines, not one per attempt.
   */
  private noteError(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.opts.observe?.redisError();
    if (this.state === "connected" && message !== this.lastError)
      this.opts.log.error({ err }, "cluster: Redis error");
    if (this.state === "unreachable") this.errorsWhileAway++;
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
    if (this.beatTimer) clearInterval(this.beatTimer);
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
