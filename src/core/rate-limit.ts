/**
 * Rate limits: `{limit, window}` pairs such as 100 per "1s" and 100000 per "1d", counted with a sliding
 * window. Each window keeps two counters (this window and the previous one); the previous one is
 * weighted by how much of it still overlaps the sliding window. Unlike fixed windows this allows no
 * burst of twice the limit across a window boundary, and it needs two numbers per window, not a log.
 */

export interface RateLimit {
  limit: number;
  /** A duration: 1-86400 seconds written as "30s", "1m", "1h", "1d"... */
  window: string;
}

/** A limit ready to count: its window in milliseconds. */
export interface CompiledLimit {
  limit: number;
  window: string;
  windowMs: number;
}

export const MAX_LIMITS = 5;
export const MAX_LIMIT = 1_000_000_000;
export const WINDOW_PATTERN = "^[1-9][0-9]{0,4}[smhd]$";
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const MAX_WINDOW_MS = 86_400_000;

const WINDOW = new RegExp(WINDOW_PATTERN);

export function windowMs(window: string): number | null {
  if (!WINDOW.test(window)) return null;
  const ms = Number(window.slice(0, -1)) * UNIT_MS[window.slice(-1) as keyof typeof UNIT_MS];
  return ms <= MAX_WINDOW_MS ? ms : null;
}

/** Checks a list of limits; returns the compiled list or why it is refused. */
export function compileLimits(
  limits: readonly RateLimit[],
): { ok: true; limits: CompiledLimit[] } | { ok: false; reason: string } {
  if (limits.length > MAX_LIMITS) return { ok: false, reason: `at most ${MAX_LIMITS} rate limits` };
  const seen = new Set<number>();
  const out: CompiledLimit[] = [];
  for (const l of limits) {
    const ms = windowMs(l.window);
    if (ms === null)
      return { ok: false, reason: `window "${l.window}" is not 1s to 1d (e.g. "1s", "1m", "1d")` };
    if (!Number.isInteger(l.limit) || l.limit < 1 || l.limit > MAX_LIMIT)
      return { ok: false, reason: `limit must be an integer from 1 to ${MAX_LIMIT}` };
    if (seen.has(ms)) return { ok: false, reason: `two limits share the window "${l.window}"` };
    seen.add(ms);
    out.push({ limit: l.limit, window: l.window, windowMs: ms });
  }
  return { ok: true, limits: out };
}

/** Compiles limits already validated on the way in (read back from the store). */
export function compileStored(limits: readonly RateLimit[] | null | undefined): CompiledLimit[] {
  if (!limits || limits.length === 0) return [];
  const compiled = compileLimits(limits);
  return compiled.ok ? compiled.limits : [];
}

/** The two counters of one window at a moment: what the sliding estimate is made of. */
export interface WindowCounts {
  prev: number;
  curr: number;
}

/** The fraction of the current fixed window that has passed at `nowMs`. */
function elapsed(nowMs: number, windowMs: number): number {
  return (nowMs % windowMs) / windowMs;
}

/** The number of requests the sliding window holds at `nowMs`. */
export function estimate(counts: WindowCounts, nowMs: number, windowMs: number): number {
  return counts.prev * (1 - elapsed(nowMs, windowMs)) + counts.curr;
}

/** Whether one more request fits. The same formula runs in the Redis script. */
export function fits(counts: WindowCounts, nowMs: number, l: CompiledLimit): boolean {
  return estimate(counts, nowMs, l.windowMs) + 1 <= l.limit;
}

/** The counts at `laterMs` when nothing more is counted after `nowMs` (the counters roll over). */
function rolled(counts: WindowCounts, nowMs: number, laterMs: number, windowMs: number): WindowCounts {
  const shift = Math.floor(laterMs / windowMs) - Math.floor(nowMs / windowMs);
  if (shift === 0) return counts;
  return shift === 1 ? { prev: counts.curr, curr: 0 } : { prev: 0, curr: 0 };
}

/** Milliseconds until one more request would fit, given the counts at `nowMs` (0 if it fits now). */
export function waitMs(counts: WindowCounts, nowMs: number, l: CompiledLimit): number {
  if (fits(counts, nowMs, l)) return 0;
  const w = l.windowMs;
  const intoWindow = nowMs % w;
  const room = l.limit - 1;
  let wait: number;
  if (counts.curr <= room && counts.prev > 0) {
    // Still in this window: only the previous window's share can shrink, and only if this one has room.
    const need = 1 - (room - counts.curr) / counts.prev; // fraction of the window that must have passed
    wait = Math.max(1, Math.ceil(need * w - intoWindow));
  } else {
    // Next window: this window's count becomes the previous one and must shrink below the limit.
    const need = counts.curr > 0 ? Math.max(0, 1 - room / counts.curr) : 0;
    wait = Math.max(1, Math.ceil(w - intoWindow + need * w));
  }
  // The closed form can be a millisecond off in floating point: settle on the first moment at which
  // `fits` (what the counters actually use) lets one through.
  const fitsAfter = (ms: number) => fits(rolled(counts, nowMs, nowMs + ms, w), nowMs + ms, l);
  for (let i = 0; i < 3 && wait > 1 && fitsAfter(wait - 1); i++) wait--;
  for (let i = 0; i < 3 && !fitsAfter(wait); i++) wait++;
  return wait;
}

/** The answer for a request: allowed or not, and what the RateLimit-* headers say. */
export interface LimitDecision {
  allowed: boolean;
  /** The most constrained limit. */
  limit: number;
  window: string;
  /** Requests left in that sliding window after this one. */
  remaining: number;
  /** Seconds until that limit's current fixed window ends and its count starts to fall away. */
  resetSeconds: number;
  /** When refused: seconds until one more request would fit. */
  retryAfterSeconds: number;
}

/**
 * Folds the counts each limit saw (before this request) into one decision. `allowed` is given by the
 * counter (the Redis script decides atomically); headers describe the tightest limit.
 */
export function decideLimits(
  limits: readonly CompiledLimit[],
  counts: readonly WindowCounts[],
  nowMs: number,
  allowed: boolean,
): LimitDecision {
  let worst: LimitDecision | null = null;
  for (let i = 0; i < limits.length; i++) {
    const l = limits[i] as CompiledLimit;
    const c = counts[i] as WindowCounts;
    const after = estimate(c, nowMs, l.windowMs) + (allowed ? 1 : 0);
    const remaining = Math.max(0, Math.floor(l.limit - after));
    const wait = allowed ? 0 : waitMs(c, nowMs, l);
    const candidate: LimitDecision = {
      allowed,
      limit: l.limit,
      window: l.window,
      remaining,
      resetSeconds: Math.max(1, Math.ceil((l.windowMs - (nowMs % l.windowMs)) / 1000)),
      retryAfterSeconds: Math.ceil(wait / 1000),
    };
    if (
      worst === null ||
      (allowed
        ? candidate.remaining < worst.remaining
        : candidate.retryAfterSeconds > worst.retryAfterSeconds)
    ) {
      worst = candidate;
    }
  }
  return worst as LimitDecision;
}

/** `100/1s,100000/1d` (the configuration form) as limits. */
export function parseLimitList(text: string): RateLimit[] | null {
  const parts = text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const limits: RateLimit[] = [];
  for (const part of parts) {
    const m = /^(\d+)\/(\S+)$/.exec(part);
    if (!m) return null;
    limits.push({ limit: Number(m[1]), window: m[2] as string });
  }
  return compileLimits(limits).ok ? limits : null;
}
