import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cluster, type ClusterOptions } from "./cluster/cluster.ts";
import { type Config, ConfigError } from "./config.ts";
import type { Catalog } from "./core/catalog.ts";
import { SmtpMailer } from "./services/mailer.ts";
import { NodeStats } from "./services/node-stats.ts";
import { createServices, type ServiceOptions, type Services } from "./services/services.ts";
import {
  isStoreFull,
  isStoreUnavailable,
  migrateToLatest,
  openStore,
  ownerOnly,
  type Store,
  type StoreOptions,
} from "./store/store.ts";

/** Where the cluster and background work report (the server hands in its logger, redaction included). */
export type RuntimeLog = ClusterOptions["log"];

export interface RuntimeOptions {
  /**
   * The store to open, migrate to the latest schema and close with the runtime; or an open, migrated
   * one (a test's or the bench's), which stays its owner's to close.
   */
  store: StoreOptions | Store;
  /** The HMAC secret, or how to find it once the store is open (the embedded store keeps one beside its data). */
  secret: string | (() => string);
  catalog: Catalog;
  keyPrefix: string;
  /** Cluster mode: changes announced and rate limits counted through this Redis. */
  redis?: Omit<ClusterOptions, "log">;
  /** Default: silent (tests, bench and one-shot commands). */
  log?: RuntimeLog;
  /** The rest of what the services are built with: clock, usage flush, sessions, sign-in limits, cache. */
  services?: Omit<
    ServiceOptions,
    "db" | "catalog" | "secret" | "keyPrefix" | "limiter" | "onBackgroundError" | "stats"
  >;
}

const SILENT: RuntimeLog = { info() {}, warn() {}, error() {} };

/**
 * Background work (the usage flush) that failed. A lost database or a full disk is said once per
 * episode by the store, and the work is retried on the next round, so it is not logged again every
 * round with a stack; anything else is.
 */
function backgroundError(log: RuntimeLog, err: unknown): void {
  if (isStoreUnavailable(err) || isStoreFull(err)) return;
  log.error({ err }, "background work failed");
}

/** Everything a node runs on but its HTTP server: the store, the services and, in cluster mode, the bus. */
export interface Runtime {
  store: Store;
  services: Services;
  /** Present in cluster mode. */
  cluster: Cluster | null;
  /** Flushes usage counts, then closes the bus and the store (if it was opened here). */
  close(): Promise<void>;
}

/**
 * Builds the runtime once, the same way for `latchkey serve`, the CLI's other commands, the tests and
 * the bench: opens and migrates the store (or takes an open one), connects the cluster when Redis is
 * configured, and builds the services.
 *
 * @example
 * const runtime = await createRuntime(runtimeOptions(loadConfig(), "serve"));
 * await runtime.services.audit.verifyAll();
 * await runtime.close();
 */
export async function createRuntime(opts: RuntimeOptions): Promise<Runtime> {
  const owned = !("db" in opts.store);
  const store = "db" in opts.store ? opts.store : await openStore(opts.store, opts.log);
  let cluster: Cluster | null = null;
  try {
    const secret = typeof opts.secret === "function" ? opts.secret() : opts.secret;
    if (owned) await migrateToLatest(store.db);
    // Migrations made files (PGlite makes them 0666): the data dir is owner-only again.
    const dataDir = "db" in opts.store || opts.store.kind !== "pglite" ? undefined : opts.store.dataDir;
    if (dataDir) ownerOnly(dataDir);
    const log = opts.log;
    // Counted by the services and the bus alike, read by /metrics.
    const stats = new NodeStats();
    cluster = opts.redis ? new Cluster({ ...opts.redis, log: log ?? SILENT, observe: stats }) : null;
    const services = createServices({
      ...opts.services,
      db: store.db,
      catalog: opts.catalog,
      secret,
      keyPrefix: opts.keyPrefix,
      stats,
      ...(cluster ? { limiter: cluster.limiter } : {}),
      ...(log ? { onBackgroundError: (err: unknown) => backgroundError(log, err), mailLog: log } : {}),
    });
    // The bus's verdict on hearing the other nodes goes to this node's cache and to the SDKs it streams to.
    await cluster?.start(services.changes, {
      limitCacheTtl(ttlMs) {
        services.verification.limitCacheTtl(ttlMs);
        services.changeStream.setHearing(ttlMs === null);
      },
      get cacheTtlMs() {
        return services.verification.cacheTtlMs;
      },
    });
    let closed: Promise<void> | null = null;
    return {
      store,
      services,
      cluster,
      close() {
        closed ??= (async () => {
          // Usage counts are flushed before the store closes; the bus goes last so this node's final
          // changes are still announced.
          await services.close();
          await cluster?.close();
          if (owned) await store.close();
        })();
        return closed;
      },
    };
  } catch (err) {
    await cluster?.close();
    if (owned) await store.close();
    throw err;
  }
}

/**
 * The HMAC secret. PostgreSQL deployments share it across nodes, so it must be given; the embedded
 * store generates one on first start and keeps it (0600) beside the data.
 */
function resolveSecret(config: Config): string {
  if (config.secret) return config.secret;
  if (config.databaseUrl) {
    throw new ConfigError(
      "LATCHKEY_SECRET is required with DATABASE_URL (every node must hash keys with the same secret). " +
        "Set it to a random string of at least 32 characters, e.g. `openssl rand -base64 48`.",
    );
  }
  const path = join(config.dataDir, "secret");
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  const secret = randomBytes(48).toString("base64url");
  writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
  return secret;
}

/** The configured store: PostgreSQL when DATABASE_URL is set, else the embedded one in the data dir. */
export function storeOptions(config: Config, command: string): StoreOptions {
  return config.databaseUrl
    ? { kind: "postgres", url: config.databaseUrl }
    : { kind: "pglite", dataDir: config.dataDir, command };
}

/**
 * The runtime `latchkey serve` builds from its configuration. Without the embedded store's data dir
 * to keep one in, a missing secret fails here, before the database is touched.
 */
export function runtimeOptions(config: Config, command: string): RuntimeOptions {
  return {
    store: storeOptions(config, command),
    secret: config.databaseUrl ? resolveSecret(config) : () => resolveSecret(config),
    catalog: config.catalog,
    keyPrefix: config.keyPrefix,
    ...(config.redisUrl
      ? {
          redis: {
            url: config.redisUrl,
            prefix: config.redisPrefix,
            degradedTtlMs: config.degradedCacheTtlMs,
            rateLimitWhenDown: config.rateLimitWhenRedisDown,
            timeoutMs: config.redisTimeoutMs,
          },
        }
      : {}),
    services: {
      usageFlushMs: config.usageFlushMs,
      // Only a serving node sweeps; a one-shot command (bootstrap, migrate) leaves that to the servers.
      ...(command === "serve" ? { expirySweepMs: config.expirySweepMs } : {}),
      sessionIdleMinutes: config.sessionIdleMinutes,
      sessionMaxHours: config.sessionMaxHours,
      loginLimits: config.loginLimits,
      loginIpLimits: config.loginIpLimits,
      cache: { ttlMs: config.cacheTtlMs, max: config.cacheMaxKeys, graceMs: config.cacheGraceMs },
      degradedCacheTtlMs: config.degradedCacheTtlMs,
      ...(config.githubScanningKeys ? { githubScanningKeys: config.githubScanningKeys } : {}),
      leakReportLimits: config.leakReportLimits,
      webhooks: { timeoutMs: config.webhookTimeoutMs, allowedNetworks: config.webhookAllowedNetworks },
      publicUrl: config.publicUrl,
      ...(config.smtpUrl && config.smtpFrom
        ? { mailer: new SmtpMailer(config.smtpUrl, config.smtpFrom) }
        : {}),
    },
  };
}
