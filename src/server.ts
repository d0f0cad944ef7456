import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cluster } from "./cluster/cluster.ts";
import type { Config } from "./config.ts";
import { ConfigError } from "./config.ts";
import { buildApp } from "./http/app.ts";
import type { App } from "./http/types.ts";
import { createServices, type Services } from "./services/services.ts";
import { migrateToLatest, openStore, type Store } from "./store/store.ts";

/**
 * The HMAC secret. PostgreSQL deployments share it across nodes, so it must be given; the embedded
 * store generates one on first start and keeps it (0600) beside the data.
 */
export function resolveSecret(config: Config): string {
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

export async function openConfiguredStore(config: Config, command: string): Promise<Store> {
  return config.databaseUrl
    ? openStore({ kind: "postgres", url: config.databaseUrl })
    : openStore({ kind: "pglite", dataDir: config.dataDir, command });
}

export interface Running {
  app: App;
  services: Services;
  store: Store;
  /** Present in cluster mode (REDIS_URL). */
  cluster: Cluster | null;
  url: string;
  stop(): Promise<void>;
}

/** Opens the store, migrates, builds the app and listens. */
export async function startServer(
  config: Config,
  opts: { logger?: boolean | Record<string, unknown> } = {},
): Promise<Running> {
  if (config.databaseUrl && !config.secret) resolveSecret(config); // fail before touching the database
  const store = await openConfiguredStore(config, "serve");
  let cluster: Cluster | null = null;
  try {
    const secret = resolveSecret(config);
    await migrateToLatest(store.db);
    // The cluster and background work log through the app's logger (redaction included); what they
    // say before it exists (Redis unreachable at start-up) is kept and written once it does.
    let app: App | null = null;
    const early: ((app: App) => void)[] = [];
    const emit = (line: (app: App) => void) => (app ? line(app) : early.push(line));
    const log = {
      info: (msg: string) => emit((a) => a.log.info(msg)),
      warn: (msg: string) => emit((a) => a.log.warn(msg)),
      error: (obj: unknown, msg: string) => emit((a) => a.log.error(obj, msg)),
    };
    cluster = config.redisUrl
      ? new Cluster({
          url: config.redisUrl,
          prefix: config.redisPrefix,
          degradedTtlMs: config.degradedCacheTtlMs,
          rateLimitWhenDown: config.rateLimitWhenRedisDown,
          log,
        })
      : null;
    const services = createServices({
      db: store.db,
      catalog: config.catalog,
      secret,
      keyPrefix: config.keyPrefix,
      usageFlushMs: config.usageFlushMs,
      sessionIdleMinutes: config.sessionIdleMinutes,
      sessionMaxHours: config.sessionMaxHours,
      loginLimits: config.loginLimits,
      loginIpLimits: config.loginIpLimits,
      cache: { ttlMs: config.cacheTtlMs, max: config.cacheMaxKeys },
      ...(cluster ? { limiter: cluster.limiter } : {}),
      onBackgroundError: (err) => log.error({ err }, "background work failed"),
    });
    await cluster?.start(services.changes, services.verification);
    // A local CLI reaches the running embedded server's admin routes with this token from the lock file.
    const controlToken = store.lock ? randomBytes(32).toString("base64url") : undefined;
    app = await buildApp({
      services,
      trustedProxies: config.trustedProxies,
      platformTokens: config.adminToken ? [config.adminToken] : [],
      ...(controlToken ? { controlToken } : {}),
      bodyLimit: config.bodyLimit,
      logger: opts.logger ?? { level: config.logLevel },
      health: () => {
        const node = cluster?.health();
        // A node that cannot hear the others still answers correctly (on a short cache TTL): degraded.
        return {
          status: node && node.redis !== "connected" ? "degraded" : "ok",
          store: store.kind,
          cluster: node ?? null,
        };
      },
    });
    for (const line of early.splice(0)) line(app);
    await app.listen({ port: config.port, host: config.host });
    const address = app.server.address();
    const port = typeof address === "object" && address ? address.port : config.port;
    const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
    store.lock?.update({ url, ...(controlToken ? { control_token: controlToken } : {}) });
    let stopped: Promise<void> | null = null;
    return {
      app,
      services,
      store,
      cluster,
      url,
      stop() {
        stopped ??= (async () => {
          await app.close();
          // Usage counts are flushed before the store closes; the bus goes last so this node's final
          // changes are still announced.
          await services.close();
          await cluster?.close();
          await store.close();
        })();
        return stopped;
      },
    };
  } catch (err) {
    await cluster?.close();
    await store.close();
    throw err;
  }
}
