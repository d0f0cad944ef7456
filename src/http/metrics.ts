// What /metrics exports, in Prometheus's text format. Each app has a registry of its own (never
// prom-client's global one); what the layers below count is read from them when scraped (NodeStats,
// the cache's size, the usage backlog) or heard through a listener (the bus lag), so none of them
// imports a metrics library. Labels come only from small fixed sets (route patterns, methods, status
// classes, verification codes, results): never a key, a key id, a company, an API user or an address.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { VERIFY_CODES, type VerifyCode } from "../core/errors.ts";
import type { NodeStats } from "../services/node-stats.ts";
import type { Services } from "../services/services.ts";

/** Request durations, in seconds: a cached verification takes well under a millisecond. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Bus lag, in seconds: a few milliseconds on a healthy Redis; the degraded TTL (1 s) is what matters. */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The route label of a request no route matched: one label, whatever the URL. */
export const UNMATCHED_ROUTE = "unmatched";

const STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;
type StatusClass = (typeof STATUS_CLASSES)[number];
const statusClass = (status: number): StatusClass =>
  STATUS_CLASSES[Math.min(4, Math.max(0, Math.floor(status / 100) - 1))] as StatusClass;

/**
 * The process's own metrics (CPU, memory, event-loop delay, GC, handles), once per process: they are
 * the process's whatever app asks, and prom-client's collectors start monitors that are never stopped,
 * so one set serves every app (tests build many).
 */
let processRegistry: Registry | null = null;
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** A counter that reports a count kept elsewhere (it only ever grows), read at scrape time. */
function countedElsewhere(registry: Registry, name: string, help: string, read: () => number) {
  let reported = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now > reported) this.inc(now - reported);
      reported = now;
    },
  });
}

export interface Metrics {
  /** The exposition: this app's metrics, then the process's. */
  scrape(): Promise<string>;
  readonly contentType: string;
  /** A verification answered with `code` (the route's; the fast path has its own, below). */
  verified(code: VerifyCode): void;
  /** A request Fastify answered: its registered route pattern (or UNMATCHED_ROUTE), method and status. */
  answered(route: string, method: string, status: number, seconds: number): void;
  /** An answer of 503 STORE_UNAVAILABLE. */
  storeUnavailable(): void;
  /** For the verify fast path: its durations go to label children bound once, not looked up per request. */
  readonly fastPath: {
    verified(code: VerifyCode): void;
    answered(status: number, seconds: number): void;
    /** What `answered(route, method, …)` counts, bound once to its label children (forward auth). */
    timer(route: string, method: string): (status: number, seconds: number) => void;
  };
  /** Stops listening to the services (the app is closing). */
  close(): void;
}

/** The metrics of one app over `services`. */
export function createMetrics(services: Services): Metrics {
  const registry = new Registry();
  const stats: NodeStats = services.stats;

  // Counted in plain numbers on the hot path (a property add), handed to prom-client when scraped.
  const verified = Object.fromEntries(VERIFY_CODES.map((code) => [code, 0])) as Record<VerifyCode, number>;
  const reportedVerified = { ...verified };
  const countVerified = (code: VerifyCode) => {
    verified[code]++;
  };
  new Counter({
    name: "latchkey_verifications_total",
    help: "Verifications answered (POST /v1/verify), by outcome code.",
    labelNames: ["code"] as const,
    registers: [registry],
    collect() {
      for (const code of VERIFY_CODES) {
        this.labels(code).inc(verified[code] - reportedVerified[code]);
        reportedVerified[code] = verified[code];
      }
    },
  });
  const durations = new Histogram({
    name: "latchkey_http_request_duration_seconds",
    help: "Time from a request's arrival to its answer, by route pattern, method and status class.",
    labelNames: ["route", "method", "status_class"] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  // Bounded: route patterns, methods and status classes are small fixed sets.
  const durationChildren = new Map<string, Histogram.Internal<"route" | "method" | "status_class">>();
  const verifyDurations = Object.fromEntries(
    STATUS_CLASSES.map((cls) => [cls, durations.labels("/v1/verify", "POST", cls)]),
  ) as Record<StatusClass, Histogram.Internal<"route" | "method" | "status_class">>;
  const storeUnavailable = new Counter({
    name: "latchkey_store_unavailable_total",
    help: "Answers of 503 STORE_UNAVAILABLE: the store could not be reached (readiness probes included).",
    registers: [registry],
  });

  countedElsewhere(
    registry,
    "latchkey_verification_cache_hits_total",
    "Key lookups answered from the verification cache (remembered unknown keys included).",
    () => stats.cacheHits,
  );
  countedElsewhere(
    registry,
    "latchkey_verification_cache_misses_total",
    "Key lookups the verification cache could not answer, which went to the store.",
    () => stats.cacheMisses,
  );
  new Gauge({
    name: "latchkey_verification_cache_entries",
    help: "Entries in the verification cache: found keys and remembered unknown ones.",
    registers: [registry],
    collect() {
      this.set(services.verification.cacheSize);
    },
  });
  let reportedLimits = { allowed: 0, refused: 0 };
  new Counter({
    name: "latchkey_rate_limit_decisions_total",
    help: "Rate-limit decisions on keys and API users, by result (allowed or refused).",
    labelNames: ["result"] as const,
    registers: [registry],
    collect() {
      const now = { allowed: stats.rateLimitAllowed, refused: stats.rateLimitRefused };
      for (const result of ["allowed", "refused"] as const)
        this.labels(result).inc(Math.max(0, now[result] - reportedLimits[result]));
      reportedLimits = now;
    },
  });
  countedElsewhere(
    registry,
    "latchkey_redis_errors_total",
    "Errors Redis gave this node (cluster mode): refused connections, timeouts, failed commands and publishes.",
    () => stats.redisErrors,
  );
  const busLag = new Histogram({
    name: "latchkey_bus_lag_seconds",
    help: "Time a change took from its publication on another node to its receipt here (cluster mode).",
    buckets: LAG_BUCKETS,
    registers: [registry],
  });
  const unwatch = stats.watchBusLag((ms) => busLag.observe(ms / 1000));
  new Gauge({
    name: "latchkey_usage_flush_backlog",
    help: "Keys whose usage counts are gathered in memory and not yet written to the store.",
    registers: [registry],
    collect() {
      this.set(services.usage.pendingKeys);
    },
  });

  return {
    async scrape() {
      return (await registry.metrics()) + (await processMetrics().metrics());
    },
    contentType: registry.contentType,
    verified: countVerified,
    answered(route, method, status, seconds) {
      // Children are kept by their labels: prom-client hashes the label object on every labels() call,
      // and forward auth's fast path answers through here at a gateway's rate.
      const cls = statusClass(status);
      const id = `${route} ${method} ${cls}`;
      let child = durationChildren.get(id);
      if (child === undefined) {
        child = durations.labels(route, method, cls);
        durationChildren.set(id, child);
      }
      child.observe(seconds);
    },
    storeUnavailable: () => storeUnavailable.inc(),
    fastPath: {
      verified: countVerified,
      answered: (status, seconds) => verifyDurations[statusClass(status)].observe(seconds),
      timer(route, method) {
        const children = Object.fromEntries(
          STATUS_CLASSES.map((cls) => [cls, durations.labels(route, method, cls)]),
        ) as Record<StatusClass, Histogram.Internal<"route" | "method" | "status_class">>;
        return (status, seconds) => children[statusClass(status)].observe(seconds);
      },
    },
    close: unwatch,
  };
}
