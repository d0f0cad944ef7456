import type { Redis } from "ioredis";
import {
  type CompiledLimit,
  decideLimits,
  fits,
  type LimitDecision,
  type WindowCounts,
} from "../core/rate-limit.ts";

/** Something limited (a key, an API user, a sign-in address) and the limits it carries. */
export interface LimitSubject {
  id: string;
  limits: readonly CompiledLimit[];
}

/**
 * Request budgets and security counters (sign-in attempts, step-up codes), in memory on one node and in
 * Redis across a cluster. The answer describes the tightest limit, for the RateLimit-* headers.
 */
export interface RateLimiter {
  /**
   * Counts one request against every limit of every subject, all or nothing, in one atomic step: the
   * request is allowed only if each limit has room, and only an allowed request is counted (a refused
   * caller does not dig itself deeper). Because the check and the count are one step, a caller can
   * reserve an attempt before doing slow work (checking a code) and concurrent callers never share a slot.
   */
  consume(subjects: readonly LimitSubject[], nowMs: number): LimitDecision | Promise<LimitDecision>;
  /** Forgets what the subjects have used (a right step-up code clears the wrong ones before it). */
  reset(subjects: readonly LimitSubject[], nowMs: number): void | Promise<void>;
}

interface Counter {
  index: number;
  curr: number;
  prev: number;
}

/** One node's counters, in memory. */
export class LocalRateLimiter implements RateLimiter {
  private readonly counters = new Map<string, Counter>();
  private sweepAt = 10_000;

  consume(subjects: readonly LimitSubject[], nowMs: number): LimitDecision {
    const limits: CompiledLimit[] = [];
    const counters: Counter[] = [];
    const counts: WindowCounts[] = [];
    let allowed = true;
    for (const subject of subjects) {
      for (const l of subject.limits) {
        const counter = this.counter(`${subject.id}|${l.windowMs}`, Math.floor(nowMs / l.windowMs), nowMs);
        const c = { prev: counter.prev, curr: counter.curr };
        if (!fits(c, nowMs, l)) allowed = false;
        limits.push(l);
        counters.push(counter);
        counts.push(c);
      }
    }
    if (allowed) for (const counter of counters) counter.curr++;
    return decideLimits(limits, counts, nowMs, allowed);
  }

  reset(subjects: readonly LimitSubject[]): void {
    for (const subject of subjects) {
      for (const l of subject.limits) this.counters.delete(`${subject.id}|${l.windowMs}`);
    }
  }

  private counter(id: string, index: number, nowMs: number): Counter {
    let counter = this.counters.get(id);
    if (!counter) {
      counter = { index, curr: 0, prev: 0 };
      this.counters.set(id, counter);
      if (this.counters.size >= this.sweepAt) this.sweep(nowMs);
    } else if (counter.index !== index) {
      counter.prev = counter.index === index - 1 ? counter.curr : 0;
      counter.curr = 0;
      counter.index = index;
    }
    return counter;
  }

  /** Counters idle for two windows hold nothing; drop them so memory follows the active callers. */
  private sweep(nowMs: number): void {
    for (const [id, counter] of this.counters) {
      const windowMs = Number(id.slice(id.lastIndexOf("|") + 1));
      if (Math.floor(nowMs / windowMs) > counter.index + 1) this.counters.delete(id);
    }
    this.sweepAt = Math.max(10_000, this.counters.size * 2);
  }
}

/**
 * The same counting in Redis, in one Lua call, so every node shares one count and two nodes together
 * allow no more than the limit. Counters are plain integers per fixed window that expire after two
 * windows. The script returns the counts it saw so the caller builds the headers with the same formula.
 */
const SCRIPT = `
local now = tonumber(ARGV[1])
local ok = 1
local out = {}
for i = 1, #KEYS do
  local w = tonumber(ARGV[2 * i])
  local limit = tonumber(ARGV[2 * i + 1])
  local index = math.floor(now / w)
  local curr = tonumber(redis.call('GET', KEYS[i] .. ':' .. index) or '0')
  local prev = tonumber(redis.call('GET', KEYS[i] .. ':' .. (index - 1)) or '0')
  local elapsed = math.fmod(now, w) / w
  if prev * (1 - elapsed) + curr + 1 > limit then ok = 0 end
  out[2 * i - 1] = prev
  out[2 * i] = curr
end
if ok == 1 then
  for i = 1, #KEYS do
    local w = tonumber(ARGV[2 * i])
    local key = KEYS[i] .. ':' .. math.floor(now / w)
    redis.call('INCR', key)
    redis.call('PEXPIRE', key, 2 * w + 1000)
  end
end
table.insert(out, 1, ok)
return out
`;

export type RedisDownPolicy = "open" | "closed";

/**
 * Shared limits through Redis. When Redis cannot answer, `open` falls back to this node's own counters
 * (each node then enforces the limit on its own share of traffic) and `closed` refuses the request.
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly local = new LocalRateLimiter();

  constructor(
    private readonly redis: Redis,
    private readonly opts: {
      prefix: string;
      whenDown: RedisDownPolicy;
      onError: (err: unknown) => void;
      /** False while Redis is known to be away: limits are then decided here at once, not after a timeout. */
      available?: () => boolean;
    },
  ) {
    redis.defineCommand("latchkeyLimit", { lua: SCRIPT });
  }

  async consume(subjects: readonly LimitSubject[], nowMs: number): Promise<LimitDecision> {
    const keys: string[] = [];
    const args: number[] = [nowMs];
    const limits: CompiledLimit[] = [];
    for (const subject of subjects) {
      for (const l of subject.limits) {
        keys.push(`${this.opts.prefix}rl:${subject.id}:${l.windowMs}`);
        args.push(l.windowMs, l.limit);
        limits.push(l);
      }
    }
    if (this.opts.available?.() === false) return this.whenDown(subjects, limits, nowMs);
    let reply: number[];
    try {
      reply = await (
        this.redis as unknown as { latchkeyLimit(n: number, ...a: (string | number)[]): Promise<number[]> }
      ).latchkeyLimit(keys.length, ...keys, ...args);
    } catch (err) {
      this.opts.onError(err);
      return this.whenDown(subjects, limits, nowMs);
    }
    const counts: WindowCounts[] = limits.map((_, i) => ({
      prev: Number(reply[1 + 2 * i]),
      curr: Number(reply[2 + 2 * i]),
    }));
    return decideLimits(limits, counts, nowMs, reply[0] === 1);
  }

  private whenDown(subjects: readonly LimitSubject[], limits: CompiledLimit[], nowMs: number): LimitDecision {
    if (this.opts.whenDown === "open") return this.local.consume(subjects, nowMs);
    // Refused without knowing the counts: nothing is left to use until Redis answers again.
    return {
      ...decideLimits(
        limits,
        limits.map(() => ({ prev: 0, curr: 0 })),
        nowMs,
        false,
      ),
      remaining: 0,
      retryAfterSeconds: 1,
    };
  }

  /**
   * Deletes the subjects' counters for the current and the previous window (the only ones the sliding
   * estimate reads), and this node's fallback counters, which may have counted while Redis was away.
   * If Redis cannot be reached the counts stay: a caller is then limited sooner, never later.
   */
  async reset(subjects: readonly LimitSubject[], nowMs: number): Promise<void> {
    this.local.reset(subjects);
    const keys: string[] = [];
    for (const subject of subjects) {
      for (const l of subject.limits) {
        const index = Math.floor(nowMs / l.windowMs);
        const key = `${this.opts.prefix}rl:${subject.id}:${l.windowMs}`;
        keys.push(`${key}:${index}`, `${key}:${index - 1}`);
      }
    }
    if (keys.length === 0 || this.opts.available?.() === false) return;
    try {
      await this.redis.del(...keys);
    } catch (err) {
      this.opts.onError(err);
    }
  }
}
