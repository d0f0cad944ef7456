export const QUICK = process.env.BENCH_QUICK === "1";
/** Runs per figure; each figure printed is the median of these. */
export const RUNS = QUICK ? 1 : 5;
export const IN_PROCESS_MS = QUICK ? 1000 : 2000;
export const CREATE_MS = QUICK ? 1000 : 2000;
export const HTTP_SECONDS = QUICK ? 1 : 5;
export const CONNECTIONS = 50;
/** Keys verified into an empty cache to weigh it. */
export const MEMORY_KEYS = QUICK ? 2000 : 20_000;
export const GATEWAY_IP = "203.0.113.7";
/** Revocations timed between two nodes (issue 4 asks for 1,000). */
export const REVOCATIONS = QUICK ? 100 : 1000;

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Calls fn one at a time (each awaited) for about `ms`; returns calls per second. */
async function opsPerSecond(fn: (i: number) => Promise<unknown>, ms: number): Promise<number> {
  // Reading the clock every call would be a visible part of a sub-microsecond call, so read it per batch.
  const batch = 32;
  let n = 0;
  const start = performance.now();
  const end = start + ms;
  let now = start;
  while (now < end) {
    for (let j = 0; j < batch; j++) await fn(n++);
    now = performance.now();
  }
  return n / ((now - start) / 1000);
}

/** A warm-up run (not counted), then RUNS runs; the median. */
export async function medianOps(fn: (i: number) => Promise<unknown>, ms: number): Promise<number> {
  await opsPerSecond(fn, Math.max(200, ms / 2));
  const results: number[] = [];
  for (let r = 0; r < RUNS; r++) results.push(await opsPerSecond(fn, ms));
  return median(results);
}

export function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

export function settle(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const group = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1, minimumFractionDigits: 1 });
const twoDecimals = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2, minimumFractionDigits: 2 });

export const fmt = {
  int: (n: number) => group.format(Math.round(n)),
  one: (n: number) => oneDecimal.format(n),
  two: (n: number) => twoDecimals.format(n),
  /** µs per call, with precision that matters at its scale. */
  us: (n: number) =>
    n < 10 ? twoDecimals.format(n) : n < 100 ? oneDecimal.format(n) : group.format(Math.round(n)),
  mb: (bytes: number) => `${oneDecimal.format(bytes / 1024 / 1024)} MB`,
};

/** A Markdown table, so the output can be pasted into bench/README.md as it is. */
export function table(headers: string[], rows: string[][], rightAligned: number[] = []): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const cell = (s: string, i: number) =>
    rightAligned.includes(i) ? s.padStart(widths[i] as number) : s.padEnd(widths[i] as number);
  const line = (cells: string[]) => `| ${cells.map(cell).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (rightAligned.includes(i) ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  return [line(headers), rule, ...rows.map(line)].join("\n");
}

/** The nearest-rank percentile (p from 0 to 100) of the values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}
